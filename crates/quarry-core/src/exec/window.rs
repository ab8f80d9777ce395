//! Window functions. The input arrives sorted by the window's partition
//! keys, then its order keys (a Sort before this operator, which spills
//! when it must); the operator holds rows until a window partition ends,
//! then computes every function over the partitions held and emits their
//! rows with their values. Only the one partition still open is held
//! across batches.
//!
//! A frame is a range of rows `[start, end)` of the partition per row.
//! ROWS frames count rows; RANGE frames go by the order key: CURRENT ROW
//! to the current row's first or last peer (the rows with equal order
//! keys), an offset as far as the rows whose key is within it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array,
    Int64Array, UInt32Array,
};
use arrow::compute::{cast, concat, sort_to_indices, take, SortOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion_common::ScalarValue;

use super::aggregate::decimal_average;
use super::expr::{evaluate, evaluate_array, Value};
use super::operator::Operator;
use super::timestamp::order_key;
use super::window_accumulate::aggregate_frames;
use super::window_output::{WindowOutput, WindowValues};
use crate::error::{QuarryError, Result};
use crate::plan::{AggFunc, AggregateExpr, Expr, FrameBound, FrameUnits, WindowExpr, WindowFunc};
use crate::runtime::memory::{batch_bytes, MemoryPool, Reservation};

pub struct WindowOp {
    /// All share one PARTITION BY and ORDER BY.
    exprs: Vec<WindowExpr>,
    input_schema: SchemaRef,
    schema: SchemaRef,
    /// The rows of the window partition still open.
    pending: Vec<RecordBatch>,
    /// Rows computed and not all emitted yet.
    ready: Option<WindowOutput>,
    /// The partition key of the last row seen, in the row format.
    last_key: Option<OwnedRow>,
    keys: Option<RowConverter>,
    reservation: Reservation,
    /// Set when the query is cancelled: aggregates over many large frames
    /// look at it as they go.
    cancel: Arc<AtomicBool>,
}

impl WindowOp {
    pub fn new(
        exprs: Vec<WindowExpr>,
        input_schema: SchemaRef,
        schema: SchemaRef,
        pool: &Arc<MemoryPool>,
    ) -> WindowOp {
        WindowOp {
            exprs,
            input_schema,
            schema,
            pending: Vec::new(),
            ready: None,
            last_key: None,
            keys: None,
            reservation: Reservation::new(pool, "a window partition"),
            cancel: Arc::default(),
        }
    }

    pub fn with_cancel(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = cancel;
        self
    }

    fn partition_by(&self) -> &[Expr] {
        self.exprs.first().map_or(&[], |w| &w.partition_by)
    }

    fn hold(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() > 0 {
            self.reservation.grow(batch_bytes(&batch))?;
            self.pending.push(batch);
        }
        Ok(())
    }

    /// Computes the functions over the rows held, whole partitions, and
    /// emits them.
    fn flush(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.pending);
        let chunk = self.read_columns(&batches)?;
        let order: Vec<Expr> = self
            .exprs
            .first()
            .map(|w| w.order_by.iter().map(|k| k.expr.clone()).collect())
            .unwrap_or_default();
        let layout = Layout::of(&chunk, self.partition_by(), &order)?;
        let values = self
            .exprs
            .iter()
            .map(|w| window_values(w, &chunk, &layout, &self.cancel))
            .collect::<Result<Vec<_>>>()?;
        self.ready = Some(WindowOutput::new(self.schema.clone(), batches, values));
        self.emit_part(out)
    }

    /// The rows of `batches` as one batch with the columns the functions
    /// read; the others, which only pass through, stay in their batches
    /// (and hold no copy: text repeated by a window below may be more
    /// than one array can hold).
    fn read_columns(&self, batches: &[RecordBatch]) -> Result<RecordBatch> {
        if let [batch] = batches {
            return Ok(batch.clone());
        }
        let mut read = Vec::new();
        for w in &self.exprs {
            w.exprs().for_each(|e| e.columns(&mut read));
        }
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (i, field) in self.input_schema.fields().iter().enumerate() {
            if read.contains(&i) {
                let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
                columns.push(concat(&parts)?);
                fields.push(field.clone());
            } else {
                columns.push(new_null_array(&DataType::Null, rows));
                fields.push(Arc::new(Field::new(field.name(), DataType::Null, true)));
            }
        }
        let opts = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &opts,
        )?)
    }

    /// Emits the next part of the rows computed, and lets them go after
    /// the last.
    fn emit_part(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(ready) = &mut self.ready else {
            return Ok(());
        };
        if let Some(part) = ready.next_part()? {
            out.push(part);
        }
        if ready.is_done() {
            self.ready = None;
            self.reservation.free();
        }
        Ok(())
    }
}

