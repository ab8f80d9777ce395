//! The accumulators of string_agg, arg_min / arg_max, quantile_cont /
//! quantile_disc / median and approx_count_distinct. They hold values that
//! grow with their groups (the joined text, the best row's values, every
//! value, a sketch) and count those bytes in `extra_bytes`, which the
//! aggregate reserves after each batch; when the budget refuses, a partial
//! aggregate sends its states on and a final one spills them (or, without
//! keys to split by, fails naming itself). Their states are plain columns
//! (text; the two values; a list of the values; the sketch's bytes), so
//! they spill and merge like any other.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    make_comparator, new_empty_array, new_null_array, Array, ArrayRef, AsArray, BinaryArray,
    Decimal128Array, Float64Array, Int64Array, ListArray, StringArray, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{concat, lexsort_to_indices, take, SortColumn, SortOptions};
use arrow::datatypes::{DataType, Decimal128Type, Field, Float64Type};
use datafusion_common::ScalarValue;

use super::{cast_checked, GroupAccumulator};
use crate::error::{QuarryError, Result};
use crate::exec::hyperloglog::{mix, Sketch};
use crate::exec::timestamp::equality_key;
use crate::plan::expr::{aggregate_result_type, Quantile};
use crate::plan::AggFunc;

/// string_agg: per group the values so far, joined.
pub(super) struct StringAggAcc {
    /// None: a NULL separator, whose result is NULL (as in DuckDB)
    separator: Option<String>,
    joined: Vec<Option<String>>,
    bytes: usize,
}

impl StringAggAcc {
    pub(super) fn new(separator: Option<String>) -> Self {
        StringAggAcc {
            separator,
            joined: vec![],
            bytes: 0,
        }
    }
}

impl GroupAccumulator for StringAggAcc {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let Some(separator) = &self.separator else {
            return Ok(());
        };
        let values = values.ok_or_else(|| QuarryError::exec("string_agg needs an argument"))?;
        let values = cast_checked(values, &DataType::Utf8)?;
        let v = values.as_string::<i32>();
        for (row, &g) in groups.iter().enumerate() {
            if v.is_null(row) {
                continue;
            }
            let s = v.value(row);
            match &mut self.joined[g] {
                Some(acc) => {
                    let before = acc.capacity();
                    acc.push_str(separator);
                    acc.push_str(s);
                    self.bytes += acc.capacity() - before;
                }
                slot => {
                    self.bytes += s.len();
                    *slot = Some(s.to_string());
                }
            }
        }
        Ok(())
    }

    /// A partial state is the text of some rows of the group, joined.
    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.joined.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        self.bytes = 0;
        let a: StringArray = std::mem::take(&mut self.joined).into_iter().collect();
        Ok(Arc::new(a))
    }

    fn extra_bytes(&self) -> usize {
        self.bytes
    }
}

/// arg_min / arg_max: per group the (arg, val) of the row with the least
/// (greatest) val so far; rows with a NULL in either are skipped, and of
/// equal vals the first row seen stays (as DuckDB's).
pub(super) struct ArgMinMaxAcc {
    is_min: bool,
    arg_type: DataType,
    val_type: DataType,
    best: Vec<Option<(ScalarValue, ScalarValue)>>,
    bytes: usize,
}

impl ArgMinMaxAcc {
    /// `row_type`: the argument's type, the STRUCT of (arg, val).
    pub(super) fn new(is_min: bool, row_type: &DataType) -> Result<Self> {
        let DataType::Struct(fields) = row_type else {
            return Err(QuarryError::exec(format!(
                "internal error: arg_min/arg_max of {row_type}"
            )));
        };
        let [arg, val] = fields.iter().collect::<Vec<_>>()[..] else {
            return Err(QuarryError::exec(
                "internal error: arg_min/arg_max takes two values",
            ));
        };
        Ok(ArgMinMaxAcc {
            is_min,
            arg_type: arg.data_type().clone(),
            val_type: val.data_type().clone(),
            best: vec![],
            bytes: 0,
        })
    }

