//! A runtime join filter: before the probe side of a partitioned hash join
//! is sent across the exchange, rows whose key is not among the build
//! side's keys are dropped, since they cannot match. When the build side is
//! small (TPC-H Q4, Q21: a few thousand orders against millions of
//! lineitems) this shrinks the exchange many times over.
//!
//! Only for joins where a probe row without a match produces nothing
//! (inner, semi, right, right semi and right anti joins).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use super::expr::evaluate_array;
use super::group_keys::GroupKeys;
use super::operator::Operator;
use crate::error::Result;
use crate::plan::Expr;

/// The distinct keys of a join's build side.
pub struct KeySet {
    keys: GroupKeys,
}

impl KeySet {
    pub fn new(key_types: &[DataType]) -> Result<Self> {
        Ok(KeySet {
            keys: GroupKeys::new(key_types)?,
        })
    }

    /// Adds the keys of one batch of build rows.
    pub fn insert(&mut self, keys: &[ArrayRef], num_rows: usize) -> Result<()> {
        self.keys.intern(keys, num_rows).map(|_| ())
    }

    pub fn len(&self) -> usize {
        self.keys.num_groups()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the set takes in memory, about.
    pub fn memory_size(&self) -> usize {
        // the key, and the map's slot with its share of empty slots
        self.len() * (self.keys.bytes_per_key() + 32)
    }
}

pub struct KeyFilterOp {
    /// None: the build side was not cheap to read (it spilled, or it is
    /// large), so every row passes.
    set: Option<Arc<KeySet>>,
    probe_keys: Vec<Expr>,
}

impl KeyFilterOp {
    pub fn new(set: Option<Arc<KeySet>>, probe_keys: Vec<Expr>) -> Self {
        KeyFilterOp { set, probe_keys }
    }
}

impl Operator for KeyFilterOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(set) = &self.set else {
            out.push(batch);
            return Ok(());
        };
        let keys = self
            .probe_keys
            .iter()
            .map(|e| evaluate_array(e, &batch))
            .collect::<Result<Vec<_>>>()?;
        let Some(found) = set.keys.contains(&keys, batch.num_rows())? else {
            out.push(batch);
            return Ok(());
        };
        let kept = found.iter().filter(|f| **f).count();
        if kept == batch.num_rows() {
            out.push(batch);
        } else if kept > 0 {
            let mask = BooleanArray::from(found);
            out.push(arrow::compute::filter_record_batch(&batch, &mask)?);
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn drops_rows_whose_key_the_build_side_lacks() {
        let mut set = KeySet::new(&[DataType::Int64]).unwrap();
        set.insert(&[Arc::new(Int64Array::from(vec![2, 4])) as ArrayRef], 2)
            .unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![
                Some(1),
                Some(2),
                None,
                Some(4),
            ]))],
        )
        .unwrap();
        let mut op = KeyFilterOp::new(Some(Arc::new(set)), vec![Expr::Column(0)]);
        let mut out = Vec::new();
        op.push(batch.clone(), &mut out).unwrap();
        let want: ArrayRef = Arc::new(Int64Array::from(vec![2, 4]));
        assert_eq!(out[0].column(0), &want);
        // Without a set everything passes.
        let mut out = Vec::new();
        KeyFilterOp::new(None, vec![Expr::Column(0)])
            .push(batch, &mut out)
            .unwrap();
        assert_eq!(out[0].num_rows(), 4);
    }
}
