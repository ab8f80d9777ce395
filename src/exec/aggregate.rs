//! Hash aggregation, in two phases across partitions: `Partial` turns rows
//! into per-group state, `Final` merges states that arrive hash-partitioned by
//! group key, `Single` does both at once (used for DISTINCT aggregates).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, Float64Array, Int64Array, PrimitiveArray,
    StringArray, UInt32Array,
};
use arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int64Type, Schema, SchemaRef,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion_common::ScalarValue;
use serde::{Deserialize, Serialize};

use super::expr::{cast_checked, evaluate_array};
use super::group_keys::GroupKeys;
use super::operator::{Operator, SpillCount};
use super::timestamp::{equality_key, equality_keys, interval_type};
use crate::error::{QuarryError, Result};
use crate::plan::expr::aggregate_result_type;
use crate::plan::expr::AggParam;
use crate::plan::{AggFunc, AggregateExpr, Expr};
use crate::runtime::memory::{format_bytes, MemoryPool, Reservation};
use crate::runtime::spill::SpillFile;

mod more;
pub(crate) mod window_quantile;

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

/// Cuts `batch` into pieces of at most `BATCH_ROWS` rows (no copy); none if
/// it is empty.
fn slices(batch: &RecordBatch) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(BATCH_ROWS)
        .map(|start| batch.slice(start, BATCH_ROWS.min(batch.num_rows() - start)))
        .collect()
}

/// Writes the table's groups as state batches (key columns, then state
/// columns: the layout a Final aggregate reads) to one file per non-empty
/// sub-partition, chosen by a hash of the key seeded by `depth`; then
/// empties the table and frees its reservation.
fn spill_table(
    table: &mut GroupTable,
    parts: &mut Vec<Vec<SpillFile>>,
    depth: usize,
    dir: &Path,
    count: &mut SpillCount,
) -> Result<()> {
    if table.num_groups == 0 {
        return Ok(());
    }
    // A seed of its own per depth, so that a sub-partition does split again
    // (and unlike the table's hash, so its keys do not cluster in a table).
    let hasher = ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3 ^ depth as u64,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    );
    let key_count = table.keys.key_types().len();
    let (n, columns) = table.take_columns(false)?;
    table.reset()?;
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); SPILL_PARTITIONS];
    // (equal intervals to one file, where they merge into one group)
    let key_columns = equality_keys(&columns[..key_count])?;
    let converter = RowConverter::new(
        key_columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    for (g, row) in converter.convert_columns(&key_columns)?.iter().enumerate() {
        let p = (hasher.hash_one(row.as_ref()) % SPILL_PARTITIONS as u64) as usize;
        indices[p].push(g as u32);
    }
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let opts = RecordBatchOptions::new().with_row_count(Some(n));
    let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &opts)?;
    if parts.is_empty() {
        parts.resize_with(SPILL_PARTITIONS, Vec::new);
    }
    for (p, idx) in indices.into_iter().enumerate() {
        if idx.is_empty() {
            continue;
        }
        let part = arrow::compute::take_record_batch(&batch, &UInt32Array::from(idx))?;
        let file = SpillFile::write(dir, &schema, &slices(&part))?;
        count.add(&file);
        parts[p].push(file);
    }
    Ok(())
}

/// The groups seen so far and their states: the hash table of one pass.
struct GroupTable {
    aggs: Vec<AggregateExpr>,
    arg_types: Vec<DataType>,
    keys: GroupKeys,
    num_groups: usize,
    accs: Vec<Box<dyn GroupAccumulator>>,
    /// The groups' keys and states, counted against the memory budget.
    reservation: Reservation,
    /// The accumulators' extra bytes the reservation covers.
    extra_counted: usize,
}

