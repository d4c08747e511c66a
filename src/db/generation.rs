//! A change counter shared by every process that opens the same SQLite database.
//!
//! SQLite has no `NOTIFY`, and the CLI (`tokenkeeper tokens delete`) or a second server writes the same
//! file from another process. So every process maps one small file beside the database
//! (`<database>-changes`, mode 0600) and, after it commits a change to a credential, increments the
//! 64-bit counter at its start. A read cache compares the counter with the value its entries reflect
//! before it serves a hit without SQL: one atomic load per read, and a change is visible to every
//! process as soon as the writer that made it has returned.
//!
//! A database with no file (in memory) is private to its process; its counter lives on the heap.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapRaw;

/// Size of the counter file: the counter itself, at offset 0.
const FILE_LEN: u64 = 8;

pub struct ChangeGeneration {
    backing: Backing,
}

enum Backing {
    /// Shared with every process that maps the same file.
    Mapped(MmapRaw),
    /// In-memory database: no other process can see it.
    Private(AtomicU64),
}

impl std::fmt::Debug for ChangeGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backing {
            Backing::Mapped(_) => "mapped",
            Backing::Private(_) => "private",
        };
        f.debug_struct("ChangeGeneration")
            .field("backing", &kind)
            .field("current", &self.current())
            .finish()
    }
}

/// The counter file of the database file `db`.
pub fn path_beside(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-changes");
    PathBuf::from(name)
}

impl ChangeGeneration {
    /// Maps (creating it if needed) the counter file beside the database file `db`.
    pub fn beside(db: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path_beside(db))?;
        // Growing a file fills it with zeros; a file that already has its length keeps its counter,
        // so two processes creating it at the same moment cannot reset each other's count.
        if file.metadata()?.len() < FILE_LEN {
            file.set_len(FILE_LEN)?;
        }
        let map = MmapRaw::map_raw(&file)?;
        if map.len() < FILE_LEN as usize {
            return Err(io::Error::other("change counter file is too short"));
        }
        Ok(Self {
            backing: Backing::Mapped(map),
        })
    }

    /// A counter for a database no other process can open.
    pub fn private() -> Self {
        Self {
            backing: Backing::Private(AtomicU64::new(0)),
        }
    }

    #[allow(unsafe_code)]
    fn counter(&self) -> &AtomicU64 {
        match &self.backing {
            // SAFETY: the mapping is page-aligned (so aligned for a u64), at least 8 bytes long (checked
            // in `beside`), and lives as long as `self`, which the returned reference borrows. Every
            // process touches these 8 bytes only through this atomic, so there are no non-atomic
            // accesses to race with; atomics on a shared file mapping are coherent across processes.
            // Only truncating the file from outside could break this (SIGBUS), and nothing here does.
            Backing::Mapped(map) => unsafe { AtomicU64::from_ptr(map.as_mut_ptr().cast::<u64>()) },
            Backing::Private(n) => n,
        }
    }

    /// The current value.
    pub fn current(&self) -> u64 {
        self.counter().load(Ordering::SeqCst)
    }

    /// Counts one change (call it after the change is committed); returns the new value.
    pub fn bump(&self) -> u64 {
        self.counter().fetch_add(1, Ordering::SeqCst).wrapping_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_file_see_each_others_changes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("tokenkeeper.db");
        let a = ChangeGeneration::beside(&db).unwrap();
        let b = ChangeGeneration::beside(&db).unwrap();
        assert_eq!((a.current(), b.current()), (0, 0));
        assert_eq!(a.bump(), 1);
        assert_eq!(b.current(), 1);
        assert_eq!(b.bump(), 2);
        assert_eq!(a.current(), 2);
        // Opening it again keeps the count, and the file is private to its owner.
        drop((a, b));
        assert_eq!(ChangeGeneration::beside(&db).unwrap().current(), 2);
        let mode = std::fs::metadata(path_beside(&db)).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }

    #[test]
    fn private_counter_counts() {
        let g = ChangeGeneration::private();
        assert_eq!(g.bump(), 1);
        assert_eq!(g.current(), 1);
    }
}
