//! What the tasks of one query on one worker share: the broadcast hash
//! tables and the runtime filters' key sets of its stages, and the
//! manifests of its finished stages. A local run builds each once per
//! query (the partition store); a worker builds each once per query too,
//! not once per task, and keeps it while the query's exchange directory
//! exists (the driver removes it when the query ends).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::exchange::TaskManifest;
use crate::error::{QuarryError, Result};
use crate::exec::join::{BuildSide, JoinBuild};
use crate::exec::key_filter::KeySet;
use crate::runtime::memory::Reservation;

#[derive(Default)]
struct Built {
    side: Option<BuildSide>,
    /// None inside: looked at, and not built (large or spilled).
    keys: Option<Option<Arc<KeySet>>>,
    /// The memory of what was built, held while the query runs.
    reserved: Vec<Reservation>,
}

/// Per query (its exchange directory) and stage, what was built from it.
type ByStage = HashMap<(PathBuf, usize), Arc<Mutex<Built>>>;

/// Per query and stage, the manifests of its tasks.
type StageManifests = HashMap<(PathBuf, usize), Arc<Vec<TaskManifest>>>;

#[derive(Default)]
pub struct SharedBuilds {
    entries: Mutex<ByStage>,
    manifests: Mutex<StageManifests>,
}

fn poisoned<T>(_: T) -> QuarryError {
    QuarryError::exec("internal error: a worker's shared build sides poisoned")
}

impl SharedBuilds {
    /// Forgets the queries other than `current` whose exchange is gone
    /// (they ended), as `exists` tells.
    pub fn forget_ended(&self, current: &Path, exists: &dyn Fn(&Path) -> bool) {
        let mut others: Vec<PathBuf> = Vec::new();
        if let Ok(entries) = self.entries.lock() {
            others.extend(entries.keys().map(|(root, _)| root.clone()));
        }
        if let Ok(manifests) = self.manifests.lock() {
            others.extend(manifests.keys().map(|(root, _)| root.clone()));
        }
        others.sort();
        others.dedup();
        // (asked without the locks: for a store, a request each)
        let ended: Vec<PathBuf> = others
            .into_iter()
            .filter(|root| root != current && !exists(root))
            .collect();
        if ended.is_empty() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(root, _), _| !ended.contains(root));
        }
        if let Ok(mut manifests) = self.manifests.lock() {
            manifests.retain(|(root, _), _| !ended.contains(root));
        }
    }

    /// The manifests of the tasks of `stage`, read by `read` for the first
    /// task that asks. A stage is read only once it has finished, and a
    /// manifest in place stays valid (a task run again writes the same rows
    /// to a file of its own), so every consumer task on this worker need not
    /// read and parse them all again: a hash exchange of N tasks into M
    /// would read N × M manifests.
    pub fn manifests(
        &self,
        root: &Path,
        stage: usize,
        read: impl FnOnce() -> Result<Vec<TaskManifest>>,
    ) -> Result<Arc<Vec<TaskManifest>>> {
        let key = (root.to_path_buf(), stage);
        if let Some(m) = self.manifests.lock().map_err(poisoned)?.get(&key) {
            return Ok(m.clone());
        }
        // Read without the lock: another stage's readers need not wait (two
        // tasks that race read the same files).
        let read = Arc::new(read()?);
        let mut manifests = self.manifests.lock().map_err(poisoned)?;
        Ok(manifests.entry(key).or_insert(read).clone())
    }

    fn entry(&self, root: &Path, stage: usize) -> Result<Arc<Mutex<Built>>> {
        let mut entries = self.entries.lock().map_err(poisoned)?;
        Ok(entries
            .entry((root.to_path_buf(), stage))
            .or_default()
            .clone())
    }

    /// The broadcast build side of `stage`: built by `build` for the first
    /// task that asks, the others wait for it and share it.
    pub fn broadcast(
        &self,
        root: &Path,
        stage: usize,
        build: impl FnOnce() -> Result<JoinBuild>,
    ) -> Result<JoinBuild> {
        let entry = self.entry(root, stage)?;
        let mut built = entry.lock().map_err(poisoned)?;
        if let Some(side) = &built.side {
            return Ok(JoinBuild {
                side: side.clone(),
                reservation: None,
            });
        }
        let mut join = build()?;
        built.reserved.extend(join.reservation.take());
        built.side = Some(join.side.clone());
        Ok(join)
    }

    /// The key set of `stage`, built once by `build` (None: not worth it).
    pub fn key_set(
        &self,
        root: &Path,
        stage: usize,
        build: impl FnOnce() -> Result<Option<(KeySet, Reservation)>>,
    ) -> Result<Option<Arc<KeySet>>> {
        let entry = self.entry(root, stage)?;
        let mut built = entry.lock().map_err(poisoned)?;
        if let Some(keys) = &built.keys {
            return Ok(keys.clone());
        }
        let keys = match build()? {
            Some((set, reservation)) => {
                built.reserved.push(reservation);
                Some(Arc::new(set))
            }
            None => None,
        };
        built.keys = Some(keys.clone());
        Ok(keys)
    }
}
