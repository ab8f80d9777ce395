//! The keys of a hash aggregate's groups: each distinct key gets a dense
//! group index, in the order the keys were first seen.
//!
//! Keys whose columns are integers, dates, decimals, booleans or strings
//! are packed into 16-byte words per column, plus one word of NULL bits,
//! and hashed and compared as such: several times cheaper than arrow's row
//! format, which every other key goes through. A string of at most 12
//! bytes is its own word (as a string view holds it inline); a longer one
//! is numbered among its column's long strings, each kept once, and its
//! word holds that number.
//!
//! INTERVAL keys go in `canonical` (so that `1 month` and `30 days` are one
//! group, as `=` has them equal) and each group keeps, beside, the spelling
//! its first row had: the one the group shows, as in DuckDB.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, IntervalMonthDayNanoArray,
    PrimitiveArray, StringViewArray,
};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::*;
use arrow::row::{RowConverter, Rows, SortField};

use super::timestamp::{equality_keys, interval_type};
use crate::error::{QuarryError, Result};

/// The longest string kept inline in a string view, and so in a word.
const INLINE_BYTES: usize = 12;

/// The low 32 bits of the word of a longer string (where an inline string
/// has its length, at most 12); its number is in the bits above.
const LONG_TAG: u32 = u32::MAX - 1;

/// Up to this many groups, a key is compared with each group's rather than
/// hashed and looked up.
const FEW_GROUPS: usize = 8;

/// The number of a long string that is not among a column's (a probe for
/// membership); no string is given it.
const ABSENT: u32 = u32::MAX;

/// The strings longer than `INLINE_BYTES` of one key column, each kept
/// once and numbered in the order first seen.
#[derive(Default)]
struct LongStrings {
    map: hashbrown::HashTable<(u64, u32)>,
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl LongStrings {
    fn get(&self, id: u32) -> &[u8] {
        let id = id as usize;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.bytes[start..self.ends[id]]
    }

    fn find(&self, s: &[u8], hash: u64) -> Option<u32> {
        self.map
            .find(hash, |&(h, id)| h == hash && self.get(id) == s)
            .map(|&(_, id)| id)
    }

    /// The number of `s`, given one if it has none yet; None when the
    /// numbers have run out.
    fn intern(&mut self, s: &[u8]) -> Option<u32> {
        let hash = hash_bytes(s);
        if let Some(id) = self.find(s, hash) {
            return Some(id);
        }
        let id = u32::try_from(self.ends.len())
            .ok()
            .filter(|&id| id < LONG_TAG)?;
        self.bytes.extend_from_slice(s);
        self.ends.push(self.bytes.len());
        self.map.insert_unique(hash, (hash, id), |&(h, _)| h);
        Some(id)
    }

    fn size(&self) -> usize {
        self.bytes.len() + 24 * self.ends.len()
    }
}

/// How `pack` treats a long string: numbers it (interning keys), or only
/// looks its number up (testing membership).
enum Long<'a> {
    Intern(&'a mut [LongStrings]),
    Find(&'a [LongStrings]),
}

impl Long<'_> {
    fn word(&mut self, column: usize, s: &[u8]) -> Option<u128> {
        let id = match self {
            Long::Intern(long) => long[column].intern(s)?,
            Long::Find(long) => long[column].find(s, hash_bytes(s)).unwrap_or(ABSENT),
        };
        Some(((id as u128) << 32) | LONG_TAG as u128)
    }
}

#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    group: usize,
}

enum Store {
    /// No GROUP BY: every row is group 0.
    NoKeys,
    /// `width` words per group: one per key column, then the NULL bits if
    /// `null_word` (else a NULL is a word no value has, see `null_marker`).
    Packed {
        words: Vec<u128>,
        width: usize,
        null_word: bool,
        /// Per key column, its long strings.
        long: Vec<LongStrings>,
    },
    Rows {
        converter: RowConverter,
        rows: Rows,
    },
}

pub struct GroupKeys {
    key_types: Vec<DataType>,
    map: hashbrown::HashTable<Slot>,
    store: Store,
    num_groups: usize,
    /// Per INTERVAL key column (none for most keys): its index, and each
    /// group's value as its first row spelled it (the store holds it
    /// `canonical`).
    spellings: Vec<(usize, Vec<Option<IntervalMonthDayNano>>)>,
}

