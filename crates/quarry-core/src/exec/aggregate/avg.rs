//! avg: an exact or a float sum and a count per group.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, PrimitiveArray};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type};

use super::sum::{add_into, as_sum_input};
use super::{avg_sum_type, GroupAccumulator};
use crate::error::{QuarryError, Result};

/// avg: an exact sum (i128 with the input's scale) or a float sum, and a count.
pub(super) struct AvgAcc {
    sum_type: DataType,
    scale: i32,
    int_sums: Vec<i128>,
    float_sums: Vec<f64>,
    counts: Vec<i64>,
}

impl AvgAcc {
    pub(super) fn new(arg: &DataType) -> Self {
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

    pub(super) fn is_float(&self) -> bool {
        self.sum_type == DataType::Float64
    }

    pub(super) fn add(
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
