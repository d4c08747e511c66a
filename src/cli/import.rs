//! `tokenkeeper import aurora`: a thin driver over `crate::import::Importer`: a progress line on a
//! terminal, the report on stdout, a failing exit status when a referenced secret could not be read.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;

use clap::Subcommand;

use crate::app::Services;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::import::Options;

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import an Aurora deployment from its PostgreSQL database (read only); see docs/IMPORT.md.
    Aurora {
        /// Aurora's database, e.g. postgres://aurora@db/aurora (only read, in one read-only transaction).
        #[arg(long)]
        from: String,
        /// Decide and report everything, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Read every referenced secret and report those missing or unreadable.
        #[arg(long)]
        verify: bool,
    },
}

pub async fn run(settings: Settings, cmd: ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::Aurora { from, dry_run, verify } = cmd;
    let services = Services::build(settings, Arc::new(SystemClock)).await?;
    let terminal = std::io::stderr().is_terminal();
    let progress = move |table: &str, done: usize, total: usize| {
        if terminal {
            eprint!("\r\x1b[2Kimporting {table}: {done}/{total}");
            let _ = std::io::stderr().flush();
        }
    };
    let result = services
        .importer()
        .aurora(&from, Options { dry_run, verify }, &progress)
        .await;
    if terminal {
        eprint!("\r\x1b[2K");
    }
    let report = result?;
    print!("{report}");
    anyhow::ensure!(
        report.unreadable.is_empty(),
        "{} referenced secret(s) missing or unreadable",
        report.unreadable.len()
    );
    Ok(())
}
