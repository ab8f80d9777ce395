//! The build side: a [`JoinHashTable`] of all build rows, indexed by key.

use std::borrow::Cow;
use std::sync::atomic::AtomicBool;

use arrow::array::{new_null_array, Array, ArrayRef, UInt32Array};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows};

use super::int_index::{Indexed, Packing};
use super::keys::{
    check_cancel, check_columns, hash_i64, int_values, is_int_key, key_nulls, prefetch,
    PREFETCH_AHEAD, PREFETCH_MIN_BYTES,
};
use super::probe::{contiguous, take_columns};
use super::sorted_index::range_matches;
use super::NONE;
use crate::error::{QuarryError, Result};
use crate::exec::expr::evaluate_array;
use crate::exec::key_bitmap::KeyBitmap;
use crate::exec::key_ranks::KeyRanks;
use crate::exec::timestamp::equality_keys;
use crate::plan::{BinaryOp, Expr};
use crate::runtime::spill::compact_views;

/// A single integer key uses a direct table when its value range is at most
/// this many times the number of build rows (plus a small constant): at most
/// 48 bytes a row, no more than the 24..48 of the hashed table, and a probe
/// is one load instead of a hash and a probe sequence.
pub(super) const DIRECT_RANGE_FACTOR: usize = 12;
/// ... or, for small build sides, at most this many times the rows, up to
/// `DIRECT_SMALL_RANGE` keys (a join with the 2% of parts that pass a
/// filter probes a direct table of all part keys).
pub(super) const DIRECT_SMALL_FACTOR: usize = 64;
pub(super) const DIRECT_SMALL_RANGE: usize = 1 << 20;
/// Sparser integer keys, over a range up to this many times their number,
/// are indexed by their rank (see `key_ranks`): at most 32 bytes of rank
/// blocks and 4 of offsets a key, against the 24..48 of the hashed table.
pub(super) const RANKED_RANGE_FACTOR: u128 = 128;
/// Rows from which a table of integer keys is copied and indexed on two
/// threads at once (below, a thread's start costs more than it saves).
pub(super) const PARALLEL_BUILD_ROWS: usize = 1 << 16;

/// One distinct key of an open-addressing table: `tag` is the key itself
/// (integer keys) or its 64-bit hash (row keys); its rows are
/// `row_ids[start .. start + len]`. `len == 0` marks an empty slot.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Slot {
    pub(super) tag: u64,
    pub(super) start: u32,
    pub(super) len: u32,
}

#[derive(Debug)]
pub(super) struct SlotTable {
    pub(super) slots: Vec<Slot>,
    pub(super) mask: usize,
}

impl SlotTable {
    /// A table for up to `rows` distinct keys, at most 2/3 full.
    pub(super) fn for_rows(rows: usize) -> Self {
        let cap = (rows + rows / 2 + 1).next_power_of_two().max(16);
        SlotTable {
            slots: vec![Slot::default(); cap],
            mask: cap - 1,
        }
    }

    pub(super) fn bytes(&self) -> usize {
        std::mem::size_of_val(self.slots.as_slice())
    }

