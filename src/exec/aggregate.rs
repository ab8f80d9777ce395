//! Hash aggregation, in two phases across partitions: `Partial` turns rows
//! into per-group state, `Final` merges states that arrive hash-partitioned by
//! group key, `Single` does both at once (used for DISTINCT aggregates).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, Float64Array, Int64Array, PrimitiveArray,
    StringArray,
};
use arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int64Type, Schema, SchemaRef,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_common::ScalarValue;

use super::expr::{cast_checked, evaluate_array};
use super::operator::Operator;
use crate::error::{QuarryError, Result};
use crate::plan::expr::aggregate_result_type;
use crate::plan::{AggFunc, AggregateExpr, Expr};
use crate::runtime::memory::{MemoryPool, Reservation};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

pub struct AggregateOp {
    mode: AggMode,
    group: Vec<Expr>,
    aggs: Vec<AggregateExpr>,
    /// Where each aggregate's input columns start in a Final input batch.
    state_offsets: Vec<usize>,
    output_schema: SchemaRef,
    converter: Option<RowConverter>,
    map: HashMap<Box<[u8]>, usize, ahash::RandomState>,
    group_rows: Option<Rows>,
    num_groups: usize,
    accs: Vec<Box<dyn GroupAccumulator>>,
    /// The groups' keys and states, counted against the memory budget (a
    /// spilling aggregation is not implemented yet: past the budget it is
    /// an error).
    reservation: Reservation,
}

impl AggregateOp {
    /// `input_schema` is the schema of the batches pushed in; in Final mode it
    /// holds the group columns followed by the state columns.
    pub fn new(
        mode: AggMode,
        group: Vec<Expr>,
        aggs: Vec<AggregateExpr>,
        input_schema: &Schema,
        output_schema: SchemaRef,
        arg_types: &[DataType],
        memory: &Arc<MemoryPool>,
    ) -> Result<Self> {
        let key_types: Vec<DataType> = group
            .iter()
            .map(|e| e.data_type(input_schema))
            .collect::<Result<_>>()?;
        let converter = if key_types.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                key_types
                    .iter()
                    .map(|t| SortField::new(t.clone()))
                    .collect(),
            )?)
        };
        let group_rows = converter.as_ref().map(|c| c.empty_rows(0, 0));
        let mut state_offsets = Vec::with_capacity(aggs.len());
        let mut offset = group.len();
        let mut accs = Vec::with_capacity(aggs.len());
        for (agg, arg_type) in aggs.iter().zip(arg_types) {
            state_offsets.push(offset);
            offset += state_fields(agg, arg_type, "").len();
            accs.push(new_accumulator(agg, arg_type)?);
        }
        Ok(AggregateOp {
            mode,
            group,
            aggs,
            state_offsets,
            output_schema,
            converter,
            map: HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4)),
            group_rows,
            num_groups: 0,
            accs,
            reservation: Reservation::new(
                memory,
                "a hash aggregate (spilling aggregation is not implemented yet)",
            ),
        })
    }

    /// Maps each row of `batch` to its group index, creating new groups.
    fn group_indices(&mut self, batch: &RecordBatch) -> Result<Vec<usize>> {
        let Some(converter) = &self.converter else {
            self.num_groups = 1;
            return Ok(vec![0; batch.num_rows()]);
        };
        let keys = self
            .group
            .iter()
            .map(|e| evaluate_array(e, batch))
            .collect::<Result<Vec<_>>>()?;
        let rows = converter.convert_columns(&keys)?;
        let mut indices = Vec::with_capacity(batch.num_rows());
        let Some(group_rows) = self.group_rows.as_mut() else {
            return Err(QuarryError::exec("internal error: group rows missing"));
        };
        for row in rows.iter() {
            let bytes = row.as_ref();
            let idx = match self.map.get(bytes) {
                Some(i) => *i,
                None => {
                    let i = self.num_groups;
                    self.map.insert(bytes.into(), i);
                    group_rows.push(row);
                    self.num_groups += 1;
                    i
                }
            };
            indices.push(idx);
        }
        Ok(indices)
    }

    fn group_columns(&mut self) -> Result<Vec<ArrayRef>> {
        match (&self.converter, &self.group_rows) {
            (Some(c), Some(rows)) => Ok(c.convert_rows(rows.iter())?),
            _ => Ok(vec![]),
        }
    }
}

