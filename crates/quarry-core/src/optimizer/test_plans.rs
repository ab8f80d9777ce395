//! Small plans for the unit tests of the optimizer's rules.

use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::plan::{Expr, LogicalPlan};

/// `rows` rows (0, 1, …) of nullable Int64 columns `names`.
pub fn values(names: &[&str], rows: i64) -> LogicalPlan {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, true))
            .collect::<Vec<_>>(),
    ));
    let columns = names
        .iter()
        .map(|_| Arc::new(Int64Array::from_iter_values(0..rows)) as _)
        .collect();
    LogicalPlan::Values {
        schema: schema.clone(),
        batches: vec![RecordBatch::try_new(schema, columns).unwrap()],
    }
}

pub fn col(i: usize) -> Expr {
    Expr::Column(i)
}

/// A table of `rows` rows whose Int64 columns `names` each range over
/// `lo..=hi` by the statistics (it is never read).
#[derive(Debug)]
struct StatsOnly {
    schema: arrow::datatypes::SchemaRef,
    rows: usize,
    range: (f64, f64),
    partitions: usize,
}

/// A scan partition that is planned but never read.
#[derive(Debug)]
struct Unread;

impl crate::catalog::ScanPartition for Unread {
    fn read(
        &self,
        _sink: &mut dyn FnMut(RecordBatch) -> crate::error::Result<()>,
        _fetched: &std::sync::atomic::AtomicU64,
    ) -> crate::error::Result<()> {
        Err(crate::error::QuarryError::exec(
            "a test table is never read",
        ))
    }
    fn describe(&self) -> crate::error::Result<crate::catalog::ScanDescriptor> {
        Err(crate::error::QuarryError::exec(
            "a test table is never sent elsewhere",
        ))
    }
}

impl crate::catalog::TableProvider for StatsOnly {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.schema.clone()
    }
    fn statistics(&self) -> crate::catalog::TableStats {
        crate::catalog::TableStats {
            num_rows: Some(self.rows),
        }
    }
    fn column_range(&self, _column: usize) -> Option<(f64, f64)> {
        Some(self.range)
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn partitions(
        &self,
        _projection: &[usize],
        _filters: &[Expr],
    ) -> crate::error::Result<Vec<Arc<dyn crate::catalog::ScanPartition>>> {
        Ok((0..self.partitions)
            .map(|_| Arc::new(Unread) as Arc<dyn crate::catalog::ScanPartition>)
            .collect())
    }
}

/// A scan of all columns of a `StatsOnly` table.
pub fn table(names: &[&str], rows: usize, lo: i64, hi: i64) -> LogicalPlan {
    table_in_parts(names, rows, lo, hi, 0)
}

/// `table`, planned as `partitions` scan partitions (for lowering).
pub fn table_in_parts(
    names: &[&str],
    rows: usize,
    lo: i64,
    hi: i64,
    partitions: usize,
) -> LogicalPlan {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, true))
            .collect::<Vec<_>>(),
    ));
    LogicalPlan::Scan(crate::plan::logical::Scan {
        table_name: "t".into(),
        provider: Arc::new(StatsOnly {
            schema: schema.clone(),
            rows,
            range: (lo as f64, hi as f64),
            partitions,
        }),
        projection: (0..names.len()).collect(),
        filters: vec![],
        schema,
    })
}
