//! A runtime join filter: before the probe side of a partitioned hash join
//! is sent across the exchange, rows whose key is not among the build
//! side's keys are dropped, since they cannot match. When the build side is
//! small (TPC-H Q4, Q21: a few thousand orders against millions of
//! lineitems) this shrinks the exchange many times over.
//!
//! Only for joins where a probe row without a match produces nothing
//! (inner, semi, right, right semi and right anti joins).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use super::expr::evaluate_array;
use super::group_keys::GroupKeys;
use super::join::{int_values, is_int_key};
use super::key_bitmap::KeyBitmap;
use super::operator::Operator;
use crate::error::Result;
use crate::plan::Expr;

/// One integer key whose values span at most this many also gets a bit per
/// value (8 MiB at most): a probe is then a bit test, not a hash lookup.
const BITMAP_MAX_RANGE: u64 = 1 << 26;

/// The distinct keys of a join's build side.
pub struct KeySet {
    keys: GroupKeys,
    /// For integer key columns of a small range: a bit per value of the
    /// column among the keys. With one key column the bitmap is the set;
    /// with several, a row whose value is absent from one of them cannot
    /// match (TPC-H Q9: a partkey among 10K of 200K), and only the rows
    /// that pass them all are looked up in `keys`.
    bitmaps: Vec<(usize, KeyBitmap)>,
}

impl KeySet {
    pub fn new(key_types: &[DataType]) -> Result<Self> {
        Ok(KeySet {
            keys: GroupKeys::new(key_types)?,
            bitmaps: Vec::new(),
        })
    }

    /// Once every key is in: the bitmaps of its integer key columns.
    pub fn seal(&mut self) -> Result<()> {
        // (a set is only probed from now on: a dense map probes faster)
        self.keys.shrink_to_fit();
        let arrays = self.keys.arrays()?;
        for (column, key) in arrays.iter().enumerate() {
            if !is_int_key(key.data_type()) {
                continue;
            }
            let values = int_values(key.as_ref())?;
            let keys: Vec<i64> = (0..values.len())
                .filter(|&i| key.is_valid(i))
                .map(|i| values[i])
                .collect();
            let (Some(&min), Some(&max)) = (keys.iter().min(), keys.iter().max()) else {
                continue;
            };
            if let Some(bitmap) = KeyBitmap::new(min, max, BITMAP_MAX_RANGE, keys.into_iter()) {
                self.bitmaps.push((column, bitmap));
            }
        }
        Ok(())
    }

    /// Which of `rows` rows of `keys` are among the set's keys; None when
    /// the set cannot tell (keys of other types).
    fn contains(&self, keys: &[ArrayRef], rows: usize) -> Result<Option<BooleanBuffer>> {
        let mut candidates: Option<BooleanBuffer> = None;
        for (column, bitmap) in &self.bitmaps {
            let key = &keys[*column];
            let values = int_values(key.as_ref())?;
            let nulls = key.logical_nulls();
            let found = BooleanBuffer::collect_bool(values.len(), |i| {
                bitmap.contains(values[i]) && nulls.as_ref().is_none_or(|n| n.is_valid(i))
            });
            candidates = Some(match candidates {
                Some(c) => &c & &found,
                None => found,
            });
        }
        match candidates {
            Some(c) if keys.len() == 1 || c.count_set_bits() == 0 => Ok(Some(c)),
            Some(c) => {
                // Looked up: only the rows every bitmap let through.
                let mask = BooleanArray::new(c.clone(), None);
                let some = keys
                    .iter()
                    .map(|k| arrow::compute::filter(k, &mask))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let Some(found) = self.keys.contains(&some, c.count_set_bits())? else {
                    return Ok(None);
                };
                let mut out = arrow::array::BooleanBufferBuilder::new(rows);
                out.append_n(rows, false);
                for (row, found) in c.set_indices().zip(found) {
                    if found {
                        out.set_bit(row, true);
                    }
                }
                Ok(Some(out.finish()))
            }
            None => Ok(self.keys.contains(keys, rows)?.map(BooleanBuffer::from)),
        }
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
        let bitmap: usize = self.bitmaps.iter().map(|(_, b)| b.bytes()).sum();
        self.len() * (self.keys.bytes_per_key() + 32) + bitmap
    }
}