impl Operator for WindowOp {
    /// Holds rows until a partition ends, then computes every partition
    /// that ended in this batch at once (one partition a row is as cheap
    /// as one partition a batch).
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.ready.is_some() {
            return Err(QuarryError::exec("window: push with output pending"));
        }
        let n = batch.num_rows();
        if n == 0 || self.partition_by().is_empty() {
            return self.hold(batch);
        }
        let partition_by = self.partition_by().to_vec();
        let rows = key_rows(&mut self.keys, &partition_by, &batch)?;
        // where the last partition that begins in this batch begins
        let last_start = (1..n)
            .rev()
            .find(|&i| rows.row(i) != rows.row(i - 1))
            .or_else(|| {
                let after_held = self
                    .last_key
                    .as_ref()
                    .is_some_and(|k| k.row() != rows.row(0));
                after_held.then_some(0)
            });
        self.last_key = Some(rows.row(n - 1).owned());
        match last_start {
            None => self.hold(batch),
            Some(s) => {
                self.hold(batch.slice(0, s))?;
                self.flush(out)?;
                self.hold(batch.slice(s, n - s))
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.finish_into(&mut |b| {
            out.push(b);
            Ok(())
        })
    }

    /// The last rows a part at a time, each handed on before the next is
    /// made.
    fn finish_into(&mut self, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        let mut out = Vec::new();
        for last in [false, true] {
            if last {
                self.flush(&mut out)?;
            }
            loop {
                for b in out.drain(..) {
                    emit(b)?;
                }
                if self.ready.is_none() {
                    break;
                }
                self.emit_part(&mut out)?;
            }
        }
        Ok(())
    }

    fn has_pending(&self) -> bool {
        self.ready.is_some()
    }

    fn resume(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.emit_part(out)
    }
}

/// `exprs` over `batch` in the row format (equal keys, equal rows; NULLs
/// equal to each other).
fn key_rows(
    converter: &mut Option<RowConverter>,
    exprs: &[Expr],
    batch: &RecordBatch,
) -> Result<Rows> {
    // (intervals by their normalized value: `1 month` and `30 days` are
    // peers, as they sort together)
    let cols = exprs
        .iter()
        .map(|e| order_key(&evaluate_array(e, batch)?))
        .collect::<Result<Vec<_>>>()?;
    let converter = match converter {
        Some(c) => c,
        None => converter.insert(RowConverter::new(
            cols.iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )?),
    };
    Ok(converter.convert_columns(&cols)?)
}

/// Where each row's window partition and peer group (the run of rows with
/// equal order keys in its partition) start and end, as row numbers of
/// the chunk, and the peer group's number in its partition.
struct Layout {
    part_start: Vec<usize>,
    part_end: Vec<usize>,
    peer_start: Vec<usize>,
    peer_end: Vec<usize>,
    group: Vec<usize>,
}

impl Layout {
    fn of(chunk: &RecordBatch, partition_by: &[Expr], order: &[Expr]) -> Result<Layout> {
        let n = chunk.num_rows();
        let breaks = |exprs: &[Expr]| -> Result<Vec<bool>> {
            if exprs.is_empty() {
                return Ok(vec![false; n]);
            }
            let rows = key_rows(&mut None, exprs, chunk)?;
            Ok((0..n)
                .map(|i| i > 0 && rows.row(i) != rows.row(i - 1))
                .collect())
        };
        let new_part = breaks(partition_by)?;
        let new_peer = breaks(order)?;
        let mut layout = Layout {
            part_start: Vec::with_capacity(n),
            part_end: vec![n; n],
            peer_start: Vec::with_capacity(n),
            peer_end: vec![n; n],
            group: Vec::with_capacity(n),
        };
        let (mut part, mut peer, mut group) = (0, 0, 0);
        for i in 0..n {
            if i > 0 && new_part[i] {
                layout.part_end[part..i].fill(i);
                part = i;
            }
            if i > 0 && (new_part[i] || new_peer[i]) {
                layout.peer_end[peer..i].fill(i);
                peer = i;
                group = if new_part[i] { 0 } else { group + 1 };
            }
            layout.part_start.push(part);
            layout.peer_start.push(peer);
            layout.group.push(group);
        }
        Ok(layout)
    }

