//! Where a query's exchange lives: a directory every worker sees (a shared
//! disk), or a prefix in an object store every worker can reach
//! (`s3://bucket/dir`, each worker with its own credentials). The exchange
//! (`exchange.rs`) reads and writes its files through this, by their names
//! relative to the query's root (`graph.json`, `s3/t7-….arrow`).

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::catalog::remote::{remote_url, store_error};
use crate::catalog::ObjectStores;
use crate::error::{QuarryError, Result};
use crate::runtime::io::block_on;

/// A task's output goes up in parts of this size (S3 wants at least 5 MiB
/// but for the last); a smaller one in one request.
const PART_BYTES: usize = 16 << 20;

#[derive(Debug, Clone)]
pub enum Place {
    Local(PathBuf),
    Remote {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        /// The root as the user wrote it (for messages).
        url: String,
    },
}

/// An open file of the exchange, for reads of byte ranges.
pub enum RangeReader {
    Local(File, PathBuf),
    Remote(Arc<dyn ObjectStore>, ObjectPath, String),
}

impl Place {
    /// The place of `root`: an object store for a URL, else a directory.
    pub fn of(root: &Path, stores: &ObjectStores) -> Result<Place> {
        let text = root.to_string_lossy();
        let Some(url) = remote_url(&text) else {
            return Ok(Place::Local(root.to_path_buf()));
        };
        let url = url?;
        let prefix = ObjectPath::parse(url.path().trim_matches('/'))
            .map_err(|e| QuarryError::Config(format!("invalid exchange location '{text}': {e}")))?;
        Ok(Place::Remote {
            store: stores.store_for(&url)?,
            prefix,
            url: text.trim_end_matches('/').to_string(),
        })
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Place::Remote { .. })
    }

    /// The file `name` as a message shows it.
    pub fn display(&self, name: &str) -> String {
        match self {
            Place::Local(root) => root.join(name).display().to_string(),
            Place::Remote { url, .. } => format!("{url}/{name}"),
        }
    }

    fn key(prefix: &ObjectPath, name: &str) -> ObjectPath {
        name.split('/')
            .fold(prefix.clone(), |p, part| p.clone().join(part))
    }

    /// Makes the root (a directory; nothing for a store).
    pub fn create(&self) -> Result<()> {
        match self {
            Place::Local(root) => {
                std::fs::create_dir_all(root).map_err(|e| io_error("create", root, e))
            }
            Place::Remote { .. } => Ok(()),
        }
    }

    /// Whether the file `name` is there.
    pub fn has(&self, name: &str) -> bool {
        match self {
            Place::Local(root) => root.join(name).exists(),
            Place::Remote { store, prefix, .. } => {
                matches!(block_on(store.head(&Self::key(prefix, name))), Ok(Ok(_)))
            }
        }
    }

    /// Puts `bytes` in place as the file `name`, whole: a reader sees the
    /// old file or the new one, never a part.
    pub fn put(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            Place::Local(root) => {
                let path = root.join(name);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
                }
                let tmp = path.with_extension(format!("tmp.{}", unique_name()));
                std::fs::write(&tmp, bytes).map_err(|e| io_error("write", &tmp, e))?;
                std::fs::rename(&tmp, &path).map_err(|e| io_error("write", &path, e))
            }
            Place::Remote { store, prefix, url } => {
                block_on(store.put(&Self::key(prefix, name), PutPayload::from(bytes)))?
                    .map_err(|e| store_error(&e, &format!("{url}/{name}"), None))?;
                Ok(())
            }
        }
    }

    /// The file `name`, or None when there is none.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Place::Local(root) => {
                let path = root.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_error("read", &path, e)),
                }
            }
            Place::Remote { store, prefix, url } => {
                let got = async {
                    let r = store.get(&Self::key(prefix, name)).await?;
                    r.bytes().await
                };
                match block_on(got)? {
                    Ok(bytes) => Ok(Some(bytes.to_vec())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(store_error(&e, &format!("{url}/{name}"), None)),
                }
            }
        }
    }

    /// The file `name`, open for reads of byte ranges.
    pub fn open(&self, name: &str) -> Result<RangeReader> {
        match self {
            Place::Local(root) => {
                let path = root.join(name);
                let file = File::open(&path).map_err(|e| io_error("open", &path, e))?;
                Ok(RangeReader::Local(file, path))
            }
            Place::Remote { store, prefix, url } => Ok(RangeReader::Remote(
                store.clone(),
                Self::key(prefix, name),
                format!("{url}/{name}"),
            )),
        }
    }

    /// Where a task writes its output file `name` on this machine: in place
    /// for a directory; for a store, a file in `temp_dir` that
    /// [`Place::publish`] sends up.
    pub fn write_path(&self, name: &str, temp_dir: &Path) -> Result<PathBuf> {
        match self {
            Place::Local(root) => {
                let path = root.join(name);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
                }
                Ok(path)
            }
            Place::Remote { .. } => {
                Ok(temp_dir.join(format!("quarry-exchange-{}.arrow", unique_name())))
            }
        }
    }

    /// Makes the output file written at `written` (see
    /// [`Place::write_path`]) the file `name`.
    pub fn publish(&self, name: &str, written: &Path) -> Result<()> {
        let Place::Remote { store, prefix, url } = self else {
            return Ok(());
        };
        let shown = format!("{url}/{name}");
        let key = Self::key(prefix, name);
        let mut file = File::open(written).map_err(|e| io_error("open", written, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0) as usize;
        let part = |file: &mut File| -> Result<Vec<u8>> {
            let mut buf = Vec::with_capacity(PART_BYTES.min(size));
            file.by_ref()
                .take(PART_BYTES as u64)
                .read_to_end(&mut buf)
                .map_err(|e| io_error("read", written, e))?;
            Ok(buf)
        };
        let sent = if size <= PART_BYTES {
            let bytes = part(&mut file)?;
            block_on(store.put(&key, PutPayload::from(bytes)))?.map(|_| ())
        } else {
            let mut upload = match block_on(store.put_multipart(&key))? {
                Ok(u) => u,
                Err(e) => return Err(store_error(&e, &shown, None)),
            };
            let mut result = Ok(());
            loop {
                let bytes = part(&mut file)?;
                if bytes.is_empty() {
                    break;
                }
                result = block_on(upload.put_part(PutPayload::from(bytes)))?;
                if result.is_err() {
                    break;
                }
            }
            match result {
                Ok(()) => block_on(upload.complete())?.map(|_| ()),
                Err(e) => {
                    let _ = block_on(upload.abort());
                    Err(e)
                }
            }
        };
        let _ = std::fs::remove_file(written);
        sent.map_err(|e| store_error(&e, &shown, None))
    }

    /// Removes the root and everything in it.
    pub fn remove(&self) -> Result<()> {
        match self {
            Place::Local(root) => match std::fs::remove_dir_all(root) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error("remove", root, e)),
            },
            Place::Remote { store, prefix, url } => {
                let removed = async {
                    let keys = store
                        .list(Some(prefix))
                        .map_ok(|m| m.location)
                        .try_collect::<Vec<_>>()
                        .await?;
                    for key in keys {
                        match store.delete(&key).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(())
                };
                block_on(removed)?.map_err(|e| store_error(&e, url, None))
            }
        }
    }
}

impl RangeReader {
    /// The bytes `range` of the file.
    pub fn read(&self, range: Range<u64>) -> Result<bytes::Bytes> {
        match self {
            RangeReader::Local(file, path) => {
                let mut buf = vec![0; (range.end - range.start) as usize];
                file.read_exact_at(&mut buf, range.start)
                    .map_err(|e| io_error("read", path, e))?;
                Ok(buf.into())
            }
            RangeReader::Remote(store, key, shown) => {
                block_on(store.get_range(key, range.clone()))?
                    .map_err(|e| store_error(&e, shown, Some(&range)))
            }
        }
    }
}

pub fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> QuarryError {
    QuarryError::Io(format!("cannot {what} '{}': {e}", path.display()))
}

/// A name no other file of any process takes: the process, the time and a
/// counter.
pub fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
