//! The index of a key compared by inequality (range joins): build rows
//! sorted by key, matched by galloping search.

use std::sync::atomic::AtomicBool;

use arrow::array::{make_comparator, Array, ArrayRef, UInt32Array};
use arrow::buffer::ScalarBuffer;
use arrow::compute::{sort_to_indices, take, SortOptions};

use super::hash_table::KeyIndex;
use super::keys::check_cancel;
use crate::error::{QuarryError, Result};
use crate::plan::BinaryOp;

/// The index of a key compared by inequality: the non-NULL build rows in
/// the order of their key.
pub(super) fn sorted_index(
    op: BinaryOp,
    key_arrays: &[ArrayRef],
    non_null: usize,
    valid: &impl Fn(usize) -> bool,
    cancel: &AtomicBool,
) -> Result<(KeyIndex, Vec<u32>)> {
    if key_arrays.len() != 1
        || !matches!(
            op,
            BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq
        )
    {
        return Err(QuarryError::exec(format!(
            "internal error: a range join needs one key and an inequality, not {} keys and {}",
            key_arrays.len(),
            op.symbol()
        )));
    }
    let key = key_arrays[0].clone();
    let cmp = make_comparator(key.as_ref(), key.as_ref(), SortOptions::default())?;
    let mut row_ids: Vec<u32> = Vec::with_capacity(non_null);
    row_ids.extend((0..key.len() as u32).filter(|&i| valid(i as usize)));
    sort_ids(&mut row_ids, |a, b| cmp(a as usize, b as usize), cancel)?;
    check_cancel(cancel)?;
    // The keys in their order, so that a search reads memory near the one
    // before it (strings: their views, still pointing into the batch).
    let ids = UInt32Array::new(ScalarBuffer::from(row_ids.clone()), None);
    let sorted = take(key.as_ref(), &ids, None)?;
    Ok((KeyIndex::Sorted { op, sorted }, row_ids))
}

/// For each probe row of `probe` (`groups` has one entry per row), the
/// positions in `sorted` (the build keys in order) of its matches under
/// `probe op key`. Probe rows go in key order, so each search starts where
/// the one before ended and gallops forward, reading mostly what the last
/// search read. NULL keys are left to the caller.
pub(super) fn range_matches(
    op: BinaryOp,
    probe: &ArrayRef,
    sorted: &ArrayRef,
    groups: &mut [(u32, u32)],
) -> Result<()> {
    let cmp = make_comparator(probe.as_ref(), sorted.as_ref(), SortOptions::default())?;
    let order = sort_to_indices(probe.as_ref(), None, None)?;
    let m = sorted.len();
    // `lower`: build keys < the probe key come first; `upper`: those <= it.
    let (mut lower, mut upper) = (0, 0);
    for i in order.values().iter().map(|&i| i as usize) {
        if probe.is_null(i) {
            continue;
        }
        let (start, end) = match op {
            BinaryOp::Lt | BinaryOp::GtEq => {
                upper = gallop(upper, m, |k| cmp(i, k).is_ge());
                if op == BinaryOp::Lt {
                    (upper, m)
                } else {
                    (0, upper)
                }
            }
            _ => {
                lower = gallop(lower, m, |k| cmp(i, k).is_gt());
                if op == BinaryOp::LtEq {
                    (lower, m)
                } else {
                    (0, lower)
                }
            }
        };
        groups[i] = (start as u32, (end - start) as u32);
    }
    Ok(())
}

/// The first position in `from..len` where `pred` turns false, `pred`
/// being true on a prefix of `0..len`: doubling steps, then a binary
/// search within the last step.
pub(super) fn gallop(from: usize, len: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut step) = (from, 1);
    while lo + step <= len && pred(lo + step - 1) {
        lo += step;
        step *= 2;
    }
    let mut hi = (lo + step).min(len);
    // invariant: pred holds below lo, and fails at hi (or hi == len)
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Sorts `ids` by `cmp` in runs of `SORT_RUN` ids, then merges the runs two
/// at a time, looking at the cancel flag between runs and every `SORT_RUN`
/// ids merged (one `sort_unstable_by` of tens of millions of strings takes
/// many seconds and cannot be interrupted).
pub(super) fn sort_ids(
    ids: &mut Vec<u32>,
    cmp: impl Fn(u32, u32) -> std::cmp::Ordering,
    cancel: &AtomicBool,
) -> Result<()> {
    const SORT_RUN: usize = 1 << 20;
    for run in ids.chunks_mut(SORT_RUN) {
        check_cancel(cancel)?;
        run.sort_unstable_by(|&a, &b| cmp(a, b));
    }
    let n = ids.len();
    let mut merged = vec![0u32; n];
    let mut width = SORT_RUN;
    while width < n {
        for start in (0..n).step_by(2 * width) {
            let (mid, end) = ((start + width).min(n), (start + 2 * width).min(n));
            let (mut i, mut j) = (start, mid);
            for (k, out) in merged[start..end].iter_mut().enumerate() {
                if k % SORT_RUN == 0 {
                    check_cancel(cancel)?;
                }
                let take_left = j == end || (i < mid && cmp(ids[i], ids[j]).is_le());
                if take_left {
                    *out = ids[i];
                    i += 1;
                } else {
                    *out = ids[j];
                    j += 1;
                }
            }
        }
        std::mem::swap(ids, &mut merged);
        width *= 2;
    }
    Ok(())
}
