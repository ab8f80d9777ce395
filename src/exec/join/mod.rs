//! Hash join. The RIGHT input is the build side: all its rows (of one
//! partition, or all of them for a broadcast join) are concatenated into one
//! batch and indexed by key in a [`JoinHashTable`]. The LEFT input is the
//! probe side, streamed batch by batch through a [`HashJoinOp`].
//!
//! The index is laid out CSR-style: the build rows of each distinct key are
//! contiguous in `row_ids`, so a key lookup yields a range `(start, len)` and
//! the matches of a key are read sequentially (no chains to chase). Keys are
//! found through one of:
//! - a *direct* table for a single integer key whose value range is dense
//!   (`offsets[k - min] .. offsets[k - min + 1]`, no hashing at all);
//! - an open-addressing table (linear probing) from a single integer key
//!   (Int8..Int64, UInt8..UInt64, Date32/64, Timestamp → i64);
//! - for several integer keys whose build-side ranges fit 63 bits together,
//!   either of the two above over the keys packed into one i64 (a probe key
//!   outside the build range misses without a lookup);
//! - the same table over the bytes of `arrow::row` rows (any key types, and
//!   composite keys), slots holding the 64-bit hash;
//! - no keys at all: every build row matches every probe row (a cross join,
//!   possibly with a residual filter).
//!
//! Probing is vectorized: a probe batch's keys are looked up in one pass, the
//! ranges expanded into (probe index, build index) pairs in chunks of at most
//! [`MAX_BATCH_ROWS`], the residual filter evaluated on just the columns it
//! reads, and the output gathered with `take` (or sliced when the indices are
//! contiguous).
//!
//! A build side larger than the memory budget is joined as a grace hash
//! join (`grace.rs`); the tests are in `tests.rs`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{
    make_comparator, new_null_array, Array, ArrayRef, AsArray, BooleanArray, UInt32Array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow::compute::{concat_batches, filter_record_batch, sort_to_indices, take, SortOptions};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, Int16Type, Int32Type, Int64Type, Int8Type, Schema,
    SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, Rows, SortField};

use super::expr::{evaluate_array, evaluate_predicate};
use super::key_bitmap::KeyBitmap;
use super::key_ranks::KeyRanks;
use super::operator::{Operator, SpillCount};
use super::timestamp::equality_keys;
use crate::error::{QuarryError, Result};
use crate::plan::{BinaryOp, Expr, JoinKind};
use crate::runtime::memory::batch_bytes;
use crate::runtime::memory::{format_bytes, MemoryPool, Reservation};
use crate::runtime::spill::{compact_views, SpillFile};

/// The most rows a join emits in one batch (and the most candidate pairs it
/// materializes at once while probing).
pub const MAX_BATCH_ROWS: usize = 32 * 1024;

/// "No build row" in a pair (the right side of an unmatched left row).
const NONE: u32 = u32::MAX;

/// A single integer key uses a direct table when its value range is at most
/// this many times the number of build rows (plus a small constant): at most
/// 48 bytes a row, no more than the 24..48 of the hashed table, and a probe
/// is one load instead of a hash and a probe sequence.
const DIRECT_RANGE_FACTOR: usize = 12;
/// ... or, for small build sides, at most this many times the rows, up to
/// `DIRECT_SMALL_RANGE` keys (a join with the 2% of parts that pass a
/// filter probes a direct table of all part keys).
const DIRECT_SMALL_FACTOR: usize = 64;
const DIRECT_SMALL_RANGE: usize = 1 << 20;
/// Sparser integer keys, over a range up to this many times their number,
/// are indexed by their rank (see `key_ranks`): at most 32 bytes of rank
/// blocks and 4 of offsets a key, against the 24..48 of the hashed table.
const RANKED_RANGE_FACTOR: u128 = 128;
/// Rows from which a table of integer keys is copied and indexed on two
/// threads at once (below, a thread's start costs more than it saves).
const PARALLEL_BUILD_ROWS: usize = 1 << 16;

// ---------------------------------------------------------------------------
// Build side
// ---------------------------------------------------------------------------

/// One distinct key of an open-addressing table: `tag` is the key itself
/// (integer keys) or its 64-bit hash (row keys); its rows are
/// `row_ids[start .. start + len]`. `len == 0` marks an empty slot.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    tag: u64,
    start: u32,
    len: u32,
}

#[derive(Debug)]
struct SlotTable {
    slots: Vec<Slot>,
    mask: usize,
}

impl SlotTable {
    /// A table for up to `rows` distinct keys, at most 2/3 full.
    fn for_rows(rows: usize) -> Self {
        let cap = (rows + rows / 2 + 1).next_power_of_two().max(16);
        SlotTable {
            slots: vec![Slot::default(); cap],
            mask: cap - 1,
        }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of_val(self.slots.as_slice())
    }

    /// Starts loading the first slot a key with this hash looks at.
    #[inline]
    fn prefetch(&self, hash: u64) {
        prefetch(&self.slots[hash as usize & self.mask]);
    }

