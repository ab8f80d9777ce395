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
//! The files: `hash_table.rs` (the build side), `int_index.rs` (the index
//! of integer keys) and `sorted_index.rs` (of keys compared by inequality),
//! `keys.rs` (key values shared by both sides), `probe.rs` (the operator),
//! `grace.rs` (a build side larger than the memory budget, joined as a grace
//! hash join); the tests are in `tests.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::UInt32Array;
use arrow::buffer::ScalarBuffer;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use super::expr::evaluate_array;
use super::operator::SpillCount;
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

mod grace;
mod hash_table;
mod int_index;
mod keys;
mod probe;
mod sorted_index;
#[cfg(test)]
mod tests;

use grace::Grace;
pub use grace::{build_side, BuildSide, JoinBuild, SpilledBuild};
pub use hash_table::JoinHashTable;
use keys::{check_cancel, key_nulls};
pub(crate) use keys::{int_values, is_int_key};
pub use probe::HashJoinOp;