    /// Starts loading the first slot a key with this hash looks at.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        prefetch(&self.slots[hash as usize & self.mask]);
    }

    /// The slot of the key with this hash and tag for which `eq` holds.
    #[inline]
    pub(super) fn find(&self, hash: u64, tag: u64, eq: impl Fn(&Slot) -> bool) -> Option<&Slot> {
        let mut pos = hash as usize & self.mask;
        loop {
            let s = &self.slots[pos];
            if s.len == 0 {
                return None;
            }
            if s.tag == tag && eq(s) {
                return Some(s);
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Builds the table and the CSR row list over rows `0..n`. `key(i)` is
    /// `None` for a row with a NULL key (left out), else `(hash, tag)`;
    /// `eq(rep, i)` tells whether rows `rep` and `i` have equal keys given
    /// equal tags.
    pub(super) fn build(
        n: usize,
        key: impl Fn(usize) -> Option<(u64, u64)>,
        eq: impl Fn(u32, usize) -> bool,
        non_null: usize,
    ) -> (SlotTable, Vec<u32>) {
        let mut table = SlotTable::for_rows(non_null);
        let mask = table.mask;
        let mut slot_of = vec![NONE; n];
        // Pass 1: count rows per key; `start` holds a representative row.
        for (i, slot_i) in slot_of.iter_mut().enumerate() {
            let Some((hash, tag)) = key(i) else { continue };
            let mut pos = hash as usize & mask;
            loop {
                let s = &mut table.slots[pos];
                if s.len == 0 {
                    *s = Slot {
                        tag,
                        start: i as u32,
                        len: 1,
                    };
                    break;
                }
                if s.tag == tag && eq(s.start, i) {
                    s.len += 1;
                    break;
                }
                pos = (pos + 1) & mask;
            }
            *slot_i = pos as u32;
        }
        // Pass 2: ranges by prefix sum.
        let mut acc = 0u32;
        for s in table.slots.iter_mut().filter(|s| s.len > 0) {
            s.start = acc;
            acc += s.len;
            s.len = 0;
        }
        // Pass 3: place the rows, ascending within each key.
        let mut row_ids = vec![0u32; acc as usize];
        for (i, &pos) in slot_of.iter().enumerate() {
            if pos != NONE {
                let s = &mut table.slots[pos as usize];
                row_ids[(s.start + s.len) as usize] = i as u32;
                s.len += 1;
            }
        }
        (table, row_ids)
    }

    pub(super) fn memory_size(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

/// The index from key to the range of its rows in `row_ids`.
pub(super) enum KeyIndex {
    /// One key compared with an inequality (`probe_key op build_key`, op
    /// one of `< <= > >=`): `row_ids` is the build rows in key order, so
    /// the matches of a probe key are a prefix or a suffix of it. A probe
    /// batch is looked up in key order, each search going on from where the
    /// last one ended (a piecewise merge join, in effect).
    Sorted {
        op: BinaryOp,
        /// The build key of each row of `row_ids`, in that order (keys
        /// compare as values: the views of strings settle most comparisons).
        sorted: ArrayRef,
    },
    /// No join keys: all build rows form one group.
    Unit,
    /// Integer keys, none of them non-NULL: nothing matches.
    NoKeys,
    /// A single (or packed) integer key of dense range: key `k` owns
    /// `row_ids[offsets[k - min] .. offsets[k - min + 1]]`.
    Direct { min: i64, offsets: Vec<u32> },
    /// A single (or packed) integer key of a sparser range: key `k` owns
    /// `row_ids[offsets[r] .. offsets[r + 1]]`, `r` its rank among the keys.
    Ranked { ranks: KeyRanks, offsets: Vec<u32> },
    /// A single (or packed) integer key, hashed; `tag` is the key. Keys
    /// sparse over a small range also get a bitmap that turns away most
    /// probe keys the table lacks before their probe sequence.
    IntHash {
        table: SlotTable,
        present: Option<KeyBitmap>,
    },
    /// Any keys, as `arrow::row` bytes; `tag` is the hash.
    Rows {
        converter: RowConverter,
        rows: Rows,
        table: SlotTable,
        hasher: ahash::RandomState,
    },
}

/// The build side of a hash join: all right rows (of one partition, or all of
/// them when broadcast), hashed by key.
pub struct JoinHashTable {
    pub(super) schema: SchemaRef,
    /// All build rows, concatenated once.
    pub(super) batch: RecordBatch,
    pub(super) key_types: Vec<DataType>,
    pub(super) index: KeyIndex,
    /// Several integer keys packed into one i64 for `Direct` / `IntHash`.
    pub(super) packing: Option<Packing>,
    /// Build row indices grouped by key (rows with a NULL key left out).
    pub(super) row_ids: Vec<u32>,
    pub(super) has_null_key: bool,
}

impl std::fmt::Debug for JoinHashTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let index = match (&self.index, &self.packing) {
            (KeyIndex::Unit, _) => "unit",
            (KeyIndex::NoKeys, _) => "no keys",
            (KeyIndex::Direct { .. }, None) => "direct",
            (KeyIndex::Direct { .. }, Some(_)) => "packed direct",
            (KeyIndex::Ranked { .. }, None) => "ranked",
            (KeyIndex::Ranked { .. }, Some(_)) => "packed ranked",
            (KeyIndex::IntHash { .. }, None) => "int hash",
            (KeyIndex::IntHash { .. }, Some(_)) => "packed int hash",
            (KeyIndex::Rows { .. }, _) => "row hash",
            (KeyIndex::Sorted { .. }, _) => "sorted",
        };
        f.debug_struct("JoinHashTable")
            .field("rows", &self.batch.num_rows())
            .field("key_types", &self.key_types)
            .field("index", &index)
            .field("has_null_key", &self.has_null_key)
            .finish()
    }
}

/// The rows of a join table as one batch. The pieces of string views each
/// bring their own list of data buffers; every batch taken from the table
/// would copy the whole list (in Q9 at SF 10 that was 1.4 GB): one buffer
/// after compacting.
pub(super) fn table_batch(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    compact_views(concat_batches(schema, batches)?)
}

impl JoinHashTable {
    /// `keys` are expressions over `schema` (the right input's schema).
    pub fn build(schema: SchemaRef, batches: Vec<RecordBatch>, keys: &[Expr]) -> Result<Self> {
        Self::build_cancellable(schema, batches, keys, None, &AtomicBool::new(false))
    }

    /// [`Self::build`], which gives up between its steps once `cancel` is
    /// set: a large build side takes a second or more.
    /// With `range`, the one key is compared with that inequality instead
    /// of `=` (see `KeyIndex::Sorted`).
    pub fn build_cancellable(
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        keys: &[Expr],
        range: Option<BinaryOp>,
        cancel: &AtomicBool,
    ) -> Result<Self> {
        check_columns(
            &keys.iter().collect::<Vec<_>>(),
            schema.fields().len(),
            "a build key",
        )?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows >= NONE as usize {
            return Err(QuarryError::exec(format!(
                "hash join: build side of {rows} rows is too large for one partition"
            )));
        }
        let int_keys = keys
            .iter()
            .map(|k| Ok(is_int_key(&k.data_type(&schema)?)))
            .collect::<Result<Vec<bool>>>()?;
        if range.is_none() && rows >= PARALLEL_BUILD_ROWS && int_keys.iter().all(|&i| i) {
            // A large table of integer keys (most of all a broadcast build,
            // which the other workers wait for): one thread copies the rows
            // into one batch while this one indexes the keys, evaluated
            // batch by batch (their copy, 8 bytes a row, lives only while
            // the index is built).
            return std::thread::scope(|scope| {
                let copy = scope.spawn(|| table_batch(&schema, &batches));
                let key_arrays = keys
                    .iter()
                    .map(|k| {
                        let parts = batches
                            .iter()
                            .map(|b| evaluate_array(k, b))
                            .collect::<Result<Vec<_>>>()?;
                        let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                        Ok(arrow::compute::concat(&parts)?)
                    })
                    .collect::<Result<Vec<_>>>();
                let indexed = key_arrays.and_then(|k| Indexed::build(&k, rows, None, cancel));
                let batch = copy.join().map_err(|_| {
                    QuarryError::exec("internal error: copying a join table's rows panicked")
                })??;
                Ok(indexed?.into_table(schema.clone(), batch))
            });
        }
        let batch = table_batch(&schema, &batches)?;
        drop(batches);
        check_cancel(cancel)?;
        let key_arrays = keys
            .iter()
            .map(|k| evaluate_array(k, &batch))
            .collect::<Result<Vec<_>>>()?;
        check_cancel(cancel)?;
        let indexed = Indexed::build(&key_arrays, batch.num_rows(), range, cancel)?;
        Ok(indexed.into_table(schema, batch))
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Whether some build row has a NULL in a key column.
    pub fn has_null_key(&self) -> bool {
        self.has_null_key
    }

    /// Bytes held: the build rows plus the index.
    pub fn memory_size(&self) -> usize {
        let index = match &self.index {
            KeyIndex::Unit | KeyIndex::NoKeys => 0,
            KeyIndex::Direct { offsets, .. } => offsets.capacity() * 4,
            KeyIndex::Ranked { ranks, offsets } => ranks.bytes() + offsets.capacity() * 4,
            KeyIndex::IntHash { table, present } => {
                table.memory_size() + present.as_ref().map_or(0, KeyBitmap::bytes)
            }
            KeyIndex::Rows { rows, table, .. } => rows.size() + table.memory_size(),
            // (string views point into `batch`, counted above)
            KeyIndex::Sorted { sorted, .. } => match sorted.data_type() {
                DataType::Utf8View | DataType::BinaryView => sorted.len() * 16,
                _ => sorted.get_array_memory_size(),
            },
        };
        self.batch.get_array_memory_size() + self.row_ids.capacity() * 4 + index
    }

    /// For each probe row, the range of its matches in `row_ids` (`len` 0 for
    /// none). Returns which probe rows have a NULL key.
    pub(super) fn lookup(
        &self,
        keys: &[ArrayRef],
        n: usize,
        groups: &mut Vec<(u32, u32)>,
    ) -> Result<Option<NullBuffer>> {
        groups.clear();
        // Intervals equal under `=` are one key (`1 month`, `30 days`).
        let keys = &*equality_keys(keys)?;
        let nulls = key_nulls(keys);
        let nulls = nulls.filter(|b| b.null_count() > 0);
        // Packed keys: rows with a key outside the build side's range miss.
        let mut miss = None;
        let mut int_keys = || -> Result<Cow<'_, [i64]>> {
            match &self.packing {
                None => int_values(keys[0].as_ref()),
                Some(p) => {
                    let columns = keys
                        .iter()
                        .map(|a| int_values(a.as_ref()))
                        .collect::<Result<Vec<_>>>()?;
                    let (packed, m) = p.pack(&columns, n);
                    miss = Some(m);
                    Ok(Cow::Owned(packed))
                }
            }
        };
        match &self.index {
            KeyIndex::Unit => groups.resize(n, (0, self.row_ids.len() as u32)),
            KeyIndex::NoKeys => groups.resize(n, (0, 0)),
            KeyIndex::Direct { min, offsets } => {
                let values = int_keys()?;
                let width = (offsets.len() - 1) as u64;
                let min = *min;
                let far = std::mem::size_of_val(offsets.as_slice()) > PREFETCH_MIN_BYTES;
                let at = |i: usize| values[i].wrapping_sub(min) as u64;
                groups.extend((0..n).map(|i| {
                    if far && i + PREFETCH_AHEAD < n {
                        let d = at(i + PREFETCH_AHEAD);
                        if d < width {
                            prefetch(&offsets[d as usize]);
                        }
                    }
                    let d = at(i);
                    if d < width {
                        let s = offsets[d as usize];
                        (s, offsets[d as usize + 1] - s)
                    } else {
                        (0, 0)
                    }
                }));
            }
            KeyIndex::Ranked { ranks, offsets } => {
                let values = int_keys()?;
                let found = |k: i64| match ranks.rank(k) {
                    Some(r) => {
                        let s = offsets[r as usize];
                        (s, offsets[r as usize + 1] - s)
                    }
                    None => (0, 0),
                };
                if ranks.bytes() + offsets.len() * 4 > PREFETCH_MIN_BYTES {
                    // Two loads a key: its block is fetched ahead. Its
                    // offset is not: that needs the rank computed twice, and
                    // costs more than it saves (Q5 at SF 1 and 10 -4 %,
                    // and no gain with keys in random order).
                    groups.extend((0..n).map(|i| {
                        if let Some(block) = values
                            .get(i + PREFETCH_AHEAD)
                            .and_then(|&k| ranks.block_of(k))
                        {
                            prefetch(block);
                        }
                        found(values[i])
                    }));
                } else {
                    groups.extend(values.iter().map(|&k| found(k)));
                }
            }
            KeyIndex::IntHash { table, present } => {
                let values = int_keys()?;
                let maybe = |k: i64| present.as_ref().is_none_or(|p| p.contains(k));
                let found = |h: u64, k: i64| match table.find(h, k as u64, |_| true) {
                    Some(s) => (s.start, s.len),
                    None => (0, 0),
                };
                if table.bytes() > PREFETCH_MIN_BYTES {
                    // (a key the bitmap turns away is neither hashed nor
                    // loaded; one that passes is hashed twice)
                    groups.extend((0..n).map(|i| {
                        if let Some(&ahead) = values.get(i + PREFETCH_AHEAD) {
                            if maybe(ahead) {
                                table.prefetch(hash_i64(ahead));
                            }
                        }
                        let k = values[i];
                        if maybe(k) {
                            found(hash_i64(k), k)
                        } else {
                            (0, 0)
                        }
                    }));
                } else {
                    groups.extend(values.iter().map(|&k| {
                        if maybe(k) {
                            found(hash_i64(k), k)
                        } else {
                            (0, 0)
                        }
                    }));
                }
            }
            KeyIndex::Sorted { op, sorted } => {
                groups.resize(n, (0, 0));
                range_matches(*op, &keys[0], sorted, groups)?;
            }
            KeyIndex::Rows {
                converter,
                rows,
                table,
                hasher,
            } => {
                let probe = converter.convert_columns(keys)?;
                // Hash first, then probe: independent loads overlap better.
                let hashes: Vec<u64> = probe.iter().map(|r| hasher.hash_one(r.as_ref())).collect();
                let far = table.bytes() > PREFETCH_MIN_BYTES;
                groups.extend(probe.iter().zip(&hashes).enumerate().map(|(i, (row, &h))| {
                    if far {
                        if let Some(&ahead) = hashes.get(i + PREFETCH_AHEAD) {
                            table.prefetch(ahead);
                        }
                    }
                    let bytes = row.as_ref();
                    let found = table.find(h, h, |s| {
                        rows.row(self.row_ids[s.start as usize] as usize).as_ref() == bytes
                    });
                    match found {
                        Some(s) => (s.start, s.len),
                        None => (0, 0),
                    }
                }));
            }
        }
        if groups.len() != n {
            return Err(QuarryError::exec(format!(
                "hash join: {} probe keys for {n} rows",
                groups.len()
            )));
        }
        if let Some(miss) = miss {
            for (g, _) in groups.iter_mut().zip(miss).filter(|(_, m)| *m) {
                *g = (0, 0);
            }
        }
        // A NULL key matches nothing (its value slot may hold anything).
        if let Some(b) = &nulls {
            for i in (0..n).filter(|&i| b.is_null(i)) {
                groups[i] = (0, 0);
            }
        }
        Ok(nulls)
    }

    /// The build columns at `idx`; `NONE` gives a NULL row.
    pub(super) fn take_rows(&self, idx: &[u32]) -> Result<Vec<ArrayRef>> {
        let n = self.batch.num_rows();
        let has_none = idx.contains(&NONE);
        if n == 0 || (has_none && idx.iter().all(|&i| i == NONE)) {
            if idx.iter().any(|&i| i != NONE) {
                return Err(QuarryError::exec("hash join: build row out of range"));
            }
            return Ok(self
                .schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), idx.len()))
                .collect());
        }
        if !has_none {
            if let Some(start) = contiguous(idx) {
                return Ok(self.batch.slice(start, idx.len()).columns().to_vec());
            }
        }
        let indices = if has_none {
            let nulls = NullBuffer::from_iter(idx.iter().map(|&i| i != NONE));
            let values: Vec<u32> = idx.iter().map(|&i| if i == NONE { 0 } else { i }).collect();
            UInt32Array::new(ScalarBuffer::from(values), Some(nulls))
        } else {
            UInt32Array::new(ScalarBuffer::from(idx.to_vec()), None)
        };
        take_columns(self.batch.columns(), &indices)
    }
}