    /// The slot of the key with this hash and tag for which `eq` holds.
    #[inline]
    fn find(&self, hash: u64, tag: u64, eq: impl Fn(&Slot) -> bool) -> Option<&Slot> {
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
    fn build(
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

    fn memory_size(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

/// The index from key to the range of its rows in `row_ids`.
enum KeyIndex {
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
    schema: SchemaRef,
    /// All build rows, concatenated once.
    batch: RecordBatch,
    key_types: Vec<DataType>,
    index: KeyIndex,
    /// Several integer keys packed into one i64 for `Direct` / `IntHash`.
    packing: Option<Packing>,
    /// Build row indices grouped by key (rows with a NULL key left out).
    row_ids: Vec<u32>,
    has_null_key: bool,
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

/// Fixed seeds, different from the repartitioner's: within one partition all
/// keys share a repartition hash residue, which must not skew this table.
fn row_hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(0x5851_f42d, 0x4c95_7f2d, 0x1405_7b7e, 0xf767_814f)
}

/// A strong, cheap mix of an integer key (folded 64×64→128 multiply).
/// How many probe rows ahead a lookup starts loading its table entry: the
/// tables of large build sides miss the cache on almost every probe, and
/// the CPU can wait for several such loads at once.
const PREFETCH_AHEAD: usize = 16;

/// Tables up to this size stay in a core's cache: probing them needs no
/// prefetch, which would only cost instructions.
const PREFETCH_MIN_BYTES: usize = 2 << 20;

/// The largest key range an integer hash table keeps a bitmap of
/// present keys for (16 MiB of bits). A few million keys from a range of
/// tens of millions are common (the keys left of a large table after a
/// filter); each probe the bitmap turns away saves a cache miss in the
/// table.
const PRESENT_MAX_RANGE: u64 = 1 << 27;

/// A bitmap of this many bits (256 KiB) is kept even for a smaller table.
const PRESENT_CACHE_BITS: u64 = 1 << 21;

/// A hint to load `x`'s cache line; it changes nothing else.
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch of a valid reference neither reads nor writes
    // memory as far as the program can see.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (x as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

#[inline]
fn hash_i64(k: i64) -> u64 {
    const MUL: u64 = 0x9e37_79b9_7f4a_7c15;
    const SEED: u64 = 0x2d35_8dcc_aa6c_78a5;
    let m = ((k as u64) ^ SEED) as u128 * MUL as u128;
    (m as u64) ^ ((m >> 64) as u64)
}

/// Whether a key of this type takes the integer fast path.
pub(crate) fn is_int_key(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _)
    )
}

/// The values of an integer-like array as i64 (an injective mapping; UInt64
/// is reinterpreted). Values under NULL slots are arbitrary.
pub(crate) fn int_values(a: &dyn Array) -> Result<Cow<'_, [i64]>> {
    macro_rules! widen {
        ($t:ty) => {
            a.as_primitive_opt::<$t>()
                .map(|p| Cow::Owned(p.values().iter().map(|&v| v as i64).collect()))
        };
    }
    macro_rules! same {
        ($t:ty) => {
            a.as_primitive_opt::<$t>()
                .map(|p| Cow::Borrowed(p.values().as_ref()))
        };
    }
    let values = match a.data_type() {
        DataType::Int8 => widen!(Int8Type),
        DataType::Int16 => widen!(Int16Type),
        DataType::Int32 => widen!(Int32Type),
        DataType::Int64 => same!(Int64Type),
        DataType::UInt8 => widen!(UInt8Type),
        DataType::UInt16 => widen!(UInt16Type),
        DataType::UInt32 => widen!(UInt32Type),
        DataType::UInt64 => widen!(UInt64Type),
        DataType::Date32 => widen!(Date32Type),
        DataType::Date64 => same!(Date64Type),
        DataType::Timestamp(TimeUnit::Second, _) => same!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => same!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => same!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => same!(TimestampNanosecondType),
        _ => None,
    };
    values.ok_or_else(|| {
        QuarryError::exec(format!(
            "hash join: {} is not an integer key type",
            a.data_type()
        ))
    })
}

/// Rows where any key column is NULL.
fn key_nulls(keys: &[ArrayRef]) -> Option<NullBuffer> {
    keys.iter().fold(None, |acc, k| {
        NullBuffer::union(acc.as_ref(), k.logical_nulls().as_ref())
    })
}

fn check_columns(exprs: &[&Expr], width: usize, what: &str) -> Result<()> {
    let mut cols = vec![];
    for e in exprs {
        e.columns(&mut cols);
    }
    match cols.iter().find(|&&c| c >= width) {
        Some(c) => Err(QuarryError::exec(format!(
            "hash join: {what} reads column {c} of an input with {width} columns"
        ))),
        None => Ok(()),
    }
}

/// Ends a long build early once the query is cancelled.
fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(QuarryError::Cancelled)
    } else {
        Ok(())
    }
}

