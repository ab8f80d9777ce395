//! The two tables of a recursive CTE (`WITH RECURSIVE t AS (seed UNION
//! [ALL] step)`):
//! - `WorkTable`: what `t` stands for inside the step, the rows the last
//!   iteration produced; the session refills it before each iteration.
//! - `RecursiveCte`: what `t` stands for after its WITH, every row of every
//!   iteration. It carries the seed and step plans; the session computes it
//!   (`Session::compute_recursive`) before the query that reads it is
//!   lowered, and from then on it scans like an in-memory table.
//!
//! Why a table and not a plan node: the optimizer, the lowering and the
//! scheduler see a leaf they already know (a scan with statistics and
//! partitions), and the iteration, which a static task graph cannot
//! express, is driven by the session, one task graph per iteration, where
//! it can watch the cancel flag and the memory budget between iterations.

use std::sync::{Arc, OnceLock, RwLock};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::{MemTable, ScanPartition, TableProvider, TableStats};
use crate::error::{QuarryError, Result};
use crate::plan::{Expr, LogicalPlan};

/// The rows of the current iteration of a recursive CTE.
#[derive(Debug)]
pub struct WorkTable {
    schema: SchemaRef,
    rows: RwLock<Vec<RecordBatch>>,
}

impl WorkTable {
    pub fn new(schema: SchemaRef) -> Self {
        WorkTable {
            schema,
            rows: RwLock::new(vec![]),
        }
    }

    pub fn set(&self, batches: Vec<RecordBatch>) -> Result<()> {
        *self
            .rows
            .write()
            .map_err(|_| QuarryError::exec("internal error: work table poisoned"))? = batches;
        Ok(())
    }

    pub fn num_rows(&self) -> usize {
        self.rows
            .read()
            .map(|r| r.iter().map(|b| b.num_rows()).sum())
            .unwrap_or(0)
    }

    fn batches(&self) -> Vec<RecordBatch> {
        self.rows.read().map(|r| r.clone()).unwrap_or_default()
    }
}

impl TableProvider for WorkTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn statistics(&self) -> TableStats {
        TableStats {
            num_rows: Some(self.num_rows()),
        }
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn as_work_table(&self) -> Option<&WorkTable> {
        Some(self)
    }

    fn partitions(
        &self,
        projection: &[usize],
        filters: &[Expr],
    ) -> Result<Vec<Arc<dyn ScanPartition>>> {
        MemTable::new(self.schema.clone(), self.batches()).partitions(projection, filters)
    }
}

/// A recursive CTE: `seed UNION [ALL] step`, the step reading `work`.
#[derive(Debug)]
pub struct RecursiveCte {
    pub name: String,
    pub schema: SchemaRef,
    /// The non-recursive part, cast to `schema`.
    pub seed: LogicalPlan,
    /// The recursive part, cast to `schema`; it scans `work`.
    pub step: LogicalPlan,
    pub work: Arc<WorkTable>,
    /// UNION (not UNION ALL): a row already produced is not produced again.
    pub distinct: bool,
    /// Every row, once computed.
    result: OnceLock<Vec<RecordBatch>>,
}

impl RecursiveCte {
    pub fn new(
        name: &str,
        seed: LogicalPlan,
        step: LogicalPlan,
        work: Arc<WorkTable>,
        distinct: bool,
    ) -> Self {
        RecursiveCte {
            name: name.to_string(),
            schema: work.schema(),
            seed,
            step,
            work,
            distinct,
            result: OnceLock::new(),
        }
    }

    pub fn is_computed(&self) -> bool {
        self.result.get().is_some()
    }

    pub fn set_result(&self, batches: Vec<RecordBatch>) {
        // (computed once per query: a second CTE reference shares the Arc)
        let _ = self.result.set(batches);
    }
}

impl TableProvider for RecursiveCte {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn statistics(&self) -> TableStats {
        TableStats {
            num_rows: self
                .result
                .get()
                .map(|r| r.iter().map(|b| b.num_rows()).sum()),
        }
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn as_recursive(&self) -> Option<&RecursiveCte> {
        Some(self)
    }

    fn partitions(
        &self,
        projection: &[usize],
        filters: &[Expr],
    ) -> Result<Vec<Arc<dyn ScanPartition>>> {
        // EXPLAIN lowers the plan without running the recursion: no rows.
        let batches = self.result.get().cloned().unwrap_or_default();
        MemTable::new(self.schema.clone(), batches).partitions(projection, filters)
    }
}
