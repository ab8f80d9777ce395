//! Hash aggregation, in two phases across partitions: `Partial` turns rows
//! into per-group state, `Final` merges states that arrive hash-partitioned by
//! group key, `Single` does both at once (used for DISTINCT aggregates).
//!
//! This file is the operator; `group_table.rs` is the hash table of one pass,
//! `spill.rs` writes a table that does not fit to disk by hash of the key,
//! `accumulator.rs` is the per-group state of an aggregate function (one file
//! per family: `count.rs`, `sum.rs`, `avg.rs`, `min_max.rs`, `variance.rs`,
//! `distinct.rs`, and `more.rs` for the rest); the operator's tests are in
//! `tests.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde::{Deserialize, Serialize};

use super::expr::{cast_checked, evaluate_array};
use super::operator::{Operator, SpillCount};
use crate::error::{QuarryError, Result};
use crate::plan::expr::aggregate_result_type;
use crate::plan::expr::AggParam;
use crate::plan::{AggFunc, AggregateExpr, Expr};
use crate::runtime::memory::{format_bytes, MemoryPool};
use crate::runtime::spill::SpillFile;

mod accumulator;
mod avg;
mod count;
mod distinct;
mod group_table;
mod min_max;
mod more;
mod spill;
mod sum;
#[cfg(test)]
mod tests;
mod variance;
pub(crate) mod window_quantile;