    fn len(&self) -> usize {
        self.part_start.len()
    }
}

fn window_values(
    w: &WindowExpr,
    chunk: &RecordBatch,
    at: &Layout,
    cancel: &AtomicBool,
) -> Result<WindowValues> {
    let n = chunk.num_rows();
    let ints = |f: &dyn Fn(usize) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values((0..n).map(f)))
    };
    let floats = |f: &dyn Fn(usize) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values((0..n).map(f)))
    };
    // row i's place in its partition, and the partition's size
    let place = |i: usize| i - at.part_start[i];
    let size = |i: usize| at.part_end[i] - at.part_start[i];
    Ok(WindowValues::Rows(match w.func {
        WindowFunc::RowNumber => ints(&|i| place(i) as i64 + 1),
        WindowFunc::Rank => ints(&|i| (at.peer_start[i] - at.part_start[i]) as i64 + 1),
        WindowFunc::DenseRank => ints(&|i| at.group[i] as i64 + 1),
        WindowFunc::PercentRank => floats(&|i| match size(i) {
            1 => 0.0,
            m => (at.peer_start[i] - at.part_start[i]) as f64 / (m - 1) as f64,
        }),
        WindowFunc::CumeDist => {
            floats(&|i| (at.peer_end[i] - at.part_start[i]) as f64 / size(i) as f64)
        }
        WindowFunc::Ntile => {
            let buckets = constant_int(&w.args[0], chunk, "ntile")?;
            if buckets <= 0 {
                return Err(QuarryError::exec(
                    "ntile(n): the number of buckets must be positive",
                ));
            }
            ints(&|i| ntile(buckets as usize, size(i), place(i)) as i64)
        }
        WindowFunc::Lag | WindowFunc::Lead => {
            let values = evaluate_array(&w.args[0], chunk)?;
            let offset = match w.args.get(1) {
                Some(e) => constant_int(e, chunk, w.func.name())?,
                None => 1,
            };
            let offset = if w.func == WindowFunc::Lag {
                -offset
            } else {
                offset
            };
            let source = |i: usize| {
                let j = i as i64 + offset;
                (at.part_start[i] as i64..at.part_end[i] as i64)
                    .contains(&j)
                    .then_some(j as u32)
            };
            let indices = UInt32Array::from_iter((0..n).map(source));
            let taken = take(values.as_ref(), &indices, None)?;
            let default = match w.args.get(2) {
                Some(e) => constant(e, chunk, w.func.name())?,
                None => return Ok(WindowValues::Rows(taken)),
            };
            if default.is_null() {
                return Ok(WindowValues::Rows(taken));
            }
            let default = cast(&default.to_array_of_size(n)?, values.data_type())?;
            let inside = BooleanArray::from_iter((0..n).map(|i| Some(source(i).is_some())));
            arrow::compute::kernels::zip::zip(&inside, &taken, &default)?
        }
        WindowFunc::FirstValue | WindowFunc::LastValue | WindowFunc::NthValue => {
            let values = evaluate_array(&w.args[0], chunk)?;
            let nth = match w.func {
                WindowFunc::NthValue => {
                    let k = constant_int(&w.args[1], chunk, "nth_value")?;
                    if k <= 0 {
                        return Err(QuarryError::exec("nth_value(x, n): n must be positive"));
                    }
                    Some(k as usize)
                }
                _ => None,
            };
            let frames = Frames::of(w, chunk, at)?;
            let indices = UInt32Array::from_iter((0..n).map(|i| {
                let (s, e) = frames.at(i);
                let j = match (w.func, nth) {
                    (WindowFunc::FirstValue, _) => s,
                    (WindowFunc::LastValue, _) => e.checked_sub(1)?,
                    (_, Some(k)) => s + k - 1,
                    _ => return None,
                };
                (s <= j && j < e).then_some(j as u32)
            }));
            return WindowValues::taken(&values, &indices);
        }
        WindowFunc::Aggregate(f) => {
            let frames = Frames::of(w, chunk, at)?;
            let arg = match w.args.first() {
                Some(e) => Some(evaluate_array(e, chunk)?),
                None => None,
            };
            let fast = matches!(
                f,
                AggFunc::Count
                    | AggFunc::CountStar
                    | AggFunc::Sum
                    | AggFunc::Avg
                    | AggFunc::Min
                    | AggFunc::Max
            );
            match arg {
                Some(arg) if w.distinct || !fast => {
                    let agg = AggregateExpr {
                        func: f,
                        arg: None,
                        distinct: w.distinct,
                        param: w.param.clone(),
                    };
                    return aggregate_frames(&agg, &arg, &frames.start, &frames.end, cancel);
                }
                Some(arg) if matches!(f, AggFunc::Min | AggFunc::Max) => {
                    return extreme(f == AggFunc::Min, &arg, &frames);
                }
                arg => {
                    let out_type = w.data_type(&chunk.schema())?;
                    frame_aggregate(f, arg.as_ref(), &frames, &out_type)?
                }
            }
        }
    }))
}