impl GroupKeys {
    pub fn new(key_types: &[DataType]) -> Result<Self> {
        let store = if key_types.is_empty() {
            Store::NoKeys
        } else if key_types.len() < 128 && key_types.iter().all(packable_type) {
            // A decimal may take all 128 bits: only then do NULLs need a
            // word of their own.
            let null_word = key_types
                .iter()
                .any(|t| matches!(t, DataType::Decimal128(_, _)));
            Store::Packed {
                words: Vec::new(),
                width: key_types.len() + null_word as usize,
                null_word,
                long: key_types.iter().map(|_| LongStrings::default()).collect(),
            }
        } else {
            rows_store(key_types)?
        };
        let spellings = key_types
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == interval_type())
            .map(|(c, _)| (c, Vec::new()))
            .collect();
        Ok(GroupKeys {
            key_types: key_types.to_vec(),
            map: hashbrown::HashTable::new(),
            store,
            num_groups: 0,
            spellings,
        })
    }

    pub fn key_types(&self) -> &[DataType] {
        &self.key_types
    }

    /// Whether there are no key columns (no GROUP BY).
    pub fn is_empty(&self) -> bool {
        matches!(self.store, Store::NoKeys)
    }

    pub fn num_groups(&self) -> usize {
        self.num_groups
    }

    /// The bytes one group's key takes, as stored now.
    pub fn bytes_per_key(&self) -> usize {
        let stored = match &self.store {
            Store::NoKeys => 0,
            Store::Packed { width, long, .. } => {
                let long_bytes: usize = long.iter().map(LongStrings::size).sum();
                16 * width + long_bytes / self.num_groups.max(1)
            }
            Store::Rows { rows, .. } => rows.size() / rows.num_rows().max(1),
        };
        stored + self.spellings.len() * size_of::<Option<IntervalMonthDayNano>>()
    }

    /// Gives back the map's room for more groups (once no more will come).
    pub fn shrink_to_fit(&mut self) {
        self.map.shrink_to_fit(|s| s.hash);
    }

    /// The group index of each of the `num_rows` rows of `keys`, making new
    /// groups for keys not seen before.
    pub fn intern(&mut self, keys: &[ArrayRef], num_rows: usize) -> Result<Vec<usize>> {
        if self.spellings.is_empty() {
            return self.intern_keys(keys, num_rows);
        }
        let before = self.num_groups;
        let indices = self.intern_keys(&equality_keys(keys)?, num_rows)?;
        if self.num_groups > before {
            for (c, spelled) in &mut self.spellings {
                let values = keys
                    .get(*c)
                    .and_then(|k| k.as_primitive_opt::<IntervalMonthDayNanoType>())
                    .ok_or_else(|| {
                        QuarryError::exec("internal error: an INTERVAL key column is missing")
                    })?;
                // New groups are numbered in the order their first rows come.
                for (row, &g) in indices.iter().enumerate() {
                    if g == spelled.len() {
                        spelled.push(values.is_valid(row).then(|| values.value(row)));
                    }
                }
            }
        }
        Ok(indices)
    }

    /// `intern` of keys as the store holds them.
    fn intern_keys(&mut self, keys: &[ArrayRef], num_rows: usize) -> Result<Vec<usize>> {
        if let Store::NoKeys = self.store {
            self.num_groups = self.num_groups.max(1);
            return Ok(vec![0; num_rows]);
        }
        if let Store::Packed {
            width,
            null_word,
            long,
            ..
        } = &mut self.store
        {
            let (width, null_word) = (*width, *null_word);
            match pack(keys, num_rows, width, null_word, Long::Intern(long)) {
                Some(batch_words) => return Ok(self.intern_packed(&batch_words, width)),
                None => self.move_to_rows()?,
            }
        }
        self.intern_rows(keys, num_rows)
    }

    fn intern_packed(&mut self, batch_words: &[u128], width: usize) -> Vec<usize> {
        // A width known when compiling lets the compares and the hash of a
        // row unroll: the common keys of one to four words get their own copy.
        match width {
            1 => self.intern_packed_of::<1>(batch_words, width),
            2 => self.intern_packed_of::<2>(batch_words, width),
            3 => self.intern_packed_of::<3>(batch_words, width),
            4 => self.intern_packed_of::<4>(batch_words, width),
            _ => self.intern_packed_of::<0>(batch_words, width),
        }
    }

    /// `intern_packed` for rows of `W` words (0: of `width` words).
    #[inline(always)]
    fn intern_packed_of<const W: usize>(
        &mut self,
        batch_words: &[u128],
        width: usize,
    ) -> Vec<usize> {
        let width = if W > 0 { W } else { width };
        let Store::Packed { words, .. } = &mut self.store else {
            return vec![];
        };
        let mut indices = Vec::with_capacity(batch_words.len() / width);
        make_room(&mut self.map, batch_words.len() / width);
        // Rows often repeat the key of the row before (data sorted or
        // clustered by it): that costs a compare, not a hash and a lookup.
        let mut previous: Option<(&[u128], usize)> = None;
        for row in batch_words.chunks_exact(width) {
            if let Some((key, group)) = previous {
                if key.iter().zip(row).all(|(a, b)| a == b) {
                    indices.push(group);
                    continue;
                }
            }
            if self.num_groups <= FEW_GROUPS {
                // A few groups: comparing with each costs less than a hash
                // and a lookup (a new key still goes into the map).
                let known = words
                    .chunks_exact(width)
                    .position(|key| key.iter().zip(row).all(|(a, b)| a == b));
                if let Some(group) = known {
                    previous = Some((row, group));
                    indices.push(group);
                    continue;
                }
            }
            let hash = hash_words(row);
            let group = match find_packed(&self.map, words, width, row, hash) {
                Some(s) => s.group,
                None => {
                    let group = self.num_groups;
                    self.map
                        .insert_unique(hash, Slot { hash, group }, |s| s.hash);
                    words.extend_from_slice(row);
                    self.num_groups += 1;
                    group
                }
            };
            previous = Some((row, group));
            indices.push(group);
        }
        indices
    }

    fn intern_rows(&mut self, keys: &[ArrayRef], num_rows: usize) -> Result<Vec<usize>> {
        let Store::Rows { converter, rows } = &mut self.store else {
            return Err(QuarryError::exec(
                "internal error: group keys not in row format",
            ));
        };
        let batch_rows = converter.convert_columns(keys)?;
        let mut indices = Vec::with_capacity(num_rows);
        make_room(&mut self.map, num_rows);
        for row in batch_rows.iter() {
            let bytes = row.as_ref();
            let hash = hash_bytes(bytes);
            let group = match find_row(&self.map, rows, bytes, hash) {
                Some(s) => s.group,
                None => {
                    let group = self.num_groups;
                    self.map
                        .insert_unique(hash, Slot { hash, group }, |s| s.hash);
                    rows.push(row);
                    self.num_groups += 1;
                    group
                }
            };
            indices.push(group);
        }
        Ok(indices)
    }

    /// For each of the `num_rows` rows of `keys` (of the key types), whether
    /// it is one of the keys seen; None when that cannot be told cheaply
    /// (keys of other types than the table's in row format).
    pub fn contains(&self, keys: &[ArrayRef], num_rows: usize) -> Result<Option<Vec<bool>>> {
        let keys = &*equality_keys(keys)?;
        match &self.store {
            Store::NoKeys => Ok(None),
            Store::Packed {
                words,
                width,
                null_word,
                long,
            } => {
                let width = *width;
                let Some(probe) = pack(keys, num_rows, width, *null_word, Long::Find(long)) else {
                    return Ok(None);
                };
                Ok(Some(
                    probe
                        .chunks_exact(width)
                        .map(|row| {
                            find_packed(&self.map, words, width, row, hash_words(row)).is_some()
                        })
                        .collect(),
                ))
            }
            Store::Rows { converter, rows } => {
                let same_types = keys
                    .iter()
                    .zip(&self.key_types)
                    .all(|(k, t)| k.data_type() == t);
                if !same_types {
                    return Ok(None);
                }
                let probe = converter.convert_columns(keys)?;
                Ok(Some(
                    probe
                        .iter()
                        .map(|row| {
                            let bytes = row.as_ref();
                            find_row(&self.map, rows, bytes, hash_bytes(bytes)).is_some()
                        })
                        .collect(),
                ))
            }
        }
    }

    /// Moves packed groups to the row format, keeping their indices.
    fn move_to_rows(&mut self) -> Result<()> {
        let arrays = self.stored_arrays()?;
        let mut store = rows_store(&self.key_types)?;
        self.map = hashbrown::HashTable::new();
        if let Store::Rows { converter, rows } = &mut store {
            converter.append(rows, &arrays)?;
            for (group, row) in rows.iter().enumerate() {
                let hash = hash_bytes(row.as_ref());
                self.map
                    .insert_unique(hash, Slot { hash, group }, |s| s.hash);
            }
        }
        self.store = store;
        Ok(())
    }

    /// The key columns of all groups, in group order, of the key types
    /// (an interval as the group's first row spelled it).
    pub fn arrays(&self) -> Result<Vec<ArrayRef>> {
        let mut arrays = self.stored_arrays()?;
        for (c, spelled) in &self.spellings {
            let column: IntervalMonthDayNanoArray = spelled.iter().copied().collect();
            arrays[*c] = Arc::new(column);
        }
        Ok(arrays)
    }

    /// The key columns as the store holds them (intervals `canonical`).
    fn stored_arrays(&self) -> Result<Vec<ArrayRef>> {
        match &self.store {
            Store::NoKeys => Ok(vec![]),
            Store::Packed {
                words,
                width,
                null_word,
                long,
            } => self
                .key_types
                .iter()
                .enumerate()
                .map(|(c, t)| unpack(words, *width, *null_word, c, t, &long[c]))
                .collect(),
            Store::Rows { converter, rows } => Ok(converter.convert_rows(rows.iter())?),
        }
    }

    /// Forgets every group.
    pub fn clear(&mut self) -> Result<()> {
        *self = GroupKeys::new(&self.key_types)?;
        Ok(())
    }
}

