//! What an import did (or, in a dry run, would do): counts per table and per provider, every skipped row
//! with its reason, the secrets moved out of Aurora's SQL (named by row and secret name, never shown), and
//! what `--verify` found. Its `Display` is the CLI's final report.

use std::collections::BTreeMap;
use std::fmt;

/// The tables of Aurora the report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Users,
    Organizations,
    Memberships,
    UserTokens,
    UserConnections,
}

impl Table {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Organizations => "organizations",
            Self::Memberships => "memberships (casbin_rule g)",
            Self::UserTokens => "user_tokens",
            Self::UserConnections => "user_connections",
        }
    }
}

/// What became of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    Added,
    Unchanged,
    Skipped,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub added: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

impl Counts {
    fn add(&mut self, fate: Fate) {
        match fate {
            Fate::Added => self.added += 1,
            Fate::Unchanged => self.unchanged += 1,
            Fate::Skipped => self.skipped += 1,
        }
    }
}

/// A row not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub table: Table,
    /// The row's key in Aurora (an id, or `user/org` for a grant).
    pub row: String,
    pub reason: String,
}

/// A secret that lived only in Aurora's SQL, written to the secret store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    /// `user_tokens` row id.
    pub row: i64,
    /// The columns it came from (`token_data`, `client_secret`).
    pub columns: Vec<&'static str>,
    pub secret_name: String,
}

/// A referenced secret `--verify` could not read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unreadable {
    pub row: i64,
    pub reference: String,
    pub problem: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub tables: BTreeMap<Table, Counts>,
    /// Connections per provider.
    pub providers: BTreeMap<String, Counts>,
    pub skipped: Vec<Skipped>,
    pub moved: Vec<Moved>,
    /// Secrets read by `--verify`.
    pub verified: u64,
    pub unreadable: Vec<Unreadable>,
}

impl Report {
    pub fn count(&mut self, table: Table, fate: Fate) {
        self.tables.entry(table).or_default().add(fate);
    }

    pub fn count_provider(&mut self, provider: &str, fate: Fate) {
        self.providers.entry(provider.to_string()).or_default().add(fate);
    }

    pub fn skip(&mut self, table: Table, row: impl Into<String>, reason: impl Into<String>) {
        self.count(table, Fate::Skipped);
        self.skipped.push(Skipped {
            table,
            row: row.into(),
            reason: reason.into(),
        });
    }

    /// Nothing added anywhere: a second run over the same data.
    pub fn nothing_added(&self) -> bool {
        self.tables.values().all(|c| c.added == 0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would add" } else { "added" };
        writeln!(
            f,
            "{}",
            if self.dry_run {
                "Dry run: nothing written."
            } else {
                "Import done."
            }
        )?;
        let line = |f: &mut fmt::Formatter<'_>, name: &str, c: &Counts| {
            writeln!(
                f,
                "  {name:<28} {verb} {:>5}  unchanged {:>5}  skipped {:>5}",
                c.added, c.unchanged, c.skipped
            )
        };
        writeln!(f, "Per table:")?;
        for (table, c) in &self.tables {
            line(f, table.as_str(), c)?;
        }
        writeln!(f, "Connections per provider:")?;
        for (provider, c) in &self.providers {
            line(f, provider, c)?;
        }
        if self.nothing_added() {
            writeln!(f, "Everything is unchanged.")?;
        }
        for s in &self.skipped {
            writeln!(f, "skipped {} {}: {}", s.table.as_str(), s.row, s.reason)?;
        }
        for m in &self.moved {
            let how = if self.dry_run { "would move" } else { "moved" };
            writeln!(
                f,
                "{how} the secret of user_tokens {} ({}) out of Aurora's SQL into secret {}",
                m.row,
                m.columns.join(", "),
                m.secret_name
            )?;
        }
        if self.verified > 0 || !self.unreadable.is_empty() {
            writeln!(
                f,
                "Verified {} referenced secrets; {} missing or unreadable.",
                self.verified,
                self.unreadable.len()
            )?;
        }
        for u in &self.unreadable {
            writeln!(f, "unreadable user_tokens {} ({}): {}", u.row, u.reference, u.problem)?;
        }
        Ok(())
    }
}
