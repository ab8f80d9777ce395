//! Any aggregate over window frames (`stddev(x) OVER (…)`, `median`,
//! `string_agg`, `count(DISTINCT x)` …), computed by the accumulators of
//! grouped aggregation with each distinct frame as a group. count, sum,
//! avg, min and max have faster paths of their own in `window.rs`.
//!
//! Rows whose frames are equal (the peers of a RANGE frame, every row of a
//! frame over the whole partition) share one group. An aggregate whose
//! state has a fixed size (variance, arg_min / arg_max, the HyperLogLog
//! sketch; and count / sum / avg / min / max with DISTINCT, which carry
//! the values seen too) carries the state of the last frame into the next
//! when that one only extends it at the end, so a running frame
//! (`UNBOUNDED PRECEDING` to the current row) costs a state per row, not
//! its rows again. Quantiles slide a tree of ranks instead
//! (`aggregate::window_quantile`). The others (string_agg's text, a
//! DISTINCT quantile's or string_agg's set) gather each frame's rows anew:
//! their state is as large as the frame anyway.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;

use super::aggregate::window_quantile::quantile_frames;
use super::aggregate::{new_accumulator, GroupAccumulator};
use super::timestamp::equality_key;
use super::window_output::WindowValues;
use crate::error::{QuarryError, Result};
use crate::plan::expr::AggParam;
use crate::plan::{AggFunc, AggregateExpr};

/// Rows (or carried states) folded into one accumulator before its groups
/// are evaluated and it is dropped: bounds the memory of quantiles and
/// string_agg over many overlapping frames.
const BLOCK_ROWS: usize = 1 << 16;

/// Text fed into one accumulator before its groups are evaluated: keeps
/// string_agg's output for the block far below the 2 GiB an Arrow string
/// array holds.
const BLOCK_TEXT: usize = 256 << 20;

/// `agg` (its function, DISTINCT and constant argument) over each row's
/// frame `[start[i], end[i])` of the values `arg`.
pub(super) fn aggregate_frames(
    agg: &AggregateExpr,
    arg: &ArrayRef,
    start: &[usize],
    end: &[usize],
    cancel: &AtomicBool,
) -> Result<WindowValues> {
    if let (false, Some(AggParam::Quantile(q))) = (agg.distinct, &agg.param) {
        let interpolate = agg.func == AggFunc::QuantileCont;
        return Ok(WindowValues::Rows(quantile_frames(
            *q,
            interpolate,
            arg,
            start,
            end,
        )?));
    }
    // the distinct frames, and each row's
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut frame_of: Vec<usize> = Vec::with_capacity(start.len());
    for (&s, &e) in start.iter().zip(end) {
        if spans.last() != Some(&(s, e)) {
            spans.push((s, e));
        }
        frame_of.push(spans.len() - 1);
    }
    // A DISTINCT one carries the values seen too, and feeds the plain
    // aggregate each value once.
    let carries = matches!(
        agg.func,
        AggFunc::VarSamp
            | AggFunc::VarPop
            | AggFunc::StddevSamp
            | AggFunc::StddevPop
            | AggFunc::ArgMin
            | AggFunc::ArgMax
            | AggFunc::ApproxCountDistinct
            | AggFunc::Count
            | AggFunc::Sum
            | AggFunc::Avg
            | AggFunc::Min
            | AggFunc::Max
    );
    let plain = AggregateExpr {
        distinct: false,
        ..agg.clone()
    };
    let block_agg = if carries { &plain } else { agg };
    let new = |a: &AggregateExpr| new_accumulator(a, arg.data_type());
    // the values of the blocks' frames, and each block's first frame
    let mut values = Vec::new();
    let mut firsts = vec![0];
    let mut block = Block::new(new(block_agg)?, 0);
    // the last frame's bounds and state, and the values it holds (DISTINCT)
    let mut carried: Option<(usize, usize, Vec<ArrayRef>)> = None;
    let mut seen: HashSet<ScalarValue> = HashSet::new();
    // what DISTINCT tells values apart by (intervals `=` calls equal are one)
    let keys = if agg.distinct {
        equality_key(arg)?
    } else {
        arg.clone()
    };
    for (k, &(s, e)) in spans.iter().enumerate() {
        if k % 256 == 0 && cancel.load(Ordering::Relaxed) {
            return Err(QuarryError::Cancelled);
        }
        let group = k - block.first;
        if carries {
            let mut acc = new(&plain)?;
            acc.resize(1);
            let from = match carried.take() {
                Some((cs, ce, state)) if cs == s && ce <= e => {
                    acc.merge(&[0], 1, &state)?;
                    ce
                }
                _ => {
                    seen.clear();
                    s
                }
            };
            if agg.distinct {
                let unseen = first_seen(arg, &keys, from, e, &mut seen)?;
                let len = unseen.len();
                acc.update(&vec![0; len], 1, Some(&unseen))?;
            } else {
                feed(acc.as_mut(), 0, arg, from, e)?;
            }
            let state = acc.state()?;
            block.acc.resize(group + 1);
            block.acc.merge(&[group], group + 1, &state)?;
            block.held += 1;
            carried = Some((s, e, state));
        } else {
            feed(block.acc.as_mut(), group, arg, s, e)?;
            block.held += e - s;
            block.text += text_bytes(arg, s, e);
        }
        if block.held >= BLOCK_ROWS || block.text >= BLOCK_TEXT {
            values.push(block.evaluate(k + 1)?);
            firsts.push(k + 1);
            block = Block::new(new(block_agg)?, k + 1);
        }
    }
    if block.first < spans.len() || values.is_empty() {
        values.push(block.evaluate(spans.len())?);
    } else {
        firsts.pop();
    }
    // each row's block and frame in it
    let mut rows = Vec::with_capacity(frame_of.len());
    let mut at = 0;
    for f in frame_of {
        while f >= firsts.get(at + 1).copied().unwrap_or(usize::MAX) {
            at += 1;
        }
        rows.push((at, f - firsts[at]));
    }
    WindowValues::picked(values, rows)
}

