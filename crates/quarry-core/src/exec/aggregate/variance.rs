//! var_samp, var_pop, stddev_samp, stddev_pop.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Float64Type, Int64Type};

use super::GroupAccumulator;
use crate::error::{QuarryError, Result};
use crate::exec::expr::cast_checked;
use crate::plan::AggFunc;

/// var_samp, var_pop, stddev_samp, stddev_pop: per group the count, the
/// mean and the sum of squared distances from it (Welford's update, which
/// does not lose the variance of large values to cancellation as the sum
/// of squares would; partial states merge by Chan's formula).
pub(super) struct VarianceAcc {
    func: AggFunc,
    counts: Vec<i64>,
    means: Vec<f64>,
    m2s: Vec<f64>,
}

impl VarianceAcc {
    pub(super) fn new(func: AggFunc) -> Self {
        VarianceAcc {
            func,
            counts: vec![],
            means: vec![],
            m2s: vec![],
        }
    }

    /// Folds a group of `n` values with mean `mean` and squared distances
    /// `m2` into group `g`.
    pub(super) fn combine(&mut self, g: usize, n: i64, mean: f64, m2: f64) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
