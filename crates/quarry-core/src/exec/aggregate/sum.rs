//! sum, with overflow reported as an error.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ArrowPrimitiveType, AsArray, PrimitiveArray};
use arrow::datatypes::DataType;

use super::GroupAccumulator;
use crate::error::{QuarryError, Result};
use crate::exec::expr::cast_checked;

/// Addition that reports overflow (through a flag, looked at once per
/// batch) rather than wrap.
pub(super) trait SumNative: Copy + Default + Send {
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
pub(super) fn as_sum_input(values: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    match (values.data_type(), to) {
        (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) if s1 == s2 => {
            Ok(values.clone())
        }
        _ => cast_checked(values, to),
    }
}

/// The group every row belongs to, when it is one group.
pub(super) fn single_group(groups: &[usize]) -> Option<usize> {
    let (&first, rest) = groups.split_first()?;
    rest.iter().all(|&g| g == first).then_some(first)
}

/// Adds `values` into `sums[group of row]` and marks the group as seen,
/// skipping NULLs; an overflow is an error of `what`.
pub(super) fn add_into<T: SumNative>(
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
pub(super) const LANE_GROUPS: usize = 32;
pub(super) const LANES: usize = 4;

/// `add_into` for few groups and no NULLs. With few groups, consecutive
/// rows often share one, and each add would wait for the store of the add
/// before it; `LANES` copies of the sums, row `i` adding into copy
/// `i % LANES`, make those chains independent.
pub(super) fn add_into_lanes<T: SumNative>(
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

pub(super) struct SumAcc<T: ArrowPrimitiveType> {
    sums: Vec<T::Native>,
    seen: Vec<bool>,
    data_type: DataType,
}

impl<T: ArrowPrimitiveType> SumAcc<T> {
    pub(super) fn new(data_type: DataType) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