/// The slot of the packed key `row` (of `width` words) among `words`.
#[inline(always)]
/// Before a batch of `rows` keys into a map of many groups: room for all of
/// them to be new, the map grown four times over while it is below
/// `QUADRUPLE_BELOW` groups. Each growth moves every slot: growing by four,
/// a map that ends with n groups moved n/3 slots in all rather than n.
/// (The table's reservation counts twice the slots of its groups, which
/// covers a map a quarter full just after growing.)
fn make_room(map: &mut hashbrown::HashTable<Slot>, rows: usize) {
    const MANY_GROUPS: usize = 1024;
    const QUADRUPLE_BELOW: usize = 1 << 20;
    let len = map.len();
    if len < MANY_GROUPS || map.capacity() - len >= rows {
        return;
    }
    let more = if len < QUADRUPLE_BELOW { 3 * len } else { len };
    map.reserve(more.max(rows), |s| s.hash);
}

fn find_packed<'a>(
    map: &'a hashbrown::HashTable<Slot>,
    words: &[u128],
    width: usize,
    row: &[u128],
    hash: u64,
) -> Option<&'a Slot> {
    // (zip rather than slice ==, which calls memcmp for a few words)
    map.find(hash, |s| {
        s.hash == hash
            && words[s.group * width..(s.group + 1) * width]
                .iter()
                .zip(row)
                .all(|(a, b)| a == b)
    })
}

