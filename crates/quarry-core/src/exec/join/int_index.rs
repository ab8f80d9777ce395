//! The index of integer keys: direct, ranked or hashed, over one key or
//! several packed into one i64.

use std::borrow::Cow;
use std::sync::atomic::AtomicBool;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use super::hash_table::{
    JoinHashTable, KeyIndex, SlotTable, DIRECT_RANGE_FACTOR, DIRECT_SMALL_FACTOR,
    DIRECT_SMALL_RANGE, RANKED_RANGE_FACTOR,
};
use super::keys::{
    check_cancel, hash_i64, int_values, is_int_key, key_nulls, row_hasher, PRESENT_CACHE_BITS,
    PRESENT_MAX_RANGE,
};
use super::sorted_index::sorted_index;
use crate::error::Result;
use crate::exec::key_bitmap::KeyBitmap;
use crate::exec::key_ranks::KeyRanks;
use crate::exec::timestamp::equality_keys;
use crate::plan::BinaryOp;

/// The index of a join table's keys, built from the key arrays alone.
pub(super) struct Indexed {
    pub(super) key_types: Vec<DataType>,
    pub(super) index: KeyIndex,
    pub(super) packing: Option<Packing>,
    pub(super) row_ids: Vec<u32>,
    pub(super) has_null_key: bool,
}

impl Indexed {
    pub(super) fn build(
        key_arrays: &[ArrayRef],
        n: usize,
        range: Option<BinaryOp>,
        cancel: &AtomicBool,
    ) -> Result<Self> {
        // (`lookup` takes the probe keys the same way)
        let key_arrays = &*equality_keys(key_arrays)?;
        let key_types: Vec<DataType> = key_arrays.iter().map(|a| a.data_type().clone()).collect();
        let nulls = key_nulls(key_arrays);
        let null_count = nulls.as_ref().map_or(0, |b| b.null_count());
        let non_null = n - null_count;
        let valid = |i: usize| nulls.as_ref().is_none_or(|b| b.is_valid(i));

        let int_columns = if key_types.iter().all(is_int_key) {
            let columns = key_arrays
                .iter()
                .map(|a| int_values(a.as_ref()))
                .collect::<Result<Vec<_>>>()?;
            Some(columns)
        } else {
            None
        };
        let packing = match &int_columns {
            Some(columns) if columns.len() > 1 => Packing::plan(columns, &valid),
            _ => None,
        };
        let (index, row_ids) = if let Some(op) = range {
            sorted_index(op, key_arrays, non_null, &valid, cancel)?
        } else if key_arrays.is_empty() {
            (KeyIndex::Unit, (0..n as u32).collect())
        } else if let (Some(p), Some(columns)) = (&packing, &int_columns) {
            let (packed, _) = p.pack(columns, n);
            build_int_index(&packed, &valid, non_null, cancel)?
        } else if let Some(columns) = int_columns.as_ref().filter(|c| c.len() == 1) {
            build_int_index(&columns[0], &valid, non_null, cancel)?
        } else {
            let converter = RowConverter::new(
                key_types
                    .iter()
                    .map(|t| SortField::new(t.clone()))
                    .collect(),
            )?;
            let rows = converter.convert_columns(key_arrays)?;
            let hasher = row_hasher();
            let (table, row_ids) = SlotTable::build(
                n,
                |i| {
                    valid(i).then(|| {
                        let h = hasher.hash_one(rows.row(i).as_ref());
                        (h, h)
                    })
                },
                |rep, i| rows.row(rep as usize) == rows.row(i),
                non_null,
            );
            (
                KeyIndex::Rows {
                    converter,
                    rows,
                    table,
                    hasher,
                },
                row_ids,
            )
        };
        Ok(Indexed {
            key_types,
            index,
            packing,
            row_ids,
            has_null_key: null_count > 0,
        })
    }

    pub(super) fn into_table(self, schema: SchemaRef, batch: RecordBatch) -> JoinHashTable {
        JoinHashTable {
            schema,
            batch,
            key_types: self.key_types,
            index: self.index,
            packing: self.packing,
            row_ids: self.row_ids,
            has_null_key: self.has_null_key,
        }
    }
}

/// Several integer keys packed into one non-negative i64: key `k`
/// contributes `(v_k - min_k) << shift_k`, its range taken on the build side.
#[derive(Debug)]
pub(super) struct Packing {
    pub(super) mins: Vec<i64>,
    pub(super) ranges: Vec<u64>,
    pub(super) shifts: Vec<u32>,
}

