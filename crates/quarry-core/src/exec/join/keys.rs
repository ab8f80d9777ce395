//! Key values shared by the build side, the probe side and the grace join:
//! integer keys as i64, their hash, NULL keys; checks of columns and cancel.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};

use crate::error::{QuarryError, Result};
use crate::plan::Expr;

/// Fixed seeds, different from the repartitioner's: within one partition all
/// keys share a repartition hash residue, which must not skew this table.
pub(super) fn row_hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(0x5851_f42d, 0x4c95_7f2d, 0x1405_7b7e, 0xf767_814f)
}

/// A strong, cheap mix of an integer key (folded 64×64→128 multiply).
/// How many probe rows ahead a lookup starts loading its table entry: the
/// tables of large build sides miss the cache on almost every probe, and
/// the CPU can wait for several such loads at once.
pub(super) const PREFETCH_AHEAD: usize = 16;

/// Tables up to this size stay in a core's cache: probing them needs no
/// prefetch, which would only cost instructions.
pub(super) const PREFETCH_MIN_BYTES: usize = 2 << 20;

/// The largest key range an integer hash table keeps a bitmap of
/// present keys for (16 MiB of bits). A few million keys from a range of
/// tens of millions are common (the keys left of a large table after a
/// filter); each probe the bitmap turns away saves a cache miss in the
/// table.
pub(super) const PRESENT_MAX_RANGE: u64 = 1 << 27;

/// A bitmap of this many bits (256 KiB) is kept even for a smaller table.
pub(super) const PRESENT_CACHE_BITS: u64 = 1 << 21;

/// A hint to load `x`'s cache line; it changes nothing else.
#[inline(always)]
pub(super) fn prefetch<T>(x: &T) {
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
pub(super) fn hash_i64(k: i64) -> u64 {
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
pub(super) fn key_nulls(keys: &[ArrayRef]) -> Option<NullBuffer> {
    keys.iter().fold(None, |acc, k| {
        NullBuffer::union(acc.as_ref(), k.logical_nulls().as_ref())
    })
}

pub(super) fn check_columns(exprs: &[&Expr], width: usize, what: &str) -> Result<()> {
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
pub(super) fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(QuarryError::Cancelled)
    } else {
        Ok(())
    }
}
