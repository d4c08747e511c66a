//! Tokenkeeper: keeps a platform's user passwords and the provider credentials its users connect.
//!
//! Secrets live in a [`secrets::SecretStore`] (HashiCorp Vault KV v2, or the embedded AES-256-GCM store);
//! SQL ([`db::Store`]) holds only references and non-secret metadata. See `docs/ARCHITECTURE.md`.

// `unsafe` is forbidden in the whole crate (`[lints]` in Cargo.toml). A panic outside tests needs its reason
// written next to it, `expect("why this cannot fail")`, never a bare `unwrap()` (unit tests may: clippy.toml).
#![deny(clippy::unwrap_used)]

pub mod app;
pub mod audit;
pub mod background;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect;
pub mod console;
pub mod credentials;
pub mod db;
pub mod events;
pub mod files;
pub mod http;
pub mod identity;
pub mod ids;
pub mod import;
pub mod metrics;
pub mod net;
pub mod orgs;
pub mod passwords;
pub mod providers;
pub mod refresh;
pub mod secrets;
pub mod telemetry;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// docs/ARCHITECTURE.md stays true: its module map names every file of `src/` (as `` `dir/file.rs` ``),
    /// and every file the map names still exists.
    #[test]
    fn the_architecture_document_names_every_source_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
        let src = root.join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let named = |rel: &str| doc.contains(&format!("`{rel}`"));
        let mut unnamed: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(&src).unwrap().to_string_lossy().into_owned())
            .filter(|rel| !named(rel))
            .collect();
        unnamed.sort();
        assert!(
            unnamed.is_empty(),
            "files of src/ not in docs/ARCHITECTURE.md's module map: {unnamed:?}"
        );
        // The map's rows: `| `file.rs` | what it is |` (a row may name several files in its first cell).
        let stale: Vec<&str> = doc
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|row| row.split(" |").next())
            .flat_map(|cell| cell.split('`'))
            .filter(|name| name.ends_with(".rs") && !src.join(name).is_file())
            .collect();
        assert!(
            stale.is_empty(),
            "docs/ARCHITECTURE.md names files that are not in src/: {stale:?}"
        );
    }
}