/// The non-NULL values of rows `[from, to)` whose key (of `keys`, as
/// `arg` or its `equality_key`) is not in `seen`, each once, as first met;
/// their keys join `seen`.
fn first_seen(
    arg: &ArrayRef,
    keys: &ArrayRef,
    from: usize,
    to: usize,
    seen: &mut HashSet<ScalarValue>,
) -> Result<ArrayRef> {
    let mut rows = Vec::new();
    for r in from..to {
        if keys.is_valid(r) && seen.insert(ScalarValue::try_from_array(keys, r)?) {
            rows.push(r as u32);
        }
    }
    Ok(take(arg.as_ref(), &UInt32Array::from(rows), None)?)
}

/// An accumulator for the frames from `first` on.
struct Block {
    acc: Box<dyn GroupAccumulator>,
    first: usize,
    held: usize,
    /// Bytes of text among the rows held.
    text: usize,
}

impl Block {
    fn new(acc: Box<dyn GroupAccumulator>, first: usize) -> Block {
        Block {
            acc,
            first,
            held: 0,
            text: 0,
        }
    }

    /// The values of its frames, up to frame `end` (the empty ones too).
    fn evaluate(mut self, end: usize) -> Result<ArrayRef> {
        self.acc.resize(end - self.first);
        self.acc.evaluate()
    }
}

/// The bytes of the text values of rows `[from, to)` (0 for other types).
fn text_bytes(arg: &ArrayRef, from: usize, to: usize) -> usize {
    let offsets = match arg.data_type() {
        DataType::Utf8 => arg.as_string::<i32>().value_offsets(),
        DataType::Binary => arg.as_binary::<i32>().value_offsets(),
        _ => return 0,
    };
    (offsets[to] - offsets[from]) as usize
}

