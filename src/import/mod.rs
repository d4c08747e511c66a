//! `tokenkeeper import aurora`: adopts an Aurora deployment. Reads Aurora's database only (one read-only
//! snapshot, [`aurora`]), decides row by row what Tokenkeeper lacks ([`plan`], [`connections`]), then writes
//! it: the secrets that lived only in Aurora's SQL first, then every row in one transaction (all or
//! nothing; the moved secrets are deleted again when the transaction fails). Rows that are already there
//! with the same data count as unchanged, rows that would overwrite different data are skipped and
//! reported. Referenced secrets are adopted where they are: Tokenkeeper's rows point at the very same
//! secrets, none is copied. See docs/IMPORT.md.

mod aurora;
mod connections;
mod plan;
pub mod report;

use std::collections::HashSet;
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::credentials::CredentialService;
use crate::db::{DbError, ImportWrite, SharedStore};
use crate::providers::TokenData;
use crate::secrets::{SecretError, SecretStore};
pub use report::Report;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("Aurora's database cannot be reached: {0}")]
    Unreachable(String),
    #[error("not an Aurora database: missing table(s) {0}")]
    NotAurora(String),
    #[error("reading Aurora's database failed: {0}")]
    Aurora(#[from] sqlx::Error),
    #[error("Tokenkeeper's database: {0}")]
    Store(#[from] DbError),
    #[error("secret store: {0}")]
    Secrets(#[from] SecretError),
    #[error("Tokenkeeper's data changed during the import; nothing was written, run it again")]
    Changed,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Decide and report, write nothing.
    pub dry_run: bool,
    /// Read every referenced secret and report those missing or unreadable.
    pub verify: bool,
}

/// Where the import is, for a progress line: the table, rows done, rows in it.
pub type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

/// A secret found only in Aurora's SQL, to be written under Tokenkeeper's name for its connection.
struct Move {
    name: String,
    data: TokenData,
}

/// Every decision of one run.
#[derive(Default)]
struct Plan {
    write: ImportWrite,
    moves: Vec<Move>,
    report: Report,
}

pub struct Importer {
    store: SharedStore,
    secrets: Arc<dyn SecretStore>,
    credentials: CredentialService,
    clock: SharedClock,
}

impl Importer {
    pub fn new(
        store: SharedStore,
        secrets: Arc<dyn SecretStore>,
        credentials: CredentialService,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            secrets,
            credentials,
            clock,
        }
    }

    /// Imports the Aurora database at `from` (a PostgreSQL URL).
    #[tracing::instrument(skip_all, fields(dry_run = options.dry_run, verify = options.verify))]
    pub async fn aurora(&self, from: &str, options: Options, progress: Progress<'_>) -> Result<Report, ImportError> {
        let snapshot = aurora::read(from).await?;
        let mut plan = Plan::default();
        plan.report.dry_run = options.dry_run;
        let users = self.plan_users(&snapshot, &mut plan, progress).await?;
        let orgs = self.plan_orgs(&snapshot, &users, &mut plan).await?;
        self.plan_members(&snapshot, &users, &orgs, &mut plan).await?;
        self.plan_connections(&snapshot, &users, &orgs, options, &mut plan, progress)
            .await?;
        plan_aws(&snapshot, &mut plan);
        if !options.dry_run {
            self.apply(&plan).await?;
        }
        Ok(plan.report)
    }

    /// The moved secrets first (only where no secret of that name exists), then the rows in one
    /// transaction; if the transaction fails, the secrets this run wrote are deleted again.
    async fn apply(&self, plan: &Plan) -> Result<(), ImportError> {
        let mut written: Vec<&str> = Vec::new();
        let mut result = Ok(());
        for m in &plan.moves {
            match self.secrets.write(&m.name, &m.data.encode(), Some(0)).await {
                Ok(_) => written.push(&m.name),
                Err(SecretError::CasMismatch) => {
                    result = Err(ImportError::Changed);
                    break;
                }
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
        }
        if result.is_ok() && !plan.write.is_empty() {
            result = match self.store.apply_import(&plan.write).await {
                Ok(()) => Ok(()),
                Err(DbError::Conflict) => Err(ImportError::Changed),
                Err(e) => Err(e.into()),
            };
        }
        if result.is_err() {
            for name in written {
                if let Err(e) = self.secrets.delete(name).await {
                    tracing::error!(secret = name, error = %e, "could not remove a secret of a failed import");
                }
            }
        }
        result
    }
}

/// AWS accounts become named connections once connections have names; until then each is reported.
fn plan_aws(snapshot: &aurora::Snapshot, plan: &mut Plan) {
    let mut seen = HashSet::new();
    for a in &snapshot.aws {
        let table = report::Table::UserConnections;
        if !seen.insert((a.user_id.as_str(), a.account_id.as_str())) {
            plan.report
                .skip(table, a.id.to_string(), "a second row for the same AWS account");
            continue;
        }
        plan.report.count(table, report::Fate::Pending);
        plan.report.count_provider("aws", report::Fate::Pending);
        plan.report.skipped.push(report::Skipped {
            table,
            row: a.id.to_string(),
            reason: format!(
                "AWS account {} waits for named connections (one per account); not imported yet",
                a.account_id
            ),
        });
    }
}