pub(crate) use accumulator::{new_accumulator, GroupAccumulator};
pub(crate) use avg::decimal_average;
use group_table::GroupTable;
use spill::{slices, spill_table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggMode {
    Partial,
    Final,
    Single,
}

/// The columns a partial aggregate emits for one aggregate function.
pub fn state_fields(agg: &AggregateExpr, arg_type: &DataType, name: &str) -> Vec<Field> {
    let result = aggregate_result_type(agg.func, arg_type);
    match agg.func {
        AggFunc::Count | AggFunc::CountStar => {
            vec![Field::new(format!("{name}[count]"), DataType::Int64, false)]
        }
        AggFunc::Sum => vec![Field::new(format!("{name}[sum]"), result, true)],
        AggFunc::Avg => vec![
            Field::new(format!("{name}[sum]"), avg_sum_type(arg_type), true),
            Field::new(format!("{name}[count]"), DataType::Int64, false),
        ],
        AggFunc::Min | AggFunc::Max => vec![Field::new(
            format!("{name}[{}]", agg.func.name()),
            result,
            true,
        )],
        AggFunc::VarSamp | AggFunc::VarPop | AggFunc::StddevSamp | AggFunc::StddevPop => vec![
            Field::new(format!("{name}[count]"), DataType::Int64, false),
            Field::new(format!("{name}[mean]"), DataType::Float64, false),
            Field::new(format!("{name}[m2]"), DataType::Float64, false),
        ],
        AggFunc::StringAgg => match &agg.param {
            // every row(x, key, …) so far
            Some(AggParam::OrderedSeparator { .. }) => vec![Field::new(
                format!("{name}[rows]"),
                DataType::List(Arc::new(Field::new_list_field(arg_type.clone(), true))),
                true,
            )],
            _ => vec![Field::new(format!("{name}[joined]"), DataType::Utf8, true)],
        },
        // the argument is row(arg, val): its two values
        AggFunc::ArgMin | AggFunc::ArgMax => match arg_type {
            DataType::Struct(fields) => fields
                .iter()
                .map(|f| Field::new(format!("{name}[{}]", f.name()), f.data_type().clone(), true))
                .collect(),
            other => vec![Field::new(format!("{name}[arg]"), other.clone(), true)],
        },
        AggFunc::QuantileCont | AggFunc::QuantileDisc => vec![Field::new(
            format!("{name}[values]"),
            DataType::List(Arc::new(Field::new_list_field(
                more::kept_type(arg_type),
                true,
            ))),
            true,
        )],
        AggFunc::ApproxCountDistinct => {
            vec![Field::new(
                format!("{name}[sketch]"),
                DataType::Binary,
                true,
            )]
        }
    }
}

/// avg sums decimals and integers exactly, floats as floats.
fn avg_sum_type(arg: &DataType) -> DataType {
    match arg {
        DataType::Decimal128(_, s) => DataType::Decimal128(38, *s),
        t if t.is_floating() => DataType::Float64,
        _ => DataType::Decimal128(38, 0),
    }
}

/// Sub-partitions a spilled table is split into, by hash of the group key.
const SPILL_PARTITIONS: usize = 16;
/// How many times a sub-partition that still does not fit is split again
/// (16^3 = 4096 ways in all) before the aggregate gives up with an error.
const MAX_SPILL_DEPTH: usize = 3;
/// Rows per output batch and per spilled batch, so that neither a large
/// result nor a large spilled partition is handled in one piece.
const BATCH_ROWS: usize = 64 * 1024;

pub struct AggregateOp {
    mode: AggMode,
    group: Vec<Expr>,
    aggs: Vec<AggregateExpr>,
    /// Where each aggregate's input columns start in a Final input batch
    /// (and in a spilled state batch, whose layout is the same).
    state_offsets: Vec<usize>,
    output_schema: SchemaRef,
    key_types: Vec<DataType>,
    arg_types: Vec<DataType>,
    memory: Arc<MemoryPool>,
    owner: &'static str,
    table: GroupTable,
    /// Spill files of the groups written out so far (Final and Single mode),
    /// by sub-partition; empty when nothing was spilled.
    spilled_parts: Vec<Vec<SpillFile>>,
    temp_dir: PathBuf,
    spill_count: SpillCount,
    /// How many hash splits deep the spilling went (0: none); for tests.
    #[cfg_attr(not(test), allow(dead_code))]
    split_levels: usize,
    /// Partial mode: rows folded in so far, until the aggregate has decided
    /// whether aggregating pays (see `PARTIAL_PROBE_ROWS`).
    rows_in: usize,
    decided: bool,
    /// Partial mode: each input row goes out as its own state row.
    pass_through: bool,
    /// Shared by the tasks of a stage, so that once one of them has found
    /// that partial aggregation does not pay the others skip it at once.
    skip_hint: Option<Arc<AtomicBool>>,
}

/// A partial aggregate decides after this many rows whether it pays.
const PARTIAL_PROBE_ROWS: usize = 100_000;
/// A task that ends with fewer rows than `PARTIAL_PROBE_ROWS` but at least
/// these judges for its siblings whether aggregating pays.
const PARTIAL_FINISH_MIN_ROWS: usize = 10_000;
/// It stops aggregating when it has more groups than this share of its
/// rows: the Final aggregate must then merge nearly as many rows as there
/// were, and the partial hash table was work for nothing.
const PARTIAL_MAX_GROUP_SHARE: f64 = 0.5;

impl AggregateOp {
    /// `input_schema` is the schema of the batches pushed in; in Final mode it
    /// holds the group columns followed by the state columns. Spill files go
    /// to `temp_dir`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mode: AggMode,
        group: Vec<Expr>,
        aggs: Vec<AggregateExpr>,
        input_schema: &Schema,
        output_schema: SchemaRef,
        arg_types: &[DataType],
        memory: &Arc<MemoryPool>,
        temp_dir: PathBuf,
    ) -> Result<Self> {
        let key_types: Vec<DataType> = group
            .iter()
            .map(|e| e.data_type(input_schema))
            .collect::<Result<_>>()?;
        let mut state_offsets = Vec::with_capacity(aggs.len());
        let mut offset = group.len();
        for (agg, arg_type) in aggs.iter().zip(arg_types) {
            state_offsets.push(offset);
            offset += state_fields(agg, arg_type, "").len();
        }
        let owner = match mode {
            AggMode::Partial => "a hash aggregate (PartialAggregate)",
            AggMode::Final => "a hash aggregate (FinalAggregate)",
            AggMode::Single => "a hash aggregate (SingleAggregate)",
        };
        let table = GroupTable::new(&key_types, &aggs, arg_types, memory, owner)?;
        Ok(AggregateOp {
            mode,
            group,
            aggs,
            state_offsets,
            output_schema,
            key_types,
            arg_types: arg_types.to_vec(),
            memory: memory.clone(),
            owner,
            table,
            spilled_parts: Vec::new(),
            temp_dir,
            spill_count: SpillCount::default(),
            split_levels: 0,
            rows_in: 0,
            decided: false,
            pass_through: false,
            skip_hint: None,
        })
    }

    /// Shares the decision to skip partial aggregation with `hint`.
    pub fn with_skip_hint(mut self, hint: Arc<AtomicBool>) -> Self {
        self.skip_hint = Some(hint);
        self
    }

    /// Partial mode: has aggregating stopped paying, here or in a sibling
    /// task? Emits what the table holds when this task gives up on it.
    fn skips_partial(&mut self, out: &mut Vec<RecordBatch>) -> Result<bool> {
        if self.mode != AggMode::Partial || self.pass_through {
            return Ok(self.pass_through);
        }
        let hinted = self
            .skip_hint
            .as_ref()
            .is_some_and(|h| h.load(Ordering::Relaxed));
        let too_many_groups = !self.decided
            && self.rows_in >= PARTIAL_PROBE_ROWS
            && self.table.num_groups as f64 > PARTIAL_MAX_GROUP_SHARE * self.rows_in as f64;
        if self.rows_in >= PARTIAL_PROBE_ROWS {
            self.decided = true;
        }
        if !(hinted || too_many_groups) {
            return Ok(false);
        }
        if let Some(h) = &self.skip_hint {
            h.store(true, Ordering::Relaxed);
        }
        self.pass_through = true;
        if self.table.num_groups > 0 {
            let batch = self.table.take_batch(false, &self.output_schema)?;
            self.table.reset()?;
            out.extend(slices(&batch));
        }
        Ok(true)
    }

    /// Partial mode: a task too small to reach `PARTIAL_PROBE_ROWS` still
    /// tells its siblings, when it ends, that aggregating did not pay (as
    /// many groups as rows after a selective join, say).
    fn hint_skip_at_finish(&self) {
        let Some(hint) = &self.skip_hint else {
            return;
        };
        if self.mode == AggMode::Partial
            && !self.decided
            && self.rows_in >= PARTIAL_FINISH_MIN_ROWS
            && self.table.num_groups as f64 > PARTIAL_MAX_GROUP_SHARE * self.rows_in as f64
        {
            hint.store(true, Ordering::Relaxed);
        }
    }

    /// Partial mode without aggregating: each row of `batch` as the state
    /// of a group of its own.
    fn row_states(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut columns = self
            .group
            .iter()
            .map(|e| evaluate_array(e, batch))
            .collect::<Result<Vec<_>>>()?;
        // 1 for a row whose argument is not NULL, else 0.
        let counts = |arg: Option<&ArrayRef>| -> ArrayRef {
            match arg.and_then(|a| a.logical_nulls()) {
                Some(nulls) => Arc::new(Int64Array::from_iter_values(
                    nulls.iter().map(|valid| valid as i64),
                )),
                None => Arc::new(Int64Array::from_value(1, n)),
            }
        };
        for (agg, arg_type) in self.aggs.iter().zip(&self.arg_types) {
            let arg = agg
                .arg
                .as_ref()
                .map(|a| evaluate_array(a, batch))
                .transpose()?;
            let value = || {
                arg.clone()
                    .ok_or_else(|| QuarryError::exec("internal error: aggregate without argument"))
            };
            match agg.func {
                AggFunc::StringAgg
                | AggFunc::ArgMin
                | AggFunc::ArgMax
                | AggFunc::QuantileCont
                | AggFunc::QuantileDisc
                | AggFunc::ApproxCountDistinct => {
                    // each row the one row of a group of its own
                    let mut acc = new_accumulator(agg, arg_type)?;
                    let groups: Vec<usize> = (0..n).collect();
                    acc.update(&groups, n, Some(&value()?))?;
                    acc.resize(n);
                    columns.extend(acc.state()?);
                }
                AggFunc::Count | AggFunc::CountStar => columns.push(counts(arg.as_ref())),
                AggFunc::Sum | AggFunc::Min | AggFunc::Max => columns.push(value()?),
                AggFunc::Avg => {
                    columns.push(value()?);
                    columns.push(counts(arg.as_ref()));
                }
                AggFunc::VarSamp | AggFunc::VarPop | AggFunc::StddevSamp | AggFunc::StddevPop => {
                    // a group of one value: its mean is the value, no spread
                    let v = cast_checked(&value()?, &DataType::Float64)?;
                    let means: Float64Array = v
                        .as_primitive::<Float64Type>()
                        .iter()
                        .map(|x| x.unwrap_or(0.0))
                        .collect();
                    columns.push(counts(arg.as_ref()));
                    columns.push(Arc::new(means));
                    columns.push(Arc::new(Float64Array::from_value(0.0, n)));
                }
            }
        }
        let columns = columns
            .iter()
            .zip(self.output_schema.fields())
            .map(|(c, f)| cast_checked(c, f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let opts = RecordBatchOptions::new().with_row_count(Some(n));
        Ok(RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &opts,
        )?)
    }

    /// Groups can go to disk only when there are keys to split them by and
    /// every state can be written (DISTINCT sets cannot).
    fn can_spill(&self) -> bool {
        !self.group.is_empty() && !self.aggs.iter().any(|a| a.distinct)
    }

    /// The budget refused the table's growth by the groups added since
    /// there were `before`: make room.
    fn relieve(&mut self, before: usize, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.mode == AggMode::Partial {
            // The Final aggregate downstream merges repeated groups, so the
            // partial states can simply be sent on early.
            let batch = self.table.take_batch(false, &self.output_schema)?;
            self.table.reset()?;
            out.extend(slices(&batch));
            return Ok(());
        }
        if !self.can_spill() {
            let bytes = self.table.growth(before);
            self.table.reservation.grow(bytes)?;
            self.table.grew();
            return Ok(());
        }
        self.split_levels = self.split_levels.max(1);
        spill_table(
            &mut self.table,
            &mut self.spilled_parts,
            0,
            &self.temp_dir,
            &mut self.spill_count,
        )
    }

    /// Merges the spilled state batches of one sub-partition (split at
    /// `depth - 1`) and emits the result; splits it again if it does not fit.
    fn merge_spilled(
        &mut self,
        files: Vec<SpillFile>,
        depth: usize,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let mut table = GroupTable::new(
            &self.key_types,
            &self.aggs,
            &self.arg_types,
            &self.memory,
            self.owner,
        )?;
        let mut parts = Vec::new();
        let keys = self.group.len();
        // Groups past the deepest split that the budget refused (see below).
        let mut unreserved = 0;
        for file in &files {
            for batch in file.reader()? {
                let batch = batch?;
                let before = table.num_groups;
                let key_columns = batch
                    .columns()
                    .get(..keys)
                    .ok_or_else(|| QuarryError::exec("internal error: spilled keys missing"))?;
                let groups = table.group_indices(key_columns, batch.num_rows())?;
                table.merge(&self.state_offsets, &groups, &batch)?;
                if table.try_reserve(before) {
                    continue;
                }
                if depth >= MAX_SPILL_DEPTH {
                    // Split 4096 ways and still refused: if the table is
                    // small, the budget is held by others (a sibling task's
                    // table) and waiting for it could take long, so go on
                    // unreserved, up to a sixteenth of the limit; past that
                    // the groups really do not fit.
                    unreserved += table.bytes_for(table.num_groups - before);
                    let held = table.reservation.size() + unreserved;
                    if held > self.memory.limit() / SPILL_PARTITIONS {
                        return Err(self.too_small(held));
                    }
                    continue;
                }
                self.split_levels = self.split_levels.max(depth + 1);
                spill_table(
                    &mut table,
                    &mut parts,
                    depth,
                    &self.temp_dir,
                    &mut self.spill_count,
                )?;
            }
        }
        // Read: remove the files now rather than at the end of the query.
        drop(files);
        if parts.is_empty() {
            let batch = table.take_batch(true, &self.output_schema)?;
            drop(table);
            return slices(&batch).into_iter().try_for_each(emit);
        }
        spill_table(
            &mut table,
            &mut parts,
            depth,
            &self.temp_dir,
            &mut self.spill_count,
        )?;
        drop(table);
        for files in parts {
            self.merge_spilled(files, depth + 1, emit)?;
        }
        Ok(())
    }

    /// `held`: what the aggregate's table had reserved when refused.
    fn too_small(&self, held: usize) -> QuarryError {
        QuarryError::Execution(format!(
            "{} cannot fit its groups in the memory limit of {} ({} in use, {} of it by \
             the aggregate), even spilled to disk and split {} ways; raise it with SET memory_limit",
            self.owner,
            format_bytes(self.memory.limit()),
            format_bytes(self.memory.used()),
            format_bytes(held),
            SPILL_PARTITIONS.pow(MAX_SPILL_DEPTH as u32),
        ))
    }
}

impl Operator for AggregateOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.skips_partial(out)? {
            out.push(self.row_states(&batch)?);
            return Ok(());
        }
        self.rows_in += batch.num_rows();
        if self.mode != AggMode::Final && self.table.counts_rows_only() {
            // (the batch may be a join's count of pairs: no columns and
            // more rows than could be made one by one)
            return self.table.count_rows(batch.num_rows());
        }
        let before = self.table.num_groups;
        let keys = self
            .group
            .iter()
            .map(|e| evaluate_array(e, &batch))
            .collect::<Result<Vec<_>>>()?;
        let groups = self.table.group_indices(&keys, batch.num_rows())?;
        match self.mode {
            AggMode::Partial | AggMode::Single => self.table.update(&groups, &batch)?,
            AggMode::Final => self.table.merge(&self.state_offsets, &groups, &batch)?,
        }
        // The batch is folded in before the reservation, so the table may
        // overshoot the budget by one batch's new groups until it is relieved.
        if !self.table.try_reserve(before) {
            self.relieve(before, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.finish_into(&mut |b| {
            out.push(b);
            Ok(())
        })
    }

    fn finish_into(&mut self, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        self.hint_skip_at_finish();
        if self.spilled_parts.is_empty() {
            // Without GROUP BY there is exactly one group, even on empty input.
            if self.group.is_empty() && self.table.num_groups == 0 {
                self.table.num_groups = 1;
            }
            let batch = self
                .table
                .take_batch(self.mode != AggMode::Partial, &self.output_schema)?;
            slices(&batch).into_iter().try_for_each(&mut *emit)?;
            self.table.reservation.free();
            return Ok(());
        }
        // Spilled: the rest goes to disk too, then each sub-partition is
        // merged on its own, with the whole budget free for it.
        spill_table(
            &mut self.table,
            &mut self.spilled_parts,
            0,
            &self.temp_dir,
            &mut self.spill_count,
        )?;
        for files in std::mem::take(&mut self.spilled_parts) {
            self.merge_spilled(files, 1, emit)?;
        }
        Ok(())
    }

    fn spilled(&self) -> SpillCount {
        self.spill_count
    }
}