impl Operator for AggregateOp {
    fn push(&mut self, batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> Result<()> {
        let before = self.num_groups;
        let groups = self.group_indices(&batch)?;
        if self.num_groups > before {
            // Key bytes in the map and the row store, plus each state.
            let key_bytes = self
                .group_rows
                .as_ref()
                .map_or(0, |r| r.size() / r.num_rows().max(1));
            let per_group = 2 * key_bytes + 32 + 24 * self.accs.len();
            self.reservation
                .grow((self.num_groups - before) * per_group)?;
        }
        let n = self.num_groups;
        for (i, agg) in self.aggs.iter().enumerate() {
            match self.mode {
                AggMode::Partial | AggMode::Single => {
                    let values = match &agg.arg {
                        Some(a) => Some(evaluate_array(a, &batch)?),
                        None => None,
                    };
                    self.accs[i].update(&groups, n, values.as_ref())?;
                }
                AggMode::Final => {
                    let start = self.state_offsets[i];
                    let width = self.accs[i].state_width();
                    let states: Vec<ArrayRef> = (start..start + width)
                        .map(|c| batch.column(c).clone())
                        .collect();
                    self.accs[i].merge(&groups, n, &states)?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        // Without GROUP BY there is exactly one group, even on empty input.
        if self.converter.is_none() && self.num_groups == 0 {
            self.num_groups = 1;
        }
        let n = self.num_groups;
        let mut columns = self.group_columns()?;
        for acc in self.accs.iter_mut() {
            acc.resize(n);
            match self.mode {
                AggMode::Partial => columns.extend(acc.state()?),
                AggMode::Final | AggMode::Single => columns.push(acc.evaluate()?),
            }
        }
        let columns = columns
            .iter()
            .zip(self.output_schema.fields())
            .map(|(c, f)| cast_checked(c, f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let opts = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(self.output_schema.clone(), columns, &opts)?;
        if batch.num_rows() > 0 {
            out.push(batch);
        }
        Ok(())
    }
}

/// Per-group state of one aggregate function, updated a batch at a time.
trait GroupAccumulator: Send {
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
}

fn new_accumulator(agg: &AggregateExpr, arg_type: &DataType) -> Result<Box<dyn GroupAccumulator>> {
    if agg.distinct {
        return Ok(Box::new(DistinctAcc {
            agg: agg.clone(),
            arg_type: arg_type.clone(),
            sets: vec![],
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
    })
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
            None => groups.iter().for_each(|g| self.counts[*g] += 1),
        }
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

/// Checked addition so that sums report overflow rather than wrap.
trait SumNative: Copy + Default + Send {
    fn checked_add_(self, o: Self) -> Option<Self>;
}
impl SumNative for i64 {
    fn checked_add_(self, o: Self) -> Option<Self> {
        self.checked_add(o)
    }
}
impl SumNative for i128 {
    fn checked_add_(self, o: Self) -> Option<Self> {
        self.checked_add(o)
    }
}
impl SumNative for f64 {
    fn checked_add_(self, o: Self) -> Option<Self> {
        Some(self + o)
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
        let values = cast_checked(values, &self.data_type)?;
        self.resize(n);
        let v = values.as_primitive::<T>();
        let raw = v.values();
        for (row, &g) in groups.iter().enumerate() {
            if v.is_valid(row) {
                self.sums[g] = self.sums[g]
                    .checked_add_(raw[row])
                    .ok_or_else(|| QuarryError::exec("numeric overflow in sum"))?;
                self.seen[g] = true;
            }
        }
        Ok(())
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
        let sums = cast_checked(sums, &self.sum_type)?;
        for (row, &g) in groups.iter().enumerate() {
            if sums.is_null(row) {
                continue;
            }
            if self.is_float() {
                self.float_sums[g] += sums.as_primitive::<Float64Type>().value(row);
            } else {
                let v = sums.as_primitive::<Decimal128Type>().value(row);
                self.int_sums[g] = self.int_sums[g]
                    .checked_add(v)
                    .ok_or_else(|| QuarryError::exec("numeric overflow in avg"))?;
            }
            self.counts[g] += counts.map_or(1, |c| c.value(row));
        }
        Ok(())
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
        let divisor = 10f64.powi(self.scale);
        let out: Float64Array = (0..self.counts.len())
            .map(|g| {
                let c = self.counts[g];
                if c == 0 {
                    None
                } else if self.is_float() {
                    Some(self.float_sums[g] / c as f64)
                } else {
                    Some(self.int_sums[g] as f64 / divisor / c as f64)
                }
            })
            .collect();
        Ok(Arc::new(out))
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

/// An aggregate over distinct values: keeps each group's set of values and
/// runs the plain aggregate over them at the end. Only in Single mode.
struct DistinctAcc {
    agg: AggregateExpr,
    arg_type: DataType,
    sets: Vec<HashSet<ScalarValue>>,
}

impl GroupAccumulator for DistinctAcc {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("DISTINCT needs an argument"))?;
        for (row, &g) in groups.iter().enumerate() {
            if values.is_valid(row) {
                self.sets[g].insert(ScalarValue::try_from_array(values, row)?);
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
        for (g, set) in std::mem::take(&mut self.sets).into_iter().enumerate() {
            for v in set {
                groups.push(g);
                values.push(v);
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