/// After this many rows a key filter that has kept most of them stops
/// testing: the join it serves drops the few it would have.
const KEY_FILTER_TRIAL_ROWS: usize = 64 * 1024;

pub struct KeyFilterOp {
    /// None: the build side was not cheap to read (it spilled, or it is
    /// large), or the filter dropped too few rows, so every row passes.
    set: Option<Arc<KeySet>>,
    probe_keys: Vec<Expr>,
    rows_in: usize,
    rows_kept: usize,
}

impl KeyFilterOp {
    pub fn new(set: Option<Arc<KeySet>>, probe_keys: Vec<Expr>) -> Self {
        KeyFilterOp {
            set,
            probe_keys,
            rows_in: 0,
            rows_kept: 0,
        }
    }
}

impl Operator for KeyFilterOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.rows_in >= KEY_FILTER_TRIAL_ROWS && self.rows_kept * 2 > self.rows_in {
            self.set = None;
        }
        let Some(set) = &self.set else {
            out.push(batch);
            return Ok(());
        };
        let keys = self
            .probe_keys
            .iter()
            .map(|e| evaluate_array(e, &batch))
            .collect::<Result<Vec<_>>>()?;
        let Some(found) = set.contains(&keys, batch.num_rows())? else {
            out.push(batch);
            return Ok(());
        };
        let kept = found.count_set_bits();
        self.rows_in += batch.num_rows();
        self.rows_kept += kept;
        if kept == batch.num_rows() {
            out.push(batch);
        } else if kept > 0 {
            let mask = BooleanArray::new(found, None);
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
        let want: ArrayRef = Arc::new(Int64Array::from(vec![2, 4]));
        let set = Arc::new(set);
        let mut op = KeyFilterOp::new(Some(set.clone()), vec![Expr::Column(0)]);
        let mut out = Vec::new();
        op.push(batch.clone(), &mut out).unwrap();
        assert_eq!(out[0].column(0), &want);
        // The same through the bitmap of a sealed set.
        drop(op);
        let mut sealed = Arc::into_inner(set).unwrap();
        sealed.seal().unwrap();
        assert_eq!(sealed.bitmaps.len(), 1);
        let mut op = KeyFilterOp::new(Some(Arc::new(sealed)), vec![Expr::Column(0)]);
        let mut out = Vec::new();
        op.push(batch.clone(), &mut out).unwrap();
        assert_eq!(out[0].column(0), &want);
        // Without a set everything passes.
        let mut out = Vec::new();
        KeyFilterOp::new(None, vec![Expr::Column(0)])
            .push(batch, &mut out)
            .unwrap();
        assert_eq!(out[0].num_rows(), 4);
    }

    #[test]
    fn rows_of_two_keys_pass_the_column_bitmaps_then_the_lookup() {
        // keys (1, 10), (2, 20): (1, 20) passes both bitmaps but is no key
        let mut set = KeySet::new(&[DataType::Int64, DataType::Int64]).unwrap();
        let build: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Int64Array::from(vec![10, 20])),
        ];
        set.insert(&build, 2).unwrap();
        set.seal().unwrap();
        assert_eq!(set.bitmaps.len(), 2);
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(1),
                    Some(3),
                    None,
                    Some(2),
                ])),
                Arc::new(Int64Array::from(vec![
                    Some(10),
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(20),
                ])),
            ],
        )
        .unwrap();
        let mut op = KeyFilterOp::new(Some(Arc::new(set)), vec![Expr::Column(0), Expr::Column(1)]);
        let mut out = Vec::new();
        op.push(batch, &mut out).unwrap();
        let want: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        assert_eq!(out[0].column(0), &want);
        let want: ArrayRef = Arc::new(Int64Array::from(vec![10, 20]));
        assert_eq!(out[0].column(1), &want);
    }
}