/// The index of a join table's keys, built from the key arrays alone.
struct Indexed {
    key_types: Vec<DataType>,
    index: KeyIndex,
    packing: Option<Packing>,
    row_ids: Vec<u32>,
    has_null_key: bool,
}

impl Indexed {
    fn build(
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

    fn into_table(self, schema: SchemaRef, batch: RecordBatch) -> JoinHashTable {
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

/// The rows of a join table as one batch. The pieces of string views each
/// bring their own list of data buffers; every batch taken from the table
/// would copy the whole list (in Q9 at SF 10 that was 1.4 GB): one buffer
/// after compacting.
fn table_batch(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
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
    fn lookup(
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
    fn take_rows(&self, idx: &[u32]) -> Result<Vec<ArrayRef>> {
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

/// Several integer keys packed into one non-negative i64: key `k`
/// contributes `(v_k - min_k) << shift_k`, its range taken on the build side.
#[derive(Debug)]
struct Packing {
    mins: Vec<i64>,
    ranges: Vec<u64>,
    shifts: Vec<u32>,
}

impl Packing {
    /// A packing of these build key columns, if their ranges fit 63 bits.
    fn plan(columns: &[Cow<'_, [i64]>], valid: &impl Fn(usize) -> bool) -> Option<Packing> {
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
    fn pack(&self, columns: &[Cow<'_, [i64]>], n: usize) -> (Vec<i64>, Vec<bool>) {
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

/// The index of a key compared by inequality: the non-NULL build rows in
/// the order of their key.
fn sorted_index(
    op: BinaryOp,
    key_arrays: &[ArrayRef],
    non_null: usize,
    valid: &impl Fn(usize) -> bool,
    cancel: &AtomicBool,
) -> Result<(KeyIndex, Vec<u32>)> {
    if key_arrays.len() != 1
        || !matches!(
            op,
            BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq
        )
    {
        return Err(QuarryError::exec(format!(
            "internal error: a range join needs one key and an inequality, not {} keys and {}",
            key_arrays.len(),
            op.symbol()
        )));
    }
    let key = key_arrays[0].clone();
    let cmp = make_comparator(key.as_ref(), key.as_ref(), SortOptions::default())?;
    let mut row_ids: Vec<u32> = Vec::with_capacity(non_null);
    row_ids.extend((0..key.len() as u32).filter(|&i| valid(i as usize)));
    sort_ids(&mut row_ids, |a, b| cmp(a as usize, b as usize), cancel)?;
    check_cancel(cancel)?;
    // The keys in their order, so that a search reads memory near the one
    // before it (strings: their views, still pointing into the batch).
    let ids = UInt32Array::new(ScalarBuffer::from(row_ids.clone()), None);
    let sorted = take(key.as_ref(), &ids, None)?;
    Ok((KeyIndex::Sorted { op, sorted }, row_ids))
}

/// For each probe row of `probe` (`groups` has one entry per row), the
/// positions in `sorted` (the build keys in order) of its matches under
/// `probe op key`. Probe rows go in key order, so each search starts where
/// the one before ended and gallops forward, reading mostly what the last
/// search read. NULL keys are left to the caller.
fn range_matches(
    op: BinaryOp,
    probe: &ArrayRef,
    sorted: &ArrayRef,
    groups: &mut [(u32, u32)],
) -> Result<()> {
    let cmp = make_comparator(probe.as_ref(), sorted.as_ref(), SortOptions::default())?;
    let order = sort_to_indices(probe.as_ref(), None, None)?;
    let m = sorted.len();
    // `lower`: build keys < the probe key come first; `upper`: those <= it.
    let (mut lower, mut upper) = (0, 0);
    for i in order.values().iter().map(|&i| i as usize) {
        if probe.is_null(i) {
            continue;
        }
        let (start, end) = match op {
            BinaryOp::Lt | BinaryOp::GtEq => {
                upper = gallop(upper, m, |k| cmp(i, k).is_ge());
                if op == BinaryOp::Lt {
                    (upper, m)
                } else {
                    (0, upper)
                }
            }
            _ => {
                lower = gallop(lower, m, |k| cmp(i, k).is_gt());
                if op == BinaryOp::LtEq {
                    (lower, m)
                } else {
                    (0, lower)
                }
            }
        };
        groups[i] = (start as u32, (end - start) as u32);
    }
    Ok(())
}

/// The first position in `from..len` where `pred` turns false, `pred`
/// being true on a prefix of `0..len`: doubling steps, then a binary
/// search within the last step.
fn gallop(from: usize, len: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut step) = (from, 1);
    while lo + step <= len && pred(lo + step - 1) {
        lo += step;
        step *= 2;
    }
    let mut hi = (lo + step).min(len);
    // invariant: pred holds below lo, and fails at hi (or hi == len)
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Sorts `ids` by `cmp` in runs of `SORT_RUN` ids, then merges the runs two
/// at a time, looking at the cancel flag between runs and every `SORT_RUN`
/// ids merged (one `sort_unstable_by` of tens of millions of strings takes
/// many seconds and cannot be interrupted).
fn sort_ids(
    ids: &mut Vec<u32>,
    cmp: impl Fn(u32, u32) -> std::cmp::Ordering,
    cancel: &AtomicBool,
) -> Result<()> {
    const SORT_RUN: usize = 1 << 20;
    for run in ids.chunks_mut(SORT_RUN) {
        check_cancel(cancel)?;
        run.sort_unstable_by(|&a, &b| cmp(a, b));
    }
    let n = ids.len();
    let mut merged = vec![0u32; n];
    let mut width = SORT_RUN;
    while width < n {
        for start in (0..n).step_by(2 * width) {
            let (mid, end) = ((start + width).min(n), (start + 2 * width).min(n));
            let (mut i, mut j) = (start, mid);
            for (k, out) in merged[start..end].iter_mut().enumerate() {
                if k % SORT_RUN == 0 {
                    check_cancel(cancel)?;
                }
                let take_left = j == end || (i < mid && cmp(ids[i], ids[j]).is_le());
                if take_left {
                    *out = ids[i];
                    i += 1;
                } else {
                    *out = ids[j];
                    j += 1;
                }
            }
        }
        std::mem::swap(ids, &mut merged);
        width *= 2;
    }
    Ok(())
}

/// Builds the index of a single (or packed) integer key.
fn build_int_index(
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

/// `Some(first)` when `idx` is `first, first+1, …` (then a slice will do).
fn contiguous(idx: &[u32]) -> Option<usize> {
    let first = *idx.first()?;
    idx.iter()
        .enumerate()
        .all(|(k, &i)| i as usize == first as usize + k)
        .then_some(first as usize)
}

fn take_columns(columns: &[ArrayRef], indices: &UInt32Array) -> Result<Vec<ArrayRef>> {
    columns
        .iter()
        .map(|c| Ok(take(c.as_ref(), indices, None)?))
        .collect()
}

/// Columns of `batch` at rows `idx` (all valid).
fn take_probe(batch: &RecordBatch, idx: &[u32]) -> Result<Vec<ArrayRef>> {
    match contiguous(idx) {
        Some(start) if start + idx.len() <= batch.num_rows() => {
            if start == 0 && idx.len() == batch.num_rows() {
                Ok(batch.columns().to_vec())
            } else {
                Ok(batch.slice(start, idx.len()).columns().to_vec())
            }
        }
        _ => take_columns(
            batch.columns(),
            &UInt32Array::new(ScalarBuffer::from(idx.to_vec()), None),
        ),
    }
}

/// Appends (probe row, build row) pairs, starting at `cursor` (probe row,
/// offset within its matches), until `probe` holds `limit` pairs or the rows
/// run out. With `unmatched`, a probe row without matches yields `(row, NONE)`.
fn expand(
    groups: &[(u32, u32)],
    row_ids: &[u32],
    cursor: &mut (usize, u32),
    limit: usize,
    unmatched: bool,
    probe: &mut Vec<u32>,
    build: &mut Vec<u32>,
) {
    while cursor.0 < groups.len() && probe.len() < limit {
        let row = cursor.0;
        let (start, len) = groups[row];
        if len == 0 {
            if unmatched {
                probe.push(row as u32);
                build.push(NONE);
            }
            *cursor = (row + 1, 0);
            continue;
        }
        if len == 1 {
            // (a key the build side holds once, the usual case: two pushes,
            // not a call to copy one element and a resize)
            probe.push(row as u32);
            build.push(row_ids[start as usize]);
            *cursor = (row + 1, 0);
            continue;
        }
        let take = (len - cursor.1).min((limit - probe.len()) as u32);
        let s = (start + cursor.1) as usize;
        build.extend_from_slice(&row_ids[s..s + take as usize]);
        probe.resize(probe.len() + take as usize, row as u32);
        cursor.1 += take;
        if cursor.1 == len {
            *cursor = (row + 1, 0);
        }
    }
}

// ---------------------------------------------------------------------------
// Probe side
// ---------------------------------------------------------------------------

/// The residual predicate, rewritten over just the columns it reads.
struct JoinFilter {
    expr: Expr,
    /// Columns of left ++ right that the filter reads, in its new order.
    columns: Vec<usize>,
    schema: SchemaRef,
}

/// A probe batch being joined a part at a time (see `Operator::resume`).
struct PendingProbe {
    batch: RecordBatch,
    /// Per probe row, its range of matches.
    groups: Vec<(u32, u32)>,
    /// Where to go on: probe row, and offset among its matches.
    cursor: (usize, u32),
    /// Left/Full with a filter: which probe rows some pair passed.
    probe_matched: Vec<bool>,
}

/// Candidate pairs a join looks at per call before it hands on what it has:
/// a probe batch against a cross join's build side makes billions.
const PAIRS_PER_STEP: usize = 8 * MAX_BATCH_ROWS;

pub struct HashJoinOp {
    kind: JoinKind,
    table: Arc<JoinHashTable>,
    probe_keys: Vec<Expr>,
    filter: Option<JoinFilter>,
    left_width: usize,
    output_schema: SchemaRef,
    /// Right/Full: which build rows found a match.
    build_matched: Vec<bool>,
    finished: bool,
    /// Scratch: per probe row, its range of matches.
    groups: Vec<(u32, u32)>,
    /// The probe batch whose pairs are not all emitted yet.
    pending: Option<PendingProbe>,
    /// Properties of the whole build side (in grace mode `table` holds one
    /// sub-partition at a time, but mark joins answer for all of it).
    build_has_null_key: bool,
    build_nonempty: bool,
    /// Set when the build side was spilled: the probe side is partitioned
    /// too and joined sub-partition by sub-partition at the finish.
    grace: Option<Box<Grace>>,
    /// What this operator spilled (build and probe sides).
    spilled: SpillCount,
    /// The memory of a table this operator owns alone (a partitioned join);
    /// given back when the operator is dropped.
    _reservation: Option<Reservation>,
    /// See [`HashJoinOp::counting_pairs`].
    count_pairs: bool,
}

impl HashJoinOp {
    /// `probe_keys` are expressions over the left schema, of the same types as the build keys (the planner casts).
    /// `filter` is a residual predicate over the concatenation left ++ right columns (column i < left.len() is left column i,
    /// column left.len()+j is right column j); a pair of rows matches only when the keys are equal AND the filter is true.
    /// `output_schema`: Inner/Left/Right/Full: left fields ++ right fields (fields of the outer side made nullable by the planner);
    /// Semi/Anti: left fields; Mark: left fields ++ one nullable Boolean field.
    pub fn new(
        kind: JoinKind,
        table: Arc<JoinHashTable>,
        probe_keys: Vec<Expr>,
        filter: Option<Expr>,
        left_schema: SchemaRef,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let left_width = left_schema.fields().len();
        let right_width = table.schema.fields().len();
        if probe_keys.len() != table.key_types.len() {
            return Err(QuarryError::exec(format!(
                "hash join: {} probe keys for {} build keys",
                probe_keys.len(),
                table.key_types.len()
            )));
        }
        check_columns(
            &probe_keys.iter().collect::<Vec<_>>(),
            left_width,
            "a probe key",
        )?;
        for (k, build_type) in probe_keys.iter().zip(&table.key_types) {
            let t = k.data_type(&left_schema)?;
            if &t != build_type {
                return Err(QuarryError::exec(format!(
                    "hash join: probe key of type {t} against build key of type {build_type}"
                )));
            }
        }
        let expected = match kind {
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full => {
                left_width + right_width
            }
            JoinKind::Semi | JoinKind::Anti => left_width,
            JoinKind::Mark => left_width + 1,
            JoinKind::RightSemi | JoinKind::RightAnti => right_width,
        };
        if output_schema.fields().len() != expected {
            return Err(QuarryError::exec(format!(
                "hash join: {kind:?} join output has {} columns, expected {expected}",
                output_schema.fields().len()
            )));
        }
        let filter = match filter {
            None => None,
            Some(f) => {
                check_columns(&[&f], left_width + right_width, "the join filter")?;
                let mut columns = vec![];
                f.columns(&mut columns);
                columns.sort_unstable();
                columns.dedup();
                let fields: Vec<Field> = columns
                    .iter()
                    .map(|&c| {
                        let field = if c < left_width {
                            left_schema.field(c)
                        } else {
                            table.schema.field(c - left_width)
                        };
                        field.clone().with_nullable(true)
                    })
                    .collect();
                let pos = |c: usize| columns.binary_search(&c).unwrap_or_default();
                let expr = f.remap_columns(&pos);
                Some(JoinFilter {
                    expr,
                    columns,
                    schema: Arc::new(Schema::new(fields)),
                })
            }
        };
        let build_matched = match kind {
            JoinKind::Right | JoinKind::Full | JoinKind::RightSemi | JoinKind::RightAnti => {
                vec![false; table.num_rows()]
            }
            _ => vec![],
        };
        Ok(HashJoinOp {
            kind,
            build_has_null_key: table.has_null_key,
            build_nonempty: table.num_rows() > 0,
            table,
            probe_keys,
            filter,
            left_width,
            output_schema,
            build_matched,
            finished: false,
            groups: vec![],
            pending: None,
            grace: None,
            spilled: SpillCount::default(),
            _reservation: None,
            count_pairs: false,
        })
    }

    /// For an inner or left join without a residual filter whose columns
    /// nobody reads (a `count(*)` above it): the join emits, per probe
    /// batch, one batch without columns whose row count is its number of
    /// output rows, instead of making them. A join of two large sides can
    /// have more pairs than could ever be made one by one.
    pub fn counting_pairs(mut self) -> Result<Self> {
        if !matches!(self.kind, JoinKind::Inner | JoinKind::Left) || self.filter.is_some() {
            return Err(QuarryError::exec(format!(
                "internal error: only an inner or left join without a filter can count its pairs, not a {:?} join{}",
                self.kind,
                if self.filter.is_some() { " with a filter" } else { "" }
            )));
        }
        self.count_pairs = true;
        self.output_schema = Arc::new(Schema::empty());
        Ok(self)
    }

    fn batch(&self, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
        let opts = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &opts,
        )?)
    }

    /// The joined rows of pairs (probe row, build row or NONE).
    fn gather(&self, probe: &RecordBatch, p: &[u32], b: &[u32]) -> Result<RecordBatch> {
        let mut columns = take_probe(probe, p)?;
        columns.extend(self.table.take_rows(b)?);
        self.batch(columns, p.len())
    }

    /// Which pairs pass the residual filter.
    fn evaluate_filter(
        &self,
        f: &JoinFilter,
        probe: &RecordBatch,
        p: &[u32],
        b: &[u32],
    ) -> Result<BooleanArray> {
        let p_idx = UInt32Array::new(ScalarBuffer::from(p.to_vec()), None);
        let b_idx = UInt32Array::new(ScalarBuffer::from(b.to_vec()), None);
        let columns = f
            .columns
            .iter()
            .map(|&c| {
                Ok(if c < self.left_width {
                    take(probe.column(c).as_ref(), &p_idx, None)?
                } else {
                    take(
                        self.table.batch.column(c - self.left_width).as_ref(),
                        &b_idx,
                        None,
                    )?
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = RecordBatchOptions::new().with_row_count(Some(p.len()));
        let batch = RecordBatch::try_new_with_options(f.schema.clone(), columns, &opts)?;
        evaluate_predicate(&f.expr, &batch)
    }

    /// Inner/Left/Right/Full: emits the joined pairs of the pending probe
    /// batch, going on from where the last call stopped, until about
    /// `PAIRS_PER_STEP` candidate pairs have been looked at. Returns
    /// whether the batch is done.
    fn probe_pairs(
        &self,
        p: &mut PendingProbe,
        build_matched: &mut [bool],
        out: &mut Vec<RecordBatch>,
    ) -> Result<bool> {
        let outer_left = matches!(self.kind, JoinKind::Left | JoinKind::Full);
        let track_build = matches!(self.kind, JoinKind::Right | JoinKind::Full);
        let (batch, groups) = (&p.batch, &p.groups);
        let mut examined = 0;
        let (mut out_p, mut out_b) = (Vec::new(), Vec::new());
        let Some(f) = &self.filter else {
            if self.count_pairs {
                // (this path never stops within a probe row: cursor.1 is 0)
                // (a left join's row without matches is one row)
                let rows = |len: u32| if outer_left { len.max(1) } else { len } as usize;
                let pairs: usize = groups[p.cursor.0..].iter().map(|g| rows(g.1)).sum();
                p.cursor = (groups.len(), 0);
                if pairs > 0 {
                    out.push(self.batch(vec![], pairs)?);
                }
                return Ok(true);
            }
            loop {
                if examined >= PAIRS_PER_STEP {
                    return Ok(false);
                }
                expand(
                    groups,
                    &self.table.row_ids,
                    &mut p.cursor,
                    MAX_BATCH_ROWS,
                    outer_left,
                    &mut out_p,
                    &mut out_b,
                );
                if out_p.is_empty() {
                    return Ok(true);
                }
                examined += out_p.len();
                if track_build {
                    for &b in out_b.iter().filter(|&&b| b != NONE) {
                        build_matched[b as usize] = true;
                    }
                }
                out.push(self.gather(batch, &out_p, &out_b)?);
                out_p.clear();
                out_b.clear();
            }
        };
        let (mut cp, mut cb) = (Vec::new(), Vec::new());
        loop {
            if examined >= PAIRS_PER_STEP {
                if !out_p.is_empty() {
                    out.push(self.gather(batch, &out_p, &out_b)?);
                }
                return Ok(false);
            }
            cp.clear();
            cb.clear();
            expand(
                groups,
                &self.table.row_ids,
                &mut p.cursor,
                MAX_BATCH_ROWS,
                false,
                &mut cp,
                &mut cb,
            );
            if cp.is_empty() {
                break;
            }
            examined += cp.len();
            let mask = self.evaluate_filter(f, batch, &cp, &cb)?;
            for k in mask.values().set_indices() {
                let (pr, b) = (cp[k], cb[k]);
                if outer_left {
                    p.probe_matched[pr as usize] = true;
                }
                if track_build {
                    build_matched[b as usize] = true;
                }
                out_p.push(pr);
                out_b.push(b);
                if out_p.len() == MAX_BATCH_ROWS {
                    out.push(self.gather(batch, &out_p, &out_b)?);
                    out_p.clear();
                    out_b.clear();
                }
            }
        }
        for (i, _) in p.probe_matched.iter().enumerate().filter(|(_, &m)| !m) {
            out_p.push(i as u32);
            out_b.push(NONE);
            if out_p.len() == MAX_BATCH_ROWS {
                out.push(self.gather(batch, &out_p, &out_b)?);
                out_p.clear();
                out_b.clear();
            }
        }
        if !out_p.is_empty() {
            out.push(self.gather(batch, &out_p, &out_b)?);
        }
        Ok(true)
    }

    /// Goes on with the pending probe batch; once it is done, its scratch
    /// space goes back to the operator.
    fn step_pending(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(mut p) = self.pending.take() else {
            return Ok(());
        };
        let mut build_matched = std::mem::take(&mut self.build_matched);
        let done = self.probe_pairs(&mut p, &mut build_matched, out);
        self.build_matched = build_matched;
        if done? {
            self.groups = p.groups;
        } else {
            self.pending = Some(p);
        }
        Ok(())
    }

    /// RightSemi/RightAnti: records which build rows some probe row matches;
    /// the rows are emitted at `finish`.
    fn mark_build_matches(
        &self,
        batch: &RecordBatch,
        groups: &[(u32, u32)],
        build_matched: &mut [bool],
    ) -> Result<()> {
        let Some(f) = &self.filter else {
            for &(start, len) in groups {
                for &b in &self.table.row_ids[start as usize..(start + len) as usize] {
                    build_matched[b as usize] = true;
                }
            }
            return Ok(());
        };
        let mut cursor = (0usize, 0u32);
        let (mut cp, mut cb) = (Vec::new(), Vec::new());
        loop {
            cp.clear();
            cb.clear();
            expand(
                groups,
                &self.table.row_ids,
                &mut cursor,
                MAX_BATCH_ROWS,
                false,
                &mut cp,
                &mut cb,
            );
            if cp.is_empty() {
                return Ok(());
            }
            let mask = self.evaluate_filter(f, batch, &cp, &cb)?;
            for k in mask.values().set_indices() {
                build_matched[cb[k] as usize] = true;
            }
        }
    }

    /// Semi/Anti/Mark: per probe row, whether some build row matches it.
    fn probe_matches(&self, batch: &RecordBatch, groups: &[(u32, u32)]) -> Result<Vec<bool>> {
        let Some(f) = &self.filter else {
            return Ok(groups.iter().map(|&(_, len)| len > 0).collect());
        };
        let mut matched = vec![false; batch.num_rows()];
        let mut cursor = (0usize, 0u32);
        let (mut cp, mut cb) = (Vec::new(), Vec::new());
        loop {
            cp.clear();
            cb.clear();
            // Rows already matched need not be tried again.
            while cursor.0 < matched.len() && matched[cursor.0] && cursor.1 == 0 {
                cursor.0 += 1;
            }
            expand(
                groups,
                &self.table.row_ids,
                &mut cursor,
                MAX_BATCH_ROWS,
                false,
                &mut cp,
                &mut cb,
            );
            if cp.is_empty() {
                return Ok(matched);
            }
            let mask = self.evaluate_filter(f, batch, &cp, &cb)?;
            for k in mask.values().set_indices() {
                matched[cp[k] as usize] = true;
            }
        }
    }

    /// Joins one probe batch; `groups` and `build_matched` are the
    /// operator's own, lent for the call.
    fn probe(
        &self,
        batch: &RecordBatch,
        keys: &[ArrayRef],
        groups: &mut Vec<(u32, u32)>,
        build_matched: &mut [bool],
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let n = batch.num_rows();
        let probe_nulls = self.table.lookup(keys, n, groups)?;
        match self.kind {
            // the pairs are made by `step_pending`
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full => Ok(()),
            JoinKind::Semi => {
                let matched = self.probe_matches(batch, groups)?;
                self.emit_filtered(batch, matched, out)
            }
            JoinKind::Anti => {
                let mut matched = self.probe_matches(batch, groups)?;
                matched.iter_mut().for_each(|m| *m = !*m);
                self.emit_filtered(batch, matched, out)
            }
            JoinKind::RightSemi | JoinKind::RightAnti => {
                self.mark_build_matches(batch, groups, build_matched)
            }
            JoinKind::Mark => {
                let matched = self.probe_matches(batch, groups)?;
                let build_nonempty = self.build_nonempty;
                let validity = if self.build_has_null_key {
                    // Unmatched rows are all NULL.
                    Some(NullBuffer::from(matched.as_slice()))
                } else {
                    match &probe_nulls {
                        Some(pn) if build_nonempty => Some(NullBuffer::from_iter(
                            matched
                                .iter()
                                .enumerate()
                                .map(|(i, &m)| m || pn.is_valid(i)),
                        )),
                        _ => None,
                    }
                };
                let validity = validity.filter(|v| v.null_count() > 0);
                let mark = BooleanArray::new(BooleanBuffer::from(matched), validity);
                let mut columns = batch.columns().to_vec();
                columns.push(Arc::new(mark));
                out.push(self.batch(columns, n)?);
                Ok(())
            }
        }
    }

    /// Joins one probe batch against `table` (the in-memory hot path).
    fn probe_batch(&mut self, batch: &RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let keys = self
            .probe_keys
            .iter()
            .map(|k| evaluate_array(k, batch))
            .collect::<Result<Vec<_>>>()?;
        let mut groups = std::mem::take(&mut self.groups);
        let mut build_matched = std::mem::take(&mut self.build_matched);
        let result = self.probe(batch, &keys, &mut groups, &mut build_matched, out);
        self.build_matched = build_matched;
        result?;
        if matches!(
            self.kind,
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
        ) {
            let filtered_outer =
                self.filter.is_some() && matches!(self.kind, JoinKind::Left | JoinKind::Full);
            self.pending = Some(PendingProbe {
                batch: batch.clone(),
                groups,
                cursor: (0, 0),
                probe_matched: vec![false; if filtered_outer { batch.num_rows() } else { 0 }],
            });
            self.step_pending(out)
        } else {
            self.groups = groups;
            Ok(())
        }
    }

    /// Joins one probe batch whole, handing each part of the output to
    /// `emit` (the grace join's sub-partitions).
    fn probe_batch_into(
        &mut self,
        batch: &RecordBatch,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let mut out = Vec::new();
        self.probe_batch(batch, &mut out)?;
        out.drain(..).try_for_each(&mut *emit)?;
        while self.pending.is_some() {
            self.step_pending(&mut out)?;
            out.drain(..).try_for_each(&mut *emit)?;
        }
        Ok(())
    }

    /// Right/Full: the build rows of `table` that never matched, with NULL
    /// left columns; RightSemi/RightAnti: the (un)matched build rows.
    fn emit_build_rows(&self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if matches!(self.kind, JoinKind::RightSemi | JoinKind::RightAnti) {
            let want = self.kind == JoinKind::RightSemi;
            let rows: Vec<u32> = (0..self.build_matched.len() as u32)
                .filter(|&i| self.build_matched[i as usize] == want)
                .collect();
            for chunk in rows.chunks(MAX_BATCH_ROWS) {
                let columns = self.table.take_rows(chunk)?;
                out.push(self.batch(columns, chunk.len())?);
            }
            return Ok(());
        }
        if !matches!(self.kind, JoinKind::Right | JoinKind::Full) {
            return Ok(());
        }
        let unmatched: Vec<u32> = self
            .build_matched
            .iter()
            .enumerate()
            .filter(|(_, &m)| !m)
            .map(|(i, _)| i as u32)
            .collect();
        for chunk in unmatched.chunks(MAX_BATCH_ROWS) {
            let mut columns: Vec<ArrayRef> = self.output_schema.fields()[..self.left_width]
                .iter()
                .map(|f| new_null_array(f.data_type(), chunk.len()))
                .collect();
            columns.extend(self.table.take_rows(chunk)?);
            out.push(self.batch(columns, chunk.len())?);
        }
        Ok(())
    }

    fn emit_filtered(
        &self,
        batch: &RecordBatch,
        keep: Vec<bool>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let kept = keep.iter().filter(|&&k| k).count();
        if kept == 0 {
            return Ok(());
        }
        let columns = if kept == batch.num_rows() {
            batch.columns().to_vec()
        } else {
            filter_record_batch(batch, &BooleanArray::from(keep))?
                .columns()
                .to_vec()
        };
        out.push(self.batch(columns, kept)?);
        Ok(())
    }
}

impl Operator for HashJoinOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.finished {
            return Err(QuarryError::exec("hash join: push after finish"));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.num_columns() != self.left_width {
            return Err(QuarryError::exec(format!(
                "hash join: probe batch has {} columns, expected {}",
                batch.num_columns(),
                self.left_width
            )));
        }
        if let Some(g) = &mut self.grace {
            // Grace mode: nothing can be joined before the finish.
            return g.push_probe(&batch);
        }
        self.probe_batch(&batch, out)
    }

    fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn resume(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.step_pending(out)
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.finish_into(&mut |b| {
            out.push(b);
            Ok(())
        })
    }

    /// Right/Full (and RightSemi/RightAnti): the build rows that never
    /// matched; in grace mode, the whole join, one sub-partition at a time.
    fn finish_into(&mut self, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if self.grace.is_some() {
            return self.finish_grace(emit);
        }
        let mut out = Vec::new();
        self.emit_build_rows(&mut out)?;
        out.into_iter().try_for_each(emit)
    }

    fn spilled(&self) -> SpillCount {
        self.spilled
    }

    fn is_done(&self) -> bool {
        // Against an empty build side these joins produce nothing more.
        !self.build_nonempty
            && matches!(
                self.kind,
                JoinKind::Inner | JoinKind::Semi | JoinKind::Right | JoinKind::RightSemi
            )
    }
}

mod grace;
#[cfg(test)]
mod tests;

use grace::Grace;
pub use grace::{build_side, BuildSide, JoinBuild, SpilledBuild};
