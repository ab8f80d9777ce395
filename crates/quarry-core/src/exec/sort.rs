//! Sorting a partition.
//!
//! ORDER BY without LIMIT is an external sort: input is buffered under the
//! memory budget; when the budget refuses more, the buffer is sorted and
//! written to spill files as a sorted run, and at the end the runs are
//! merged k ways (in several passes when the budget cannot hold a batch of
//! every run at once). With `fetch` (top-k) the buffer is cut back to k rows
//! whenever it grows large, all in memory.
//!
//! Ties: a buffer is sorted with `lexsort_to_indices`, which is not stable,
//! as before; the merge breaks ties by run order (earlier input first), so
//! it adds no reordering of its own.

use arrow::array::{Array, ArrayRef};
use arrow::compute::{
    concat, interleave, lexsort_to_indices, take_record_batch, SortColumn, SortOptions,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, Rows, SortField};

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

use super::expr::evaluate_array;
use super::operator::{Operator, SpillCount};
use super::timestamp::order_key;
use crate::error::{QuarryError, Result};
use crate::plan::{Expr, SortKey};
use crate::runtime::memory::{array_bytes, batch_bytes, MemoryPool, Reservation};
use crate::runtime::spill::{compact_views, SpillFile};

/// Rows per batch of a run and of the output, at most. Fewer when rows are
/// wide and the budget small (see `chunk_rows_for`).
const MAX_CHUNK_ROWS: usize = 8192;
const MIN_CHUNK_ROWS: usize = 64;
/// A sort buffers at most 1/SHARE of the budget (and a merge reserves at
/// most that much) before it spills, so that the tasks running beside it
/// (other sorts, the partition store) still get memory to make progress.
const SHARE: usize = 4;
/// A buffer of more rows than this is sorted in pieces of about this many
/// rows, merged after: one `lexsort_to_indices` cannot be interrupted, and
/// 30 million strings take it half a minute, so between pieces the sort
/// looks at the cancel flag (a piece of strings takes well under a second).
const PIECE_ROWS: usize = 1 << 20;
/// Output batches a sort of the buffer holds at once: the one being built
/// and a run's file segment (`SEGMENT_BATCHES`) being filled.
const OUTPUT_CHUNKS: usize = 1 + SEGMENT_BATCHES;
/// A top-k sort cuts its buffer back to k rows when it holds this much.
const TOP_K_BYTES: usize = 256 << 20;

pub struct SortOp {
    keys: Vec<SortKey>,
    fetch: Option<usize>,
    schema: SchemaRef,
    buffered: Vec<RecordBatch>,
    /// The sort keys of each buffered batch (without fetch).
    buffered_keys: Vec<Vec<ArrayRef>>,
    buffered_rows: usize,
    /// Memory size of the buffered batches.
    buffered_bytes: usize,
    /// The buffered rows and the working memory to sort them, counted
    /// against the budget.
    reservation: Reservation,
    memory: Arc<MemoryPool>,
    temp_dir: PathBuf,
    /// Sorted runs spilled so far, in input order.
    runs: Vec<Run>,
    /// Rows per batch written to runs and emitted.
    chunk_rows: usize,
    spilled: SpillCount,
    /// Merge passes that wrote longer runs (not counting the final one).
    merge_passes: usize,
    /// The query's cancel flag, looked at between the long steps.
    cancel: Arc<AtomicBool>,
    /// `PIECE_ROWS`, smaller in tests.
    piece_rows: usize,
}

impl SortOp {
    pub fn new(
        keys: Vec<SortKey>,
        fetch: Option<usize>,
        schema: SchemaRef,
        memory: &Arc<MemoryPool>,
        temp_dir: &Path,
    ) -> Self {
        let owner = if fetch.is_some() {
            "a top-k sort"
        } else {
            "a sort"
        };
        SortOp {
            keys,
            fetch,
            schema,
            buffered: vec![],
            buffered_keys: vec![],
            buffered_rows: 0,
            buffered_bytes: 0,
            reservation: Reservation::new(memory, owner),
            memory: memory.clone(),
            temp_dir: temp_dir.to_path_buf(),
            runs: vec![],
            chunk_rows: MAX_CHUNK_ROWS,
            spilled: SpillCount::default(),
            merge_passes: 0,
            cancel: Arc::default(),
            piece_rows: PIECE_ROWS,
        }
    }

