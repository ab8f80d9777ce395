//! quantile_cont / quantile_disc / median over window frames, without
//! gathering each frame's values anew: the values are ranked once, and the
//! frame's ranks are counted in a Fenwick tree that rows enter and leave
//! as the frame slides, so that the k-th value of a frame is a search of
//! the tree. A running median over n rows costs n·log n, not n².

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::{sort_to_indices, take, SortOptions};

use super::cast_checked;
use super::more::{continuous_positions, discrete_position, interpolate, kept_type};
use crate::error::Result;
use crate::plan::expr::Quantile;

/// The quantile `q` of each row's frame `[start[i], end[i])` of `arg`
/// (NULLs skipped; NULL for a frame without values), interpolated for
/// quantile_cont.
pub(crate) fn quantile_frames(
    q: Quantile,
    interpolate_values: bool,
    arg: &ArrayRef,
    start: &[usize],
    end: &[usize],
) -> Result<ArrayRef> {
    let values = cast_checked(arg, &kept_type(arg.data_type()))?;
    let n = values.len();
    // order[r]: the row of rank r; rank[row]: its place in that order
    let order = sort_to_indices(
        values.as_ref(),
        Some(SortOptions {
            descending: false,
            nulls_first: false,
        }),
        None,
    )?;
    let order = order.values();
    let mut rank = vec![0usize; n];
    for (r, &row) in order.iter().enumerate() {
        rank[row as usize] = r;
    }
    let mut tree = Fenwick::new(n);
    let set = |tree: &mut Fenwick, row: usize, present: bool| {
        if values.is_valid(row) {
            tree.add(rank[row], if present { 1 } else { -1 });
        }
    };
    let (mut lower, mut upper) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut weight = Vec::with_capacity(n);
    // the frame the tree holds
    let (mut cs, mut ce) = (0, 0);
    for (&s, &e) in start.iter().zip(end) {
        // rows of the old frame not in the new one leave, rows of the new
        // one not in the old one enter
        (cs..ce.min(s)).for_each(|r| set(&mut tree, r, false));
        (cs.max(e)..ce).for_each(|r| set(&mut tree, r, false));
        (s..e.min(cs)).for_each(|r| set(&mut tree, r, true));
        (s.max(ce)..e).for_each(|r| set(&mut tree, r, true));
        (cs, ce) = (s, e);
        let count = tree.total;
        if count == 0 {
            lower.push(None);
            upper.push(None);
            weight.push(0.0);
            continue;
        }
        let (lo, hi, w) = if interpolate_values {
            continuous_positions(q, count)
        } else {
            let i = discrete_position(q, count);
            (i, i, 0.0)
        };
        lower.push(Some(order[tree.kth(lo)]));
        upper.push(Some(order[tree.kth(hi)]));
        weight.push(w);
    }
    let lo = take(values.as_ref(), &UInt32Array::from(lower), None)?;
    if !interpolate_values {
        return Ok(lo);
    }
    let hi = take(values.as_ref(), &UInt32Array::from(upper), None)?;
    interpolate(&lo, &hi, &weight)
}

/// Counts per rank, with prefix sums and the k-th present rank in
/// O(log n).
struct Fenwick {
    counts: Vec<i64>,
    total: usize,
}

impl Fenwick {
    fn new(n: usize) -> Fenwick {
        Fenwick {
            counts: vec![0; n + 1],
            total: 0,
        }
    }

    fn add(&mut self, rank: usize, delta: i64) {
        self.total = (self.total as i64 + delta) as usize;
        let mut i = rank + 1;
        while i < self.counts.len() {
            self.counts[i] += delta;
            i += i & i.wrapping_neg();
        }
    }

    /// The rank of the k-th (from 0) present value; k < total.
    fn kth(&self, k: usize) -> usize {
        let mut at = 0;
        let mut left = k as i64;
        let mut step = (self.counts.len() - 1).next_power_of_two();
        while step > 0 {
            let next = at + step;
            if next < self.counts.len() && self.counts[next] <= left {
                at = next;
                left -= self.counts[next];
            }
            step /= 2;
        }
        // `at` ranks lie before it: it is rank `at`
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Float64Type;
    use std::sync::Arc;

    #[test]
    fn sliding_and_running_medians_match_sorting_each_frame() {
        let raw: Vec<Option<i64>> = (0..200)
            .map(|i| (i % 11 != 3).then_some((i * 37 % 101) as i64))
            .collect();
        let x: ArrayRef = Arc::new(Int64Array::from(raw.clone()));
        let half = Quantile::Decimal {
            unscaled: 5,
            scale: 1,
        };
        // running, then a moving frame of 7, then a jump to a new partition
        let frames: Vec<(usize, usize)> = (0..200)
            .map(|i| match i {
                0..=79 => (0, i + 1),
                80..=149 => (i - 3, (i + 4).min(150)),
                _ => (150, 200),
            })
            .collect();
        let (start, end): (Vec<usize>, Vec<usize>) = frames.iter().copied().unzip();
        let got = quantile_frames(half, true, &x, &start, &end).unwrap();
        let got = got.as_primitive::<Float64Type>();
        for (i, &(s, e)) in frames.iter().enumerate() {
            let mut v: Vec<i64> = raw[s..e].iter().flatten().copied().collect();
            v.sort();
            let m = v.len();
            let want = if m % 2 == 1 {
                v[m / 2] as f64
            } else {
                (v[m / 2 - 1] + v[m / 2]) as f64 / 2.0
            };
            assert_eq!(got.value(i), want, "frame {s}..{e}");
        }
        let disc = quantile_frames(half, false, &x, &[3, 3], &[3, 4]).unwrap();
        assert!(disc.is_null(0) && disc.is_null(1), "no values: NULL");
    }
}