/// ntile's bucket (from 1) of the row at `place` of a partition of `size`
/// rows: as many buckets as asked or as rows, the first ones one row
/// larger when the rows do not divide evenly.
fn ntile(buckets: usize, size: usize, place: usize) -> usize {
    let k = buckets.min(size.max(1));
    let small = size / k;
    let large = size - k * small;
    let in_large = large * (small + 1);
    let b = if place < in_large {
        place / (small + 1)
    } else {
        large + (place - in_large) / small.max(1)
    };
    b + 1
}

/// The value of a constant argument.
fn constant(e: &Expr, part: &RecordBatch, func: &str) -> Result<ScalarValue> {
    match evaluate(e, part)? {
        Value::Scalar(v) => Ok(v),
        Value::Array(_) => Err(QuarryError::exec(format!(
            "{func}: the argument must be a constant"
        ))),
    }
}

fn constant_int(e: &Expr, part: &RecordBatch, func: &str) -> Result<i64> {
    let v = constant(e, part, func)?;
    match v.cast_to(&DataType::Int64)? {
        ScalarValue::Int64(Some(k)) => Ok(k),
        _ => Err(QuarryError::exec(format!(
            "{func}: the argument must be a non-NULL integer"
        ))),
    }
}

/// Each row's frame, `[start, end)` inside its partition; both ends
/// never move back from one row to the next.
/// The peer groups of a chunk, numbered across its partitions, for GROUPS
/// frames.
struct PeerGroups {
    /// Each row's group.
    of_row: Vec<usize>,
    /// Each group's first row, and the row past its last.
    start: Vec<usize>,
    end: Vec<usize>,
}

impl PeerGroups {
    fn of(at: &Layout) -> PeerGroups {
        let mut groups = PeerGroups {
            of_row: Vec::with_capacity(at.len()),
            start: Vec::new(),
            end: Vec::new(),
        };
        for i in 0..at.len() {
            if at.peer_start[i] == i {
                groups.start.push(i);
                groups.end.push(at.peer_end[i]);
            }
            groups.of_row.push(groups.start.len() - 1);
        }
        groups
    }

    /// The frame bound `offset` peer groups from row `i`'s: the start of
    /// that group, or its end for the frame's end; past the partition's
    /// groups, the partition's first or last row (an empty frame there).
    fn bound(&self, at: &Layout, i: usize, offset: i64, is_end: bool) -> usize {
        let g = self.of_row[i] as i64;
        let first = g - at.group[i] as i64;
        let last = self.of_row[at.part_end[i] - 1] as i64;
        let target = g + offset;
        if target < first {
            at.part_start[i]
        } else if target > last {
            at.part_end[i]
        } else if is_end {
            self.end[target as usize]
        } else {
            self.start[target as usize]
        }
    }
}

struct Frames {
    start: Vec<usize>,
    end: Vec<usize>,
    /// Whether every frame starts at its partition's first row.
    from_partition_start: bool,
}