    /// Stops at the next step when `cancel` is set.
    pub fn with_cancel(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = cancel;
        self
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(AtomicOrdering::Relaxed) {
            return Err(QuarryError::Cancelled);
        }
        Ok(())
    }

    /// Sorts everything buffered so far into one batch (cut to `fetch`):
    /// the sort keys of the batches are sorted together, and only the rows
    /// kept are copied out of their batches (all of them together may hold
    /// more text than one array can).
    fn sort_buffered(&mut self) -> Result<RecordBatch> {
        let batches = std::mem::take(&mut self.buffered);
        let columns = self
            .keys
            .iter()
            .map(|k| {
                let parts = batches
                    .iter()
                    .map(|b| order_key(&evaluate_array(&k.expr, b)?))
                    .collect::<Result<Vec<_>>>()?;
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                Ok(SortColumn {
                    values: concat(&refs)?,
                    options: Some(sort_options(k)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let indices = lexsort_to_indices(&columns, self.fetch)?;
        let pairs = batch_rows(&batches, indices.values());
        let sources: Vec<&RecordBatch> = batches.iter().collect();
        let sorted = interleave_batch(&self.schema, &sources, &pairs)?;
        self.buffered_rows = sorted.num_rows();
        self.buffered_bytes = batch_bytes(&sorted);
        Ok(sorted)
    }

    /// Top-k: each batch cut to its own first k rows as it comes, and the
    /// buffer cut back to k rows when it grows large (in rows or bytes).
    fn push_top_k(&mut self, batch: RecordBatch, k: usize) -> Result<()> {
        let batch = match batch.num_rows() > k {
            true => sort_batch(&batch, &self.keys, Some(k))?,
            false => batch,
        };
        let bytes = batch_bytes(&batch);
        self.reservation.grow(bytes)?;
        self.buffered_rows += batch.num_rows();
        self.buffered_bytes += bytes;
        self.buffered.push(batch);
        if self.buffered_rows > (8 * k).max(65_536) || self.buffered_bytes > TOP_K_BYTES {
            let top = self.sort_buffered()?;
            self.reservation.free();
            self.reservation.grow(batch_bytes(&top))?;
            self.buffered.push(top);
        }
        Ok(())
    }

    /// Rows per output batch for rows of `row_bytes`: at most 1/64 of the
    /// sort's share of the budget, so that a merge can hold batches of
    /// about twenty runs at once.
    fn chunk_rows_for(&self, row_bytes: usize) -> usize {
        (self.memory.limit() / SHARE / 64 / row_bytes.max(1)).clamp(MIN_CHUNK_ROWS, MAX_CHUNK_ROWS)
    }

    /// Memory for one batch of rows of `row_bytes`.
    fn chunk_bytes(&self, row_bytes: usize) -> usize {
        self.chunk_rows_for(row_bytes) * row_bytes
    }

    /// What sorting a batch needs beyond the batch itself: a copy of its
    /// keys (concatenated for lexsort), keys that are computed rather than
    /// columns of the batch, and the sorted indices.
    fn key_bytes(&self, keys: &[ArrayRef], rows: usize) -> usize {
        let copies: usize = keys
            .iter()
            .zip(&self.keys)
            .map(|(a, k)| {
                let size = array_bytes(a.as_ref());
                match k.expr {
                    Expr::Column(_) => size,
                    _ => 2 * size,
                }
            })
            .sum();
        copies + 4 * rows
    }

    /// Sorts the buffer and hands it on in batches of `chunk_rows`, then
    /// empties the buffer and gives back its memory.
    fn sort_buffer_into(&mut self, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        let batches = std::mem::take(&mut self.buffered);
        let per_batch = std::mem::take(&mut self.buffered_keys);
        let rows = std::mem::take(&mut self.buffered_rows);
        let bytes = std::mem::take(&mut self.buffered_bytes);
        if rows == 0 {
            self.reservation.free();
            return Ok(());
        }
        self.chunk_rows = self.chunk_rows_for(bytes / rows);
        // Reserved batch by batch in `push`, with the output batches sized
        // from the first batch; row sizes vary, so check.
        let need = bytes
            + per_batch
                .iter()
                .zip(&batches)
                .map(|(k, b)| self.key_bytes(k, b.num_rows()))
                .sum::<usize>()
            + OUTPUT_CHUNKS * self.chunk_bytes(bytes / rows);
        if need > self.reservation.size() {
            self.reservation.grow(need - self.reservation.size())?;
        }

        if rows <= self.piece_rows {
            sort_piece(
                &self.schema,
                &self.keys,
                &batches,
                per_batch,
                self.chunk_rows,
                emit,
            )?;
        } else {
            // Each piece is sorted into a run held in memory, its input
            // let go as soon as it is sorted; then the runs are merged.
            let mut runs = Vec::new();
            let mut inputs = batches.into_iter().zip(per_batch).peekable();
            while inputs.peek().is_some() {
                self.check_cancel()?;
                let (mut piece, mut piece_keys, mut piece_rows) = (vec![], vec![], 0);
                while piece_rows < self.piece_rows {
                    let Some((b, k)) = inputs.next() else { break };
                    piece_rows += b.num_rows();
                    piece.push(b);
                    piece_keys.push(k);
                }
                let mut run = Run::default();
                sort_piece(
                    &self.schema,
                    &self.keys,
                    &piece,
                    piece_keys,
                    self.chunk_rows,
                    &mut |b| {
                        run.max_chunk_bytes = run.max_chunk_bytes.max(batch_bytes(&b));
                        run.batches.push(b);
                        Ok(())
                    },
                )?;
                runs.push(run);
            }
            self.merge(&runs, emit)?;
        }
        self.reservation.free();
        Ok(())
    }

    /// The k-way merge of sorted `runs` into `emit`.
    fn merge(&self, runs: &[Run], emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        merge(
            runs,
            &self.keys,
            &self.schema,
            self.chunk_rows,
            &self.cancel,
            emit,
        )
    }

    /// Sorts the buffer and writes it as a sorted run.
    fn spill_buffer(&mut self) -> Result<()> {
        let mut writer = RunWriter::new(&self.temp_dir, &self.schema);
        self.sort_buffer_into(&mut |b| writer.push(b))?;
        let run = writer.finish()?;
        run.count_into(&mut self.spilled);
        self.runs.push(run);
        Ok(())
    }

    /// Merges the runs into `emit`, first into fewer, longer runs while the
    /// budget cannot hold a batch of each.
    fn merge_runs(&mut self, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        loop {
            let mut mem = Reservation::new(&self.memory, "a sort merging spilled runs");
            let per_run = self.runs.iter().map(Run::merge_bytes).max().unwrap_or(0);
            let out_bytes = self
                .runs
                .iter()
                .map(|r| r.max_chunk_bytes)
                .max()
                .unwrap_or(0);
            // The output batch, and the segment of a longer run being written.
            mem.grow(OUTPUT_CHUNKS * out_bytes)?;
            let mut fan_in = 0;
            while fan_in < self.runs.len()
                && mem.size() + per_run <= self.memory.limit() / SHARE
                && mem.try_grow(per_run)
            {
                fan_in += 1;
            }
            if fan_in < 2 {
                // Too little memory for a merge: fails, naming the limit.
                mem.grow((2 - fan_in) * per_run)?;
                fan_in = 2;
            }
            if fan_in >= self.runs.len() {
                let runs = std::mem::take(&mut self.runs);
                return self.merge(&runs, emit);
            }
            // One pass: consecutive groups of runs into one run each, so
            // that runs stay in input order.
            let mut longer = Vec::with_capacity(self.runs.len().div_ceil(fan_in));
            let mut rest = std::mem::take(&mut self.runs).into_iter().peekable();
            while rest.peek().is_some() {
                let group: Vec<Run> = rest.by_ref().take(fan_in).collect();
                if group.len() == 1 {
                    longer.extend(group);
                    continue;
                }
                let mut writer = RunWriter::new(&self.temp_dir, &self.schema);
                self.merge(&group, &mut |b| writer.push(b))?;
                let run = writer.finish()?;
                run.count_into(&mut self.spilled);
                longer.push(run);
                // `group` dropped here: its files are removed.
            }
            self.runs = longer;
            self.merge_passes += 1;
        }
    }
}

/// The order of the rows of `columns`. Several keys, or a string key, are
/// compared in arrow's row format (each row's keys as one byte string):
/// `lexsort`'s per-column comparators cost several times more per compare
/// (Q16's 18K rows by four keys, three of them strings).
fn sorted_indices(columns: &[SortColumn]) -> Result<arrow::array::UInt32Array> {
    let by_rows = columns.len() > 1
        || columns
            .iter()
            .any(|c| matches!(c.values.data_type(), DataType::Utf8 | DataType::Utf8View));
    if !by_rows {
        return Ok(lexsort_to_indices(columns, None)?);
    }
    let fields = columns
        .iter()
        .map(|c| {
            let options = c.options.unwrap_or_default();
            SortField::new_with_options(c.values.data_type().clone(), options)
        })
        .collect();
    let values: Vec<ArrayRef> = columns.iter().map(|c| c.values.clone()).collect();
    let rows = RowConverter::new(fields)?.convert_columns(&values)?;
    let mut indices: Vec<u32> = (0..rows.num_rows() as u32).collect();
    // stable: rows with equal keys keep their input order (lexsort does
    // not promise that)
    indices.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    Ok(indices.into())
}

/// Sorts `batches` (whose sort keys are `keys_per_batch`) and hands the
/// rows on in sorted batches of `chunk_rows`.
fn sort_piece(
    schema: &SchemaRef,
    keys: &[SortKey],
    batches: &[RecordBatch],
    keys_per_batch: Vec<Vec<ArrayRef>>,
    chunk_rows: usize,
    emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let columns = (0..keys.len())
        .map(|i| {
            let arrays: Vec<&dyn Array> = keys_per_batch.iter().map(|k| k[i].as_ref()).collect();
            Ok(SortColumn {
                values: concat(&arrays)?,
                options: Some(sort_options(&keys[i])),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    drop(keys_per_batch);
    let indices = sorted_indices(&columns)?;
    drop(columns);

    let sources: Vec<&RecordBatch> = batches.iter().collect();
    for chunk in indices.values().chunks(chunk_rows) {
        emit(interleave_batch(
            schema,
            &sources,
            &batch_rows(batches, chunk),
        )?)?;
    }
    Ok(())
}

/// Rows of the concatenation of `batches`, as (batch, row in it).
fn batch_rows(batches: &[RecordBatch], rows: &[u32]) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = batches
        .iter()
        .scan(0, |acc, b| {
            let s = *acc;
            *acc += b.num_rows();
            Some(s)
        })
        .collect();
    rows.iter()
        .map(|&g| {
            let g = g as usize;
            let b = starts.partition_point(|&s| s <= g) - 1;
            (b, g - starts[b])
        })
        .collect()
}

fn sort_options(k: &SortKey) -> SortOptions {
    SortOptions {
        descending: !k.asc,
        nulls_first: k.nulls_first,
    }
}

/// Rows picked from `sources` by (batch, row) into one batch of `schema`.
fn interleave_batch(
    schema: &SchemaRef,
    sources: &[&RecordBatch],
    pairs: &[(usize, usize)],
) -> Result<RecordBatch> {
    let columns = (0..schema.fields().len())
        .map(|i| {
            let arrays: Vec<&dyn Array> = sources.iter().map(|b| b.column(i).as_ref()).collect();
            Ok(interleave(&arrays, pairs)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = RecordBatchOptions::new().with_row_count(Some(pairs.len()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &opts,
    )?)
}

pub fn sort_batch(
    batch: &RecordBatch,
    keys: &[SortKey],
    fetch: Option<usize>,
) -> Result<RecordBatch> {
    if batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let columns = keys
        .iter()
        .map(|k| {
            Ok(SortColumn {
                values: order_key(&evaluate_array(&k.expr, batch)?)?,
                options: Some(sort_options(k)),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let indices = lexsort_to_indices(&columns, fetch)?;
    Ok(take_record_batch(batch, &indices)?)
}

/// A sorted run: its batches in order, held in memory (a piece of a sort
/// of the buffer) or over one or more spill files (a file is written
/// whenever a segment of batches is full, so that writing a run never holds
/// the whole run in memory).
#[derive(Default)]
struct Run {
    batches: Vec<RecordBatch>,
    files: Vec<SpillFile>,
    /// The largest batch in the run, to size a merge's memory.
    max_chunk_bytes: usize,
}

impl Run {
    /// What merging this run holds at most: its current batch, one batch
    /// it has moved past but the output still points into, and the sort
    /// keys of the current batch in row format.
    fn merge_bytes(&self) -> usize {
        3 * self.max_chunk_bytes
    }

    fn count_into(&self, count: &mut SpillCount) {
        for f in &self.files {
            count.add(f);
        }
    }
}

struct RunWriter {
    dir: PathBuf,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    files: Vec<SpillFile>,
    max_chunk_bytes: usize,
}

/// Batches per spill file of a run (`SpillFile::write` takes them all at
/// once, so a run is written as a sequence of files of this many batches).
const SEGMENT_BATCHES: usize = 8;

impl RunWriter {
    fn new(dir: &Path, schema: &SchemaRef) -> Self {
        RunWriter {
            dir: dir.to_path_buf(),
            schema: schema.clone(),
            pending: vec![],
            pending_rows: 0,
            files: vec![],
            max_chunk_bytes: 0,
        }
    }

    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.max_chunk_bytes = self.max_chunk_bytes.max(batch_bytes(&batch));
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending.len() >= SEGMENT_BATCHES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending_rows > 0 {
            let file = SpillFile::write(&self.dir, &self.schema, &self.pending)?;
            self.files.push(file);
        }
        self.pending.clear();
        self.pending_rows = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<Run> {
        self.flush()?;
        Ok(Run {
            batches: vec![],
            files: std::mem::take(&mut self.files),
            max_chunk_bytes: self.max_chunk_bytes,
        })
    }
}

/// Reads one run batch by batch, with the sort keys of the current batch in
/// row format.
struct Cursor<'a> {
    run: &'a Run,
    next_batch: usize,
    next_file: usize,
    reader: Option<Box<dyn Iterator<Item = Result<RecordBatch>>>>,
    rows: Option<Rows>,
    pos: usize,
    /// Index of the current batch in the merge's `sources`.
    source: usize,
}

impl<'a> Cursor<'a> {
    fn new(run: &'a Run) -> Self {
        Cursor {
            run,
            next_batch: 0,
            next_file: 0,
            reader: None,
            rows: None,
            pos: 0,
            source: 0,
        }
    }

    /// The next non-empty batch of the run, None at its end.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while let Some(b) = self.run.batches.get(self.next_batch) {
            self.next_batch += 1;
            if b.num_rows() > 0 {
                return Ok(Some(b.clone()));
            }
        }
        loop {
            if let Some(reader) = &mut self.reader {
                match reader.next() {
                    Some(b) => {
                        let b = b?;
                        if b.num_rows() > 0 {
                            return Ok(Some(b));
                        }
                        continue;
                    }
                    None => self.reader = None,
                }
            }
            let Some(file) = self.run.files.get(self.next_file) else {
                return Ok(None);
            };
            self.reader = Some(Box::new(file.reader()?));
            self.next_file += 1;
        }
    }

    fn row(&self) -> arrow::row::Row<'_> {
        // `rows` is set whenever the cursor is in the heap.
        self.rows
            .as_ref()
            .expect("cursor has a batch")
            .row(self.pos)
    }
}

/// The k-way merge of sorted `runs` into batches of `chunk_rows` rows.
struct Merge<'a> {
    keys: &'a [SortKey],
    converter: Option<RowConverter>,
    cursors: Vec<Cursor<'a>>,
    /// Batches the pending output rows point into.
    sources: Vec<RecordBatch>,
    /// Batches in `sources` no cursor reads any more.
    retired: usize,
    pending: Vec<(usize, usize)>,
    /// Cursor indices, a binary min-heap by (current row, cursor index).
    heap: Vec<usize>,
}

fn merge(
    runs: &[Run],
    keys: &[SortKey],
    schema: &SchemaRef,
    chunk_rows: usize,
    cancel: &AtomicBool,
    emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut m = Merge {
        keys,
        converter: None,
        cursors: runs.iter().map(Cursor::new).collect(),
        sources: vec![],
        retired: 0,
        pending: Vec::with_capacity(chunk_rows),
        heap: Vec::with_capacity(runs.len()),
    };
    for c in 0..m.cursors.len() {
        if m.load(c)? {
            m.heap.push(c);
            let last = m.heap.len() - 1;
            m.sift_up(last);
        }
    }
    while let Some(&top) = m.heap.first() {
        let cur = &mut m.cursors[top];
        m.pending.push((cur.source, cur.pos));
        cur.pos += 1;
        if cur.pos == cur.rows.as_ref().map_or(0, |r| r.num_rows()) {
            m.retired += 1;
            if !m.load(top)? {
                let last = m.heap.pop().unwrap_or(top);
                if !m.heap.is_empty() {
                    m.heap[0] = last;
                }
            }
        }
        if !m.heap.is_empty() {
            m.sift_down(0);
        }
        // Flush when the batch is full, and also when many batches are
        // held only for it, which bounds the merge's memory.
        if m.pending.len() >= chunk_rows || m.retired >= m.cursors.len() {
            if cancel.load(AtomicOrdering::Relaxed) {
                return Err(QuarryError::Cancelled);
            }
            m.flush(schema, emit)?;
        }
    }
    m.flush(schema, emit)
}

impl Merge<'_> {
    /// Moves cursor `c` to its run's next batch; false at the run's end.
    fn load(&mut self, c: usize) -> Result<bool> {
        let Some(batch) = self.cursors[c].next_batch()? else {
            self.cursors[c].rows = None;
            return Ok(false);
        };
        let keys = self
            .keys
            .iter()
            .map(|k| order_key(&evaluate_array(&k.expr, &batch)?))
            .collect::<Result<Vec<_>>>()?;
        if self.converter.is_none() {
            let fields = keys
                .iter()
                .zip(self.keys)
                .map(|(a, k)| SortField::new_with_options(a.data_type().clone(), sort_options(k)))
                .collect();
            self.converter = Some(RowConverter::new(fields)?);
        }
        let converter = self.converter.as_ref().expect("just set");
        let cursor = &mut self.cursors[c];
        cursor.rows = Some(converter.convert_columns(&keys)?);
        cursor.pos = 0;
        cursor.source = self.sources.len();
        self.sources.push(batch);
        Ok(true)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (ca, cb) = (&self.cursors[a], &self.cursors[b]);
        // Equal keys: the earlier run first (its rows came first).
        ca.row().cmp(&cb.row()).then(a.cmp(&b)) == Ordering::Less
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(self.heap[i], self.heap[parent]) {
                break;
            }
            self.heap.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.less(self.heap[l], self.heap[least]) {
                least = l;
            }
            if r < self.heap.len() && self.less(self.heap[r], self.heap[least]) {
                least = r;
            }
            if least == i {
                return;
            }
            self.heap.swap(i, least);
            i = least;
        }
    }

    /// Emits the pending rows and lets go of the batches only they used.
    fn flush(
        &mut self,
        schema: &SchemaRef,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        if !self.pending.is_empty() {
            let sources: Vec<&RecordBatch> = self.sources.iter().collect();
            let batch = interleave_batch(schema, &sources, &self.pending)?;
            self.pending.clear();
            emit(batch)?;
        }
        let old = std::mem::take(&mut self.sources);
        for &c in &self.heap {
            let cursor = &mut self.cursors[c];
            self.sources.push(old[cursor.source].clone());
            cursor.source = self.sources.len() - 1;
        }
        self.retired = 0;
        Ok(())
    }
}

impl Operator for SortOp {
    fn push(&mut self, batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> Result<()> {
        if let Some(k) = self.fetch {
            return self.push_top_k(batch, k);
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // (the buffer must not keep alive the strings of whole input batches)
        let batch = compact_views(batch)?;
        let keys = self
            .keys
            .iter()
            .map(|k| order_key(&evaluate_array(&k.expr, &batch)?))
            .collect::<Result<Vec<_>>>()?;
        let bytes = batch_bytes(&batch);
        let rows = batch.num_rows();
        let mut want = bytes + self.key_bytes(&keys, rows);
        // The output batches of sorting the buffer, once per buffer.
        let first_output = OUTPUT_CHUNKS * self.chunk_bytes(bytes / rows);
        if self.buffered.is_empty() {
            want += first_output;
        }
        let over_share = self.reservation.size() + want > self.memory.limit() / SHARE;
        if over_share || !self.reservation.try_grow(want) {
            if !self.buffered.is_empty() {
                self.spill_buffer()?;
                want += first_output;
            }
            self.reservation.grow(want)?;
        }
        self.buffered_rows += rows;
        self.buffered_bytes += bytes;
        self.buffered.push(batch);
        self.buffered_keys.push(keys);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.fetch.is_none() {
            return self.finish_into(&mut |b| {
                out.push(b);
                Ok(())
            });
        }
        if self.buffered.is_empty() {
            return Ok(());
        }
        let sorted = self.sort_buffered()?;
        if sorted.num_rows() > 0 {
            out.push(sorted);
        }
        Ok(())
    }

    fn finish_into(&mut self, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        if self.fetch.is_some() {
            let mut out = Vec::new();
            self.finish(&mut out)?;
            return out.into_iter().try_for_each(emit);
        }
        if self.runs.is_empty() {
            return self.sort_buffer_into(emit);
        }
        if !self.buffered.is_empty() {
            self.spill_buffer()?;
        }
        self.merge_runs(emit)
    }

    fn spilled(&self) -> SpillCount {
        self.spilled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Expr;
    use arrow::array::{Int64Array, StringArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::{Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
        ]))
    }

    /// `n` rows in batches of 1000: a key with few values and nulls, a
    /// string key, and the row's position.
    fn input(n: usize) -> Vec<RecordBatch> {
        (0..n)
            .step_by(1000)
            .map(|start| {
                let ids: Vec<i64> = (start..(start + 1000).min(n)).map(|i| i as i64).collect();
                let k: Int64Array = ids
                    .iter()
                    .map(|i| (i % 7 != 3).then_some((i * 7919) % 13))
                    .collect();
                let s: StringArray = ids
                    .iter()
                    .map(|i| Some(format!("s{}", (i * 31) % 101)))
                    .collect();
                RecordBatch::try_new(
                    schema(),
                    vec![Arc::new(k), Arc::new(s), Arc::new(Int64Array::from(ids))],
                )
                .unwrap()
            })
            .collect()
    }

    fn keys(with_id: bool) -> Vec<SortKey> {
        let mut keys = vec![
            SortKey {
                expr: Expr::Column(0),
                asc: false,
                nulls_first: true,
            },
            SortKey {
                expr: Expr::Column(1),
                asc: true,
                nulls_first: false,
            },
        ];
        if with_id {
            keys.push(SortKey {
                expr: Expr::Column(2),
                asc: true,
                nulls_first: false,
            });
        }
        keys
    }

    fn id_key() -> SortKey {
        SortKey {
            expr: Expr::Column(2),
            asc: true,
            nulls_first: false,
        }
    }

    fn run(op: &mut SortOp, batches: Vec<RecordBatch>) -> RecordBatch {
        let mut out = vec![];
        for b in batches {
            op.push(b, &mut out).unwrap();
        }
        op.finish_into(&mut |b| {
            assert!(b.num_rows() <= MAX_CHUNK_ROWS);
            out.push(b);
            Ok(())
        })
        .unwrap();
        concat_batches(&schema(), &out).unwrap()
    }

    fn expected(batches: &[RecordBatch], keys: &[SortKey]) -> RecordBatch {
        let all = concat_batches(&schema(), batches).unwrap();
        sort_batch(&all, keys, None).unwrap()
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn in_memory_sort_streams_sorted_batches() {
        let dir = tempfile::tempdir().unwrap();
        let pool = MemoryPool::new(1 << 30);
        let mut op = SortOp::new(keys(true), None, schema(), &pool, dir.path());
        let got = run(&mut op, input(20_000));
        assert_eq!(got, expected(&input(20_000), &keys(true)));
        assert_eq!(op.spilled(), SpillCount::default());
        drop(op);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn a_large_buffer_is_sorted_in_pieces_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        let pool = MemoryPool::new(1 << 30);
        for with_id in [true, false] {
            let mut op = SortOp::new(keys(with_id), None, schema(), &pool, dir.path());
            op.piece_rows = 3_000;
            let got = run(&mut op, input(20_000));
            let want = expected(&input(20_000), &[keys(with_id), vec![id_key()]].concat());
            // Ties may come in any order (the sort is not stable): the keys
            // are in order and the rows are the same.
            assert_eq!(got.columns()[..2], want.columns()[..2]);
            let all = [keys(with_id), vec![id_key()]].concat();
            assert_eq!(sort_batch(&got, &all, None).unwrap(), want);
        }
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn a_cancelled_sort_stops_between_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let pool = MemoryPool::new(1 << 30);
        let cancel = Arc::new(AtomicBool::new(false));
        let mut op =
            SortOp::new(keys(true), None, schema(), &pool, dir.path()).with_cancel(cancel.clone());
        op.piece_rows = 3_000;
        let mut out = vec![];
        for b in input(20_000) {
            op.push(b, &mut out).unwrap();
        }
        cancel.store(true, AtomicOrdering::Relaxed);
        let mut emitted = 0;
        let r = op.finish_into(&mut |_| {
            emitted += 1;
            Ok(())
        });
        assert!(matches!(r, Err(QuarryError::Cancelled)), "{r:?}");
        assert_eq!(emitted, 0);
        drop(op);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn spills_runs_and_merges_them() {
        let dir = tempfile::tempdir().unwrap();
        let pool = MemoryPool::new(4 << 20);
        let mut op = SortOp::new(keys(true), None, schema(), &pool, dir.path());
        let got = run(&mut op, input(100_000));
        assert_eq!(got, expected(&input(100_000), &keys(true)));
        assert!(op.runs.is_empty());
        assert!(op.spilled().files > 2 && op.spilled().bytes > 0);
        assert_eq!(op.merge_passes, 0);
        assert_eq!(files_in(dir.path()), 0);
        assert!(pool.peak() <= 4 << 20);
    }

    #[test]
    fn merges_in_several_passes_when_runs_do_not_fit_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pool = MemoryPool::new(256 << 10);
        let mut op = SortOp::new(keys(true), None, schema(), &pool, dir.path());
        let got = run(&mut op, input(200_000));
        assert_eq!(got, expected(&input(200_000), &keys(true)));
        assert!(op.merge_passes >= 1, "{} passes", op.merge_passes);
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn merge_keeps_equal_keys_in_input_order() {
        // Sorted only by the first two keys: among equal keys, ids must
        // come out ascending, as runs hold consecutive input.
        let dir = tempfile::tempdir().unwrap();
        let batches = input(30_000);
        let mut runs = vec![];
        for group in batches.chunks(7) {
            let sorted = sort_batch(
                &concat_batches(&schema(), group).unwrap(),
                &keys(true),
                None,
            )
            .unwrap();
            let mut w = RunWriter::new(dir.path(), &schema());
            for start in (0..sorted.num_rows()).step_by(500) {
                w.push(sorted.slice(start, 500.min(sorted.num_rows() - start)))
                    .unwrap();
            }
            runs.push(w.finish().unwrap());
        }
        let mut out = vec![];
        merge(
            &runs,
            &keys(false),
            &schema(),
            777,
            &AtomicBool::new(false),
            &mut |b| {
                out.push(b);
                Ok(())
            },
        )
        .unwrap();
        let got = concat_batches(&schema(), &out).unwrap();
        assert_eq!(got, expected(&batches, &keys(true)));
        drop(runs);
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn a_failing_consumer_leaves_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let pool = MemoryPool::new(1 << 20);
        let mut op = SortOp::new(keys(true), None, schema(), &pool, dir.path());
        let mut out = vec![];
        for b in input(100_000) {
            op.push(b, &mut out).unwrap();
        }
        assert!(files_in(dir.path()) > 0);
        let err = op
            .finish_into(&mut |_| Err(crate::error::QuarryError::Cancelled))
            .unwrap_err();
        assert!(matches!(err, crate::error::QuarryError::Cancelled));
        drop(op);
        assert_eq!(files_in(dir.path()), 0);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn a_budget_too_small_to_merge_is_an_error_naming_the_sort() {
        let dir = tempfile::tempdir().unwrap();
        let pool = MemoryPool::new(30 << 10);
        let mut op = SortOp::new(keys(true), None, schema(), &pool, dir.path());
        let mut out = vec![];
        let mut result = Ok(());
        for b in input(50_000) {
            result = op.push(b, &mut out);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = op.finish(&mut out);
        }
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("sort") && err.contains("memory limit"),
            "{err}"
        );
        drop(op);
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn the_row_format_orders_as_lexsort_does() {
        // strings with NULLs and ties, then integers descending NULLs first
        let names: Vec<Option<&str>> = (0..500)
            .map(|i| match i % 7 {
                0 => None,
                r => Some(["pear", "a much longer string", "apple", "", "zz", "pear"][r - 1]),
            })
            .collect();
        let numbers: Vec<Option<i64>> = (0..500)
            .map(|i| (i % 11 != 0).then_some((i * 37 % 23) as i64))
            .collect();
        let columns = vec![
            SortColumn {
                values: Arc::new(StringArray::from(names)),
                options: Some(arrow::compute::SortOptions {
                    descending: false,
                    nulls_first: false,
                }),
            },
            SortColumn {
                values: Arc::new(Int64Array::from(numbers)),
                options: Some(arrow::compute::SortOptions {
                    descending: true,
                    nulls_first: true,
                }),
            },
        ];
        let keys_in = |indices: &arrow::array::UInt32Array| -> Vec<ArrayRef> {
            columns
                .iter()
                .map(|c| arrow::compute::take(&c.values, indices, None).unwrap())
                .collect()
        };
        let ours = sorted_indices(&columns).unwrap();
        let arrow = lexsort_to_indices(&columns, None).unwrap();
        assert_eq!(keys_in(&ours), keys_in(&arrow));
    }
}