    /// Folds rows (arg, val) into their groups; `rows` (when some) says
    /// which rows are there at all (a FILTER's CASE makes NULL rows).
    fn fold(
        &mut self,
        groups: &[usize],
        args: &ArrayRef,
        vals: &ArrayRef,
        rows: Option<&NullBuffer>,
    ) -> Result<()> {
        // The best row of each group within the batch first, by arrow's
        // comparator; then one comparison of it with the group's best so far.
        let order = if self.is_min {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        };
        let cmp = make_comparator(vals.as_ref(), vals.as_ref(), SortOptions::default())?;
        let mut batch_best: HashMap<usize, usize> = HashMap::new();
        for (row, &g) in groups.iter().enumerate() {
            if vals.is_null(row) || args.is_null(row) || rows.is_some_and(|r| r.is_null(row)) {
                continue;
            }
            batch_best
                .entry(g)
                .and_modify(|b| {
                    if cmp(row, *b) == order {
                        *b = row
                    }
                })
                .or_insert(row);
        }
        let mut candidates: Vec<(usize, usize)> = batch_best.into_iter().collect();
        // in row order, so that of equal vals the earliest row wins
        candidates.sort_unstable_by_key(|&(_, row)| row);
        for (g, row) in candidates {
            let val = ScalarValue::try_from_array(vals, row)?;
            let replace = match &self.best[g] {
                None => true,
                Some((_, old)) => val.partial_cmp(old) == Some(order),
            };
            if replace {
                let arg = ScalarValue::try_from_array(args, row)?;
                let size = arg.size() + val.size();
                if let Some((a, v)) = self.best[g].replace((arg, val)) {
                    self.bytes = self.bytes.saturating_sub(a.size() + v.size());
                }
                self.bytes += size;
            }
        }
        Ok(())
    }

    fn column(values: Vec<Option<ScalarValue>>, t: &DataType) -> Result<ArrayRef> {
        if values.is_empty() {
            return Ok(new_empty_array(t));
        }
        let null = ScalarValue::try_from(t)?;
        Ok(ScalarValue::iter_to_array(
            values
                .into_iter()
                .map(|v| v.unwrap_or_else(|| null.clone())),
        )?)
    }
}

impl GroupAccumulator for ArgMinMaxAcc {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let row = values
            .and_then(|v| v.as_struct_opt())
            .filter(|s| s.num_columns() == 2)
            .ok_or_else(|| QuarryError::exec("internal error: arg_min/arg_max needs (arg, val)"))?;
        let (args, vals) = (row.column(0).clone(), row.column(1).clone());
        self.fold(groups, &args, &vals, row.logical_nulls().as_ref())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.resize(n);
        self.fold(groups, &states[0], &states[1], None)
    }

    fn state_width(&self) -> usize {
        2
    }

    fn resize(&mut self, n: usize) {
        self.best.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        self.bytes = 0;
        let (args, vals) = std::mem::take(&mut self.best)
            .into_iter()
            .map(|b| match b {
                Some((a, v)) => (Some(a), Some(v)),
                None => (None, None),
            })
            .unzip();
        Ok(vec![
            Self::column(args, &self.arg_type)?,
            Self::column(vals, &self.val_type)?,
        ])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let mut state = self.state()?;
        Ok(state.swap_remove(0))
    }

    fn extra_bytes(&self) -> usize {
        self.bytes
    }
}

/// The type quantiles keep their values as: text as plain strings (a
/// view's buffers could hold far more than the values kept).
pub(super) fn kept_type(arg: &DataType) -> DataType {
    match arg {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        other => other.clone(),
    }
}

/// Every non-NULL argument with its group, in compact chunks: the state
/// of the aggregates that need all of a group's values at the end (the
/// quantiles, string_agg with ORDER BY). A partial state is a list of some
/// of the group's values.
pub(super) struct KeptRows {
    kept: DataType,
    chunks: Vec<ArrayRef>,
    groups: Vec<u32>,
    num_groups: usize,
    bytes: usize,
}