impl GroupTable {
    fn new(
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
    fn group_indices(&mut self, keys: &[ArrayRef], num_rows: usize) -> Result<Vec<usize>> {
        let indices = self.keys.intern(keys, num_rows)?;
        // Without keys there is one group even before any row.
        self.num_groups = self.num_groups.max(self.keys.num_groups());
        Ok(indices)
    }

    /// Whether the table has no keys and only `count(*)` aggregates: its
    /// input rows need only be counted.
    fn counts_rows_only(&self) -> bool {
        self.keys.is_empty()
            && self
                .aggs
                .iter()
                .all(|a| a.func == AggFunc::CountStar && !a.distinct)
    }

    /// Adds `rows` input rows to the one group (see `counts_rows_only`).
    fn count_rows(&mut self, rows: usize) -> Result<()> {
        self.num_groups = self.num_groups.max(1);
        self.accs.iter_mut().try_for_each(|a| a.add_rows(0, rows))
    }

    /// What `new_groups` more groups cost: key bytes in the map and the row
    /// store, plus each state.
    fn bytes_for(&self, new_groups: usize) -> usize {
        let key_bytes = self.keys.bytes_per_key();
        // Per group: the key (and in row format its offset), the map's slot
        // (16 bytes and a control byte), and each accumulator's state;
        // vectors and maps double as they grow, so count the slack too
        // (counting short let the process outgrow the budget by a third).
        new_groups * (2 * key_bytes + 16 + 40 + 40 * self.accs.len())
    }

    /// What the table grew by since it had `before` groups: the new groups,
    /// and what the accumulators hold beyond them (DISTINCT's sets).
    fn growth(&self, before: usize) -> usize {
        let extra: usize = self.accs.iter().map(|a| a.extra_bytes()).sum();
        self.bytes_for(self.num_groups - before) + extra.saturating_sub(self.extra_counted)
    }

    /// Counts `growth(before)` as reserved.
    fn grew(&mut self) {
        self.extra_counted = self.accs.iter().map(|a| a.extra_bytes()).sum();
    }

    /// Reserves for the growth since there were `before` groups; false when
    /// the budget refuses.
    fn try_reserve(&mut self, before: usize) -> bool {
        let bytes = self.growth(before);
        if bytes == 0 || self.reservation.try_grow(bytes) {
            self.grew();
            true
        } else {
            false
        }
    }

    /// Folds raw input rows into their groups.
    fn update(&mut self, groups: &[usize], batch: &RecordBatch) -> Result<()> {
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
    fn merge(&mut self, offsets: &[usize], groups: &[usize], batch: &RecordBatch) -> Result<()> {
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
    fn take_columns(&mut self, final_values: bool) -> Result<(usize, Vec<ArrayRef>)> {
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
    fn take_batch(&mut self, final_values: bool, schema: &SchemaRef) -> Result<RecordBatch> {
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
    fn reset(&mut self) -> Result<()> {
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

/// Per-group state of one aggregate function, updated a batch at a time.
pub(crate) trait GroupAccumulator: Send {
    /// Folds raw input values (None for count(*)) into the groups.
    fn update(
        &mut self,
        groups: &[usize],
        num_groups: usize,
        values: Option<&ArrayRef>,
    ) -> Result<()>;
    /// Folds partial states (as produced by `state`) into the groups.
    fn merge(&mut self, groups: &[usize], num_groups: usize, states: &[ArrayRef]) -> Result<()>;
    fn state_width(&self) -> usize {
        1
    }
    /// Makes sure there is state for `n` groups.
    fn resize(&mut self, n: usize);
    fn state(&mut self) -> Result<Vec<ArrayRef>>;
    fn evaluate(&mut self) -> Result<ArrayRef>;
    /// Bytes held beyond the fixed state per group (DISTINCT's sets).
    fn extra_bytes(&self) -> usize {
        0
    }
    /// Folds `rows` rows without values into `group` (count(*) only).
    fn add_rows(&mut self, _group: usize, _rows: usize) -> Result<()> {
        Err(QuarryError::exec(
            "internal error: only count(*) folds rows without values",
        ))
    }
}

pub(crate) fn new_accumulator(
    agg: &AggregateExpr,
    arg_type: &DataType,
) -> Result<Box<dyn GroupAccumulator>> {
    if agg.distinct {
        return Ok(Box::new(DistinctAcc {
            agg: agg.clone(),
            arg_type: arg_type.clone(),
            sets: vec![],
            spellings: vec![],
            bytes: 0,
        }));
    }
    let result = aggregate_result_type(agg.func, arg_type);
    Ok(match agg.func {
        AggFunc::Count | AggFunc::CountStar => Box::new(CountAcc { counts: vec![] }),
        AggFunc::Sum => match &result {
            DataType::Int64 => Box::new(SumAcc::<Int64Type>::new(result)),
            DataType::Decimal128(_, _) => Box::new(SumAcc::<Decimal128Type>::new(result)),
            DataType::Float64 => Box::new(SumAcc::<Float64Type>::new(result)),
            other => return Err(QuarryError::plan(format!("sum is not defined for {other}"))),
        },
        AggFunc::Avg => Box::new(AvgAcc::new(arg_type)),
        AggFunc::Min | AggFunc::Max => new_min_max(agg.func == AggFunc::Min, arg_type),
        AggFunc::VarSamp | AggFunc::VarPop | AggFunc::StddevSamp | AggFunc::StddevPop => {
            Box::new(VarianceAcc::new(agg.func))
        }
        AggFunc::StringAgg => match &agg.param {
            Some(AggParam::Separator(s)) => Box::new(more::StringAggAcc::new(s.clone())),
            Some(AggParam::OrderedSeparator { separator, keys }) => Box::new(
                more::OrderedStringAggAcc::new(separator.clone(), keys.clone(), arg_type),
            ),
            _ => return Err(missing_param(agg)),
        },
        AggFunc::ArgMin | AggFunc::ArgMax => Box::new(more::ArgMinMaxAcc::new(
            agg.func == AggFunc::ArgMin,
            arg_type,
        )?),
        AggFunc::QuantileCont | AggFunc::QuantileDisc => match agg.param {
            Some(AggParam::Quantile(q)) => Box::new(more::QuantileAcc::new(
                q,
                agg.func == AggFunc::QuantileCont,
                arg_type,
            )),
            _ => return Err(missing_param(agg)),
        },
        AggFunc::ApproxCountDistinct => Box::new(more::ApproxDistinctAcc::new()),
    })
}

fn missing_param(agg: &AggregateExpr) -> QuarryError {
    QuarryError::exec(format!(
        "internal error: {}() without its constant argument",
        agg.func.name()
    ))
}

/// var_samp, var_pop, stddev_samp, stddev_pop: per group the count, the
/// mean and the sum of squared distances from it (Welford's update, which
/// does not lose the variance of large values to cancellation as the sum
/// of squares would; partial states merge by Chan's formula).
struct VarianceAcc {
    func: AggFunc,
    counts: Vec<i64>,
    means: Vec<f64>,
    m2s: Vec<f64>,
}

impl VarianceAcc {
    fn new(func: AggFunc) -> Self {
        VarianceAcc {
            func,
            counts: vec![],
            means: vec![],
            m2s: vec![],
        }
    }

    /// Folds a group of `n` values with mean `mean` and squared distances
    /// `m2` into group `g`.
    fn combine(&mut self, g: usize, n: i64, mean: f64, m2: f64) {
        if n == 0 {
            return;
        }
        if self.counts[g] == 0 {
            // taken as it is: `mean * n / n` may be an ulp off the mean
            // (0.04 * 29 / 29), and then equal values, merged, seemed to
            // vary (stddev_samp 3.5e-18 of values all 0.04)
            self.counts[g] = n;
            self.means[g] = mean;
            self.m2s[g] = m2;
            return;
        }
        let (na, nb) = (self.counts[g] as f64, n as f64);
        let total = na + nb;
        let delta = mean - self.means[g];
        self.means[g] += delta * nb / total;
        self.m2s[g] += m2 + delta * delta * na * nb / total;
        self.counts[g] += n;
    }
}

impl GroupAccumulator for VarianceAcc {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        let values = values.ok_or_else(|| QuarryError::exec("variance needs an argument"))?;
        let values = cast_checked(values, &DataType::Float64)?;
        let v = values.as_primitive::<Float64Type>();
        self.resize(n);
        for (row, &g) in groups.iter().enumerate() {
            if v.is_valid(row) {
                let x = v.value(row);
                self.counts[g] += 1;
                let delta = x - self.means[g];
                self.means[g] += delta / self.counts[g] as f64;
                self.m2s[g] += delta * (x - self.means[g]);
            }
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.resize(n);
        let counts = states[0].as_primitive::<Int64Type>();
        let means = states[1].as_primitive::<Float64Type>();
        let m2s = states[2].as_primitive::<Float64Type>();
        for (row, &g) in groups.iter().enumerate() {
            self.combine(g, counts.value(row), means.value(row), m2s.value(row));
        }
        Ok(())
    }

    fn state_width(&self) -> usize {
        3
    }

    fn resize(&mut self, n: usize) {
        self.counts.resize(n, 0);
        self.means.resize(n, 0.0);
        self.m2s.resize(n, 0.0);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![
            Arc::new(Int64Array::from(std::mem::take(&mut self.counts))),
            Arc::new(Float64Array::from(std::mem::take(&mut self.means))),
            Arc::new(Float64Array::from(std::mem::take(&mut self.m2s))),
        ])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let sample = matches!(self.func, AggFunc::VarSamp | AggFunc::StddevSamp);
        let root = matches!(self.func, AggFunc::StddevSamp | AggFunc::StddevPop);
        let out: Float64Array = self
            .counts
            .iter()
            .zip(&self.m2s)
            .map(|(&c, &m2)| {
                // a sample of one value has no variance (NULL, as in DuckDB)
                let divisor = if sample { c - 1 } else { c };
                (divisor > 0).then(|| {
                    let var = (m2 / divisor as f64).max(0.0);
                    if root {
                        var.sqrt()
                    } else {
                        var
                    }
                })
            })
            .collect();
        Ok(Arc::new(out))
    }
}

struct CountAcc {
    counts: Vec<i64>,
}

impl GroupAccumulator for CountAcc {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.counts.resize(n, 0);
        match values.and_then(|v| v.logical_nulls()) {
            Some(nulls) => {
                for (row, g) in groups.iter().enumerate() {
                    if nulls.is_valid(row) {
                        self.counts[*g] += 1;
                    }
                }
            }
            None => match single_group(groups) {
                Some(g) => self.counts[g] += groups.len() as i64,
                None => groups.iter().for_each(|g| self.counts[*g] += 1),
            },
        }
        Ok(())
    }

    fn add_rows(&mut self, group: usize, rows: usize) -> Result<()> {
        if self.counts.len() <= group {
            self.counts.resize(group + 1, 0);
        }
        let total = i64::try_from(rows)
            .ok()
            .and_then(|r| self.counts[group].checked_add(r))
            .ok_or_else(|| QuarryError::exec("count(*) overflows BIGINT"))?;
        self.counts[group] = total;
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.counts.resize(n, 0);
        let c = states[0].as_primitive::<Int64Type>();
        for (row, g) in groups.iter().enumerate() {
            self.counts[*g] += c.value(row);
        }
        Ok(())
    }

    fn resize(&mut self, n: usize) {
        self.counts.resize(n, 0);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from(std::mem::take(&mut self.counts))))
    }
}

/// Addition that reports overflow (through a flag, looked at once per
/// batch) rather than wrap.
trait SumNative: Copy + Default + Send {
    /// Whether the order of additions cannot change the sum (integers; a
    /// float sum in another order differs in its last digits).
    const EXACT: bool;
    fn add_flagged(self, o: Self, overflow: &mut bool) -> Self;
}
impl SumNative for i64 {
    const EXACT: bool = true;
    fn add_flagged(self, o: Self, overflow: &mut bool) -> Self {
        let (v, o) = self.overflowing_add(o);
        *overflow |= o;
        v
    }
}
impl SumNative for i128 {
    const EXACT: bool = true;
    fn add_flagged(self, o: Self, overflow: &mut bool) -> Self {
        let (v, o) = self.overflowing_add(o);
        *overflow |= o;
        v
    }
}
impl SumNative for f64 {
    const EXACT: bool = false;
    fn add_flagged(self, o: Self, _overflow: &mut bool) -> Self {
        self + o
    }
}

/// `values` as `to`: a decimal of the same scale is already its unscaled
/// values (only the declared precision differs), so it is not copied.
fn as_sum_input(values: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    match (values.data_type(), to) {
        (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) if s1 == s2 => {
            Ok(values.clone())
        }
        _ => cast_checked(values, to),
    }
}

/// The group every row belongs to, when it is one group.
fn single_group(groups: &[usize]) -> Option<usize> {
    let (&first, rest) = groups.split_first()?;
    rest.iter().all(|&g| g == first).then_some(first)
}

/// Adds `values` into `sums[group of row]` and marks the group as seen,
/// skipping NULLs; an overflow is an error of `what`.
fn add_into<T: SumNative>(
    sums: &mut [T],
    seen: Option<&mut [bool]>,
    groups: &[usize],
    values: &[T],
    nulls: Option<&arrow::buffer::NullBuffer>,
    what: &str,
) -> Result<()> {
    let mut overflow = false;
    if let Some(g) = single_group(groups) {
        // All rows in one group (always so without GROUP BY): a running
        // total in a register, not a store and reload of `sums[g]` per row.
        let mut total = sums[g];
        let mut any = false;
        match nulls {
            None => {
                for &x in values {
                    total = total.add_flagged(x, &mut overflow);
                }
                any = !values.is_empty();
            }
            Some(nulls) => {
                for row in nulls.valid_indices() {
                    total = total.add_flagged(values[row], &mut overflow);
                    any = true;
                }
            }
        }
        sums[g] = total;
        if let Some(seen) = seen {
            seen[g] |= any;
        }
    } else if T::EXACT && nulls.is_none() && sums.len() <= LANE_GROUPS {
        add_into_lanes(sums, groups, values, &mut overflow);
        if let Some(seen) = seen {
            for &g in groups {
                seen[g] = true;
            }
        }
    } else {
        match (nulls, seen) {
            (None, Some(seen)) => {
                for (&g, &x) in groups.iter().zip(values) {
                    sums[g] = sums[g].add_flagged(x, &mut overflow);
                    seen[g] = true;
                }
            }
            (None, None) => {
                for (&g, &x) in groups.iter().zip(values) {
                    sums[g] = sums[g].add_flagged(x, &mut overflow);
                }
            }
            (Some(nulls), mut seen) => {
                for (row, (&g, &x)) in groups.iter().zip(values).enumerate() {
                    if nulls.is_valid(row) {
                        sums[g] = sums[g].add_flagged(x, &mut overflow);
                        if let Some(seen) = seen.as_deref_mut() {
                            seen[g] = true;
                        }
                    }
                }
            }
        }
    }
    if overflow {
        return Err(QuarryError::exec(format!("numeric overflow in {what}")));
    }
    Ok(())
}

/// Up to this many groups, [`add_into_lanes`] keeps its copies of the sums
/// on the stack.
const LANE_GROUPS: usize = 32;
const LANES: usize = 4;

/// `add_into` for few groups and no NULLs. With few groups, consecutive
/// rows often share one, and each add would wait for the store of the add
/// before it; `LANES` copies of the sums, row `i` adding into copy
/// `i % LANES`, make those chains independent.
fn add_into_lanes<T: SumNative>(
    sums: &mut [T],
    groups: &[usize],
    values: &[T],
    overflow: &mut bool,
) {
    let mut lanes = [[T::default(); LANE_GROUPS]; LANES];
    let rows = groups.chunks_exact(LANES).zip(values.chunks_exact(LANES));
    let tail = groups.len() - groups.len() % LANES;
    for (g, x) in rows {
        for lane in 0..LANES {
            let sum = &mut lanes[lane][g[lane]];
            *sum = sum.add_flagged(x[lane], overflow);
        }
    }
    for (&g, &x) in groups[tail..].iter().zip(&values[tail..]) {
        lanes[0][g] = lanes[0][g].add_flagged(x, overflow);
    }
    for lane in &lanes {
        for (sum, &part) in sums.iter_mut().zip(lane) {
            *sum = sum.add_flagged(part, overflow);
        }
    }
}

struct SumAcc<T: ArrowPrimitiveType> {
    sums: Vec<T::Native>,
    seen: Vec<bool>,
    data_type: DataType,
}

impl<T: ArrowPrimitiveType> SumAcc<T> {
    fn new(data_type: DataType) -> Self {
        SumAcc {
            sums: vec![],
            seen: vec![],
            data_type,
        }
    }
}

impl<T: ArrowPrimitiveType> GroupAccumulator for SumAcc<T>
where
    T::Native: SumNative,
{
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        let values = values.ok_or_else(|| QuarryError::exec("sum needs an argument"))?;
        let values = as_sum_input(values, &self.data_type)?;
        self.resize(n);
        let v = values.as_primitive::<T>();
        add_into(
            &mut self.sums,
            Some(&mut self.seen),
            groups,
            v.values(),
            v.nulls(),
            "sum",
        )
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.sums.resize(n, T::Native::default());
        self.seen.resize(n, false);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let sums = std::mem::take(&mut self.sums);
        let seen = std::mem::take(&mut self.seen);
        let a: PrimitiveArray<T> = sums
            .into_iter()
            .zip(seen)
            .map(|(s, seen)| seen.then_some(s))
            .collect();
        Ok(Arc::new(a.with_data_type(self.data_type.clone())))
    }
}

/// avg: an exact sum (i128 with the input's scale) or a float sum, and a count.
struct AvgAcc {
    sum_type: DataType,
    scale: i32,
    int_sums: Vec<i128>,
    float_sums: Vec<f64>,
    counts: Vec<i64>,
}

impl AvgAcc {
    fn new(arg: &DataType) -> Self {
        let sum_type = avg_sum_type(arg);
        let scale = match sum_type {
            DataType::Decimal128(_, s) => s as i32,
            _ => 0,
        };
        AvgAcc {
            sum_type,
            scale,
            int_sums: vec![],
            float_sums: vec![],
            counts: vec![],
        }
    }

    fn is_float(&self) -> bool {
        self.sum_type == DataType::Float64
    }

    fn add(
        &mut self,
        groups: &[usize],
        sums: &ArrayRef,
        counts: Option<&Int64Array>,
    ) -> Result<()> {
        let sums = as_sum_input(sums, &self.sum_type)?;
        let nulls = sums.nulls();
        if self.is_float() {
            let v = sums.as_primitive::<Float64Type>().values();
            add_into(&mut self.float_sums, None, groups, v, nulls, "avg")?;
        } else {
            let v = sums.as_primitive::<Decimal128Type>().values();
            add_into(&mut self.int_sums, None, groups, v, nulls, "avg")?;
        }
        match counts {
            // Partial states: a sum without rows is NULL and its count 0.
            Some(c) => add_into(&mut self.counts, None, groups, c.values(), None, "avg"),
            None => {
                let ones = vec![1i64; groups.len()];
                add_into(&mut self.counts, None, groups, &ones, nulls, "avg")
            }
        }
    }
}

impl GroupAccumulator for AvgAcc {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("avg needs an argument"))?;
        self.add(groups, values, None)
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.resize(n);
        let counts = states[1].as_primitive::<Int64Type>().clone();
        self.add(groups, &states[0], Some(&counts))
    }