impl Frames {
    fn of(w: &WindowExpr, chunk: &RecordBatch, at: &Layout) -> Result<Frames> {
        let rows = w.frame.units == FrameUnits::Rows;
        let groups = (w.frame.units == FrameUnits::Groups).then(|| PeerGroups::of(at));
        let start_reach = RangeReach::of(w, &w.frame.start, chunk)?;
        let end_reach = RangeReach::of(w, &w.frame.end, chunk)?;
        let bound = |b: &FrameBound, reach: &Option<RangeReach>, i: usize, is_end: bool| -> usize {
            let (first, last) = (at.part_start[i] as u64, at.part_end[i] as u64);
            let past = i as u64 + is_end as u64;
            let at_row = match (b, &groups) {
                (FrameBound::Preceding(k), Some(g)) => g.bound(at, i, -(*k as i64), is_end) as u64,
                (FrameBound::Following(k), Some(g)) => g.bound(at, i, *k as i64, is_end) as u64,
                _ => match b {
                    FrameBound::UnboundedPreceding => first,
                    FrameBound::UnboundedFollowing => last,
                    FrameBound::CurrentRow if rows => past,
                    FrameBound::CurrentRow if is_end => at.peer_end[i] as u64,
                    FrameBound::CurrentRow => at.peer_start[i] as u64,
                    FrameBound::Preceding(k) => past.saturating_sub(*k),
                    FrameBound::Following(k) => past.saturating_add(*k),
                    FrameBound::RangeOffset { .. } => match reach {
                        Some(r) => r.bound(i, is_end, at) as u64,
                        None => past,
                    },
                },
            };
            at_row.clamp(first, last) as usize
        };
        let n = at.len();
        let mut frames = Frames {
            start: Vec::with_capacity(n),
            end: Vec::with_capacity(n),
            from_partition_start: w.frame.start == FrameBound::UnboundedPreceding,
        };
        for i in 0..n {
            let s = bound(&w.frame.start, &start_reach, i, false);
            let e = bound(&w.frame.end, &end_reach, i, true).max(s);
            frames.start.push(s);
            frames.end.push(e);
        }
        Ok(frames)
    }

    fn at(&self, i: usize) -> (usize, usize) {
        (self.start[i], self.end[i])
    }

    fn len(&self) -> usize {
        self.start.len()
    }
}

/// A RANGE offset bound over a chunk: each row's order key and the key its
/// bound reaches, in the row format of the sort's order, so that "before"
/// is a byte comparison whatever the direction and the NULLs' place.
struct RangeReach {
    keys: Rows,
    reach: Rows,
    null_key: Vec<bool>,
}

impl RangeReach {
    fn of(w: &WindowExpr, bound: &FrameBound, chunk: &RecordBatch) -> Result<Option<RangeReach>> {
        let (FrameBound::RangeOffset { reach, .. }, Some(key)) = (bound, w.order_by.first()) else {
            return Ok(None);
        };
        let reach = evaluate_array(reach, chunk)?;
        let keys = cast(&evaluate_array(&key.expr, chunk)?, reach.data_type())?;
        let field = SortField::new_with_options(
            reach.data_type().clone(),
            SortOptions {
                descending: !key.asc,
                nulls_first: key.nulls_first,
            },
        );
        let converter = RowConverter::new(vec![field])?;
        Ok(Some(RangeReach {
            null_key: (0..keys.len()).map(|i| keys.is_null(i)).collect(),
            keys: converter.convert_columns(&[keys])?,
            reach: converter.convert_columns(&[reach])?,
        }))
    }