impl KeptRows {
    pub(super) fn new(kept: DataType) -> Self {
        KeptRows {
            kept,
            chunks: vec![],
            groups: vec![],
            num_groups: 0,
            bytes: 0,
        }
    }

    /// Keeps `values[rows[i]]` for group `groups[i]`, copied.
    fn keep(&mut self, values: &ArrayRef, rows: Vec<u32>, groups: Vec<u32>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let chunk = take(values.as_ref(), &UInt32Array::from(rows), None)?;
        let chunk = cast_checked(&chunk, &self.kept)?;
        self.bytes += chunk.get_array_memory_size() + 4 * groups.len();
        self.chunks.push(chunk);
        self.groups.extend(groups);
        Ok(())
    }

    /// All values kept, and their groups; nothing is kept after.
    fn take_values(&mut self) -> Result<(ArrayRef, Vec<u32>)> {
        self.bytes = 0;
        let chunks = std::mem::take(&mut self.chunks);
        let refs: Vec<&dyn Array> = chunks.iter().map(|c| c.as_ref()).collect();
        let all = if refs.is_empty() {
            new_empty_array(&self.kept)
        } else {
            concat(&refs)?
        };
        Ok((all, std::mem::take(&mut self.groups)))
    }

    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("an aggregate needs an argument"))?;
        let mut rows = Vec::with_capacity(groups.len());
        let mut gs = Vec::with_capacity(groups.len());
        for (row, &g) in groups.iter().enumerate() {
            if values.is_valid(row) {
                rows.push(row as u32);
                gs.push(group_u32(g)?);
            }
        }
        self.keep(values, rows, gs)
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.resize(n);
        let lists = states[0]
            .as_list_opt::<i32>()
            .ok_or_else(|| QuarryError::exec("internal error: a kept state is not a list"))?;
        let offsets = lists.value_offsets();
        let mut rows = Vec::new();
        let mut gs = Vec::new();
        for (row, &g) in groups.iter().enumerate() {
            if lists.is_null(row) {
                continue;
            }
            for i in offsets[row]..offsets[row + 1] {
                rows.push(i as u32);
                gs.push(group_u32(g)?);
            }
        }
        self.keep(lists.values(), rows, gs)
    }

    fn resize(&mut self, n: usize) {
        self.num_groups = self.num_groups.max(n);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        let n = std::mem::take(&mut self.num_groups);
        let (all, groups) = self.take_values()?;
        // the values in order of group (a counting sort)
        let mut lengths = vec![0usize; n];
        for &g in &groups {
            lengths[g as usize] += 1;
        }
        let mut next: Vec<usize> = lengths
            .iter()
            .scan(0, |start, &len| {
                let s = *start;
                *start += len;
                Some(s)
            })
            .collect();
        let mut order = vec![0u32; groups.len()];
        for (i, &g) in groups.iter().enumerate() {
            order[next[g as usize]] = i as u32;
            next[g as usize] += 1;
        }
        let values = take(all.as_ref(), &UInt32Array::from(order), None)?;
        let field = Arc::new(Field::new_list_field(self.kept.clone(), true));
        let lists = ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), values, None)?;
        Ok(vec![Arc::new(lists)])
    }
}

/// An aggregate that keeps every value of its groups (`KeptRows`) and
/// computes its result from them at the end.
pub(super) struct KeptRowsAcc<F> {
    rows: KeptRows,
    finish: F,
}

/// What a `KeptRowsAcc` computes from all the values kept.
pub(super) trait FromKeptRows: Send {
    /// The result of each of `n` groups from every value kept (of type
    /// `kept`) and its group.
    fn finish(
        &self,
        all: ArrayRef,
        groups: Vec<u32>,
        n: usize,
        kept: &DataType,
    ) -> Result<ArrayRef>;
}

impl<F: FromKeptRows> GroupAccumulator for KeptRowsAcc<F> {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.rows.update(groups, n, values)
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.rows.merge(groups, n, states)
    }

    fn resize(&mut self, n: usize) {
        self.rows.resize(n);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        self.rows.state()
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let n = std::mem::take(&mut self.rows.num_groups);
        let (all, groups) = self.rows.take_values()?;
        self.finish.finish(all, groups, n, &self.rows.kept)
    }

    fn extra_bytes(&self) -> usize {
        self.rows.bytes
    }
}

