use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tokenkeeper::telemetry::init();
    let cli = tokenkeeper::cli::Cli::parse();
    match tokenkeeper::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokenkeeper: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
