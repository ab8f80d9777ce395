//! Aggregates over distinct values (in Single mode).

use std::collections::HashSet;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;

use super::{new_accumulator, GroupAccumulator};
use crate::error::{QuarryError, Result};
use crate::exec::timestamp::{equality_key, interval_type};
use crate::plan::AggregateExpr;

/// A set's slot beyond its value: the hash table's control byte and the
/// room it keeps free (it is at most 7/8 full, and doubles as it grows).
pub(super) const DISTINCT_SLOT_BYTES: usize = 16;

/// An aggregate over distinct values: keeps each group's set of values and
/// runs the plain aggregate over them at the end. Only in Single mode.
pub(super) struct DistinctAcc {
    pub(super) agg: AggregateExpr,
    pub(super) arg_type: DataType,
    pub(super) sets: Vec<HashSet<ScalarValue>>,
    /// Of an INTERVAL argument, whose sets hold each value `canonical`
    /// (intervals `=` calls equal are one value): each group's values as
    /// first met, which the plain aggregate is given (so that
    /// `min(DISTINCT i)` shows the spelling `min(i)` does). Else empty.
    pub(super) spellings: Vec<Vec<ScalarValue>>,
    /// The sets' values with their heap parts, and the sets' slots.
    pub(super) bytes: usize,
}

impl GroupAccumulator for DistinctAcc {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("DISTINCT needs an argument"))?;
        let keys = equality_key(values)?;
        let spelled = self.arg_type == interval_type();
        for (row, &g) in groups.iter().enumerate() {
            if keys.is_valid(row) {
                let v = ScalarValue::try_from_array(&keys, row)?;
                let size = v.size() + DISTINCT_SLOT_BYTES;
                if self.sets[g].insert(v) {
                    self.bytes += size;
                    if spelled {
                        self.spellings[g].push(ScalarValue::try_from_array(values, row)?);
                        self.bytes += size;
                    }
                }
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
        if self.arg_type == interval_type() {
            self.spellings.resize_with(n, Vec::new);
        }
    }

    fn extra_bytes(&self) -> usize {
        self.bytes
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
        let sets = std::mem::take(&mut self.sets);
        let spellings = std::mem::take(&mut self.spellings);
        let mut add = |g: usize, set: &mut dyn Iterator<Item = ScalarValue>| {
            for v in set {
                groups.push(g);
                values.push(v);
            }
        };
        if spellings.is_empty() {
            for (g, set) in sets.into_iter().enumerate() {
                add(g, &mut set.into_iter());
            }
        } else {
            for (g, spelled) in spellings.into_iter().enumerate() {
                add(g, &mut spelled.into_iter());
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
