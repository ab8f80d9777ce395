//! Sorting a partition, optionally keeping only the first `fetch` rows
//! (top-k: the buffer is cut back to k rows whenever it grows large).

use arrow::compute::{
    concat_batches, lexsort_to_indices, take_record_batch, SortColumn, SortOptions,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use std::sync::Arc;

use super::expr::evaluate_array;
use super::operator::Operator;
use crate::error::Result;
use crate::plan::SortKey;
use crate::runtime::memory::{MemoryPool, Reservation};

pub struct SortOp {
    keys: Vec<SortKey>,
    fetch: Option<usize>,
    schema: SchemaRef,
    buffered: Vec<RecordBatch>,
    buffered_rows: usize,
    /// The buffered rows, counted against the memory budget. (An external
    /// sort that spills sorted runs is not implemented yet: a sort over
    /// the budget is an error.)
    reservation: Reservation,
}

impl SortOp {
    pub fn new(
        keys: Vec<SortKey>,
        fetch: Option<usize>,
        schema: SchemaRef,
        memory: &Arc<MemoryPool>,
    ) -> Self {
        SortOp {
            keys,
            fetch,
            schema,
            buffered: vec![],
            buffered_rows: 0,
            reservation: Reservation::new(
                memory,
                "a sort (external sorting is not implemented yet)",
            ),
        }
    }

    /// Sorts everything buffered so far into one batch (cut to `fetch`).
    fn sort_buffered(&mut self) -> Result<RecordBatch> {
        let all = concat_batches(&self.schema, &self.buffered)?;
        self.buffered.clear();
        let sorted = sort_batch(&all, &self.keys, self.fetch)?;
        self.buffered_rows = sorted.num_rows();
        Ok(sorted)
    }
}

pub fn sort_batch(
    batch: &RecordBatch,
    keys: &[SortKey],
    fetch: Option<usize>,
) -> Result<RecordBatch> {
    if batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let columns = keys
        .iter()
        .map(|k| {
            Ok(SortColumn {
                values: evaluate_array(&k.expr, batch)?,
                options: Some(SortOptions {
                    descending: !k.asc,
                    nulls_first: k.nulls_first,
                }),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let indices = lexsort_to_indices(&columns, fetch)?;
    Ok(take_record_batch(batch, &indices)?)
}

impl Operator for SortOp {
    fn push(&mut self, batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> Result<()> {
        self.reservation.grow(batch.get_array_memory_size())?;
        self.buffered_rows += batch.num_rows();
        self.buffered.push(batch);
        if let Some(k) = self.fetch {
            if self.buffered_rows > (8 * k).max(65_536) {
                let top = self.sort_buffered()?;
                self.reservation.free();
                self.reservation.grow(top.get_array_memory_size())?;
                self.buffered.push(top);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        let sorted = self.sort_buffered()?;
        if sorted.num_rows() > 0 {
            out.push(sorted);
        }
        Ok(())
    }
}
