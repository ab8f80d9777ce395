//! Finding files: a path, a directory or a glob becomes a list of objects in
//! an object store. Local paths use positioned reads of the local disk;
//! `s3://`, `gs://`, `az://` and `http(s)://` locations go through the
//! session's remote stores (`remote.rs`), one per bucket or host.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use serde::{Deserialize, Serialize};
use url::Url;

use super::remote::{remote_url, store_error, RemoteOptions};
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
    /// What tells this version of the file from another of the same size
    /// (an ETag or a modification time), for the footer cache.
    pub version: Option<String>,
}

/// A file as data, for a task graph sent to another process: what finds
/// it again there. No store and no credentials: a remote file is reopened
/// through the reader's own stores, with its own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDescriptor {
    /// As the user wrote it; for a remote file its URL, which names the
    /// store (scheme, bucket or host).
    pub location: String,
    /// The object's path in its store.
    pub path: String,
    pub size: u64,
    pub version: Option<String>,
    /// The absolute path of a local file.
    pub local_path: Option<std::path::PathBuf>,
}

impl FileRef {
    pub fn describe(&self) -> FileDescriptor {
        FileDescriptor {
            location: self.display.clone(),
            path: self.path.as_ref().to_string(),
            size: self.size,
            version: self.version.clone(),
            local_path: self.local_path.clone(),
        }
    }
}

impl FileDescriptor {
    /// The file, through `stores` for a remote one.
    pub fn open(&self, stores: &ObjectStores) -> Result<FileRef> {
        let invalid = |e: &dyn std::fmt::Display| {
            QuarryError::Io(format!("invalid path of '{}': {e}", self.location))
        };
        let (store, path) = match (&self.local_path, remote_url(&self.location)) {
            (Some(local), _) => (
                local_store(),
                ObjectPath::from_absolute_path(local).map_err(|e| invalid(&e))?,
            ),
            (None, Some(url)) => (
                stores.store_for(&url?)?,
                ObjectPath::parse(&self.path).map_err(|e| invalid(&e))?,
            ),
            (None, None) => {
                return Err(QuarryError::Io(format!(
                    "'{}' is neither a local file with its path nor a remote URL",
                    self.location
                )))
            }
        };
        Ok(FileRef {
            store,
            path,
            display: self.location.clone(),
            size: self.size,
            local_path: self.local_path.clone(),
            version: self.version.clone(),
        })
    }
}

/// A file's display path, size and version.
type FooterKey = (String, u64, Option<String>);

/// The object stores of a session and what it caches about their files.
#[derive(Debug, Default)]
pub struct ObjectStores {
    options: RwLock<RemoteOptions>,
    /// Built stores by scheme and authority (`s3://bucket`); rebuilt when
    /// an option changes.
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    /// Parquet footers by file and version: a remote footer costs a round
    /// trip or two.
    pub(super) footers: Mutex<HashMap<FooterKey, ArrowReaderMetadata>>,
}

/// Footers kept at most; past that the cache starts over.
const MAX_CACHED_FOOTERS: usize = 4096;

impl ObjectStores {
    /// Applies `SET name = value` to a remote store setting.
    pub fn set_option(&self, name: &str, value: &str) -> Result<()> {
        let mut options = self.options.write().map_err(poisoned)?;
        let before = options.clone();
        options.set(name, value)?;
        if *options != before {
            self.stores.lock().map_err(poisoned)?.clear();
        }
        Ok(())
    }

    /// The value `SHOW name` prints (secrets masked).
    pub fn option(&self, name: &str) -> Option<String> {
        self.options.read().ok()?.get(name)
    }

    pub(crate) fn store_for(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let key = url[..url::Position::BeforePath].to_lowercase();
        if let Some(s) = self.stores.lock().map_err(poisoned)?.get(&key) {
            return Ok(s.clone());
        }
        let store = self.options.read().map_err(poisoned)?.build_store(url)?;
        self.stores
            .lock()
            .map_err(poisoned)?
            .insert(key, store.clone());
        Ok(store)
    }

    pub(super) fn cached_footer(&self, file: &FileRef) -> Option<ArrowReaderMetadata> {
        let key = (file.display.clone(), file.size, file.version.clone());
        self.footers.lock().ok()?.get(&key).cloned()
    }

    pub(super) fn keep_footer(&self, file: &FileRef, meta: &ArrowReaderMetadata) {
        if let Ok(mut footers) = self.footers.lock() {
            if footers.len() >= MAX_CACHED_FOOTERS {
                footers.clear();
            }
            let key = (file.display.clone(), file.size, file.version.clone());
            footers.insert(key, meta.clone());
        }
    }
}

fn poisoned<T>(_: T) -> QuarryError {
    QuarryError::exec("internal error: object store state poisoned by an earlier panic")
}