    /// Where row `i`'s frame starts (the first row of its partition whose
    /// key is not before the reach) or ends (the first after it). A row
    /// whose key is NULL has its peers as the frame.
    fn bound(&self, i: usize, is_end: bool, at: &Layout) -> usize {
        if self.null_key[i] {
            return if is_end {
                at.peer_end[i]
            } else {
                at.peer_start[i]
            };
        }
        let reach = self.reach.row(i);
        let (mut lo, mut hi) = (at.part_start[i], at.part_end[i]);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let key = self.keys.row(mid);
            let before = if is_end { key <= reach } else { key < reach };
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// An aggregate over each row's frame.
fn frame_aggregate(
    f: AggFunc,
    arg: Option<&ArrayRef>,
    frames: &Frames,
    out_type: &DataType,
) -> Result<ArrayRef> {
    let n = frames.len();
    let Some(arg) = arg else {
        // count(*)
        return Ok(Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| (frames.end[i] - frames.start[i]) as i64),
        )));
    };
    // Non-NULL values up to each row: the count in a frame.
    let mut valid = Vec::with_capacity(n + 1);
    valid.push(0i64);
    for i in 0..n {
        valid.push(valid[i] + arg.is_valid(i) as i64);
    }
    let count = |i: usize| valid[frames.end[i]] - valid[frames.start[i]];
    match f {
        AggFunc::Count => Ok(Arc::new(Int64Array::from_iter_values((0..n).map(count)))),
        AggFunc::Sum | AggFunc::Avg => match arg.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                let x = cast(arg, &DataType::Float64)?;
                let x = x.as_primitive::<arrow::datatypes::Float64Type>();
                let sums = float_sums(x, frames);
                Ok(Arc::new(Float64Array::from_iter((0..n).map(|i| {
                    let c = count(i);
                    (c > 0).then(|| {
                        if f == AggFunc::Avg {
                            sums[i] / c as f64
                        } else {
                            sums[i]
                        }
                    })
                }))))
            }
            t => {
                // Integers and decimals: exact running sums in 128 bits.
                let scale = match t {
                    DataType::Decimal128(_, s) => *s as i32,
                    _ => 0,
                };
                let wide = match t {
                    DataType::Decimal128(..) => arg.clone(),
                    _ => cast(arg, &DataType::Decimal128(38, 0))?,
                };
                let x = wide.as_primitive::<arrow::datatypes::Decimal128Type>();
                let mut prefix = Vec::with_capacity(n + 1);
                prefix.push(0i128);
                for i in 0..n {
                    let v = if x.is_valid(i) { x.value(i) } else { 0 };
                    let next = prefix[i]
                        .checked_add(v)
                        .ok_or_else(|| QuarryError::exec("sum() out of range"))?;
                    prefix.push(next);
                }
                let sum = |i: usize| prefix[frames.end[i]] - prefix[frames.start[i]];
                if f == AggFunc::Avg {
                    return Ok(Arc::new(Float64Array::from_iter((0..n).map(|i| {
                        let c = count(i);
                        (c > 0).then(|| decimal_average(sum(i), scale, c))
                    }))));
                }
                let sums: Decimal128Array =
                    (0..n).map(|i| (count(i) > 0).then(|| sum(i))).collect();
                let sums = sums.with_precision_and_scale(38, scale as i8)?;
                Ok(cast_checked_sum(Arc::new(sums), out_type)?)
            }
        },
        other => Err(QuarryError::exec(format!(
            "internal error: {}() over frames goes through the accumulators",
            other.name()
        ))),
    }
}

/// The sum of each frame's non-NULL values in row order, as the aggregate
/// adds them (differences of running sums would round otherwise): a
/// running total per partition when every frame starts at its partition's
/// first row, else frame by frame.
fn float_sums(x: &Float64Array, frames: &Frames) -> Vec<f64> {
    let add = |from: usize, to: usize| -> f64 {
        (from..to)
            .filter(|&j| x.is_valid(j))
            .map(|j| x.value(j))
            .sum()
    };
    if frames.from_partition_start {
        let (mut total, mut upto, mut part) = (0.0, 0, usize::MAX);
        return (0..frames.len())
            .map(|i| {
                // every frame starts at its partition's first row
                if frames.start[i] != part {
                    part = frames.start[i];
                    (total, upto) = (0.0, part);
                }
                let e = frames.end[i];
                for j in upto..e {
                    if x.is_valid(j) {
                        total += x.value(j);
                    }
                }
                upto = upto.max(e);
                total
            })
            .collect();
    }
    (0..frames.len())
        .map(|i| add(frames.start[i], frames.end[i]))
        .collect()
}

/// A sum of integers (as DECIMAL(38, 0)) or decimals in the aggregate's
/// result type; a sum a BIGINT cannot hold is an error.
fn cast_checked_sum(sums: ArrayRef, out_type: &DataType) -> Result<ArrayRef> {
    if sums.data_type() == out_type {
        return Ok(sums);
    }
    let out = cast(&sums, out_type)?;
    if out.null_count() != sums.null_count() {
        return Err(QuarryError::exec(format!(
            "sum() out of range of {out_type}"
        )));
    }
    Ok(out)
}