/// string_agg(x, separator ORDER BY keys): every `row(x, key, …)` kept
/// (NULL where x is), sorted by (group, keys) at the end and joined.
pub(super) struct OrderedStringAgg {
    separator: Option<String>,
    /// per key: (descending, NULLs first)
    keys: Vec<(bool, bool)>,
}

pub(super) type OrderedStringAggAcc = KeptRowsAcc<OrderedStringAgg>;

impl OrderedStringAggAcc {
    pub(super) fn new(separator: Option<String>, keys: Vec<(bool, bool)>, arg: &DataType) -> Self {
        KeptRowsAcc {
            rows: KeptRows::new(arg.clone()),
            finish: OrderedStringAgg { separator, keys },
        }
    }
}

impl FromKeptRows for OrderedStringAgg {
    fn finish(
        &self,
        all: ArrayRef,
        groups: Vec<u32>,
        n: usize,
        _kept: &DataType,
    ) -> Result<ArrayRef> {
        let mut joined: Vec<Option<String>> = vec![None; n];
        let (Some(separator), Some(rows)) = (&self.separator, all.as_struct_opt()) else {
            return Ok(Arc::new(StringArray::from(joined)));
        };
        let groups: ArrayRef = Arc::new(UInt32Array::from(groups));
        let mut sort = vec![SortColumn {
            values: groups.clone(),
            options: None,
        }];
        for (i, &(descending, nulls_first)) in self.keys.iter().enumerate() {
            sort.push(SortColumn {
                values: rows.column(i + 1).clone(),
                options: Some(SortOptions {
                    descending,
                    nulls_first,
                }),
            });
        }
        let order = lexsort_to_indices(&sort, None)?;
        let values = cast_checked(rows.column(0), &DataType::Utf8)?;
        let values = values.as_string::<i32>();
        let group_of = groups.as_primitive::<arrow::datatypes::UInt32Type>();
        for &i in order.values() {
            let (g, i) = (group_of.value(i as usize) as usize, i as usize);
            if values.is_null(i) {
                continue;
            }
            match &mut joined[g] {
                Some(acc) => {
                    acc.push_str(separator);
                    acc.push_str(values.value(i));
                }
                slot => *slot = Some(values.value(i).to_string()),
            }
        }
        Ok(Arc::new(StringArray::from(joined)))
    }
}

/// Group index as u32 (the row indices of the kept values are u32 too).
fn group_u32(g: usize) -> Result<u32> {
    u32::try_from(g).map_err(|_| QuarryError::exec("more than 2^32 groups"))
}

/// quantile_cont / quantile_disc / median: every value kept, sorted by
/// (group, value) at the end.
pub(super) struct QuantileOf {
    q: Quantile,
    /// quantile_cont: interpolate between the two nearest values
    interpolate: bool,
}

pub(super) type QuantileAcc = KeptRowsAcc<QuantileOf>;

impl QuantileAcc {
    pub(super) fn new(q: Quantile, interpolate: bool, arg: &DataType) -> Self {
        KeptRowsAcc {
            rows: KeptRows::new(kept_type(arg)),
            finish: QuantileOf { q, interpolate },
        }
    }
}

