//! Files of the embedded default (`docs/STORAGE.md`): the data directory is 0700 and every file in it 0600,
//! whatever the process's umask. SQLite creates its `-wal` and `-shm` files with the mode of the database
//! file, so a database file created here 0600 (before SQLite opens it) keeps those private too.

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Creates `dir` (and its parents) 0700, or takes an existing one down to 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    restrict(dir, 0o700)
}

/// Creates the SQLite database file `path` empty and 0600 when it does not exist yet; an existing one
/// (and its `-wal` and `-shm`, if any) is taken down to 0600. `:memory:` and empty names are left alone.
pub fn private_sqlite_file(path: &Path) -> io::Result<()> {
    let name = path.as_os_str();
    if name.is_empty() || name == ":memory:" {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    restrict(path, 0o600)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        if Path::new(&side).exists() {
            restrict(Path::new(&side), 0o600)?;
        }
    }
    Ok(())
}

/// Removes every permission bit outside `mode` (never adds one).
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
    }
    Ok(())
}
