//! Scan partitions as data, for a task graph sent to another process
//! (`graph::wire`): each kind of partition describes what it reads, and the
//! description opens into the same partition there. Files are named, not
//! held: the reader reopens them through its own object stores.

use std::sync::Arc;

use arrow::datatypes::Schema;
use serde::{Deserialize, Serialize};

use super::csv::CsvRangeDescriptor;
use super::json::JsonFileDescriptor;
use super::memory::MemPartition;
use super::parquet::{open_row_groups, RowGroupDescriptor};
use super::series::SeriesPartition;
use super::{ObjectStores, ScanPartition};
use crate::error::{QuarryError, Result};

/// One scan partition of each kind there is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ScanDescriptor {
    /// A row group of a Parquet file.
    ParquetRowGroup(RowGroupDescriptor),
    /// A byte range of a CSV file.
    CsvRange(CsvRangeDescriptor),
    /// A JSON file.
    JsonFile(JsonFileDescriptor),
    /// Batches of an in-memory table (as Arrow IPC).
    Memory(MemPartition),
    /// A stretch of `range(…)` / `generate_series(…)`.
    Series(SeriesPartition),
}

impl ScanDescriptor {
    /// The partition this describes, its files reached through `stores`.
    pub fn open(&self, stores: &ObjectStores) -> Result<Arc<dyn ScanPartition>> {
        Ok(match self {
            ScanDescriptor::ParquetRowGroup(d) => {
                let mut parts = open_row_groups(&[d], stores)?;
                Arc::new(parts.remove(0))
            }
            ScanDescriptor::CsvRange(d) => Arc::new(d.open(stores)?),
            ScanDescriptor::JsonFile(d) => Arc::new(d.open(stores)?),
            ScanDescriptor::Memory(p) => Arc::new(p.clone()),
            ScanDescriptor::Series(p) => Arc::new(p.clone()),
        })
    }
}

/// The partitions of one scan, opened together: row groups of remote
/// Parquet files share a read-ahead then, as in a scan planned here.
pub fn open_scan(
    descriptors: &[ScanDescriptor],
    stores: &ObjectStores,
) -> Result<Vec<Arc<dyn ScanPartition>>> {
    let row_groups: Option<Vec<&RowGroupDescriptor>> = descriptors
        .iter()
        .map(|d| match d {
            ScanDescriptor::ParquetRowGroup(r) => Some(r),
            _ => None,
        })
        .collect();
    match row_groups {
        Some(r) if !r.is_empty() => Ok(open_row_groups(&r, stores)?
            .into_iter()
            .map(|p| Arc::new(p) as Arc<dyn ScanPartition>)
            .collect()),
        _ => descriptors.iter().map(|d| d.open(stores)).collect(),
    }
}

/// An error unless every column index is one of `schema`'s (a description
/// from elsewhere is checked before it is read).
pub(super) fn check_columns(what: &str, columns: &[usize], schema: &Schema) -> Result<()> {
    let n = schema.fields().len();
    match columns.iter().find(|&&c| c >= n) {
        Some(c) => Err(QuarryError::exec(format!(
            "{what}: column {c} of a schema of {n} columns"
        ))),
        None => Ok(()),
    }
}
