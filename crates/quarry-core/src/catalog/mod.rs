//! Tables and views by name. A table is a provider that knows its schema, its
//! statistics and how to split itself into scan partitions.

mod csv;
mod json;
mod masked_pages;
mod memory;
mod parallel_parquet;
mod parquet;
mod read_ahead;
mod recursive;
pub(crate) mod remote;
mod row_group_pages;
mod scan_descriptor;
mod series;
pub mod store;
mod writer;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

pub use self::csv::CsvTable;
pub use self::json::{JsonFormat, JsonTable};
pub use self::memory::MemTable;
pub use self::parquet::ParquetTable;
pub use self::recursive::{RecursiveCte, WorkTable};
pub use self::remote::RemoteOptions;
pub use self::scan_descriptor::{open_scan, ScanDescriptor};
pub use self::series::{Series, SeriesTable};
pub use self::store::{FileDescriptor, ObjectStores};
pub use self::writer::{FileFormat, FileWriter, WriteOptions};
use crate::error::{QuarryError, Result};
use crate::plan::Expr;

/// Estimated size of a table.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableStats {
    pub num_rows: Option<usize>,
}

pub trait TableProvider: Debug + Send + Sync {
    fn schema(&self) -> SchemaRef;
    fn statistics(&self) -> TableStats;
    /// The smallest and largest value of a numeric or date `column` (dates
    /// as days, decimals unscaled to their value), if statistics tell.
    fn column_range(&self, _column: usize) -> Option<(f64, f64)> {
        None
    }
    /// "parquet", "csv", "json" or "memory".
    fn kind(&self) -> &'static str;
    /// The table itself when its rows are in memory (INSERT adds to those).
    fn as_memory(&self) -> Option<&MemTable> {
        None
    }
    /// The table itself when it is a recursive CTE (computed by the session
    /// before the query that reads it runs).
    fn as_recursive(&self) -> Option<&RecursiveCte> {
        None
    }
    /// The table itself when it is the work table of a recursive CTE.
    fn as_work_table(&self) -> Option<&WorkTable> {
        None
    }
    /// Splits a scan of the columns `projection` into partitions. `filters` are
    /// conjuncts over the projected schema; a provider may use them to skip
    /// partitions that cannot match (the caller still applies them).
    fn partitions(
        &self,
        projection: &[usize],
        filters: &[Expr],
    ) -> Result<Vec<Arc<dyn ScanPartition>>>;
}

/// One unit of scan work: a Parquet row group, a CSV byte range, a batch.
pub trait ScanPartition: Debug + Send + Sync {
    /// Reads the partition, handing each batch (projected columns, in
    /// projection order) to `sink`, and adding the bytes it reads from
    /// files and object stores to `fetched`.
    fn read(
        &self,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        fetched: &AtomicU64,
    ) -> Result<()>;
    /// Bytes the reader holds while it reads, beyond the batches it hands
    /// on (for the memory budget).
    fn read_buffer_bytes(&self) -> usize {
        0
    }
    /// Reads like `read`, but runs `filter` on its columns first and decodes
    /// the other columns only at the rows that pass (late
    /// materialisation). False when the partition cannot; it read nothing
    /// then.
    fn read_filtered(
        &self,
        _filter: &mut EarlyFilter<'_>,
        _sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        _fetched: &AtomicU64,
    ) -> Result<bool> {
        Ok(false)
    }
    /// What the partition reads, as data that `ScanDescriptor::open` turns
    /// back into it, in this process or another (see `graph::wire`).
    fn describe(&self) -> Result<ScanDescriptor>;
}

/// What the early filters of a scan stage let pass, counted by all of its
/// tasks: decoding the other columns at chosen rows costs more per row than
/// decoding them whole, so once the filters are seen to keep most rows, the
/// stage's next tasks read whole and filter after.
#[derive(Debug, Default)]
pub struct EarlyFilterStats {
    rows: std::sync::atomic::AtomicU64,
    passed: std::sync::atomic::AtomicU64,
}

impl EarlyFilterStats {
    /// Rows seen before the share that passed decides.
    const TRIAL_ROWS: u64 = 64 * 1024;

    pub fn add(&self, rows: usize, passed: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.rows.fetch_add(rows as u64, Relaxed);
        self.passed.fetch_add(passed as u64, Relaxed);
    }