/// The slot of the key in row format `bytes` among `rows`.
fn find_row<'a>(
    map: &'a hashbrown::HashTable<Slot>,
    rows: &Rows,
    bytes: &[u8],
    hash: u64,
) -> Option<&'a Slot> {
    map.find(hash, |s| {
        s.hash == hash && rows.row(s.group).as_ref() == bytes
    })
}

fn rows_store(key_types: &[DataType]) -> Result<Store> {
    let converter = RowConverter::new(key_types.iter().cloned().map(SortField::new).collect())?;
    let rows = converter.empty_rows(0, 0);
    Ok(Store::Rows { converter, rows })
}

fn packable_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(TimeUnit::Microsecond, _)
            | DataType::Decimal128(_, _)
            | DataType::Utf8
            | DataType::Utf8View
    )
}

/// The word of a NULL where there is no word of NULL bits: an integer's
/// word is its sign extension, and a string's length is at most 12, so
/// neither can equal it.
fn null_marker(t: &DataType) -> u128 {
    match t {
        DataType::Utf8 | DataType::Utf8View => u32::MAX as u128,
        _ => 1 << 100,
    }
}

/// The rows of `keys` as `width` words each; None if a column's type is
/// not packed or long strings can be numbered no more.
fn pack(
    keys: &[ArrayRef],
    n: usize,
    width: usize,
    null_word: bool,
    mut long: Long<'_>,
) -> Option<Vec<u128>> {
    let mut words = vec![0u128; n * width];
    for (c, a) in keys.iter().enumerate() {
        let nulls = a.logical_nulls();
        let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
        let mut put = |i: usize, w: u128| words[i * width + c] = w;
        macro_rules! ints {
            ($t:ty) => {
                for (i, v) in a.as_primitive::<$t>().values().iter().enumerate() {
                    put(i, *v as i128 as u128);
                }
            };
        }
        match a.data_type() {
            DataType::Int8 => ints!(Int8Type),
            DataType::Int16 => ints!(Int16Type),
            DataType::Int32 => ints!(Int32Type),
            DataType::Int64 => ints!(Int64Type),
            DataType::UInt8 => ints!(UInt8Type),
            DataType::UInt16 => ints!(UInt16Type),
            DataType::UInt32 => ints!(UInt32Type),
            DataType::UInt64 => ints!(UInt64Type),
            DataType::Date32 => ints!(Date32Type),
            DataType::Date64 => ints!(Date64Type),
            DataType::Timestamp(TimeUnit::Microsecond, _) => ints!(TimestampMicrosecondType),
            DataType::Decimal128(_, _) => ints!(Decimal128Type),
            DataType::Boolean => {
                for (i, v) in a.as_boolean().values().iter().enumerate() {
                    put(i, v as u128);
                }
            }
            DataType::Utf8View => {
                let strings = a.as_string_view();
                for (i, &view) in strings.views().iter().enumerate() {
                    let len = view as u32 as usize;
                    if len > INLINE_BYTES {
                        if valid(i) {
                            put(i, long.word(c, strings.value(i).as_bytes())?);
                        }
                        continue;
                    }
                    // Only the length and the string's own bytes count.
                    let bits = 32 + 8 * len;
                    put(
                        i,
                        if bits == 128 {
                            view
                        } else {
                            view & ((1u128 << bits) - 1)
                        },
                    );
                }
            }
            DataType::Utf8 => {
                let s = a.as_string::<i32>();
                for i in 0..n {
                    let v = s.value(i).as_bytes();
                    if v.len() > INLINE_BYTES {
                        if valid(i) {
                            put(i, long.word(c, v)?);
                        }
                        continue;
                    }
                    put(i, inline_word(v));
                }
            }
            _ => return None,
        }
        if let Some(nulls) = &nulls {
            let marker = null_marker(a.data_type());
            for i in (0..n).filter(|&i| nulls.is_null(i)) {
                if null_word {
                    words[i * width + c] = 0;
                    words[i * width + width - 1] |= 1 << c;
                } else {
                    words[i * width + c] = marker;
                }
            }
        }
    }
    Some(words)
}