    fn state_width(&self) -> usize {
        2
    }

    fn resize(&mut self, n: usize) {
        self.int_sums.resize(n, 0);
        self.float_sums.resize(n, 0.0);
        self.counts.resize(n, 0);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        let counts = std::mem::take(&mut self.counts);
        let sums: ArrayRef = if self.is_float() {
            Arc::new(Float64Array::from(std::mem::take(&mut self.float_sums)))
        } else {
            let a: PrimitiveArray<Decimal128Type> = std::mem::take(&mut self.int_sums)
                .into_iter()
                .map(Some)
                .collect();
            Arc::new(a.with_data_type(self.sum_type.clone()))
        };
        Ok(vec![sums, Arc::new(Int64Array::from(counts))])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let out: Float64Array = (0..self.counts.len())
            .map(|g| {
                let c = self.counts[g];
                if c == 0 {
                    None
                } else if self.is_float() {
                    Some(self.float_sums[g] / c as f64)
                } else {
                    Some(decimal_average(self.int_sums[g], self.scale, c))
                }
            })
            .collect();
        Ok(Arc::new(out))
    }
}

/// The average of `count` values whose unscaled decimal sum is `sum` at
/// `scale`. One division of exact integers (while they fit a double's 53
/// bits) is rounded once, as the true quotient would be: an average of
/// exactly 0.05 is 0.05.
pub(crate) fn decimal_average(sum: i128, scale: i32, count: i64) -> f64 {
    match 10i128
        .checked_pow(scale.max(0) as u32)
        .and_then(|p| p.checked_mul(count as i128))
    {
        Some(d) => sum as f64 / d as f64,
        None => sum as f64 / 10f64.powi(scale) / count as f64,
    }
}