impl FromKeptRows for QuantileOf {
    fn finish(
        &self,
        all: ArrayRef,
        groups: Vec<u32>,
        n: usize,
        kept: &DataType,
    ) -> Result<ArrayRef> {
        if all.is_empty() {
            // (no value in any group; and arrow sorts no NULL-typed column)
            let t = match self.interpolate {
                true => aggregate_result_type(AggFunc::QuantileCont, kept),
                false => kept.clone(),
            };
            return Ok(new_null_array(&t, n));
        }
        let groups: ArrayRef = Arc::new(UInt32Array::from(groups));
        let sorted = lexsort_to_indices(
            &[
                SortColumn {
                    values: groups.clone(),
                    options: None,
                },
                SortColumn {
                    values: all.clone(),
                    options: None,
                },
            ],
            None,
        )?;
        let sorted = sorted.values();
        let group_of = groups
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .values();
        // per group, the rows of the lower and upper value and the weight
        // of the upper one
        let mut lower: Vec<Option<u32>> = vec![None; n];
        let mut upper: Vec<Option<u32>> = vec![None; n];
        let mut weight = vec![0.0; n];
        let mut start = 0;
        while start < sorted.len() {
            let g = group_of[sorted[start] as usize] as usize;
            let mut end = start + 1;
            while end < sorted.len() && group_of[sorted[end] as usize] as usize == g {
                end += 1;
            }
            let (lo, hi, d) = if self.interpolate {
                continuous_positions(self.q, end - start)
            } else {
                let i = discrete_position(self.q, end - start);
                (i, i, 0.0)
            };
            lower[g] = Some(sorted[start + lo]);
            upper[g] = Some(sorted[start + hi]);
            weight[g] = d;
            start = end;
        }
        let lo = take(all.as_ref(), &UInt32Array::from(lower), None)?;
        if !self.interpolate {
            return Ok(lo);
        }
        let hi = take(all.as_ref(), &UInt32Array::from(upper), None)?;
        interpolate(&lo, &hi, &weight)
    }
}

/// quantile_cont of `n` (> 0) sorted values: the positions of the two
/// values to interpolate between and the weight of the second. The
/// position is (n - 1)·|q| from the bottom, or from the top for a negative
/// q (DuckDB's convention).
pub(super) fn continuous_positions(q: Quantile, n: usize) -> (usize, usize, f64) {
    let f = q.value();
    let position = (n - 1) as f64 * f.abs();
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    let weight = position - below as f64;
    if f < 0.0 {
        (n - 1 - below, n - 1 - above, weight)
    } else {
        (below, above, weight)
    }
}

/// quantile_disc of `n` (> 0) sorted values: the position of the value,
/// the ceil(n·|q|)-th (the first for q = 0), from the top for a negative q.
/// It is n - floor(n - n·|q|), which for a decimal q is worked out in
/// integers: DuckDB does so, and 10 · 0.3f64 is not 3.
pub(super) fn discrete_position(q: Quantile, n: usize) -> usize {
    let rank = match q {
        Quantile::Decimal { unscaled, scale } => {
            let one = 10i128.pow(scale as u32);
            let part = (unscaled as i128).abs().min(one);
            let n = n as i128;
            // n - floor(n·(1 - q)), all of it in units of 10^-scale
            n - (n * (one - part)).div_euclid(one)
        }
        Quantile::Double(_) => {
            let nf = n as f64;
            n as i128 - (nf - nf * q.value().abs()).floor() as i128
        }
    };
    let i = (rank.clamp(1, n as i128) - 1) as usize;
    if q.value() < 0.0 {
        n - 1 - i
    } else {
        i
    }
}

/// The value a fraction `weight` of the way from `lo` to `hi`, per row: in
/// DOUBLE for numbers (the result type of integers; FLOAT stays FLOAT), in
/// the decimal's own type for decimals, truncated toward zero as DuckDB's
/// does.
pub(super) fn interpolate(lo: &ArrayRef, hi: &ArrayRef, weight: &[f64]) -> Result<ArrayRef> {
    if let DataType::Decimal128(_, _) = lo.data_type() {
        let (l, h) = (
            lo.as_primitive::<Decimal128Type>(),
            hi.as_primitive::<Decimal128Type>(),
        );
        let out: Decimal128Array = (0..l.len())
            .map(|i| {
                l.is_valid(i).then(|| {
                    let (a, b) = (l.value(i), h.value(i));
                    // (exact where there is nothing to interpolate: a
                    // double holds only 53 bits of a decimal)
                    if a == b || weight[i] == 0.0 {
                        a
                    } else {
                        (a as f64 + (b - a) as f64 * weight[i]) as i128
                    }
                })
            })
            .collect();
        return Ok(Arc::new(out.with_data_type(lo.data_type().clone())));
    }
    if lo.data_type() == &DataType::Null {
        return Ok(new_null_array(&DataType::Float64, lo.len()));
    }
    let (l, h) = (
        cast_checked(lo, &DataType::Float64)?,
        cast_checked(hi, &DataType::Float64)?,
    );
    let (l, h) = (
        l.as_primitive::<Float64Type>(),
        h.as_primitive::<Float64Type>(),
    );
    let out: Float64Array = (0..l.len())
        .map(|i| {
            l.is_valid(i).then(|| {
                let (a, b, w) = (l.value(i), h.value(i), weight[i]);
                // DuckDB's rounding: not a + (b - a)·w, whose last digit
                // can differ
                if a == b {
                    a
                } else {
                    a * (1.0 - w) + b * w
                }
            })
        })
        .collect();
    cast_checked(&(Arc::new(out) as ArrayRef), &float_result(lo.data_type()))
}

