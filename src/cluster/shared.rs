//! What the tasks of one query on one worker share: the broadcast hash
//! tables and the runtime filters' key sets of its stages. A local run
//! builds each once per query (the partition store); a worker builds each
//! once per query too, not once per task, and keeps it while the query's
//! exchange directory exists (the driver removes it when the query ends).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

#[derive(Default)]
pub struct SharedBuilds {
    entries: Mutex<ByStage>,
}

fn poisoned<T>(_: T) -> QuarryError {
    QuarryError::exec("internal error: a worker's shared build sides poisoned")
}

impl SharedBuilds {
    /// Forgets the queries whose exchange is gone (they ended).
    pub fn forget_ended(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(root, _), _| root.is_dir());
        }
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