/// A string of at most 12 bytes as a string view holds it inline: the
/// length in the low 32 bits, then the bytes.
fn inline_word(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    b[4..4 + bytes.len()].copy_from_slice(bytes);
    u128::from_le_bytes(b)
}

/// Calls `f` with the string of a valid word of a string column.
fn with_word_str<R>(w: u128, long: &LongStrings, f: impl FnOnce(&str) -> R) -> Result<R> {
    let inline = w.to_le_bytes();
    let bytes = if w as u32 == LONG_TAG {
        long.get((w >> 32) as u32)
    } else {
        &inline[4..4 + (w as u32 as usize).min(INLINE_BYTES)]
    };
    let s = std::str::from_utf8(bytes)
        .map_err(|e| QuarryError::exec(format!("internal error: {e}")))?;
    Ok(f(s))
}

/// Hands the string of each word of a string column to `append`, None
/// for a NULL.
fn each_string(
    words: impl Iterator<Item = u128>,
    validity: &[bool],
    long: &LongStrings,
    mut append: impl FnMut(Option<&str>),
) -> Result<()> {
    for (w, &valid) in words.zip(validity) {
        if valid {
            with_word_str(w, long, |s| append(Some(s)))?;
        } else {
            append(None);
        }
    }
    Ok(())
}

