//! Read-ahead of a remote scan's row groups: when a task starts on one row
//! group, the bytes of the next one nobody has started on are fetched on the
//! I/O runtime while the task decodes, so a worker rarely waits for a round
//! trip. Local files need none (positioned reads from the page cache).

use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::store::FileRef;

/// The bytes of some ranges of a file, being fetched or fetched.
pub struct Prefetch {
    ranges: Vec<Range<u64>>,
    handle: JoinHandle<object_store::Result<Vec<Bytes>>>,
}

impl Prefetch {
    /// The requested `wanted` ranges, cut from the prefetched ones; None when
    /// the fetch failed or does not cover them (the caller then asks the
    /// store itself, which also names any error).
    pub async fn serve(self, wanted: &[Range<u64>]) -> Option<Vec<Bytes>> {
        let fetched = self.handle.await.ok()?.ok()?;
        wanted
            .iter()
            .map(|w| {
                let (i, r) = self
                    .ranges
                    .iter()
                    .enumerate()
                    .find(|(_, r)| r.start <= w.start && w.end <= r.end)?;
                let from = (w.start - r.start) as usize;
                let to = (w.end - r.start) as usize;
                Some(fetched.get(i)?.slice(from..to))
            })
            .collect()
    }
}

enum Slot {
    /// No task has started on it and nothing fetches it.
    Idle,
    Fetching(Prefetch),
    /// A task has it (or took its prefetch).
    Claimed,
}

/// The row groups of one scan, in partition order: the file and the byte
/// ranges (of the projected column chunks) each one needs.
pub struct ReadAhead {
    parts: Vec<(FileRef, Vec<Range<u64>>)>,
    slots: Mutex<Vec<Slot>>,
}

impl ReadAhead {
    pub fn new(parts: Vec<(FileRef, Vec<Range<u64>>)>) -> Arc<Self> {
        let slots = parts.iter().map(|_| Slot::Idle).collect();
        Arc::new(ReadAhead {
            parts,
            slots: Mutex::new(slots),
        })
    }

    /// Claims row group `index` for the calling task: its prefetch, if one
    /// was started, and starts fetching the next idle row group after it.
    pub fn claim(&self, index: usize) -> Option<Prefetch> {
        let mut slots = self.slots.lock().ok()?;
        let mine = match std::mem::replace(slots.get_mut(index)?, Slot::Claimed) {
            Slot::Fetching(p) => Some(p),
            _ => None,
        };
        let next = (index + 1..slots.len()).find(|&i| matches!(slots[i], Slot::Idle));
        if let Some(next) = next {
            let (file, ranges) = &self.parts[next];
            let (store, path, wanted) = (file.store.clone(), file.path.clone(), ranges.clone());
            let fetch = async move { store.get_ranges(&path, &wanted).await };
            if let Ok(handle) = crate::runtime::io::spawn(fetch) {
                slots[next] = Slot::Fetching(Prefetch {
                    ranges: ranges.clone(),
                    handle,
                });
            }
        }
        mine
    }
}

impl Drop for ReadAhead {
    /// A scan that ends early (LIMIT, an error, a cancel) stops its fetches.
    fn drop(&mut self) {
        if let Ok(slots) = self.slots.get_mut() {
            for slot in slots.iter() {
                if let Slot::Fetching(p) = slot {
                    p.handle.abort();
                }
            }
        }
    }
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadAhead({} row groups)", self.parts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;

    use crate::runtime::io::block_on;

    fn file() -> FileRef {
        let store = Arc::new(InMemory::new());
        let path = Path::from("f");
        let data: Vec<u8> = (0..=255).collect();
        block_on(store.put(&path, data.into())).unwrap().unwrap();
        FileRef {
            store,
            path,
            display: "memory:///f".into(),
            size: 256,
            local_path: None,
            version: None,
        }
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // lists of byte ranges
    fn a_claim_fetches_the_next_idle_row_group_and_hands_it_on() {
        let f = file();
        let ahead = ReadAhead::new(vec![
            (f.clone(), vec![0..10]),
            (f.clone(), vec![10..20, 30..40]),
            (f.clone(), vec![100..110]),
        ]);
        // The first claim finds nothing fetched, and starts on row group 1.
        assert!(ahead.claim(0).is_none());
        let one = ahead.claim(1).expect("row group 1 was read ahead");
        let got = block_on(one.serve(&[12..15, 30..40])).unwrap().unwrap();
        assert_eq!(got[0].as_ref(), &[12, 13, 14]);
        assert_eq!(got[1].as_ref(), (30..40).collect::<Vec<u8>>().as_slice());
        // Claiming 1 started 2; a range outside what was fetched is None.
        let two = ahead.claim(2).expect("row group 2 was read ahead");
        assert!(block_on(two.serve(&[100..111])).unwrap().is_none());
        // Claimed row groups are not fetched again.
        assert!(ahead.claim(1).is_none());
    }
}