/// min or max over each frame, NULLs skipped: the values' order taken
/// once, and a queue of the frame's candidates by that order.
fn extreme(is_min: bool, arg: &ArrayRef, frames: &Frames) -> Result<WindowValues> {
    let n = frames.len();
    let order = sort_to_indices(
        order_key(arg)?.as_ref(),
        Some(SortOptions {
            descending: !is_min,
            nulls_first: false,
        }),
        None,
    )?;
    // rank[i]: row i's place in that order (lower is better)
    let mut rank = vec![0u32; n];
    for (place, &row) in order.values().iter().enumerate() {
        rank[row as usize] = place as u32;
    }
    let mut queue = std::collections::VecDeque::new();
    let mut next = 0;
    let mut best = Vec::with_capacity(n);
    for i in 0..n {
        let (s, e) = frames.at(i);
        while next < e {
            if arg.is_valid(next) {
                while queue.back().is_some_and(|&b: &usize| rank[b] >= rank[next]) {
                    queue.pop_back();
                }
                queue.push_back(next);
            }
            next += 1;
        }
        while queue.front().is_some_and(|&f| f < s) {
            queue.pop_front();
        }
        best.push(queue.front().map(|&b| b as u32));
    }
    WindowValues::taken(arg, &UInt32Array::from(best))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{SortKey, WindowFrame};
    use arrow::datatypes::{Field, Schema};

    fn window(func: WindowFunc, args: Vec<Expr>, frame: WindowFrame) -> WindowExpr {
        WindowExpr {
            func,
            args,
            distinct: false,
            param: None,
            partition_by: vec![Expr::Column(0)],
            order_by: vec![SortKey {
                expr: Expr::Column(1),
                asc: true,
                nulls_first: false,
            }],
            frame,
        }
    }

    /// Partitions that end inside a batch, span batches, or fill one: each
    /// row's values are those of its own partition.
    #[test]
    fn partitions_across_and_within_batches() {
        let input = Arc::new(Schema::new(vec![
            Field::new("p", DataType::Int64, false),
            Field::new("o", DataType::Int64, false),
        ]));
        let rows = ROWS;
        let sliding = WindowFrame {
            units: FrameUnits::Rows,
            start: FrameBound::Preceding(1),
            end: FrameBound::CurrentRow,
        };
        let exprs = vec![
            window(
                WindowFunc::RowNumber,
                vec![],
                WindowFrame::default_for(true),
            ),
            window(WindowFunc::Rank, vec![], WindowFrame::default_for(true)),
            window(
                WindowFunc::Aggregate(AggFunc::Sum),
                vec![Expr::Column(1)],
                sliding.clone(),
            ),
            window(WindowFunc::Lag, vec![Expr::Column(1)], sliding),
        ];
        let mut fields = input.fields().to_vec();
        for (i, w) in exprs.iter().enumerate() {
            let t = w.data_type(&input).unwrap();
            fields.push(Arc::new(Field::new(format!("w{i}"), t, true)));
        }
        let pool = MemoryPool::new(1 << 30);
        let mut op = WindowOp::new(exprs, input.clone(), Arc::new(Schema::new(fields)), &pool);
        let mut out = Vec::new();
        // batches of 1, 4 and 3 rows: partition 2 spans the last two, which
        // also hold partitions 3 and 4
        for (from, len) in [(0, 1), (1, 4), (5, 3)] {
            let (p, o): (Vec<i64>, Vec<i64>) = rows[from..from + len].iter().copied().unzip();
            let batch = RecordBatch::try_new(
                input.clone(),
                vec![Arc::new(Int64Array::from(p)), Arc::new(Int64Array::from(o))],
            )
            .unwrap();
            op.push(batch, &mut out).unwrap();
            while op.has_pending() {
                op.resume(&mut out).unwrap();
            }
        }
        op.finish(&mut out).unwrap();
        let all = arrow::compute::concat_batches(&out[0].schema(), &out).unwrap();
        let column = |i: usize| -> Vec<Option<i64>> {
            let c = cast(all.column(i), &DataType::Int64).unwrap();
            c.as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .collect()
        };
        assert_eq!(column(0), [1, 2, 2, 2, 2, 2, 3, 4].map(Some));
        assert_eq!(column(2), [1, 1, 2, 3, 4, 5, 1, 1].map(Some));
        assert_eq!(column(3), [1, 1, 2, 3, 3, 5, 1, 1].map(Some));
        assert_eq!(column(4), [10, 10, 30, 50, 60, 70, 5, 7].map(Some));
        assert_eq!(
            column(5),
            [
                None,
                None,
                Some(10),
                Some(20),
                Some(30),
                Some(30),
                None,
                None
            ]
        );
    }

    /// (partition, order) pairs, sorted.
    const ROWS: [(i64, i64); 8] = [
        (1, 10),
        (2, 10),
        (2, 20),
        (2, 30),
        (2, 30),
        (2, 40),
        (3, 5),
        (4, 7),
    ];
}