/// Folds rows `[from, to)` of `arg` into `group`, a slice at a time.
fn feed(
    acc: &mut dyn GroupAccumulator,
    group: usize,
    arg: &ArrayRef,
    from: usize,
    to: usize,
) -> Result<()> {
    acc.resize(group + 1);
    let mut at = from;
    while at < to {
        let len = (to - at).min(BLOCK_ROWS);
        acc.update(&vec![group; len], group + 1, Some(&arg.slice(at, len)))?;
        at += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::expr::Quantile;
    use arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    /// `aggregate_frames` as one array.
    fn over_frames(a: &AggregateExpr, x: &ArrayRef, start: &[usize], end: &[usize]) -> ArrayRef {
        let values = aggregate_frames(a, x, start, end, &AtomicBool::new(false)).unwrap();
        values.part(0, start.len()).unwrap()
    }

    fn agg(func: AggFunc, distinct: bool, param: Option<AggParam>) -> AggregateExpr {
        AggregateExpr {
            func,
            arg: None,
            distinct,
            param,
        }
    }

    /// Every aggregate over frames equals the aggregate over the frame's
    /// rows computed alone, whatever path it takes.
    #[test]
    fn frames_running_moving_and_shared() {
        let x: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(4),
            Some(1),
            None,
            Some(9),
            Some(1),
            Some(7),
            Some(3),
        ]));
        // running (with peers), moving, whole, empty
        let frames: Vec<(usize, usize)> =
            vec![(0, 2), (0, 2), (0, 3), (0, 5), (2, 5), (3, 3), (0, 7)];
        let (start, end): (Vec<usize>, Vec<usize>) = frames.iter().copied().unzip();
        let cases = [
            agg(AggFunc::VarSamp, false, None),
            agg(AggFunc::StddevPop, false, None),
            agg(AggFunc::ApproxCountDistinct, false, None),
            agg(AggFunc::Count, true, None),
            agg(AggFunc::Sum, true, None),
            agg(
                AggFunc::QuantileCont,
                false,
                Some(AggParam::Quantile(Quantile::Decimal {
                    unscaled: 5,
                    scale: 1,
                })),
            ),
        ];
        for a in &cases {
            let got = over_frames(a, &x, &start, &end);
            for (i, &(s, e)) in frames.iter().enumerate() {
                let mut alone = new_accumulator(a, x.data_type()).unwrap();
                alone.resize(1);
                alone
                    .update(&vec![0; e - s], 1, Some(&x.slice(s, e - s)))
                    .unwrap();
                let want = alone.evaluate().unwrap();
                assert_eq!(
                    got.slice(i, 1).to_data(),
                    want.to_data(),
                    "{:?} over rows {s}..{e}",
                    a.func
                );
            }
        }
        // a spot check of the values themselves
        let var = over_frames(&cases[0], &x, &start, &end);
        let var = var.as_any().downcast_ref::<Float64Array>().unwrap();
        assert!(var.is_null(5), "no rows: NULL");
        assert!((var.value(0) - 4.5).abs() < 1e-12);
    }

    /// string_agg joins each frame's values in the rows' order, across
    /// blocks of frames.
    #[test]
    fn string_agg_over_many_frames() {
        let n = 3 * BLOCK_ROWS / 2;
        let x: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| ((b'a' + (i % 26) as u8) as char).to_string()),
        ));
        let start: Vec<usize> = (0..n).map(|i| i.saturating_sub(2)).collect();
        let end: Vec<usize> = (0..n).map(|i| i + 1).collect();
        let a = agg(
            AggFunc::StringAgg,
            false,
            Some(AggParam::Separator(Some("-".into()))),
        );
        let got = over_frames(&a, &x, &start, &end);
        let got = got.as_string::<i32>();
        assert_eq!(got.value(0), "a");
        assert_eq!(got.value(3), "b-c-d");
        assert_eq!(got.value(n - 1), {
            let c = |i: usize| ((b'a' + (i % 26) as u8) as char).to_string();
            format!("{}-{}-{}", c(n - 3), c(n - 2), c(n - 1))
        });
    }
}