fn new_min_max(is_min: bool, t: &DataType) -> Box<dyn GroupAccumulator> {
    use arrow::datatypes::*;
    macro_rules! prim {
        ($ty:ty) => {
            Box::new(PrimMinMax::<$ty> {
                is_min,
                values: vec![],
                data_type: t.clone(),
            })
        };
    }
    match t {
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        DataType::Decimal128(_, _) => prim!(Decimal128Type),
        DataType::Date32 => prim!(Date32Type),
        DataType::Timestamp(TimeUnit::Microsecond, _) => prim!(TimestampMicrosecondType),
        DataType::Interval(IntervalUnit::MonthDayNano) => Box::new(IntervalMinMax {
            is_min,
            values: vec![],
        }),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Box::new(StringMinMax {
            is_min,
            values: vec![],
            data_type: t.clone(),
        }),
        _ => Box::new(ScalarMinMax {
            is_min,
            values: vec![],
            data_type: t.clone(),
        }),
    }
}

/// True when `new` should replace `old` for min (or max).
fn better<T: PartialOrd>(is_min: bool, new: &T, old: &T) -> bool {
    if is_min {
        new < old
    } else {
        new > old
    }
}

struct PrimMinMax<T: ArrowPrimitiveType> {
    is_min: bool,
    values: Vec<Option<T::Native>>,
    data_type: DataType,
}

