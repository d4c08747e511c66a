//! `tokenkeeper import aurora`: adopts an Aurora deployment. Reads Aurora's database only (one read-only
//! snapshot, [`aurora`]), decides row by row what Tokenkeeper lacks ([`plan`], [`connections`]), then writes
//! it: the secrets that lived only in Aurora's SQL first, then every row in one transaction (all or
//! nothing; the moved secrets are deleted again when the transaction fails). Rows that are already there
//! with the same data count as unchanged, rows that would overwrite different data are skipped and
//! reported. Referenced secrets are adopted where they are: Tokenkeeper's rows point at the very same
//! secrets, none is copied. See docs/IMPORT.md.

mod aurora;
mod aws;
mod connections;
mod plan;
pub mod report;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::credentials::CredentialService;
use crate::db::identity_cache::Changed;
use crate::db::{DbError, IdentityCache, ImportWrite, SharedStore};
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

/// A secret to write under Tokenkeeper's name for its connection: one found only in Aurora's SQL, or an AWS
/// account's role (Aurora keeps it in SQL, Tokenkeeper in the secret store like any credential).
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
    /// Told once the rows are in: other processes may hold "no such user" for an imported id.
    identity: Arc<IdentityCache>,
    clock: SharedClock,
}

impl Importer {
    pub fn new(
        store: SharedStore,
        secrets: Arc<dyn SecretStore>,
        credentials: CredentialService,
        identity: Arc<IdentityCache>,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            secrets,
            credentials,
            identity,
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
        self.plan_aws(&snapshot, &users, &orgs, &mut plan).await?;
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
                // Every process's identity cache may hold "no such user" (and so no password to change)
                // for an id just imported: on SQLite the identity change counter tells them (PostgreSQL's
                // triggers announced each row in the transaction); one bump drops everything, as an
                // import is rare.
                Ok(()) => {
                    self.identity.changed(Changed::Everyone).await;
                    Ok(())
                }
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