    /// False once the filters were seen to keep half of the rows or more.
    pub fn pays(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let rows = self.rows.load(Relaxed);
        rows < Self::TRIAL_ROWS || self.passed.load(Relaxed) * 2 < rows
    }
}

/// A filter a scan runs on some of its columns before decoding the others,
/// in steps: each step's columns are decoded only at the rows the steps
/// before it kept.
pub struct EarlyFilter<'a> {
    /// Per step, in the order they run, the scan's output columns it reads
    /// that no step before it read.
    pub steps: Vec<Vec<usize>>,
    /// Runs step `k` on a batch of the columns of steps `0..=k`, in that
    /// order, at the rows the steps before it kept; returns the rows that
    /// pass (a batch of the same columns) and their positions in the batch,
    /// increasing.
    pub apply: &'a mut dyn FnMut(usize, RecordBatch) -> Result<(RecordBatch, Vec<u32>)>,
}

impl EarlyFilter<'_> {
    /// The columns of all steps, in the order the steps read them.
    pub fn columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.steps.iter().flatten().copied()
    }
}

/// What a name in the catalog stands for.
#[derive(Debug, Clone)]
pub enum CatalogEntry {
    Table(Arc<dyn TableProvider>),
    /// A view is kept as SQL and bound anew at each use.
    View {
        query: Box<sqlparser::ast::Query>,
        columns: Vec<String>,
    },
}

#[derive(Debug, Default)]
pub struct Catalog {
    entries: BTreeMap<String, CatalogEntry>,
    /// Where the files of tables and of paths in queries are found.
    stores: Arc<ObjectStores>,
}

impl Catalog {
    /// Names are case-insensitive, as in SQL.
    fn key(name: &str) -> String {
        name.to_lowercase()
    }

    pub fn stores(&self) -> &ObjectStores {
        &self.stores
    }

    /// The stores, to be held beyond the catalog's lock.
    pub fn shared_stores(&self) -> Arc<ObjectStores> {
        self.stores.clone()
    }

    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.get(&Self::key(name))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(&Self::key(name))
    }

    pub fn insert(&mut self, name: &str, entry: CatalogEntry, replace: bool) -> Result<()> {
        let key = Self::key(name);
        if !replace && self.entries.contains_key(&key) {
            return Err(QuarryError::plan(format!(
                "table or view '{name}' already exists"
            )));
        }
        self.entries.insert(key, entry);
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Option<CatalogEntry> {
        self.entries.remove(&Self::key(name))
    }

    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// The known name closest to `name`, for "did you mean" hints.
    pub fn closest_name(&self, name: &str) -> Option<String> {
        closest(name, self.entries.keys().map(|s| s.as_str()))
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to
/// be a plausible typo.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let lower = name.to_lowercase();
    candidates
        .map(|c| (strsim::levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(lower.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

/// Opens the file(s) at `location` as a table, choosing the format from the
/// extension unless `format` is given.
pub fn open_table(
    location: &str,
    format: Option<&str>,
    stores: &ObjectStores,
) -> Result<Arc<dyn TableProvider>> {
    let format = match format {
        Some(f) => f.to_lowercase(),
        None => {
            let lower = location.to_lowercase();
            if lower.ends_with(".csv") || lower.ends_with(".tsv") || lower.ends_with(".txt") {
                "csv".to_string()
            } else if is_json_path(&lower) {
                "json".to_string()
            } else {
                "parquet".to_string()
            }
        }
    };
    match format.as_str() {
        "parquet" => Ok(Arc::new(ParquetTable::open(location, stores)?)),
        "csv" => Ok(Arc::new(CsvTable::open(location, true, stores)?)),
        "json" => Ok(Arc::new(JsonTable::open(
            location,
            JsonFormat::Auto,
            stores,
        )?)),
        other => Err(QuarryError::plan(format!(
            "unknown file format '{other}' (expected PARQUET, CSV or JSON)"
        ))),
    }
}

/// Whether a (lower-case) path names JSON or newline-delimited JSON.
pub fn is_json_path(lower: &str) -> bool {
    lower.ends_with(".json") || lower.ends_with(".ndjson") || lower.ends_with(".jsonl")
}
