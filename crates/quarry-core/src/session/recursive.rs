//! Computing recursive CTEs before the query that reads them runs: the seed
//! once, then the step over the work table, one task graph per iteration,
//! until an iteration yields no rows. With UNION (not ALL) a row produced
//! before is dropped, so that a cycle ends the recursion as in DuckDB.
//!
//! A recursion that never ends is stopped by Ctrl-C (the cancel flag is
//! looked at between iterations, and each iteration's graph watches it
//! too), by the memory limit (every row produced so far is held), or after
//! `MAX_ITERATIONS` iterations.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::BooleanArray;
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use super::Session;
use crate::catalog::{RecursiveCte, TableProvider, WorkTable};
use crate::error::{QuarryError, Result};
use crate::exec::timestamp::equality_keys;
use crate::plan::LogicalPlan;
use crate::runtime::memory::format_bytes;

/// Iterations after which a recursion is taken to be runaway (DuckDB has no
/// such limit; quarry's iterations cost a task graph each, so a million of
/// them is already minutes).
const MAX_ITERATIONS: usize = 1_000_000;

/// A work table with fewer rows is stepped on one worker thread.
const SMALL_WORK_TABLE_ROWS: usize = 65_536;

impl Session {
    /// Computes every recursive CTE `plan` reads that is not computed yet,
    /// inner ones first. `active`: the work tables of the recursions being
    /// computed around this one.
    pub(super) fn compute_recursive(
        &self,
        plan: &LogicalPlan,
        active: &mut Vec<Arc<WorkTable>>,
    ) -> Result<()> {
        let mut ctes: Vec<Arc<dyn TableProvider>> = Vec::new();
        plan.visit_scans(&mut |s| {
            if s.provider.as_recursive().is_some() {
                ctes.push(s.provider.clone());
            }
        });
        for provider in ctes {
            let Some(cte) = provider.as_recursive() else {
                continue;
            };
            if cte.is_computed() {
                continue;
            }
            if active.iter().any(|w| {
                crate::sql::reads_work_table(&cte.seed, w)
                    || crate::sql::reads_work_table(&cte.step, w)
            }) {
                return Err(QuarryError::plan(format!(
                    "recursive query '{}' reads the recursive query around it: not supported",
                    cte.name
                )));
            }
            let rows = self.iterate(cte, active)?;
            cte.set_result(rows);
        }
        Ok(())
    }

    fn run_plan(&self, plan: &LogicalPlan, cte: &RecursiveCte) -> Result<Vec<RecordBatch>> {
        let graph = self.graph(plan)?;
        // A few rows per iteration are the common case: one worker thread
        // then, rather than starting them all each time.
        let small = cte.work.num_rows() < SMALL_WORK_TABLE_ROWS;
        let (batches, _) = self.run(&graph, None, small.then_some(1))?;
        // the CTE's names and nullability
        batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                Ok(RecordBatch::try_new(
                    cte.schema.clone(),
                    b.columns().to_vec(),
                )?)
            })
            .collect()
    }

    fn iterate(
        &self,
        cte: &RecursiveCte,
        active: &mut Vec<Arc<WorkTable>>,
    ) -> Result<Vec<RecordBatch>> {
        let limit = self.config().memory_limit;
        let seed = crate::optimizer::optimize(cte.seed.clone())?;
        self.compute_recursive(&seed, active)?;
        let mut seen = if cte.distinct {
            Some(RowSet::new(cte)?)
        } else {
            None
        };
        let mut current = self.run_plan(&seed, cte)?;
        if let Some(seen) = &mut seen {
            current = seen.keep_new(current)?;
        }
        let mut result = current.clone();
        cte.work.set(current.clone())?;
        // Planned once the work table holds the seed's rows, so that the
        // estimates see its size.
        let step = crate::optimizer::optimize(cte.step.clone())?;
        active.push(cte.work.clone());
        let computed = self.compute_recursive(&step, active);
        active.pop();
        computed?;
        let mut held: usize = batches_bytes(&result);
        let mut iterations = 0usize;
        while current.iter().any(|b| b.num_rows() > 0) {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(QuarryError::Cancelled);
            }
            iterations += 1;
            if iterations > MAX_ITERATIONS {
                return Err(QuarryError::exec(format!(
                    "recursive query '{}' did not end after {MAX_ITERATIONS} iterations: does its recursive part ever yield no rows?",
                    cte.name
                )));
            }
            let mut produced = self.run_plan(&step, cte)?;
            if let Some(seen) = &mut seen {
                produced = seen.keep_new(produced)?;
            }
            held += batches_bytes(&produced) + seen.as_ref().map_or(0, |s| s.added_bytes());
            if held > limit {
                return Err(QuarryError::exec(format!(
                    "recursive query '{}' holds more than the memory limit ({}) after {iterations} iterations: does its recursive part ever yield no rows?",
                    cte.name,
                    format_bytes(limit)
                )));
            }
            result.extend(produced.iter().cloned());
            cte.work.set(produced.clone())?;
            current = produced;
        }
        cte.work.set(vec![])?;
        Ok(result)
    }
}

fn batches_bytes(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.get_array_memory_size()).sum()
}

/// The rows produced so far, in arrow's row format (NULLs equal, and
/// intervals `=` calls equal, as UNION wants them).
struct RowSet {
    converter: RowConverter,
    rows: HashSet<Box<[u8]>>,
    /// Bytes added by the last `keep_new`.
    added: usize,
}

impl RowSet {
    fn new(cte: &RecursiveCte) -> Result<Self> {
        let fields = cte
            .schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(RowSet {
            converter: RowConverter::new(fields)?,
            rows: HashSet::new(),
            added: 0,
        })
    }

    fn added_bytes(&self) -> usize {
        self.added
    }

    /// The rows of `batches` not seen before (each kept once).
    fn keep_new(&mut self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        self.added = 0;
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let rows = self
                .converter
                .convert_columns(&equality_keys(b.columns())?)?;
            let mut keep = Vec::with_capacity(b.num_rows());
            for row in rows.iter() {
                let bytes = row.as_ref();
                let new = !self.rows.contains(bytes);
                if new {
                    self.added += bytes.len() + 16;
                    self.rows.insert(bytes.into());
                }
                keep.push(new);
            }
            let filtered = filter_record_batch(&b, &BooleanArray::from(keep))?;
            if filtered.num_rows() > 0 {
                out.push(filtered);
            }
        }
        Ok(out)
    }
}
