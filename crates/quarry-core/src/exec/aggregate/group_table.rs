//! The hash table of one aggregation pass: group keys and their states.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::{new_accumulator, GroupAccumulator};
use crate::error::{QuarryError, Result};
use crate::exec::expr::{cast_checked, evaluate_array};
use crate::exec::group_keys::GroupKeys;
use crate::plan::{AggFunc, AggregateExpr};
use crate::runtime::memory::{MemoryPool, Reservation};

/// The groups seen so far and their states: the hash table of one pass.
pub(super) struct GroupTable {
    pub(super) aggs: Vec<AggregateExpr>,
    pub(super) arg_types: Vec<DataType>,
    pub(super) keys: GroupKeys,
    pub(super) num_groups: usize,
    pub(super) accs: Vec<Box<dyn GroupAccumulator>>,
    /// The groups' keys and states, counted against the memory budget.
    pub(super) reservation: Reservation,
    /// The accumulators' extra bytes the reservation covers.
    pub(super) extra_counted: usize,
}

impl GroupTable {
    pub(super) fn new(
        key_types: &[DataType],
        aggs: &[AggregateExpr],
        arg_types: &[DataType],
        memory: &Arc<MemoryPool>,
        owner: &'static str,
    ) -> Result<Self> {
        let accs = aggs
            .iter()
            .zip(arg_types)
            .map(|(a, t)| new_accumulator(a, t))
            .collect::<Result<_>>()?;
        Ok(GroupTable {
            aggs: aggs.to_vec(),
            arg_types: arg_types.to_vec(),
            keys: GroupKeys::new(key_types)?,
            num_groups: 0,
            accs,
            reservation: Reservation::new(memory, owner),
            extra_counted: 0,
        })
    }

    /// Maps each row of the key columns to its group index, creating new
    /// groups.
    pub(super) fn group_indices(
        &mut self,
        keys: &[ArrayRef],
        num_rows: usize,
    ) -> Result<Vec<usize>> {
        let indices = self.keys.intern(keys, num_rows)?;
        // Without keys there is one group even before any row.
        self.num_groups = self.num_groups.max(self.keys.num_groups());
        Ok(indices)
    }

    /// Whether the table has no keys and only `count(*)` aggregates: its
    /// input rows need only be counted.
    pub(super) fn counts_rows_only(&self) -> bool {
        self.keys.is_empty()
            && self
                .aggs
                .iter()
                .all(|a| a.func == AggFunc::CountStar && !a.distinct)
    }

    /// Adds `rows` input rows to the one group (see `counts_rows_only`).
    pub(super) fn count_rows(&mut self, rows: usize) -> Result<()> {
        self.num_groups = self.num_groups.max(1);
        self.accs.iter_mut().try_for_each(|a| a.add_rows(0, rows))
    }

    /// What `new_groups` more groups cost: key bytes in the map and the row
    /// store, plus each state.
    pub(super) fn bytes_for(&self, new_groups: usize) -> usize {
        let key_bytes = self.keys.bytes_per_key();
        // Per group: the key (and in row format its offset), the map's slot
        // (16 bytes and a control byte), and each accumulator's state;
        // vectors and maps double as they grow, so count the slack too
        // (counting short let the process outgrow the budget by a third).
        new_groups * (2 * key_bytes + 16 + 40 + 40 * self.accs.len())
    }

    /// What the table grew by since it had `before` groups: the new groups,
    /// and what the accumulators hold beyond them (DISTINCT's sets).
    pub(super) fn growth(&self, before: usize) -> usize {
        let extra: usize = self.accs.iter().map(|a| a.extra_bytes()).sum();
        self.bytes_for(self.num_groups - before) + extra.saturating_sub(self.extra_counted)
    }

    /// Counts `growth(before)` as reserved.
    pub(super) fn grew(&mut self) {
        self.extra_counted = self.accs.iter().map(|a| a.extra_bytes()).sum();
    }

    /// Reserves for the growth since there were `before` groups; false when
    /// the budget refuses.
    pub(super) fn try_reserve(&mut self, before: usize) -> bool {
        let bytes = self.growth(before);
        if bytes == 0 || self.reservation.try_grow(bytes) {
            self.grew();
            true
        } else {
            false
        }
    }

    /// Folds raw input rows into their groups.
    pub(super) fn update(&mut self, groups: &[usize], batch: &RecordBatch) -> Result<()> {
        let n = self.num_groups;
        for (acc, agg) in self.accs.iter_mut().zip(&self.aggs) {
            let values = match &agg.arg {
                Some(a) => Some(evaluate_array(a, batch)?),
                None => None,
            };
            acc.update(groups, n, values.as_ref())?;
        }
        Ok(())
    }

    /// Folds state rows (whose states start at `offsets`) into their groups.
    pub(super) fn merge(
        &mut self,
        offsets: &[usize],
        groups: &[usize],
        batch: &RecordBatch,
    ) -> Result<()> {
        let n = self.num_groups;
        for (acc, &start) in self.accs.iter_mut().zip(offsets) {
            let states = batch
                .columns()
                .get(start..start + acc.state_width())
                .ok_or_else(|| QuarryError::exec("internal error: state columns missing"))?;
            acc.merge(groups, n, states)?;
        }
        Ok(())
    }

    /// Takes the key columns and the states (or final values) out. The
    /// table must be `reset` before it is used again.
    pub(super) fn take_columns(&mut self, final_values: bool) -> Result<(usize, Vec<ArrayRef>)> {
        let n = self.num_groups;
        let mut columns = self.keys.arrays()?;
        self.keys.clear()?;
        for acc in self.accs.iter_mut() {
            acc.resize(n);
            if final_values {
                columns.push(acc.evaluate()?);
            } else {
                columns.extend(acc.state()?);
            }
        }
        Ok((n, columns))
    }

    /// The table's output as one batch of `schema`.
    pub(super) fn take_batch(
        &mut self,
        final_values: bool,
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let (n, columns) = self.take_columns(final_values)?;
        let columns = columns
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| cast_checked(c, f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let opts = RecordBatchOptions::new().with_row_count(Some(n));
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &opts,
        )?)
    }

    /// Empties the table (after `take_columns`) and frees its reservation.
    pub(super) fn reset(&mut self) -> Result<()> {
        self.keys.clear()?;
        self.num_groups = 0;
        self.accs = self
            .aggs
            .iter()
            .zip(&self.arg_types)
            .map(|(a, t)| new_accumulator(a, t))
            .collect::<Result<_>>()?;
        self.reservation.free();
        self.extra_counted = 0;
        Ok(())
    }
}