fn local_store() -> Arc<dyn ObjectStore> {
    static STORE: std::sync::OnceLock<Arc<dyn ObjectStore>> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| Arc::new(LocalFileSystem::new()))
        .clone()
}

/// True if `location` names data in a remote object store.
pub fn is_remote(location: &str) -> bool {
    remote_url(location).is_some()
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lists the files that `location` names: a file, a directory (its files with
/// `extension`), or a glob. Errors name the path when nothing matches.
pub fn list_files(location: &str, extension: &str, stores: &ObjectStores) -> Result<Vec<FileRef>> {
    if let Some(url) = remote_url(location) {
        return list_remote(&url?, location, extension, stores);
    }
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
            let meta = std::fs::metadata(&abs)
                .map_err(|e| QuarryError::Io(format!("cannot open '{display}': {e}")))?;
            let path = ObjectPath::from_absolute_path(&abs)
                .map_err(|e| QuarryError::Io(format!("invalid path '{display}': {e}")))?;
            let version = meta.modified().ok().map(|t| format!("{t:?}"));
            Ok(FileRef {
                store: local_store(),
                path,
                display,
                size: meta.len(),
                local_path: Some(abs),
                version,
            })
        })
        .collect()
}

/// Lists the objects of a remote `location`: one object, a "directory"
/// (the objects under a prefix with `extension`), or a glob over the keys
/// (the prefix before its first wildcard is listed, the rest matched).
fn list_remote(
    url: &Url,
    location: &str,
    extension: &str,
    stores: &ObjectStores,
) -> Result<Vec<FileRef>> {
    let store = stores.store_for(url)?;
    let base = &url[..url::Position::BeforePath];
    let key = ObjectPath::from_url_path(url.path())
        .map_err(|e| QuarryError::Io(format!("invalid path in '{location}': {e}")))?;
    let key_text = key.as_ref().to_string();
    let list = |prefix: &str| -> Result<Vec<ObjectMeta>> {
        let prefix = ObjectPath::from(prefix);
        crate::runtime::io::block_on(store.list(Some(&prefix)).try_collect::<Vec<_>>())?
            .map_err(|e| store_error(&e, location, None))
    };
    let metas: Vec<ObjectMeta> = if has_glob(&key_text) {
        let pattern = glob::Pattern::new(&key_text)
            .map_err(|e| QuarryError::Io(format!("invalid glob pattern '{location}': {e}")))?;
        let wild = key_text.find(['*', '?', '[']).unwrap_or(0);
        let prefix = key_text[..wild].rsplit_once('/').map_or("", |(p, _)| p);
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        let found: Vec<ObjectMeta> = list(prefix)?
            .into_iter()
            .filter(|m| pattern.matches_with(m.location.as_ref(), options))
            .collect();
        if found.is_empty() {
            return Err(QuarryError::Io(format!("no files match '{location}'")));
        }
        found
    } else {
        let single = if url.path().ends_with('/') || key_text.is_empty() {
            None
        } else {
            match crate::runtime::io::block_on(store.head(&key))? {
                Ok(meta) => Some(meta),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => return Err(store_error(&e, location, None)),
            }
        };
        match single {
            Some(meta) => vec![meta],
            None => {
                // Not an object: perhaps a "directory" of them.
                let suffix = format!(".{extension}");
                let found: Vec<ObjectMeta> = list(&key_text)?
                    .into_iter()
                    .filter(|m| m.location.as_ref().ends_with(&suffix))
                    .collect();
                if found.is_empty() {
                    return Err(QuarryError::Io(format!("not found: '{location}'")));
                }
                found
            }
        }
    };
    let mut files: Vec<FileRef> = metas
        .into_iter()
        .map(|m| FileRef {
            store: store.clone(),
            display: format!("{base}/{}", m.location),
            path: m.location,
            size: m.size,
            local_path: None,
            version: m.e_tag.or_else(|| Some(m.last_modified.to_rfc3339())),
        })
        .collect();
    files.sort_by(|a, b| a.display.cmp(&b.display));
    Ok(files)
}

/// Reads a byte range of a file, adding the bytes to `fetched`.
pub fn read_range(
    file: &FileRef,
    range: std::ops::Range<u64>,
    fetched: &AtomicU64,
) -> Result<bytes::Bytes> {
    let bytes = crate::runtime::io::block_on(file.store.get_range(&file.path, range.clone()))?
        .map_err(|e| store_error(&e, &file.display, Some(&range)))?;
    fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(bytes)
}

/// The size of the file now (it may have changed since it was listed).
pub fn current_size(file: &FileRef) -> Result<u64> {
    let meta = crate::runtime::io::block_on(file.store.head(&file.path))?
        .map_err(|e| store_error(&e, &file.display, None))?;
    Ok(meta.size)
}
