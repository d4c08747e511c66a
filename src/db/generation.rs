//! A change counter shared by every process that opens the same SQLite database.
//!
//! SQLite has no `NOTIFY`, and the CLI (`tokenkeeper tokens delete`) or a second server writes the same
//! file from another process. So every process opens one small file beside the database
//! (`<database>-changes`, mode 0600) and, after it commits a change to a credential, increments the
//! 64-bit counter at its start. A read cache compares the counter with the value its entries reflect
//! before it serves a hit without SQL: one 8-byte `pread` per read (the page cache, no disk), and a change
//! is visible to every process as soon as the writer that made it has returned.
//!
//! No `unsafe`: the counter is read and written with positioned reads and writes, not through a shared
//! memory mapping. An increment holds the file's exclusive lock (`flock`: other processes) and a mutex
//! (other threads of this one, which share the open file and so the lock). A read takes no lock: the
//! counter only goes up, and the cache only asks whether it still equals the value it noted, so a read
//! that overlaps a write (and might see a mix of the two values' bytes) can only make the cache drop its
//! entries once too often, never keep them past a change whose writer has returned.
//!
//! A database with no file (in memory) is private to its process; its counter lives on the heap.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the counter file: the counter itself (native byte order), at offset 0.
const FILE_LEN: u64 = 8;

pub struct ChangeGeneration {
    backing: Backing,
}

enum Backing {
    /// Shared with every process that opens the same file. `bumping` serialises this process's
    /// increments (its threads share the open file, so its `flock` does not exclude them from each other).
    File { file: File, bumping: Mutex<()> },
    /// In-memory database: no other process can see it.
    Private(AtomicU64),
}

impl std::fmt::Debug for ChangeGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backing {
            Backing::File { .. } => "file",
            Backing::Private(_) => "private",
        };
        f.debug_struct("ChangeGeneration")
            .field("backing", &kind)
            .field("current", &self.current().ok())
            .finish()
    }
}

/// The counter file of the database file `db`: credential changes.
pub fn path_beside(db: &Path) -> PathBuf {
    with_suffix(db, "-changes")
}

/// The second counter file of the database file `db`: identity changes (sessions, passwords,
/// memberships), kept apart so that a logout does not empty every process's credential cache.
pub fn identity_path_beside(db: &Path) -> PathBuf {
    with_suffix(db, "-identity-changes")
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn read_counter(file: &File) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(u64::from_ne_bytes(bytes))
}

impl ChangeGeneration {
    /// Opens (creating it if needed) the counter file beside the database file `db`.
    pub fn beside(db: &Path) -> io::Result<Self> {
        Self::open(&path_beside(db))
    }

    /// Opens (creating it if needed) the counter file at `path` ([`path_beside`], [`identity_path_beside`]).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        // Growing a file fills it with zeros; a file that already has its length keeps its counter,
        // so two processes creating it at the same moment cannot reset each other's count.
        if file.metadata()?.len() < FILE_LEN {
            file.lock()?;
            let grown = if file.metadata()?.len() < FILE_LEN {
                file.set_len(FILE_LEN)
            } else {
                Ok(())
            };
            file.unlock()?;
            grown?;
        }
        Ok(Self {
            backing: Backing::File {
                file,
                bumping: Mutex::new(()),
            },
        })
    }

    /// A counter for a database no other process can open.
    pub fn private() -> Self {
        Self {
            backing: Backing::Private(AtomicU64::new(0)),
        }
    }

    /// The current value.
    pub fn current(&self) -> io::Result<u64> {
        match &self.backing {
            Backing::File { file, .. } => read_counter(file),
            Backing::Private(n) => Ok(n.load(Ordering::SeqCst)),
        }
    }

    /// Counts one change (call it after the change is committed); returns the new value.
    pub fn bump(&self) -> io::Result<u64> {
        match &self.backing {
            Backing::File { file, bumping } => {
                // The guard protects no data (each step is one system call), so a poisoned one is usable.
                let _one_at_a_time = bumping.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                file.lock()?;
                let bumped = read_counter(file).and_then(|n| {
                    let next = n.wrapping_add(1);
                    file.write_all_at(&next.to_ne_bytes(), 0).map(|()| next)
                });
                file.unlock()?;
                bumped
            }
            Backing::Private(n) => Ok(n.fetch_add(1, Ordering::SeqCst).wrapping_add(1)),
        }
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
        assert_eq!((a.current().unwrap(), b.current().unwrap()), (0, 0));
        assert_eq!(a.bump().unwrap(), 1);
        assert_eq!(b.current().unwrap(), 1);
        assert_eq!(b.bump().unwrap(), 2);
        assert_eq!(a.current().unwrap(), 2);
        // Opening it again keeps the count, and the file is private to its owner.
        drop((a, b));
        assert_eq!(ChangeGeneration::beside(&db).unwrap().current().unwrap(), 2);
        let mode = std::fs::metadata(path_beside(&db)).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }

    #[test]
    fn increments_from_two_openings_and_many_threads_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("tokenkeeper.db");
        // Two openings stand for two processes (each has its own open file, so its own `flock`).
        let openings = [
            ChangeGeneration::beside(&db).unwrap(),
            ChangeGeneration::beside(&db).unwrap(),
        ];
        std::thread::scope(|s| {
            for g in &openings {
                for _ in 0..4 {
                    s.spawn(move || {
                        for _ in 0..5_000 {
                            g.bump().unwrap();
                        }
                    });
                }
            }
        });
        assert_eq!(openings[0].current().unwrap(), 40_000);
        assert_eq!(openings[1].current().unwrap(), 40_000);
    }

    #[test]
    fn private_counter_counts() {
        let g = ChangeGeneration::private();
        assert_eq!(g.bump().unwrap(), 1);
        assert_eq!(g.current().unwrap(), 1);
    }
}