/// Column `c` of packed `words` as an array of type `t`.
fn unpack(
    words: &[u128],
    width: usize,
    null_word: bool,
    c: usize,
    t: &DataType,
    long: &LongStrings,
) -> Result<ArrayRef> {
    let column = || words.iter().skip(c).step_by(width).copied();
    let validity: Vec<bool> = if null_word {
        let null_bits = words.iter().skip(width - 1).step_by(width);
        null_bits.map(|b| b & (1 << c) == 0).collect()
    } else {
        let marker = null_marker(t);
        column().map(|w| w != marker).collect()
    };
    let nulls = Some(NullBuffer::from(validity.clone())).filter(|n| n.null_count() > 0);
    fn ints<T: ArrowPrimitiveType>(
        values: impl Iterator<Item = u128>,
        nulls: Option<NullBuffer>,
        t: &DataType,
    ) -> ArrayRef
    where
        T::Native: FromWord,
    {
        let values: ScalarBuffer<T::Native> = values.map(T::Native::from_word).collect();
        Arc::new(PrimitiveArray::<T>::new(values, nulls).with_data_type(t.clone()))
    }
    Ok(match t {
        DataType::Int8 => ints::<Int8Type>(column(), nulls, t),
        DataType::Int16 => ints::<Int16Type>(column(), nulls, t),
        DataType::Int32 => ints::<Int32Type>(column(), nulls, t),
        DataType::Int64 => ints::<Int64Type>(column(), nulls, t),
        DataType::UInt8 => ints::<UInt8Type>(column(), nulls, t),
        DataType::UInt16 => ints::<UInt16Type>(column(), nulls, t),
        DataType::UInt32 => ints::<UInt32Type>(column(), nulls, t),
        DataType::UInt64 => ints::<UInt64Type>(column(), nulls, t),
        DataType::Date32 => ints::<Date32Type>(column(), nulls, t),
        DataType::Date64 => ints::<Date64Type>(column(), nulls, t),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            ints::<TimestampMicrosecondType>(column(), nulls, t)
        }
        DataType::Decimal128(_, _) => ints::<Decimal128Type>(column(), nulls, t),
        DataType::Boolean => Arc::new(BooleanArray::new(column().map(|w| w != 0).collect(), nulls)),
        DataType::Utf8View if u32::try_from(long.bytes.len()).is_ok() => {
            Arc::new(string_views(column(), &validity, nulls, long))
        }
        DataType::Utf8View => {
            let mut out = arrow::array::StringViewBuilder::new();
            each_string(column(), &validity, long, |s| out.append_option(s))?;
            Arc::new(out.finish())
        }
        DataType::Utf8 => {
            let mut out = arrow::array::StringBuilder::new();
            each_string(column(), &validity, long, |s| out.append_option(s))?;
            Arc::new(out.finish())
        }
        other => {
            return Err(QuarryError::exec(format!(
                "internal error: {other} keys are not packed"
            )))
        }
    })
}

/// The string column of `words` as views: an inline string's word is its
/// view; a long string's view points into one buffer that holds the
/// column's long strings (whose offsets must fit 32 bits), each once
/// however many groups have it. Neither is copied string by string nor
/// checked again for UTF-8.
fn string_views(
    words: impl Iterator<Item = u128>,
    validity: &[bool],
    nulls: Option<NullBuffer>,
    long: &LongStrings,
) -> StringViewArray {
    let views: ScalarBuffer<u128> = words
        .zip(validity)
        .map(|(w, &valid)| {
            if !valid {
                0
            } else if w as u32 == LONG_TAG {
                let id = (w >> 32) as u32 as usize;
                let start = if id == 0 { 0 } else { long.ends[id - 1] };
                let bytes = &long.bytes[start..long.ends[id]];
                let prefix = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                // length, first 4 bytes, buffer 0, offset
                bytes.len() as u128 | (prefix as u128) << 32 | (start as u128) << 96
            } else {
                w
            }
        })
        .collect();
    let buffers = if long.bytes.is_empty() {
        vec![]
    } else {
        vec![arrow::buffer::Buffer::from_slice_ref(&long.bytes)]
    };
    // SAFETY: an inline word is the length and bytes of a valid string as
    // its view held them (its padding zeroed by `pack`), a long string's
    // bytes were copied from a valid `&str`, and each long view holds their
    // length, first bytes and place in the one buffer (which `unpack`'s
    // match guard checked fits 32-bit offsets).
    unsafe { StringViewArray::new_unchecked(views, buffers, nulls) }
}

/// The native value back from its word (the inverse of `as i128 as u128`).
trait FromWord {
    fn from_word(w: u128) -> Self;
}

macro_rules! from_word {
    ($($t:ty),*) => {$(
        impl FromWord for $t {
            fn from_word(w: u128) -> Self {
                w as i128 as $t
            }
        }
    )*};
}
from_word!(i8, i16, i32, i64, u8, u16, u32, u64, i128);

