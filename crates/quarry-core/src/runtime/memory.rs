//! The memory budget of a query. Operators reserve before they grow; a
//! refused reservation is their cue to spill.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use crate::error::{QuarryError, Result};

#[derive(Debug)]
pub struct MemoryPool {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl MemoryPool {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(MemoryPool {
            limit,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most reserved at any one time.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn try_grow(&self, bytes: usize) -> bool {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(bytes);
            if next > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Counts `bytes` even past the limit.
    fn force_grow(&self, bytes: usize) {
        let next = self.used.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(next, Ordering::Relaxed);
    }

    fn shrink(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Memory held by one operator; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    pool: Arc<MemoryPool>,
    bytes: usize,
    /// Who holds it, for error messages.
    owner: &'static str,
}

impl Reservation {
    pub fn new(pool: &Arc<MemoryPool>, owner: &'static str) -> Self {
        Reservation {
            pool: pool.clone(),
            bytes: 0,
            owner,
        }
    }

    pub fn size(&self) -> usize {
        self.bytes
    }

    /// Grows by `bytes` if the budget allows; false means "spill first".
    pub fn try_grow(&mut self, bytes: usize) -> bool {
        if self.pool.try_grow(bytes) {
            self.bytes += bytes;
            true
        } else {
            false
        }
    }

    /// Grows by `bytes` or fails with an error naming the operator and the
    /// limit (for when spilling cannot free anything more).
    pub fn grow(&mut self, bytes: usize) -> Result<()> {
        if self.try_grow(bytes) {
            Ok(())
        } else {
            Err(QuarryError::Execution(format!(
                "{} needs {} more but the memory limit of {} is used up ({} in use); raise it with SET memory_limit",
                self.owner,
                format_bytes(bytes),
                format_bytes(self.pool.limit()),
                format_bytes(self.pool.used())
            )))
        }
    }

    /// Counts `bytes` that are in use whether or not the budget has room:
    /// memory something that cannot spill needs to work at all (a scan's
    /// read buffers). The operators that can spill then do so sooner.
    pub fn force_grow(&mut self, bytes: usize) {
        self.pool.force_grow(bytes);
        self.bytes += bytes;
    }

    pub fn free(&mut self) {
        self.pool.shrink(self.bytes);
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.free();
    }
}

/// The bytes a batch holds, counting each column's own part of its buffers:
/// `get_array_memory_size` counts a whole shared buffer for every slice of
/// it, and the columns of a batch read from a spill file are all slices of
/// one buffer (it would count the batch once per column).
pub fn batch_bytes(b: &RecordBatch) -> usize {
    b.columns().iter().map(|c| array_bytes(c.as_ref())).sum()
}

/// The bytes of one array, as `batch_bytes` counts them.
pub fn array_bytes(c: &dyn Array) -> usize {
    let full = c.get_array_memory_size();
    let own = match c.data_type() {
        // A few rows taken from a big batch share all of its data buffers:
        // count the bytes the views point at (what a compacted copy holds).
        DataType::Utf8View => Ok(view_bytes(c.as_string_view().views())),
        DataType::BinaryView => Ok(view_bytes(c.as_binary_view().views())),
        _ => c.to_data().get_slice_memory_size(),
    };
    // A little for the array structs themselves.
    own.map_or(full, |own| own.min(full) + 128)
}

/// The views themselves, and the strings longer than 12 bytes (shorter
/// ones live inside their view).
fn view_bytes(views: &arrow::buffer::ScalarBuffer<u128>) -> usize {
    let outside: usize = views
        .iter()
        .map(|v| (*v as u32) as usize)
        .filter(|len| *len > 12)
        .sum();
    views.inner().len() + outside
}

/// `1.5 GiB` and the like.
pub fn format_bytes(b: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses `2GB`, `512 MiB`, `1.5GB`, `100000` (bytes). Decimal units
/// (KB, MB, GB) are powers of 1000, binary ones (KiB, MiB, GiB) of 1024.
pub fn parse_bytes(text: &str) -> Option<usize> {
    let t = text.trim().trim_matches('\'').trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor: f64 = match unit.trim().to_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024f64.powi(4),
        _ => return None,
    };
    let bytes = n * factor;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as usize)
}

/// Total memory of the machine, from /proc/meminfo (Linux).
pub fn system_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_refused_past_the_limit_and_given_back_on_drop() {
        let pool = MemoryPool::new(100);
        let mut a = Reservation::new(&pool, "sort");
        assert!(a.try_grow(60));
        let mut b = Reservation::new(&pool, "aggregate");
        assert!(!b.try_grow(50));
        let err = b.grow(50).unwrap_err().to_string();
        assert!(err.contains("aggregate") && err.contains("100 B"), "{err}");
        drop(a);
        assert!(b.try_grow(50));
        assert_eq!(pool.used(), 50);
        assert_eq!(pool.peak(), 60);
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("2GB"), Some(2_000_000_000));
        assert_eq!(parse_bytes("'512 MiB'"), Some(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1.5gb"), Some(1_500_000_000));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("2 parsecs"), None);
        assert_eq!(parse_bytes("0"), None);
    }
}
