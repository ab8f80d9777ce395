//! count and count(*).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::datatypes::Int64Type;

use super::sum::single_group;
use super::GroupAccumulator;
use crate::error::{QuarryError, Result};

pub(super) struct CountAcc {
    pub(super) counts: Vec<i64>,
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