/// A multiply whose high half is folded into the low: the mixing step of
/// the packed keys' hash.
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
fn hash_words(words: &[u128]) -> u64 {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xbf58_476d_1ce4_e5b9;
    let mut h = K2;
    for &w in words {
        h = fold_mul(h ^ w as u64, K1);
        h = fold_mul(h ^ (w >> 64) as u64, K2);
    }
    h
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    static STATE: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
    STATE
        .get_or_init(|| ahash::RandomState::with_seeds(1, 2, 3, 4))
        .hash_one(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray};

    fn strings(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringViewArray::from(v.to_vec()))
    }

    #[test]
    fn packed_keys_with_nulls_come_back_as_they_went_in() {
        let types = vec![
            DataType::Int64,
            DataType::Utf8View,
            DataType::Date32,
            DataType::Decimal128(15, 2),
            DataType::Utf8,
            DataType::Boolean,
        ];
        let mut keys = GroupKeys::new(&types).unwrap();
        let batch: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(1), None, Some(1), Some(-5)])),
            strings(&[Some("A"), Some("B"), Some("A"), None]),
            Arc::new(Date32Array::from(vec![Some(10), Some(10), Some(10), None])),
            Arc::new(
                Decimal128Array::from(vec![Some(-12345), Some(0), Some(-12345), None])
                    .with_precision_and_scale(15, 2)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(vec![
                Some("x"),
                None,
                Some("x"),
                Some(""),
            ])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                Some(true),
                None,
            ])),
        ];
        assert_eq!(keys.intern(&batch, 4).unwrap(), vec![0, 1, 0, 2]);
        let out = keys.arrays().unwrap();
        for (c, (got, input)) in out.iter().zip(&batch).enumerate() {
            assert_eq!(got.data_type(), &types[c]);
            let want = arrow::compute::take(
                input.as_ref(),
                &arrow::array::UInt32Array::from(vec![0, 1, 3]),
                None,
            )
            .unwrap();
            assert_eq!(got.as_ref(), want.as_ref(), "column {c}");
        }
    }

    #[test]
    fn nulls_without_a_word_of_null_bits() {
        let types = vec![DataType::Utf8View, DataType::Int64, DataType::Utf8];
        let mut keys = GroupKeys::new(&types).unwrap();
        let batch: Vec<ArrayRef> = vec![
            strings(&[None, Some(""), None, Some("")]),
            Arc::new(Int64Array::from(vec![None, Some(0), None, None])),
            Arc::new(StringArray::from(vec![None, Some(""), None, Some("")])),
        ];
        assert_eq!(keys.intern(&batch, 4).unwrap(), vec![0, 1, 0, 2]);
        let out = keys.arrays().unwrap();
        for (got, input) in out.iter().zip(&batch) {
            let want = arrow::compute::take(
                input.as_ref(),
                &arrow::array::UInt32Array::from(vec![0, 1, 3]),
                None,
            )
            .unwrap();
            assert_eq!(got.as_ref(), want.as_ref());
        }
    }

    #[test]
    fn long_strings_are_numbered_and_come_back_as_they_went_in() {
        let types = vec![DataType::Utf8View, DataType::Int32, DataType::Utf8];
        let mut keys = GroupKeys::new(&types).unwrap();
        let long = "a string longer than twelve";
        let other = "another string of more than twelve bytes";
        let first: Vec<ArrayRef> = vec![
            strings(&[Some("short"), Some(long), Some("short"), Some(long)]),
            Arc::new(Int32Array::from(vec![1, 2, 1, 2])),
            Arc::new(StringArray::from(vec![
                Some(other),
                None,
                Some(other),
                Some("x"),
            ])),
        ];
        assert_eq!(keys.intern(&first, 4).unwrap(), vec![0, 1, 0, 2]);
        let second: Vec<ArrayRef> = vec![
            strings(&[Some(long), None, Some("short"), Some(other)]),
            Arc::new(Int32Array::from(vec![2, 2, 1, 2])),
            Arc::new(StringArray::from(vec![None, None, Some(other), Some(long)])),
        ];
        assert_eq!(keys.intern(&second, 4).unwrap(), vec![1, 3, 0, 4]);
        assert!(matches!(keys.store, Store::Packed { .. }));
        let out = keys.arrays().unwrap();
        let want: Vec<ArrayRef> = vec![
            strings(&[Some("short"), Some(long), Some(long), None, Some(other)]),
            Arc::new(Int32Array::from(vec![1, 2, 2, 2, 2])),
            Arc::new(StringArray::from(vec![
                Some(other),
                None,
                Some("x"),
                None,
                Some(long),
            ])),
        ];
        for (c, (got, want)) in out.iter().zip(&want).enumerate() {
            assert_eq!(got.as_ref(), want.as_ref(), "column {c}");
            // the views built without checks are what arrow would accept
            got.to_data().validate_full().unwrap();
        }
    }

    #[test]
    fn runs_of_one_key_and_returns_to_an_earlier_one() {
        let mut keys = GroupKeys::new(&[DataType::Int64, DataType::Utf8View]).unwrap();
        let batch: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 1, 2, 2, 1, 3, 3, 3])),
            Arc::new(StringViewArray::from(vec![
                "a", "a", "a", "a", "a", "a", "a", "b",
            ])),
        ];
        assert_eq!(keys.intern(&batch, 8).unwrap(), [0, 0, 1, 1, 0, 2, 2, 3]);
        // a batch that starts with the key the last one ended with
        assert_eq!(keys.intern(&batch, 8).unwrap(), [0, 0, 1, 1, 0, 2, 2, 3]);
    }

    #[test]
    fn membership_of_packed_and_row_keys() {
        let mut keys = GroupKeys::new(&[DataType::Int64]).unwrap();
        let build: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![3, 5, 3]))];
        keys.intern(&build, 3).unwrap();
        let probe: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![Some(5), Some(4), None]))];
        assert_eq!(
            keys.contains(&probe, 3).unwrap(),
            Some(vec![true, false, false])
        );
        let mut keys = GroupKeys::new(&[DataType::Utf8View]).unwrap();
        keys.intern(&[strings(&[Some("a string longer than twelve")])], 1)
            .unwrap();
        let probe = strings(&[
            Some("a string longer than twelve"),
            Some("b"),
            Some("a string longer than twelve, and more"),
            None,
        ]);
        assert_eq!(
            keys.contains(&[probe], 4).unwrap(),
            Some(vec![true, false, false, false])
        );
        // looking up a long string does not number it
        assert_eq!(keys.num_groups(), 1);
        assert_eq!(keys.bytes_per_key(), 16 + 27 + 24);
    }

    #[test]
    fn equal_intervals_are_one_group_spelled_as_first_met() {
        use crate::exec::timestamp::parse_interval;
        let iv = |s: &str| Some(parse_interval(s).unwrap());
        let ivs = |v: Vec<Option<IntervalMonthDayNano>>| -> ArrayRef {
            Arc::new(IntervalMonthDayNanoArray::from(v))
        };
        let types = [interval_type(), DataType::Int64];
        let mut keys = GroupKeys::new(&types).unwrap();
        let first: Vec<ArrayRef> = vec![
            ivs(vec![
                iv("30 days"),
                iv("1 month"),
                None,
                iv("24 hours"),
                None,
            ]),
            Arc::new(Int64Array::from(vec![1, 1, 1, 1, 1])),
        ];
        assert_eq!(keys.intern(&first, 5).unwrap(), vec![0, 0, 1, 2, 1]);
        let second: Vec<ArrayRef> = vec![
            ivs(vec![
                iv("1 day"),
                iv("720 hours"),
                iv("25 hours"),
                iv("1 day"),
            ]),
            Arc::new(Int64Array::from(vec![2, 1, 1, 1])),
        ];
        assert_eq!(keys.intern(&second, 4).unwrap(), vec![3, 0, 4, 2]);
        let out = keys.arrays().unwrap();
        let want = ivs(vec![
            iv("30 days"),
            None,
            iv("24 hours"),
            iv("1 day"),
            iv("25 hours"),
        ]);
        assert_eq!(out[0].as_ref(), want.as_ref());
        let probe: Vec<ArrayRef> = vec![
            ivs(vec![iv("1 month"), iv("1 month"), None, iv("1 day 1 hour")]),
            Arc::new(Int64Array::from(vec![1, 2, 1, 1])),
        ];
        assert_eq!(
            keys.contains(&probe, 4).unwrap(),
            Some(vec![true, false, true, true])
        );
        keys.clear().unwrap();
        assert_eq!(keys.intern(&second, 4).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(keys.arrays().unwrap()[0].len(), 4);
    }

    #[test]
    fn strings_that_differ_only_past_their_length_are_one_key() {
        // Two views of "ab" whose unused inline bytes differ.
        let clean = StringViewArray::from(vec!["ab"]);
        let mut view = clean.views()[0];
        view |= 0xff << 100;
        let dirty =
            unsafe { StringViewArray::new_unchecked(ScalarBuffer::from(vec![view]), vec![], None) };
        let mut keys = GroupKeys::new(&[DataType::Utf8View]).unwrap();
        assert_eq!(
            keys.intern(&[Arc::new(clean) as ArrayRef], 1).unwrap(),
            vec![0]
        );
        assert_eq!(
            keys.intern(&[Arc::new(dirty) as ArrayRef], 1).unwrap(),
            vec![0]
        );
    }
}