impl Packing {
    /// A packing of these build key columns, if their ranges fit 63 bits.
    pub(super) fn plan(
        columns: &[Cow<'_, [i64]>],
        valid: &impl Fn(usize) -> bool,
    ) -> Option<Packing> {
        let mut p = Packing {
            mins: vec![],
            ranges: vec![],
            shifts: vec![],
        };
        for col in columns {
            let (mut min, mut max) = (i64::MAX, i64::MIN);
            for (i, &v) in col.iter().enumerate() {
                if valid(i) {
                    min = min.min(v);
                    max = max.max(v);
                }
            }
            if min > max {
                (min, max) = (0, 0);
            }
            p.mins.push(min);
            p.ranges.push(max.wrapping_sub(min) as u64);
        }
        // The key of the widest range takes the high bits, where a coarse
        // bitmap of the packed keys looks (see `build_int_index`).
        let mut by_range: Vec<usize> = (0..columns.len()).collect();
        by_range.sort_by_key(|&k| p.ranges[k]);
        p.shifts = vec![0; columns.len()];
        let mut shift = 0u32;
        for k in by_range {
            p.shifts[k] = shift;
            shift += 64 - p.ranges[k].leading_zeros();
            if shift > 63 {
                return None;
            }
        }
        Some(p)
    }

    /// The packed keys, and which rows have a key outside the build range
    /// (their packed value is meaningless).
    pub(super) fn pack(&self, columns: &[Cow<'_, [i64]>], n: usize) -> (Vec<i64>, Vec<bool>) {
        let mut packed = vec![0i64; n];
        let mut miss = vec![false; n];
        for (k, col) in columns.iter().enumerate() {
            let (min, range, shift) = (self.mins[k], self.ranges[k], self.shifts[k]);
            for ((p, m), &v) in packed.iter_mut().zip(miss.iter_mut()).zip(col.iter()) {
                let d = v.wrapping_sub(min) as u64;
                *m |= d > range;
                *p |= (d << shift) as i64;
            }
        }
        (packed, miss)
    }
}

/// Builds the index of a single (or packed) integer key.
pub(super) fn build_int_index(
    values: &[i64],
    valid: &impl Fn(usize) -> bool,
    non_null: usize,
    cancel: &AtomicBool,
) -> Result<(KeyIndex, Vec<u32>)> {
    let n = values.len();
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for (i, &v) in values.iter().enumerate() {
        if valid(i) {
            min = min.min(v);
            max = max.max(v);
        }
    }
    if non_null == 0 {
        return Ok((KeyIndex::NoKeys, vec![]));
    }
    let range = (max as i128 - min as i128) as u128;
    // Small tables may take a sparser direct table: up to 4 MiB of offsets
    // still sit in cache better than a probe sequence does.
    let sparse_small = (non_null * DIRECT_SMALL_FACTOR).min(DIRECT_SMALL_RANGE);
    let dense_limit = (DIRECT_RANGE_FACTOR * non_null + 1024).max(sparse_small) as u128;
    if range <= dense_limit && range < (u32::MAX / 2) as u128 {
        // Counting sort by key: count at [k+2], prefix sum, then use [k+1] as
        // the insertion cursor of key k; afterwards [k]..[k+1] is k's range.
        let width = range as usize + 1;
        let mut offsets = vec![0u32; width + 2];
        check_cancel(cancel)?;
        for (i, &v) in values.iter().enumerate() {
            if valid(i) {
                offsets[v.wrapping_sub(min) as u64 as usize + 2] += 1;
            }
        }
        check_cancel(cancel)?;
        for j in 1..offsets.len() {
            offsets[j] += offsets[j - 1];
        }
        check_cancel(cancel)?;
        let mut row_ids = vec![0u32; non_null];
        for (i, &v) in values.iter().enumerate() {
            if valid(i) {
                let c = &mut offsets[v.wrapping_sub(min) as u64 as usize + 1];
                row_ids[*c as usize] = i as u32;
                *c += 1;
            }
        }
        offsets.truncate(width + 1);
        return Ok((KeyIndex::Direct { min, offsets }, row_ids));
    }
    if range < RANKED_RANGE_FACTOR * non_null as u128 {
        check_cancel(cancel)?;
        let ranks = KeyRanks::new(min, max, (0..n).filter(|&i| valid(i)).map(|i| values[i]));
        check_cancel(cancel)?;
        // The counting sort of `Direct`, by rank instead of by key.
        let mut offsets = vec![0u32; ranks.distinct() + 2];
        for (i, &v) in values.iter().enumerate() {
            if let Some(r) = ranks.rank(v).filter(|_| valid(i)) {
                offsets[r as usize + 2] += 1;
            }
        }
        for j in 1..offsets.len() {
            offsets[j] += offsets[j - 1];
        }
        check_cancel(cancel)?;
        let mut row_ids = vec![0u32; non_null];
        for (i, &v) in values.iter().enumerate() {
            if let Some(r) = ranks.rank(v).filter(|_| valid(i)) {
                let c = &mut offsets[r as usize + 1];
                row_ids[*c as usize] = i as u32;
                *c += 1;
            }
        }
        offsets.truncate(ranks.distinct() + 1);
        return Ok((KeyIndex::Ranked { ranks, offsets }, row_ids));
    }
    let (table, row_ids) = SlotTable::build(
        n,
        |i| valid(i).then(|| (hash_i64(values[i]), values[i] as u64)),
        |_, _| true,
        non_null,
    );
    // The bitmap is at most as large as the table or a core's share of
    // cache (a small table of sparse keys: Q17's 204 parts of 200 000),
    // and never more than 4 MiB.
    let bitmap_width = (table.bytes() as u64 * 8).clamp(PRESENT_CACHE_BITS, PRESENT_MAX_RANGE);
    let keys = || (0..n).filter(|&i| valid(i)).map(|i| values[i]);
    // Keys of a range too wide for a bit each (packed keys: Q9's part and
    // supplier keys) get a bit per block of keys, in a core's share of cache.
    let present = KeyBitmap::new(min, max, bitmap_width, keys())
        .or_else(|| KeyBitmap::coarse(min, max, PRESENT_CACHE_BITS, keys()));
    Ok((KeyIndex::IntHash { table, present }, row_ids))
}
