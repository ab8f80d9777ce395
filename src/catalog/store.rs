//! Finding files: a path, a directory or a glob becomes a list of objects in
//! an object store. Local paths use object_store's local file system, so other
//! stores can take the same road later.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{QuarryError, Result};

/// One file of a table.
#[derive(Debug, Clone)]
pub struct FileRef {
    pub store: Arc<dyn ObjectStore>,
    pub path: ObjectPath,
    /// The path as the user would write it (for messages).
    pub display: String,
    pub size: u64,
    /// Where the file is on this machine's disk, for a local file.
    pub local_path: Option<std::path::PathBuf>,
}

fn local_store() -> Arc<dyn ObjectStore> {
    static STORE: std::sync::OnceLock<Arc<dyn ObjectStore>> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| Arc::new(LocalFileSystem::new()))
        .clone()
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lists the files that `location` names: a file, a directory (its files with
/// `extension`), or a glob. Errors name the path when nothing matches.
pub fn list_files(location: &str, extension: &str) -> Result<Vec<FileRef>> {
    let location = location.strip_prefix("file://").unwrap_or(location);
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    if has_glob(location) {
        let entries = glob::glob(location)
            .map_err(|e| QuarryError::Io(format!("invalid glob pattern '{location}': {e}")))?;
        for entry in entries {
            let p = entry.map_err(|e| QuarryError::Io(format!("cannot read '{location}': {e}")))?;
            if p.is_file() {
                paths.push(p);
            }
        }
        if paths.is_empty() {
            return Err(QuarryError::Io(format!("no files match '{location}'")));
        }
    } else {
        let p = std::path::Path::new(location);
        if p.is_dir() {
            let rd = std::fs::read_dir(p)
                .map_err(|e| QuarryError::Io(format!("cannot read directory '{location}': {e}")))?;
            for entry in rd.flatten() {
                let ep = entry.path();
                if ep.is_file() && ep.extension().is_some_and(|e| e == extension) {
                    paths.push(ep);
                }
            }
            if paths.is_empty() {
                return Err(QuarryError::Io(format!(
                    "no .{extension} files in directory '{location}'"
                )));
            }
        } else if p.is_file() {
            paths.push(p.to_path_buf());
        } else {
            return Err(QuarryError::Io(format!("file not found: '{location}'")));
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let display = p.display().to_string();
            let abs = std::fs::canonicalize(&p)
                .map_err(|e| QuarryError::Io(format!("cannot open '{display}': {e}")))?;
            let size = std::fs::metadata(&abs)
                .map_err(|e| QuarryError::Io(format!("cannot open '{display}': {e}")))?
                .len();
            let path = ObjectPath::from_absolute_path(&abs)
                .map_err(|e| QuarryError::Io(format!("invalid path '{display}': {e}")))?;
            Ok(FileRef {
                store: local_store(),
                path,
                display,
                size,
                local_path: Some(abs),
            })
        })
        .collect()
}

/// Reads a byte range of a file.
pub fn read_range(file: &FileRef, range: std::ops::Range<u64>) -> Result<bytes::Bytes> {
    crate::runtime::io::block_on(file.store.get_range(&file.path, range))?
        .map_err(|e| QuarryError::Io(format!("cannot read '{}': {e}", file.display)))
}

/// The size of the file now (it may have changed since it was listed).
pub fn current_size(file: &FileRef) -> Result<u64> {
    let meta = crate::runtime::io::block_on(file.store.head(&file.path))?
        .map_err(|e| QuarryError::Io(format!("cannot open '{}': {e}", file.display)))?;
    Ok(meta.size)
}
