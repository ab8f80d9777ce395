//! Hash partitioning of batches by key expressions, for exchanges.

use std::hash::{BuildHasher, Hasher};

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use super::expr::evaluate_array;
use super::timestamp::equality_keys;
use crate::error::Result;
use crate::plan::Expr;

pub struct HashPartitioner {
    keys: Vec<Expr>,
    converter: RowConverter,
    partitions: usize,
    hasher: ahash::RandomState,
}

impl HashPartitioner {
    pub fn new(keys: Vec<Expr>, key_types: Vec<DataType>, partitions: usize) -> Result<Self> {
        let converter = RowConverter::new(key_types.into_iter().map(SortField::new).collect())?;
        Ok(HashPartitioner {
            keys,
            converter,
            partitions,
            // Fixed seeds: every producer task must send a key to the same partition.
            hasher: ahash::RandomState::with_seeds(7, 11, 13, 17),
        })
    }

    /// Splits `batch` into one (possibly empty) batch per partition.
    pub fn split(&self, batch: &RecordBatch) -> Result<Vec<Option<RecordBatch>>> {
        let keys = self
            .keys
            .iter()
            .map(|e| evaluate_array(e, batch))
            .collect::<Result<Vec<_>>>()?;
        // (equal keys to one partition: the join or aggregate there must
        // meet them all, `1 month` with `30 days`)
        let rows = self.converter.convert_columns(&equality_keys(&keys)?)?;
        let mut indices: Vec<Vec<u32>> = vec![Vec::new(); self.partitions];
        for (i, row) in rows.iter().enumerate() {
            let mut h = self.hasher.build_hasher();
            h.write(row.as_ref());
            indices[(h.finish() % self.partitions as u64) as usize].push(i as u32);
        }
        indices
            .into_iter()
            .map(|idx| {
                if idx.is_empty() {
                    Ok(None)
                } else if idx.len() == batch.num_rows() {
                    Ok(Some(batch.clone()))
                } else {
                    Ok(Some(take_record_batch(batch, &UInt32Array::from(idx))?))
                }
            })
            .collect()
    }
}