/// FLOAT stays FLOAT; integers and DOUBLE give DOUBLE.
fn float_result(t: &DataType) -> DataType {
    match t {
        DataType::Float32 => DataType::Float32,
        _ => DataType::Float64,
    }
}

/// approx_count_distinct: a HyperLogLog sketch per group, of the values'
/// hashes (seeded alike in every task, so partial sketches merge).
pub(super) struct ApproxDistinctAcc {
    sketches: Vec<Sketch>,
    hasher: ahash::RandomState,
    bytes: usize,
}

impl ApproxDistinctAcc {
    pub(super) fn new() -> Self {
        ApproxDistinctAcc {
            sketches: vec![],
            hasher: ahash::RandomState::with_seeds(
                0x5851_f42d_4c95_7f2d,
                0x1405_7b7e_f767_814f,
                0x9e37_79b9_7f4a_7c15,
                0xbf58_476d_1ce4_e5b9,
            ),
            bytes: 0,
        }
    }

    /// Runs `f` on group `g`'s sketch, counting what it grows by.
    fn with_sketch(&mut self, g: usize, f: impl FnOnce(&mut Sketch)) {
        let s = &mut self.sketches[g];
        let before = s.heap_bytes();
        f(s);
        self.bytes = (self.bytes + s.heap_bytes()).saturating_sub(before);
    }
}