impl<T: ArrowPrimitiveType> GroupAccumulator for PrimMinMax<T> {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("min/max need an argument"))?;
        let v = values.as_primitive::<T>();
        for (row, &g) in groups.iter().enumerate() {
            if v.is_valid(row) {
                let x = v.value(row);
                match &self.values[g] {
                    Some(old) if !better(self.is_min, &x, old) => {}
                    _ => self.values[g] = Some(x),
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let a: PrimitiveArray<T> = std::mem::take(&mut self.values).into_iter().collect();
        Ok(Arc::new(a.with_data_type(self.data_type.clone())))
    }
}

struct StringMinMax {
    is_min: bool,
    values: Vec<Option<String>>,
    data_type: DataType,
}

impl GroupAccumulator for StringMinMax {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("min/max need an argument"))?;
        let values = cast_checked(values, &DataType::Utf8)?;
        let v = values.as_string::<i32>();
        for (row, &g) in groups.iter().enumerate() {
            if v.is_valid(row) {
                let x = v.value(row);
                match &self.values[g] {
                    Some(old) if !better(self.is_min, &x, &old.as_str()) => {}
                    _ => self.values[g] = Some(x.to_string()),
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let a: StringArray = std::mem::take(&mut self.values).into_iter().collect();
        cast_checked(&(Arc::new(a) as ArrayRef), &self.data_type)
    }
}

/// min/max of intervals, compared as they compare in SQL (normalized: a
/// month is 30 days, a day 24 hours), not field by field. Of intervals
/// that are equal so (`1 month`, `30 days`), the first met is kept.
struct IntervalMinMax {
    is_min: bool,
    values: Vec<Option<arrow::datatypes::IntervalMonthDayNano>>,
}

impl GroupAccumulator for IntervalMinMax {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        use crate::exec::timestamp::normalized;
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("min/max need an argument"))?;
        let v = values.as_primitive::<arrow::datatypes::IntervalMonthDayNanoType>();
        for (row, &g) in groups.iter().enumerate() {
            if v.is_valid(row) {
                let x = v.value(row);
                match &self.values[g] {
                    Some(old) if !better(self.is_min, &normalized(x), &normalized(*old)) => {}
                    _ => self.values[g] = Some(x),
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let a: arrow::array::IntervalMonthDayNanoArray =
            std::mem::take(&mut self.values).into_iter().collect();
        Ok(Arc::new(a))
    }
}

/// min/max for any other type, one ScalarValue per group.
struct ScalarMinMax {
    is_min: bool,
    values: Vec<Option<ScalarValue>>,
    data_type: DataType,
}

impl GroupAccumulator for ScalarMinMax {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("min/max need an argument"))?;
        for (row, &g) in groups.iter().enumerate() {
            if values.is_valid(row) {
                let x = ScalarValue::try_from_array(values, row)?;
                match &self.values[g] {
                    Some(old) if !better(self.is_min, &x, old) => {}
                    _ => self.values[g] = Some(x),
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let null = ScalarValue::try_from(&self.data_type)?;
        let values: Vec<ScalarValue> = std::mem::take(&mut self.values)
            .into_iter()
            .map(|v| v.unwrap_or_else(|| null.clone()))
            .collect();
        if values.is_empty() {
            return Ok(arrow::array::new_empty_array(&self.data_type));
        }
        Ok(ScalarValue::iter_to_array(values)?)
    }
}

/// A set's slot beyond its value: the hash table's control byte and the
/// room it keeps free (it is at most 7/8 full, and doubles as it grows).
const DISTINCT_SLOT_BYTES: usize = 16;

/// An aggregate over distinct values: keeps each group's set of values and
/// runs the plain aggregate over them at the end. Only in Single mode.
struct DistinctAcc {
    agg: AggregateExpr,
    arg_type: DataType,
    sets: Vec<HashSet<ScalarValue>>,
    /// Of an INTERVAL argument, whose sets hold each value `canonical`
    /// (intervals `=` calls equal are one value): each group's values as
    /// first met, which the plain aggregate is given (so that
    /// `min(DISTINCT i)` shows the spelling `min(i)` does). Else empty.
    spellings: Vec<Vec<ScalarValue>>,
    /// The sets' values with their heap parts, and the sets' slots.
    bytes: usize,
}

impl GroupAccumulator for DistinctAcc {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("DISTINCT needs an argument"))?;
        let keys = equality_key(values)?;
        let spelled = self.arg_type == interval_type();
        for (row, &g) in groups.iter().enumerate() {
            if keys.is_valid(row) {
                let v = ScalarValue::try_from_array(&keys, row)?;
                let size = v.size() + DISTINCT_SLOT_BYTES;
                if self.sets[g].insert(v) {
                    self.bytes += size;
                    if spelled {
                        self.spellings[g].push(ScalarValue::try_from_array(values, row)?);
                        self.bytes += size;
                    }
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, _groups: &[usize], _n: usize, _states: &[ArrayRef]) -> Result<()> {
        Err(QuarryError::exec(
            "DISTINCT aggregates run in a single phase",
        ))
    }

    fn resize(&mut self, n: usize) {
        self.sets.resize_with(n, HashSet::new);
        if self.arg_type == interval_type() {
            self.spellings.resize_with(n, Vec::new);
        }
    }

    fn extra_bytes(&self) -> usize {
        self.bytes
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Err(QuarryError::exec(
            "DISTINCT aggregates run in a single phase",
        ))
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let n = self.sets.len();
        let mut plain = self.agg.clone();
        plain.distinct = false;
        let mut inner = new_accumulator(&plain, &self.arg_type)?;
        let mut groups = Vec::new();
        let mut values = Vec::new();
        let sets = std::mem::take(&mut self.sets);
        let spellings = std::mem::take(&mut self.spellings);
        let mut add = |g: usize, set: &mut dyn Iterator<Item = ScalarValue>| {
            for v in set {
                groups.push(g);
                values.push(v);
            }
        };
        if spellings.is_empty() {
            for (g, set) in sets.into_iter().enumerate() {
                add(g, &mut set.into_iter());
            }
        } else {
            for (g, spelled) in spellings.into_iter().enumerate() {
                add(g, &mut spelled.into_iter());
            }
        }
        if !values.is_empty() {
            let array = ScalarValue::iter_to_array(values)?;
            inner.update(&groups, n, Some(&array))?;
        }
        inner.resize(n);
        inner.evaluate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::util::display::{ArrayFormatter, FormatOptions};

    fn agg(func: AggFunc, arg: Option<usize>) -> AggregateExpr {
        AggregateExpr {
            func,
            arg: arg.map(Expr::Column),
            distinct: false,
            param: None,
        }
    }

    /// k Int64, v Int64, s Utf8: `groups` keys, each seen `per_group`
    /// times, in batches of 8192 rows.
    fn input(groups: i64, per_group: i64) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
            Field::new("s", DataType::Utf8, false),
        ]));
        let n: Vec<i64> = (0..groups * per_group).collect();
        let batches = n
            .chunks(8192)
            .map(|c| {
                let k: Int64Array = c.iter().map(|x| x % groups).collect();
                let v: Int64Array = c.iter().map(|x| (x % 7 != 0).then_some(*x)).collect();
                let s: StringArray = c.iter().map(|x| Some(format!("s{}", x % 1000))).collect();
                RecordBatch::try_new(schema.clone(), vec![Arc::new(k), Arc::new(v), Arc::new(s)])
                    .unwrap()
            })
            .collect();
        (schema, batches)
    }

    /// count(*), sum(v), avg(v), min(s), max(v) over `input`'s columns, and
    /// their argument types.
    fn test_aggs() -> (Vec<AggregateExpr>, Vec<DataType>) {
        let aggs = vec![
            agg(AggFunc::CountStar, None),
            agg(AggFunc::Sum, Some(1)),
            agg(AggFunc::Avg, Some(1)),
            agg(AggFunc::Min, Some(2)),
            agg(AggFunc::Max, Some(1)),
        ];
        let arg_types = vec![
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Utf8,
            DataType::Int64,
        ];
        (aggs, arg_types)
    }

    /// Group by k: count(*), sum(v), avg(v), min(s), max(v), in Single mode,
    /// under a budget of `limit` bytes; the output as sorted text rows.
    fn run(limit: usize, dir: &Path, groups: i64) -> (Result<Vec<String>>, usize, SpillCount) {
        run_with(test_aggs(), limit, dir, groups)
    }

    /// string_agg(s), median(v), quantile_disc(s, 0.25),
    /// approx_count_distinct(v), arg_max(s, v) and arg_min(v, s): the
    /// aggregates whose state grows with their group's values.
    fn more_aggs() -> (Vec<AggregateExpr>, Vec<DataType>) {
        use crate::plan::expr::Quantile;
        use crate::plan::ScalarFunc;
        let with = |func, arg, param| AggregateExpr {
            param: Some(param),
            ..agg(func, Some(arg))
        };
        let row = |a: usize, v: usize, types: [DataType; 2]| {
            let fields: Vec<Field> = ["arg", "val"]
                .iter()
                .zip(types)
                .map(|(n, t)| Field::new(*n, t, true))
                .collect();
            let t = DataType::Struct(fields.into());
            let e = Expr::Function {
                func: ScalarFunc::Row,
                args: vec![Expr::Column(a), Expr::Column(v)],
                data_type: t.clone(),
            };
            (e, t)
        };
        let (max_row, max_type) = row(2, 1, [DataType::Utf8, DataType::Int64]);
        let (min_row, min_type) = row(1, 2, [DataType::Int64, DataType::Utf8]);
        let half = Quantile::Decimal {
            unscaled: 5,
            scale: 1,
        };
        let quarter = Quantile::Double(0.25f64.to_bits());
        let aggs = vec![
            with(AggFunc::StringAgg, 2, AggParam::Separator(Some(";".into()))),
            with(AggFunc::QuantileCont, 1, AggParam::Quantile(half)),
            with(AggFunc::QuantileDisc, 2, AggParam::Quantile(quarter)),
            agg(AggFunc::ApproxCountDistinct, Some(1)),
            AggregateExpr {
                arg: Some(max_row),
                ..agg(AggFunc::ArgMax, None)
            },
            AggregateExpr {
                arg: Some(min_row),
                ..agg(AggFunc::ArgMin, None)
            },
        ];
        let arg_types = vec![
            DataType::Utf8,
            DataType::Int64,
            DataType::Utf8,
            DataType::Int64,
            max_type,
            min_type,
        ];
        (aggs, arg_types)
    }

    /// Group by k: `aggs` in Single mode, under a budget of `limit` bytes;
    /// the output as sorted text rows.
    fn run_with(
        (aggs, arg_types): (Vec<AggregateExpr>, Vec<DataType>),
        limit: usize,
        dir: &Path,
        groups: i64,
    ) -> (Result<Vec<String>>, usize, SpillCount) {
        let (schema, batches) = input(groups, 3);
        let mut fields = vec![Field::new("k", DataType::Int64, true)];
        for (i, (a, t)) in aggs.iter().zip(&arg_types).enumerate() {
            fields.push(Field::new(
                format!("a{i}"),
                aggregate_result_type(a.func, t),
                true,
            ));
        }
        let pool = MemoryPool::new(limit);
        let mut op = AggregateOp::new(
            AggMode::Single,
            vec![Expr::Column(0)],
            aggs,
            &schema,
            Arc::new(Schema::new(fields)),
            &arg_types,
            &pool,
            dir.to_path_buf(),
        )
        .unwrap();
        let result = (|| {
            let mut out = Vec::new();
            for b in batches {
                op.push(b, &mut out)?;
            }
            assert!(out.is_empty(), "Single mode emits only at the end");
            let mut rows = Vec::new();
            op.finish_into(&mut |b| {
                assert!(b.num_rows() <= BATCH_ROWS);
                rows.extend(text_rows(&b));
                Ok(())
            })?;
            rows.sort();
            Ok(rows)
        })();
        let spilled = op.spilled();
        let levels = op.split_levels;
        drop(op);
        assert_eq!(pool.used(), 0, "everything reserved is given back");
        (result, levels, spilled)
    }

    /// Aggregates like `run`'s (and a count of values), in two phases:
    /// Partial over the input (sharing `hint`), then Final over its output.
    /// Returns the sorted rows, how many state rows the Partial phase sent
    /// on, and the sorted rows of a Single-mode aggregate of the same input.
    fn run_two_phase(
        groups: i64,
        per_group: i64,
        hint: &Arc<AtomicBool>,
    ) -> (Vec<String>, usize, Vec<String>) {
        run_two_phase_with(test_aggs(), groups, per_group, hint)
    }

    fn run_two_phase_with(
        (mut aggs, mut arg_types): (Vec<AggregateExpr>, Vec<DataType>),
        groups: i64,
        per_group: i64,
        hint: &Arc<AtomicBool>,
    ) -> (Vec<String>, usize, Vec<String>) {
        let (schema, batches) = input(groups, per_group);
        aggs.push(agg(AggFunc::Count, Some(1)));
        arg_types.push(DataType::Int64);
        let mut fields = vec![Field::new("k", DataType::Int64, true)];
        let mut state = fields.clone();
        for (i, (a, t)) in aggs.iter().zip(&arg_types).enumerate() {
            fields.push(Field::new(
                format!("a{i}"),
                aggregate_result_type(a.func, t),
                true,
            ));
            state.extend(state_fields(a, t, &format!("a{i}")));
        }
        let state = Arc::new(Schema::new(state));
        let pool = MemoryPool::new(usize::MAX);
        let dir = std::env::temp_dir();
        let mut partial = AggregateOp::new(
            AggMode::Partial,
            vec![Expr::Column(0)],
            aggs.clone(),
            &schema,
            state.clone(),
            &arg_types,
            &pool,
            dir.clone(),
        )
        .unwrap()
        .with_skip_hint(hint.clone());
        let mut single = AggregateOp::new(
            AggMode::Single,
            vec![Expr::Column(0)],
            aggs.clone(),
            &schema,
            Arc::new(Schema::new(fields.clone())),
            &arg_types,
            &pool,
            dir.clone(),
        )
        .unwrap();
        let mut states = Vec::new();
        let mut single_out = Vec::new();
        for b in batches {
            single.push(b.clone(), &mut single_out).unwrap();
            partial.push(b, &mut states).unwrap();
        }
        single.finish(&mut single_out).unwrap();
        let mut expected: Vec<String> = single_out.iter().flat_map(text_rows).collect();
        expected.sort();
        partial.finish(&mut states).unwrap();
        let state_rows = states.iter().map(|b| b.num_rows()).sum();
        let mut fin = AggregateOp::new(
            AggMode::Final,
            vec![Expr::Column(0)],
            aggs,
            &state,
            Arc::new(Schema::new(fields)),
            &arg_types,
            &pool,
            dir,
        )
        .unwrap();
        let mut out = Vec::new();
        for b in states {
            fin.push(b, &mut out).unwrap();
        }
        fin.finish(&mut out).unwrap();
        let mut rows: Vec<String> = out.iter().flat_map(text_rows).collect();
        rows.sort();
        (rows, state_rows, expected)
    }

    #[test]
    fn partial_aggregation_that_does_not_reduce_passes_rows_through() {
        // 150K keys seen twice: after 100K rows nearly every row was a new
        // group, so the rest go on as rows of their own.
        let hint = Arc::new(AtomicBool::new(false));
        let (rows, state_rows, expected) = run_two_phase(150_000, 2, &hint);
        assert!(hint.load(Ordering::Relaxed), "the sibling tasks are told");
        assert!(state_rows > 250_000, "{state_rows} state rows");
        assert_eq!(rows.len(), 150_000);
        assert_eq!(rows, expected);
        // A task that starts after the hint passes every row through.
        let (again, state_rows, _) = run_two_phase(150_000, 2, &hint);
        assert_eq!(state_rows, 300_000);
        assert_eq!(again, expected);
        // Spot check one group: key 7 holds values 7 (NULL: 7 % 7 == 0) and 150007.
        assert!(
            rows.contains(&"7|2|150007|150007.0|s7|150007|1".to_string()),
            "{:?}",
            &rows[..3]
        );
        // Few groups: it keeps aggregating.
        let hint = Arc::new(AtomicBool::new(false));
        let (rows, state_rows, expected) = run_two_phase(1_000, 300, &hint);
        assert_eq!(rows, expected);
        assert!(!hint.load(Ordering::Relaxed));
        assert!(state_rows <= 1_000 * 2, "{state_rows}");
    }

    #[test]
    fn a_small_task_that_did_not_reduce_tells_its_siblings_when_it_ends() {
        // 20K rows, all distinct: never reaches the probe of 100K rows, but
        // at its end it has as many groups as rows.
        let hint = Arc::new(AtomicBool::new(false));
        let (rows, state_rows, expected) = run_two_phase(20_000, 1, &hint);
        assert_eq!(rows, expected);
        assert_eq!(state_rows, 20_000);
        assert!(hint.load(Ordering::Relaxed), "the sibling tasks are told");
        // 20K rows in 1000 groups: aggregating paid.
        let hint = Arc::new(AtomicBool::new(false));
        let (rows, state_rows, expected) = run_two_phase(1_000, 20, &hint);
        assert_eq!(rows, expected);
        assert_eq!(state_rows, 1_000);
        assert!(!hint.load(Ordering::Relaxed));
        // 5K distinct rows are too few to judge by.
        let hint = Arc::new(AtomicBool::new(false));
        run_two_phase(5_000, 1, &hint);
        assert!(!hint.load(Ordering::Relaxed));
    }

    #[test]
    fn values_held_per_group_pass_through_and_merge_to_the_single_phase_answer() {
        // 150K groups seen twice: the partial aggregate passes rows through
        let hint = Arc::new(AtomicBool::new(false));
        let (rows, state_rows, expected) = run_two_phase_with(more_aggs(), 150_000, 2, &hint);
        assert!(state_rows > 250_000, "{state_rows} state rows");
        assert_eq!(rows, expected);
        // key 7: v NULL (7 % 7 == 0) and 150007, s "s7" and "s7"
        let want = "7|s7;s7|150007.0|s7|1|s7|150007|1";
        assert!(rows.iter().any(|r| r == want), "{:?}", &rows[7]);
        // few groups: aggregated, with states merged
        let hint = Arc::new(AtomicBool::new(false));
        let (rows, state_rows, expected) = run_two_phase_with(more_aggs(), 1_000, 300, &hint);
        assert!(state_rows <= 2_000, "{state_rows}");
        assert_eq!(rows, expected);
    }

    #[test]
    fn values_held_per_group_are_reserved_and_spill() {
        let dir = tempfile::tempdir().unwrap();
        let (expected, levels, _) = run_with(more_aggs(), usize::MAX, dir.path(), 50_000);
        let expected = expected.unwrap();
        assert_eq!((expected.len(), levels), (50_000, 0));
        let (got, levels, spilled) = run_with(more_aggs(), 2 << 20, dir.path(), 50_000);
        assert_eq!(got.unwrap(), expected);
        assert!(levels >= 1 && spilled.files >= SPILL_PARTITIONS);
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn a_quantile_without_groups_over_the_budget_names_the_aggregate() {
        // without keys nothing can spill: the values must fit
        let (schema, batches) = input(1_000, 300);
        let (aggs, arg_types) = more_aggs();
        let (aggs, arg_types) = (vec![aggs[1].clone()], vec![arg_types[1].clone()]);
        let fields = vec![Field::new("m", DataType::Float64, true)];
        let pool = MemoryPool::new(100_000);
        let dir = tempfile::tempdir().unwrap();
        let mut op = AggregateOp::new(
            AggMode::Single,
            vec![],
            aggs,
            &schema,
            Arc::new(Schema::new(fields)),
            &arg_types,
            &pool,
            dir.path().to_path_buf(),
        )
        .unwrap();
        let mut out = Vec::new();
        let err = batches
            .into_iter()
            .try_for_each(|b| op.push(b, &mut out))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hash aggregate (SingleAggregate)") && err.contains("memory limit"),
            "{err}"
        );
        drop(op);
        assert_eq!(pool.used(), 0);
    }

    fn text_rows(b: &RecordBatch) -> Vec<String> {
        let opts = FormatOptions::default().with_null("NULL");
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        (0..b.num_rows())
            .map(|r| {
                formatters
                    .iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn spills_by_hash_and_merges_to_the_in_memory_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (expected, levels, spilled) = run(usize::MAX, dir.path(), 50_000);
        let expected = expected.unwrap();
        assert_eq!(expected.len(), 50_000);
        assert_eq!((levels, spilled), (0, SpillCount::default()));
        // 50K groups take about 8 MB: each sixteenth fits in 2 MB.
        let (got, levels, spilled) = run(2 << 20, dir.path(), 50_000);
        assert_eq!(got.unwrap(), expected);
        assert_eq!(levels, 1);
        assert!(spilled.bytes > 0 && spilled.files >= SPILL_PARTITIONS);
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn a_sub_partition_that_does_not_fit_is_split_again() {
        let dir = tempfile::tempdir().unwrap();
        let (expected, _, _) = run(usize::MAX, dir.path(), 50_000);
        // A sixteenth (500 KB) does not fit in 200 KB, a 256th does.
        let (got, levels, _) = run(200_000, dir.path(), 50_000);
        assert_eq!(got.unwrap(), expected.unwrap());
        assert_eq!(levels, 2);
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn a_budget_too_small_for_any_progress_names_the_aggregate_and_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (got, _, _) = run(100, dir.path(), 5_000);
        let err = got.unwrap_err().to_string();
        assert!(
            err.contains("hash aggregate (SingleAggregate)")
                && err.contains("memory limit of 100 B"),
            "{err}"
        );
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn a_partial_aggregate_over_the_budget_sends_its_states_on_early() {
        let (schema, batches) = input(20_000, 2);
        let aggs = vec![agg(AggFunc::CountStar, None), agg(AggFunc::Sum, Some(1))];
        let arg_types = [DataType::Int64, DataType::Int64];
        let mut fields = vec![Field::new("k", DataType::Int64, true)];
        for (a, t) in aggs.iter().zip(&arg_types) {
            fields.extend(state_fields(a, t, "x"));
        }
        let pool = MemoryPool::new(100_000);
        let dir = tempfile::tempdir().unwrap();
        let mut op = AggregateOp::new(
            AggMode::Partial,
            vec![Expr::Column(0)],
            aggs,
            &schema,
            Arc::new(Schema::new(fields)),
            &arg_types,
            &pool,
            dir.path().to_path_buf(),
        )
        .unwrap();
        let mut out = Vec::new();
        for b in batches {
            op.push(b, &mut out).unwrap();
        }
        assert!(!out.is_empty(), "states went on before the end");
        op.finish(&mut out).unwrap();
        // Every row is counted once, though a group may appear more than once.
        let count: i64 = out
            .iter()
            .map(|b| arrow::compute::sum(b.column(1).as_primitive::<Int64Type>()).unwrap_or(0))
            .sum();
        assert_eq!(count, 40_000);
        assert_eq!(op.spilled(), SpillCount::default());
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn one_group_sums_skip_nulls_mark_seen_and_report_overflow() {
        let nulls = arrow::buffer::NullBuffer::from(vec![true, false, true]);
        let (mut sums, mut seen) = (vec![0i64, 5], vec![false, false]);
        add_into(
            &mut sums,
            Some(&mut seen),
            &[1, 1, 1],
            &[1, 100, 2],
            Some(&nulls),
            "sum",
        )
        .unwrap();
        assert_eq!(
            (sums.as_slice(), seen.as_slice()),
            ([0, 8].as_slice(), [false, true].as_slice())
        );

        let all_null = arrow::buffer::NullBuffer::new_null(2);
        add_into(
            &mut sums,
            Some(&mut seen),
            &[0, 0],
            &[7, 7],
            Some(&all_null),
            "sum",
        )
        .unwrap();
        assert_eq!((sums[0], seen[0]), (0, false));

        let err = add_into(&mut sums, None, &[0, 0], &[i64::MAX, 1], None, "sum").unwrap_err();
        assert!(err.to_string().contains("numeric overflow in sum"), "{err}");
    }

    #[test]
    fn few_groups_are_summed_in_lanes_to_the_same_totals() {
        // 4 groups in a repeating but uneven order, 1003 rows: whole chunks
        // of lanes and a tail
        let groups: Vec<usize> = (0..1003).map(|i| (i * i + i / 7) % 4).collect();
        let values: Vec<i128> = (0..1003)
            .map(|i| (i as i128 - 500) * 1_000_000_007)
            .collect();
        let mut expected = [0i128; 4];
        for (&g, &v) in groups.iter().zip(&values) {
            expected[g] += v;
        }
        let mut sums = vec![5i128; 4];
        let mut seen = vec![false; 4];
        add_into(&mut sums, Some(&mut seen), &groups, &values, None, "sum").unwrap();
        let want: Vec<i128> = expected.iter().map(|e| e + 5).collect();
        assert_eq!(sums, want);
        assert_eq!(seen, [true; 4]);
        // a group no row has stays unseen
        let mut seen = vec![false; 6];
        add_into(
            &mut [0i128; 6],
            Some(&mut seen),
            &groups,
            &values,
            None,
            "sum",
        )
        .unwrap();
        assert_eq!(seen, [true, true, true, true, false, false]);
        // an overflow in one lane is still an error
        let mut big = vec![i64::MAX - 10; 3];
        let err = add_into(
            &mut big,
            None,
            &[2, 1, 0, 1, 2, 2],
            &[1, 1, 1, 1, 1, 9],
            None,
            "avg",
        )
        .unwrap_err();
        assert!(err.to_string().contains("numeric overflow in avg"), "{err}");
    }

    /// differential test, seed 3, query 1851 (now and then: it depends on
    /// which partition's state comes first): stddev_samp of values all
    /// 0.04 was 3.5e-18, not 0
    #[test]
    fn equal_values_merged_have_no_variance() {
        let mut merged = VarianceAcc::new(AggFunc::StddevSamp);
        for n in [29, 3, 1] {
            let mut acc = VarianceAcc::new(AggFunc::StddevSamp);
            let part: ArrayRef = Arc::new(Float64Array::from(vec![0.04; n]));
            acc.update(&vec![0; n], 1, Some(&part)).unwrap();
            merged.merge(&[0], 1, &acc.state().unwrap()).unwrap();
        }
        let out = merged.evaluate().unwrap();
        assert_eq!(out.as_primitive::<Float64Type>().value(0), 0.0);
    }

    #[test]
    fn variance_states_merge_to_the_variance_of_all_rows() {
        let values: Vec<f64> = (0..100).map(|i| 1e9 + (i * i % 17) as f64).collect();
        let column = |v: &[f64]| -> ArrayRef { Arc::new(Float64Array::from(v.to_vec())) };
        let whole = {
            let mut acc = VarianceAcc::new(AggFunc::VarSamp);
            acc.update(&vec![0; 100], 1, Some(&column(&values)))
                .unwrap();
            acc.evaluate().unwrap()
        };
        let mut merged = VarianceAcc::new(AggFunc::VarSamp);
        for part in [&values[..30], &values[30..31], &values[31..]] {
            let mut acc = VarianceAcc::new(AggFunc::VarSamp);
            acc.update(&vec![0; part.len()], 1, Some(&column(part)))
                .unwrap();
            let states = acc.state().unwrap();
            merged.merge(&[0], 1, &states).unwrap();
        }
        let (a, b) = (
            whole.as_primitive::<Float64Type>().value(0),
            merged
                .evaluate()
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(0),
        );
        let mean = values.iter().sum::<f64>() / 100.0;
        let exact = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 99.0;
        assert!(
            (a - exact).abs() < 1e-6 * exact && (b - exact).abs() < 1e-6 * exact,
            "{a} {b} {exact}"
        );
    }
}
