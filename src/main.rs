#![deny(clippy::unwrap_used)] // as in the library (src/lib.rs)

use clap::Parser as _;

// glibc malloc was a tenth of the CPU of a proxied credential read (many small, short-lived
// allocations across two worker threads); mimalloc's per-thread free lists are cheaper for that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