impl GroupAccumulator for ApproxDistinctAcc {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values =
            values.ok_or_else(|| QuarryError::exec("approx_count_distinct needs an argument"))?;
        // (intervals `=` calls equal count once, as DuckDB's do)
        let values = &equality_key(values)?;
        let mut hashes = vec![0u64; values.len()];
        datafusion_common::hash_utils::create_hashes_with_hasher(
            [values],
            &self.hasher,
            &mut hashes,
        )?;
        for (row, &g) in groups.iter().enumerate() {
            if values.is_valid(row) {
                let h = mix(hashes[row]);
                self.with_sketch(g, |s| s.add_hash(h));
            }
        }
        Ok(())
    }

    /// A partial state is a sketch in `Sketch::to_bytes`' form.
    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.resize(n);
        let bytes = states[0]
            .as_binary_opt::<i32>()
            .ok_or_else(|| QuarryError::exec("internal error: a sketch is not binary"))?;
        for (row, &g) in groups.iter().enumerate() {
            if bytes.is_null(row) {
                continue;
            }
            let sketch = Sketch::from_bytes(bytes.value(row)).ok_or_else(|| {
                QuarryError::exec("internal error: a corrupt approx_count_distinct state")
            })?;
            self.with_sketch(g, |s| s.merge(&sketch));
        }
        Ok(())
    }

    fn resize(&mut self, n: usize) {
        if self.sketches.len() < n {
            self.sketches.resize_with(n, Sketch::default);
        }
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        self.bytes = 0;
        let sketches = std::mem::take(&mut self.sketches);
        let a: BinaryArray = sketches.iter().map(|s| Some(s.to_bytes())).collect();
        Ok(vec![Arc::new(a)])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        self.bytes = 0;
        let sketches = std::mem::take(&mut self.sketches);
        let out: Int64Array = sketches.iter().map(|s| Some(s.estimate() as i64)).collect();
        Ok(Arc::new(out))
    }

    fn extra_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn q(unscaled: i64, scale: u8) -> Quantile {
        Quantile::Decimal { unscaled, scale }
    }

    #[test]
    fn positions_follow_duckdb() {
        // 1, 2, 3, 4: quantile_disc 0.3 → 2, -0.3 → 3, 0 → 1, 1 → 4, -1 → 1
        assert_eq!(discrete_position(q(3, 1), 4), 1);
        assert_eq!(discrete_position(q(-3, 1), 4), 2);
        assert_eq!(discrete_position(q(0, 0), 4), 0);
        assert_eq!(discrete_position(q(1, 0), 4), 3);
        assert_eq!(discrete_position(q(-1, 0), 4), 0);
        // the median of an even count is the lower middle value
        assert_eq!(discrete_position(q(5, 1), 4), 1);
        assert_eq!(discrete_position(q(5, 1), 1), 0);
        // quantile_cont -0.3 of 1..4: 4 + (3 - 4)·0.9 = 3.1
        let (lo, hi, d) = continuous_positions(q(-3, 1), 4);
        assert_eq!((lo, hi), (3, 2));
        assert!((d - 0.9).abs() < 1e-12);
        assert_eq!(continuous_positions(q(5, 1), 3), (1, 1, 0.0));
    }

    #[test]
    fn decimals_interpolate_truncated() {
        // the median of -1.01 and -1.02 is -1.01 in DuckDB (-101.5 → -101)
        let t = DataType::Decimal128(10, 2);
        let lo: ArrayRef =
            Arc::new(Decimal128Array::from(vec![-102, 101]).with_data_type(t.clone()));
        let hi: ArrayRef = Arc::new(Decimal128Array::from(vec![-101, 102]).with_data_type(t));
        let out = interpolate(&lo, &hi, &[0.5, 0.7]).unwrap();
        let out = out.as_primitive::<Decimal128Type>();
        assert_eq!(out.values().to_vec(), vec![-101, 101]);
    }

    /// Quantiles of values split among partial states, merged, equal those
    /// of all the values at once.
    #[test]
    fn quantile_states_merge_to_the_quantile_of_all_rows() {
        let values: Vec<i64> = (0..200).map(|i| (i * 37) % 101).collect();
        let groups: Vec<usize> = (0..200).map(|i| i % 3).collect();
        let column = |v: &[i64]| -> ArrayRef { Arc::new(Int64Array::from(v.to_vec())) };
        for (quantile, interpolate) in [(q(5, 1), true), (q(25, 2), false), (q(-9, 1), true)] {
            let mut whole = QuantileAcc::new(quantile, interpolate, &DataType::Int64);
            whole.update(&groups, 3, Some(&column(&values))).unwrap();
            let whole = whole.evaluate().unwrap();
            let mut merged = QuantileAcc::new(quantile, interpolate, &DataType::Int64);
            for (a, b) in [(0, 70), (70, 71), (71, 200)] {
                let mut part = QuantileAcc::new(quantile, interpolate, &DataType::Int64);
                part.update(&groups[a..b], 3, Some(&column(&values[a..b])))
                    .unwrap();
                let states = part.state().unwrap();
                merged.merge(&[0, 1, 2], 3, &states).unwrap();
            }
            assert_eq!(merged.evaluate().unwrap().as_ref(), whole.as_ref());
            // and the exact answer for group 0
            let mut g0: Vec<f64> = values.iter().step_by(3).map(|&v| v as f64).collect();
            g0.sort_by(f64::total_cmp);
            let expected = if interpolate {
                let (lo, hi, d) = continuous_positions(quantile, g0.len());
                g0[lo] * (1.0 - d) + g0[hi] * d
            } else {
                g0[discrete_position(quantile, g0.len())]
            };
            let got = cast_checked(&whole, &DataType::Float64).unwrap();
            assert_eq!(got.as_primitive::<Float64Type>().value(0), expected);
        }
    }

    /// The type `row(text, bigint)` with the given field names, and a
    /// maker of such rows.
    #[allow(clippy::type_complexity)]
    fn text_int_rows(
        text: &str,
        int: &str,
    ) -> (
        DataType,
        impl Fn(Vec<Option<&str>>, Vec<Option<i64>>) -> ArrayRef,
    ) {
        let fields = vec![
            Field::new(text, DataType::Utf8, true),
            Field::new(int, DataType::Int64, true),
        ];
        let row_type = DataType::Struct(fields.clone().into());
        let rows = move |texts: Vec<Option<&str>>, ints: Vec<Option<i64>>| -> ArrayRef {
            Arc::new(
                arrow::array::StructArray::try_new(
                    fields.clone().into(),
                    vec![
                        Arc::new(StringArray::from(texts)),
                        Arc::new(Int64Array::from(ints)),
                    ],
                    None,
                )
                .unwrap(),
            )
        };
        (row_type, rows)
    }

    #[test]
    fn ordered_string_agg_merges_partial_states_in_key_order() {
        let (row_type, rows) = text_int_rows("value", "key0");
        let rows = |values: Vec<&str>, keys| rows(values.into_iter().map(Some).collect(), keys);
        // ORDER BY key DESC NULLS LAST, two groups over two partials
        let new = || OrderedStringAggAcc::new(Some("+".into()), vec![(true, false)], &row_type);
        let mut part1 = new();
        part1
            .update(
                &[0, 1, 0],
                2,
                Some(&rows(vec!["a", "x", "b"], vec![Some(1), Some(5), None])),
            )
            .unwrap();
        let mut part2 = new();
        part2
            .update(
                &[1, 0],
                2,
                Some(&rows(vec!["y", "c"], vec![Some(9), Some(3)])),
            )
            .unwrap();
        let mut total = new();
        total.merge(&[0, 1], 2, &part1.state().unwrap()).unwrap();
        total.merge(&[0, 1], 2, &part2.state().unwrap()).unwrap();
        let joined = total.evaluate().unwrap();
        let joined = joined.as_string::<i32>();
        assert_eq!(joined.value(0), "c+a+b");
        assert_eq!(joined.value(1), "y+x");
    }

    #[test]
    fn string_agg_and_arg_max_states_merge() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            None,
            Some("b"),
            Some("c"),
        ]));
        let mut part1 = StringAggAcc::new(Some(", ".into()));
        part1
            .update(&[0, 0, 0], 1, Some(&text.slice(0, 3)))
            .unwrap();
        let mut part2 = StringAggAcc::new(Some(", ".into()));
        part2.update(&[0], 1, Some(&text.slice(3, 1))).unwrap();
        let mut total = StringAggAcc::new(Some(", ".into()));
        total.merge(&[0], 1, &part1.state().unwrap()).unwrap();
        total.merge(&[0], 1, &part2.state().unwrap()).unwrap();
        assert_eq!(
            total.evaluate().unwrap().as_string::<i32>().value(0),
            "a, b, c"
        );

        let (row_type, rows) = text_int_rows("arg", "val");
        let mut a = ArgMinMaxAcc::new(false, &row_type).unwrap();
        // NULL vals and NULL args are skipped; of equal vals the first stays
        a.update(
            &[0, 0, 0, 0],
            1,
            Some(&rows(
                vec![Some("x"), Some("y"), None, Some("w")],
                vec![Some(3), None, Some(9), Some(3)],
            )),
        )
        .unwrap();
        let mut b = ArgMinMaxAcc::new(false, &row_type).unwrap();
        b.update(
            &[0, 0],
            1,
            Some(&rows(vec![Some("z"), Some("v")], vec![Some(2), Some(3)])),
        )
        .unwrap();
        let mut total = ArgMinMaxAcc::new(false, &row_type).unwrap();
        total.merge(&[0], 1, &a.state().unwrap()).unwrap();
        total.merge(&[0], 1, &b.state().unwrap()).unwrap();
        assert_eq!(total.evaluate().unwrap().as_string::<i32>().value(0), "x");
    }
}
