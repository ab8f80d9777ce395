//! Parquet tables: one or more files; a scan partition is one row group.
//! Row groups whose min/max statistics rule out a pushed-down filter are
//! skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt32Array};
use arrow::compute::kernels::cmp;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, RowGroups};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{parquet_to_arrow_field_levels, ProjectionMask};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use serde::{Deserialize, Serialize};

use super::masked_pages::{self, MaskedColumn};
use super::read_ahead::{Prefetch, ReadAhead};
use super::remote::store_error;
use super::row_group_pages::{ChunkBytes, FetchedRowGroup};
use super::store::{list_files, FileDescriptor, FileRef, ObjectStores};
use super::{EarlyFilter, ScanDescriptor, ScanPartition, TableProvider, TableStats};
use crate::error::{catch_panic, QuarryError, Result};
use crate::plan::{BinaryOp, Expr};
use crate::runtime::io::block_on;

#[derive(Debug)]
struct ParquetFile {
    file: FileRef,
    meta: ArrowReaderMetadata,
}

#[derive(Debug)]
pub struct ParquetTable {
    files: Vec<ParquetFile>,
    schema: SchemaRef,
}

/// Parquet's async reader over a file of an object store. (parquet's own
/// `ParquetObjectReader` is deprecated in favour of such an adapter.)
struct ObjectFileReader {
    file: FileRef,
    /// The open local file, read with positioned reads on the calling
    /// thread: no open and no hand-off to a blocking pool per request.
    local: Option<std::fs::File>,
    /// Bytes read so far.
    fetched: Arc<AtomicU64>,
    /// The row group's bytes, when a read-ahead fetched them already.
    ahead: Option<Prefetch>,
}

fn reader(file: &FileRef) -> ObjectFileReader {
    ObjectFileReader {
        file: file.clone(),
        local: None,
        fetched: Arc::new(AtomicU64::new(0)),
        ahead: None,
    }
}

impl ObjectFileReader {
    /// The byte ranges of a local file; None for a file of another store.
    fn read_local(
        &mut self,
        ranges: &[std::ops::Range<u64>],
    ) -> Option<parquet::errors::Result<Vec<bytes::Bytes>>> {
        use std::os::unix::fs::FileExt;
        let path = self.file.local_path.as_ref()?;
        let io = |e: std::io::Error| parquet::errors::ParquetError::External(Box::new(e));
        let result = (|| {
            let f = match &self.local {
                Some(f) => f,
                None => self.local.insert(std::fs::File::open(path).map_err(io)?),
            };
            let mut out = Vec::with_capacity(ranges.len());
            for r in ranges {
                self.fetched.fetch_add(r.end - r.start, Ordering::Relaxed);
                let mut buf = vec![0u8; (r.end - r.start) as usize];
                f.read_exact_at(&mut buf, r.start).map_err(|e| {
                    parquet::errors::ParquetError::General(format!(
                        "cannot read bytes {}..{}: {e}",
                        r.start, r.end
                    ))
                })?;
                out.push(bytes::Bytes::from(buf));
            }
            Ok(out)
        })();
        Some(result)
    }
}

impl ObjectFileReader {
    /// The byte ranges of a file of a remote store (object_store merges
    /// near ones and fetches them in parallel).
    async fn read_remote(
        &self,
        ranges: &[std::ops::Range<u64>],
    ) -> parquet::errors::Result<Vec<bytes::Bytes>> {
        let file = &self.file;
        let out = file
            .store
            .get_ranges(&file.path, ranges)
            .await
            .map_err(|e| {
                // The span of the ranges asked for, to name in the message.
                let span = ranges.first().map(|f| f.start).unwrap_or(0)
                    ..ranges.last().map(|l| l.end).unwrap_or(0);
                parquet::errors::ParquetError::External(Box::new(store_error(
                    &e,
                    &file.display,
                    Some(&span),
                )))
            })?;
        let bytes: u64 = out.iter().map(|b| b.len() as u64).sum();
        self.fetched.fetch_add(bytes, Ordering::Relaxed);
        Ok(out)
    }
}

impl AsyncFileReader for ObjectFileReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        if let Some(r) = self.read_local(std::slice::from_ref(&range)) {
            return Box::pin(async move { r.map(|mut v| v.remove(0)) });
        }
        Box::pin(async move {
            let mut out = self.read_remote(std::slice::from_ref(&range)).await?;
            Ok(out.remove(0))
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        if let Some(r) = self.read_local(&ranges) {
            return Box::pin(async move { r });
        }
        Box::pin(async move {
            if let Some(ahead) = self.ahead.take() {
                if let Some(out) = ahead.serve(&ranges).await {
                    let bytes: u64 = out.iter().map(|b| b.len() as u64).sum();
                    self.fetched.fetch_add(bytes, Ordering::Relaxed);
                    return Ok(out);
                }
            }
            self.read_remote(&ranges).await
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let size = self.file.size;
            // The footer and the metadata before it in one request, most
            // of the time (a remote request costs a round trip).
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(FOOTER_PREFETCH_BYTES))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        })
    }
}

/// Bytes read from the end of a file at once for its metadata.
const FOOTER_PREFETCH_BYTES: usize = 64 * 1024;

impl ParquetTable {
    pub fn open(location: &str, stores: &ObjectStores) -> Result<Self> {
        let mut files = Vec::new();
        for file in list_files(location, "parquet", stores)? {
            let meta = footer(&file, stores)?;
            files.push(ParquetFile { file, meta });
        }
        let schema = files[0].meta.schema().clone();
        for f in &files[1..] {
            let (a, b) = (schema.fields(), f.meta.schema().fields());
            let same = a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type());
            if !same {
                return Err(QuarryError::Io(format!(
                    "Parquet file '{}' has a different schema than '{}'",
                    f.file.display, files[0].file.display
                )));
            }
        }
        // Fields as the engine sees them: nullable, without file metadata,
        // timestamps in microseconds (as DuckDB reads every unit; a column
        // read in another unit is cast after decoding).
        let schema = Arc::new(arrow::datatypes::Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| {
                    let f = f.as_ref().clone().with_metadata(Default::default());
                    match engine_type(f.data_type()) {
                        Some(t) => f.with_data_type(t),
                        None => f,
                    }
                })
                .collect::<Vec<_>>(),
        ));
        Ok(ParquetTable { files, schema })
    }
}

/// The metadata of a file, from the footer cache of `stores` or read.
fn footer(file: &FileRef, stores: &ObjectStores) -> Result<ArrowReaderMetadata> {
    if let Some(meta) = stores.cached_footer(file) {
        return Ok(meta);
    }
    let corrupt = |what: &str| {
        QuarryError::Io(format!(
            "cannot read Parquet file '{}': {what}",
            file.display
        ))
    };
    // The decoder of the footer's embedded Arrow schema panics on
    // some corrupt input.
    let meta = catch_panic(
        || {
            let mut r = reader(file);
            block_on(ArrowReaderMetadata::load_async(
                &mut r,
                ArrowReaderOptions::new(),
            ))?
            .map_err(|e| corrupt(&e.to_string()))
        },
        |panic| corrupt(&format!("corrupt metadata ({panic})")),
    )?;
    check_row_counts(&meta).map_err(|e| corrupt(&e))?;
    stores.keep_footer(file, &meta);
    Ok(meta)
}

/// The footer's row counts, which `count(*)` and the planner trust: none
/// negative, and the row groups adding up to the file's count.
fn check_row_counts(meta: &ArrowReaderMetadata) -> std::result::Result<(), String> {
    let md = meta.metadata();
    let mut sum: i64 = 0;
    for (i, rg) in md.row_groups().iter().enumerate() {
        if rg.num_rows() < 0 {
            return Err(format!(
                "corrupt metadata (row group {i} has {} rows)",
                rg.num_rows()
            ));
        }
        sum = sum.saturating_add(rg.num_rows());
    }
    let declared = md.file_metadata().num_rows();
    if declared != sum {
        return Err(format!(
            "corrupt metadata (the file declares {declared} rows, its row groups {sum})"
        ));
    }
    Ok(())
}

impl TableProvider for ParquetTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn statistics(&self) -> TableStats {
        let rows: i64 = self
            .files
            .iter()
            .map(|f| f.meta.metadata().file_metadata().num_rows())
            .sum();
        TableStats {
            num_rows: Some(rows.max(0) as usize),
        }
    }

    fn column_range(&self, column: usize) -> Option<(f64, f64)> {
        let field = self.schema.fields().get(column)?;
        let t = field.data_type();
        let numeric = t.is_integer()
            || t.is_floating()
            || matches!(t, DataType::Date32 | DataType::Decimal128(_, _));
        if !numeric {
            return None;
        }
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for f in &self.files {
            let conv = StatisticsConverter::try_new(
                field.name(),
                f.meta.schema(),
                f.meta.parquet_schema(),
            )
            .ok()?;
            let md = f.meta.metadata();
            let as_f64 = |a: ArrayRef| -> Option<arrow::array::Float64Array> {
                // Dates count days; decimals cast to their value.
                let a = if *a.data_type() == DataType::Date32 {
                    arrow::compute::cast(&a, &DataType::Int32).ok()?
                } else {
                    a
                };
                let f = arrow::compute::cast(&a, &DataType::Float64).ok()?;
                Some(f.as_primitive::<arrow::datatypes::Float64Type>().clone())
            };
            let mins = as_f64(conv.row_group_mins(md.row_groups()).ok()?)?;
            let maxes = as_f64(conv.row_group_maxes(md.row_groups()).ok()?)?;
            if mins.null_count() > 0 || maxes.null_count() > 0 {
                return None;
            }
            lo = lo.min(arrow::compute::min(&mins)?);
            hi = hi.max(arrow::compute::max(&maxes)?);
        }
        (hi >= lo).then_some((lo, hi))
    }

    fn kind(&self) -> &'static str {
        "parquet"
    }

    fn partitions(
        &self,
        projection: &[usize],
        filters: &[Expr],
    ) -> Result<Vec<Arc<dyn ScanPartition>>> {
        // The reader yields columns in file order; remember how to put them
        // back in projection order.
        let mut sorted: Vec<usize> = projection.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let reorder: Vec<usize> = projection
            .iter()
            .map(|c| sorted.iter().position(|s| s == c).unwrap_or(0))
            .collect();
        let mut parts = Vec::new();
        for (file_index, f) in self.files.iter().enumerate() {
            for rg in row_groups_to_read(f, &self.schema, projection, filters)? {
                parts.push(RowGroupPartition {
                    file: f.file.clone(),
                    meta: f.meta.clone(),
                    file_index,
                    row_group: rg,
                    columns: sorted.clone(),
                    reorder: reorder.clone(),
                    schema: Arc::new(self.schema.project(projection)?),
                    read_ahead: None,
                });
            }
        }
        read_ahead(&mut parts);
        Ok(parts
            .into_iter()
            .map(|p| Arc::new(p) as Arc<dyn ScanPartition>)
            .collect())
    }
}

/// For the row groups of a scan of remote files: a read-ahead over them.
fn read_ahead(parts: &mut [RowGroupPartition]) {
    let remote = parts.iter().any(|p| p.file.local_path.is_none());
    if remote && parts.iter().any(|p| !p.columns.is_empty()) {
        let ahead = ReadAhead::new(
            parts
                .iter()
                .map(|p| (p.file.clone(), p.chunk_ranges()))
                .collect(),
        );
        for (i, p) in parts.iter_mut().enumerate() {
            p.read_ahead = Some((ahead.clone(), i));
        }
    }
}

/// A `RowGroupPartition` as data: the file's footer is read again (or
/// found in the footer cache) when it is opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowGroupDescriptor {
    file: FileDescriptor,
    /// The file's place in its table (for messages).
    file_index: usize,
    row_group: usize,
    columns: Vec<usize>,
    reorder: Vec<usize>,
    schema: SchemaRef,
}

/// The row groups of one scan, with a read-ahead when their files are
/// remote.
pub(super) fn open_row_groups(
    descriptors: &[&RowGroupDescriptor],
    stores: &ObjectStores,
) -> Result<Vec<RowGroupPartition>> {
    let mut parts = descriptors
        .iter()
        .map(|d| d.open(stores))
        .collect::<Result<Vec<_>>>()?;
    read_ahead(&mut parts);
    Ok(parts)
}

impl RowGroupDescriptor {
    fn open(&self, stores: &ObjectStores) -> Result<RowGroupPartition> {
        let file = self.file.open(stores)?;
        let meta = footer(&file, stores)?;
        let bad = |what: String| {
            QuarryError::Io(format!(
                "cannot read row group {} of '{}': {what}",
                self.row_group, file.display
            ))
        };
        let row_groups = meta.metadata().num_row_groups();
        if self.row_group >= row_groups {
            return Err(bad(format!("the file has {row_groups} row groups")));
        }
        let roots = meta.parquet_schema().root_schema().get_fields().len();
        if let Some(c) = self.columns.iter().find(|&&c| c >= roots) {
            return Err(bad(format!("no column {c} among its {roots}")));
        }
        if self.reorder.len() != self.schema.fields().len()
            || self.reorder.iter().any(|&r| r >= self.columns.len())
        {
            return Err(bad("its columns and their order do not agree".into()));
        }
        Ok(RowGroupPartition {
            file,
            meta,
            file_index: self.file_index,
            row_group: self.row_group,
            columns: self.columns.clone(),
            reorder: self.reorder.clone(),
            schema: self.schema.clone(),
            read_ahead: None,
        })
    }
}

/// Row groups of `f` whose statistics do not rule out every filter.
fn row_groups_to_read(
    f: &ParquetFile,
    schema: &SchemaRef,
    projection: &[usize],
    filters: &[Expr],
) -> Result<Vec<usize>> {
    let md = f.meta.metadata();
    let n = md.num_row_groups();
    let mut keep = vec![true; n];
    for filter in filters {
        let Some((col, op, value)) = column_vs_literal(filter) else {
            continue;
        };
        let Some(&table_col) = projection.get(col) else {
            continue;
        };
        let field = schema.field(table_col);
        if value.data_type() != *field.data_type() || value.is_null() {
            continue;
        }
        let Ok(conv) =
            StatisticsConverter::try_new(field.name(), f.meta.schema(), f.meta.parquet_schema())
        else {
            continue;
        };
        let (Ok(mins), Ok(maxes)) = (
            conv.row_group_mins(md.row_groups()),
            conv.row_group_maxes(md.row_groups()),
        ) else {
            continue;
        };
        if mins.len() != n || maxes.len() != n {
            continue;
        }
        let Ok(lit) = value.to_scalar() else { continue };
        if let Some(may_match) = may_match(op, &mins, &maxes, &lit) {
            for (i, k) in keep.iter_mut().enumerate() {
                // Missing statistics (NULL) mean "may match".
                if may_match.is_valid(i) && !may_match.value(i) {
                    *k = false;
                }
            }
        }
    }
    Ok((0..n).filter(|i| keep[*i]).collect())
}

/// For each row group: can `column op literal` be true, given min and max?
fn may_match(
    op: BinaryOp,
    mins: &ArrayRef,
    maxes: &ArrayRef,
    lit: &arrow::array::Scalar<ArrayRef>,
) -> Option<BooleanArray> {
    let r = match op {
        BinaryOp::Eq => {
            let a = cmp::lt_eq(mins, lit).ok()?;
            let b = cmp::gt_eq(maxes, lit).ok()?;
            arrow::compute::and(&a, &b).ok()?
        }
        BinaryOp::Lt => cmp::lt(mins, lit).ok()?,
        BinaryOp::LtEq => cmp::lt_eq(mins, lit).ok()?,
        BinaryOp::Gt => cmp::gt(maxes, lit).ok()?,
        BinaryOp::GtEq => cmp::gt_eq(maxes, lit).ok()?,
        _ => return None,
    };
    Some(r)
}

/// Recognises `column op literal` and `literal op column`.
fn column_vs_literal(e: &Expr) -> Option<(usize, BinaryOp, &datafusion_common::ScalarValue)> {
    if let Expr::Binary { op, left, right } = e {
        if !op.is_comparison() {
            return None;
        }
        match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v)) => Some((*c, *op, v)),
            (Expr::Literal(v), Expr::Column(c)) => Some((*c, op.swap(), v)),
            _ => None,
        }
    } else {
        None
    }
}

/// Rows per batch the reader decodes.
const BATCH_ROWS: usize = 8192;

#[derive(Debug)]
pub(super) struct RowGroupPartition {
    file: FileRef,
    meta: ArrowReaderMetadata,
    file_index: usize,
    row_group: usize,
    /// Leaf columns to decode, in file order.
    columns: Vec<usize>,
    /// Output column i is decoded column reorder[i].
    reorder: Vec<usize>,
    schema: SchemaRef,
    /// For a scan of remote files: the scan's read-ahead and this row
    /// group's place in it.
    read_ahead: Option<(Arc<ReadAhead>, usize)>,
}

impl ScanPartition for RowGroupPartition {
    /// The reader fetches the projected column chunks whole, compressed,
    /// and holds a batch's worth of each decoded page besides.
    /// With a read-ahead, the next row group's compressed bytes are held
    /// besides (row groups of a file are alike: counted as this one's).
    fn read_buffer_bytes(&self) -> usize {
        let rg = self.meta.metadata().row_group(self.row_group);
        let rows = rg.num_rows().max(1) as usize;
        let held = if self.read_ahead.is_some() { 2 } else { 1 };
        self.columns
            .iter()
            .filter_map(|&c| rg.columns().get(c))
            .map(|chunk| {
                let compressed = chunk.compressed_size().max(0) as usize;
                let decoded = chunk.uncompressed_size().max(0) as usize;
                held * compressed + decoded.saturating_mul(BATCH_ROWS.min(rows)) / rows
            })
            .sum()
    }

    fn read(
        &self,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        fetched: &AtomicU64,
    ) -> Result<()> {
        let counter = Arc::new(AtomicU64::new(0));
        let result = self.read_counted(sink, &counter);
        fetched.fetch_add(counter.load(Ordering::Relaxed), Ordering::Relaxed);
        result
    }

    fn read_filtered(
        &self,
        filter: &mut EarlyFilter<'_>,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        fetched: &AtomicU64,
    ) -> Result<bool> {
        // Nothing to gain when the filter reads every column.
        let mut read_by_filter: Vec<usize> = filter
            .columns()
            .filter_map(|c| self.reorder.get(c).map(|&r| self.columns[r]))
            .collect();
        read_by_filter.sort_unstable();
        read_by_filter.dedup();
        if filter.steps.first().is_none_or(|s| s.is_empty())
            || read_by_filter.len() == self.columns.len()
        {
            return Ok(false);
        }
        let counter = Arc::new(AtomicU64::new(0));
        let result = self.read_late(filter, sink, &counter);
        fetched.fetch_add(counter.load(Ordering::Relaxed), Ordering::Relaxed);
        result.map(|()| true)
    }

    /// The read-ahead is not described: the scan opened from it has one
    /// of its own (see `open_row_groups`).
    fn describe(&self) -> Result<ScanDescriptor> {
        Ok(ScanDescriptor::ParquetRowGroup(RowGroupDescriptor {
            file: self.file.describe(),
            file_index: self.file_index,
            row_group: self.row_group,
            columns: self.columns.clone(),
            reorder: self.reorder.clone(),
            schema: self.schema.clone(),
        }))
    }
}

impl RowGroupPartition {
    /// The projected leaf columns and their chunks' byte ranges in the file.
    fn chunks(&self) -> Vec<(usize, std::ops::Range<u64>)> {
        let schema = self.meta.parquet_schema();
        let rg = self.meta.metadata().row_group(self.row_group);
        (0..rg.num_columns())
            .filter(|&leaf| self.columns.contains(&schema.get_column_root_idx(leaf)))
            .map(|leaf| {
                let (start, len) = rg.column(leaf).byte_range();
                (leaf, start..start + len)
            })
            .collect()
    }

    /// The byte ranges of the projected columns' chunks in the file.
    fn chunk_ranges(&self) -> Vec<std::ops::Range<u64>> {
        self.chunks().into_iter().map(|(_, range)| range).collect()
    }

    fn io_error(&self, e: impl std::fmt::Display) -> QuarryError {
        QuarryError::Io(format!(
            "cannot read row group {} of '{}' (file {}): {e}",
            self.row_group, self.file.display, self.file_index
        ))
    }

    /// The parquet decoder panics on some corrupt pages: such a panic is an
    /// error naming the file (sinks stay outside, so that a panic downstream
    /// is not blamed on the file).
    fn guarded<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        catch_panic(f, |panic: &str| {
            self.io_error(format_args!("corrupt data ({panic})"))
        })
    }

    /// Fetches the projected columns' chunks, counting the bytes read.
    fn fetch(&self, fetched: &Arc<AtomicU64>) -> Result<Vec<Option<Arc<ChunkBytes>>>> {
        // (parquet asserts on a negative chunk offset in corrupt metadata)
        let chunks = self.guarded(|| Ok(self.chunks()))?;
        let mut r = reader(&self.file);
        r.fetched = fetched.clone();
        r.ahead = self
            .read_ahead
            .as_ref()
            .and_then(|(ahead, i)| ahead.claim(*i));
        let ranges = chunks.iter().map(|(_, range)| range.clone()).collect();
        let data = block_on(r.get_byte_ranges(ranges))?.map_err(|e| self.io_error(e))?;
        let metadata = self.meta.metadata();
        let mut fetched_chunks = vec![None; metadata.row_group(self.row_group).num_columns()];
        for ((leaf, range), data) in chunks.into_iter().zip(data) {
            fetched_chunks[leaf] = Some(Arc::new(ChunkBytes {
                start: range.start,
                data,
            }));
        }
        Ok(fetched_chunks)
    }

    /// Parquet's reader of the row group's `roots` columns (their batches
    /// hold them in file order).
    fn batches(
        &self,
        row_group: &FetchedRowGroup,
        roots: impl IntoIterator<Item = usize>,
    ) -> Result<ParquetRecordBatchReader> {
        let mask = ProjectionMask::roots(self.meta.parquet_schema(), roots);
        self.guarded(|| {
            let levels = parquet_to_arrow_field_levels(
                self.meta.parquet_schema(),
                mask,
                Some(self.meta.schema().fields()),
            )
            .map_err(|e| self.io_error(e))?;
            ParquetRecordBatchReader::try_new_with_row_groups(&levels, row_group, BATCH_ROWS, None)
                .map_err(|e| self.io_error(e))
        })
    }

    /// The next batch of a reader, if any.
    fn next_batch(&self, batches: &mut ParquetRecordBatchReader) -> Result<Option<RecordBatch>> {
        self.guarded(|| Ok(batches.next()))?
            .transpose()
            .map_err(|e| self.io_error(e))
    }

    /// Corrupt pages can end a column early without an error: a short read
    /// must not pass for the whole row group.
    fn check_rows_read(&self, rows_read: usize) -> Result<()> {
        let num_rows = self.meta.metadata().row_group(self.row_group).num_rows() as usize;
        if rows_read != num_rows {
            return Err(self.io_error(format_args!(
                "it holds {rows_read} rows but its footer declares {num_rows}: the file is corrupt"
            )));
        }
        Ok(())
    }

    /// Reads the row group, counting the bytes read in `fetched`.
    fn read_counted(
        &self,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        fetched: &Arc<AtomicU64>,
    ) -> Result<()> {
        let num_rows = self.meta.metadata().row_group(self.row_group).num_rows() as usize;
        if self.columns.is_empty() {
            // count(*) and the like: rows without columns
            let opts =
                arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(num_rows));
            return sink(RecordBatch::try_new_with_options(
                self.schema.clone(),
                vec![],
                &opts,
            )?);
        }
        let row_group = FetchedRowGroup {
            metadata: self.meta.metadata(),
            row_group: self.row_group,
            chunks: self.fetch(fetched)?,
        };
        let mut batches = self.batches(&row_group, self.columns.iter().copied())?;
        let mut rows_read = 0;
        while let Some(batch) = self.next_batch(&mut batches)? {
            rows_read += batch.num_rows();
            let columns: Vec<ArrayRef> = self
                .reorder
                .iter()
                .zip(self.schema.fields())
                .map(|(&i, f)| engine_column(batch.column(i), f.data_type()))
                .collect::<Result<_>>()?;
            sink(RecordBatch::try_new(self.schema.clone(), columns)?)?;
        }
        self.check_rows_read(rows_read)
    }

    /// Reads the row group with `filter`'s steps run first on their columns:
    /// the first step's columns are decoded whole by parquet's reader, each
    /// later step's and the other columns only at the rows the steps before
    /// kept (by `MaskedColumn` where it can, else whole and then taken).
    fn read_late(
        &self,
        filter: &mut EarlyFilter<'_>,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        fetched: &Arc<AtomicU64>,
    ) -> Result<()> {
        let row_group = FetchedRowGroup {
            metadata: self.meta.metadata(),
            row_group: self.row_group,
            chunks: self.fetch(fetched)?,
        };
        // The file's column of each output column.
        let file_column: Vec<usize> = self.reorder.iter().map(|&r| self.columns[r]).collect();
        let mut whole: Vec<usize> = filter.steps[0].iter().map(|&c| file_column[c]).collect();
        let mut masked: Vec<(usize, MaskedColumn)> = Vec::new();
        for (c, &f) in file_column.iter().enumerate() {
            if whole.contains(&f) || masked.iter().any(|(g, _)| *g == f) {
                continue;
            }
            match self.masked_column(&row_group, f, self.schema.field(c).data_type())? {
                Some(column) => masked.push((f, column)),
                None => whole.push(f),
            }
        }
        whole.sort_unstable();
        whole.dedup();
        // The schema of each step's input: the columns of the steps up to it.
        let step_schemas: Vec<SchemaRef> = (0..filter.steps.len())
            .map(|k| {
                let fields: Vec<_> = filter.steps[..=k]
                    .iter()
                    .flatten()
                    .map(|&c| self.schema.field(c).clone())
                    .collect();
                Arc::new(arrow::datatypes::Schema::new(fields))
            })
            .collect();
        let mut batches = self.batches(&row_group, whole.iter().copied())?;
        let mut rows_read = 0;
        while let Some(batch) = self.next_batch(&mut batches)? {
            rows_read += batch.num_rows();
            let mut at = LateBatch {
                batch,
                whole: &whole,
                decoded: vec![None; masked.len()],
                masked: &mut masked,
                selected: None,
            };
            // The columns the steps read so far (and their file columns), at
            // the rows kept so far.
            let mut kept: Vec<ArrayRef> = Vec::new();
            let mut kept_files: Vec<usize> = Vec::new();
            for (k, step) in filter.steps.iter().enumerate() {
                if at.selected.as_ref().is_some_and(|s| s.is_empty()) {
                    break;
                }
                for &c in step {
                    let f = file_column[c];
                    let column = match kept_files.iter().position(|&g| g == f) {
                        Some(j) => kept[j].clone(),
                        None => self.late_column(&mut at, f, c)?,
                    };
                    kept.push(column);
                    kept_files.push(f);
                }
                let input = RecordBatch::try_new(step_schemas[k].clone(), kept)?;
                let (passed, positions) = (filter.apply)(k, input)?;
                kept = passed.columns().to_vec();
                at.selected = Some(match at.selected.take() {
                    None => UInt32Array::from(positions),
                    Some(s) => positions.iter().map(|&p| s.value(p as usize)).collect(),
                });
            }
            // (masked columns are decoded even when no row passed: each
            // moves on past the batch)
            let columns = file_column
                .iter()
                .enumerate()
                .map(|(c, &f)| match kept_files.iter().position(|&g| g == f) {
                    Some(j) => Ok(kept[j].clone()),
                    None => self.late_column(&mut at, f, c),
                })
                .collect::<Result<Vec<_>>>()?;
            if at.selected.as_ref().is_none_or(|s| !s.is_empty()) {
                sink(RecordBatch::try_new(self.schema.clone(), columns)?)?;
            }
        }
        self.check_rows_read(rows_read)
    }

    /// File column `f` (output column `c`) of a late read's batch at the
    /// rows kept so far.
    fn late_column(&self, at: &mut LateBatch<'_>, f: usize, c: usize) -> Result<ArrayRef> {
        let target = self.schema.field(c).data_type();
        if let Ok(i) = at.whole.binary_search(&f) {
            let column = engine_column(at.batch.column(i), target)?;
            return match &at.selected {
                None => Ok(column),
                Some(rows) => Ok(arrow::compute::take(&column, rows, None)?),
            };
        }
        let j = at
            .masked
            .iter()
            .position(|(g, _)| *g == f)
            .ok_or_else(|| QuarryError::exec("internal error: a column not read"))?;
        if let Some(column) = &at.decoded[j] {
            return Ok(column.clone());
        }
        let rows = at.batch.num_rows();
        let all: Vec<u32>;
        let selected = match &at.selected {
            Some(s) => s.values().as_ref(),
            None => {
                all = (0..rows as u32).collect();
                &all
            }
        };
        let column = &mut at.masked[j].1;
        let decoded = self
            .guarded(|| column.read(rows, selected))
            .map_err(|e| self.io_error(e))?;
        at.decoded[j] = Some(decoded.clone());
        Ok(decoded)
    }

    /// The reader decoding file column `root` at chosen rows, when it is a
    /// column `MaskedColumn` decodes.
    fn masked_column(
        &self,
        row_group: &FetchedRowGroup,
        root: usize,
        target: &DataType,
    ) -> Result<Option<MaskedColumn>> {
        let schema = self.meta.parquet_schema();
        let mut leaves =
            (0..schema.num_columns()).filter(|&l| schema.get_column_root_idx(l) == root);
        let (Some(leaf), None) = (leaves.next(), leaves.next()) else {
            return Ok(None);
        };
        let chunk = self.meta.metadata().row_group(self.row_group).column(leaf);
        if !masked_pages::supported(chunk, target) {
            return Ok(None);
        }
        let pages = self.guarded(|| {
            row_group
                .column_chunks(leaf)
                .and_then(|mut chunks| chunks.next().transpose())
                .map_err(|e| self.io_error(e))
        })?;
        Ok(pages.and_then(|pages| MaskedColumn::new(pages, chunk, target)))
    }
}

/// One batch of a row group read late.
struct LateBatch<'a> {
    /// The columns parquet's reader decoded whole: file columns `whole`.
    batch: RecordBatch,
    whole: &'a [usize],
    /// The columns decoded at chosen rows, and each one's array once decoded
    /// for this batch (a column is read once per batch).
    masked: &'a mut [(usize, MaskedColumn)],
    decoded: Vec<Option<ArrayRef>>,
    /// The batch's rows kept so far; None: all.
    selected: Option<UInt32Array>,
}

/// A decoded column in the engine's type for it (see `engine_type`).
fn engine_column(column: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if column.data_type() == target {
        Ok(column.clone())
    } else {
        crate::exec::timestamp::to_micros(column, target)
    }
}

/// The engine's type for a file's column type where they differ: a
/// timestamp of any unit is one of microseconds, a zone made UTC (values
/// with a zone are UTC instants).
pub(crate) fn engine_type(t: &DataType) -> Option<DataType> {
    let utc = |tz: &Option<Arc<str>>| {
        tz.as_deref()
            .is_none_or(|z| z == crate::exec::timestamp::UTC)
    };
    match t {
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond || !utc(tz) => {
            Some(crate::exec::timestamp::timestamp_type(tz.is_some()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_ints(path: &std::path::Path, values: &[i64]) {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("x", DataType::Int64, false),
        ]));
        let column: ArrayRef = Arc::new(arrow::array::Int64Array::from(values.to_vec()));
        let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
        let file = std::fs::File::create(path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn a_footer_is_read_once_per_file_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_ints(&path, &[1, 2, 3]);
        let location = path.to_str().unwrap();
        let stores = ObjectStores::default();
        let rows = |t: &ParquetTable| t.statistics().num_rows;
        assert_eq!(
            rows(&ParquetTable::open(location, &stores).unwrap()),
            Some(3)
        );
        assert_eq!(stores.footers.lock().unwrap().len(), 1);
        assert_eq!(
            rows(&ParquetTable::open(location, &stores).unwrap()),
            Some(3)
        );
        assert_eq!(stores.footers.lock().unwrap().len(), 1);
        // Rewritten with other rows: another size and time, read anew.
        std::thread::sleep(std::time::Duration::from_millis(10));
        write_ints(&path, &[1, 2, 3, 4, 5]);
        assert_eq!(
            rows(&ParquetTable::open(location, &stores).unwrap()),
            Some(5)
        );
        assert_eq!(stores.footers.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_scan_counts_the_bytes_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_ints(&path, &(0..1000).collect::<Vec<_>>());
        let table = ParquetTable::open(path.to_str().unwrap(), &ObjectStores::default()).unwrap();
        let chunk = table.files[0].meta.metadata().row_group(0).column(0);
        let fetched = AtomicU64::new(0);
        let mut rows = 0;
        for part in table.partitions(&[0], &[]).unwrap() {
            let mut count = |b: RecordBatch| {
                rows += b.num_rows();
                Ok(())
            };
            part.read(&mut count, &fetched).unwrap();
        }
        assert_eq!(rows, 1000);
        assert_eq!(
            fetched.into_inner(),
            chunk.compressed_size() as u64,
            "the one column chunk, nothing more"
        );
    }

    /// `batch` with only the columns `nullable` marked nullable (the
    /// others are written as required columns, which masked reads decode).
    fn nullable_only(batch: RecordBatch, nullable: &[&str]) -> RecordBatch {
        let fields: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let keep = nullable.contains(&f.name().as_str());
                f.as_ref().clone().with_nullable(keep)
            })
            .collect();
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        batch.with_schema(schema).unwrap()
    }

    fn write_with(
        path: &std::path::Path,
        batch: &RecordBatch,
        props: parquet::file::properties::WriterProperties,
    ) {
        let file = std::fs::File::create(path).unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
    }

    /// Reads every column of `path` through the table's partitions.
    fn read_all(path: &std::path::Path) -> Vec<RecordBatch> {
        let table = ParquetTable::open(path.to_str().unwrap(), &ObjectStores::default()).unwrap();
        let all: Vec<usize> = (0..table.schema().fields().len()).collect();
        let mut out = Vec::new();
        for part in table.partitions(&all, &[]).unwrap() {
            let mut keep = |b| {
                out.push(b);
                Ok(())
            };
            part.read(&mut keep, &AtomicU64::new(0)).unwrap();
        }
        out
    }

    #[test]
    fn zstd_pages_of_either_version_with_nulls_and_dictionaries_read_back() {
        use parquet::basic::{Compression, ZstdLevel};
        use parquet::file::properties::{WriterProperties, WriterVersion};
        let n = 50_000;
        let strings: ArrayRef = Arc::new(arrow::array::StringArray::from_iter(
            (0..n).map(|i| (i % 7 != 0).then(|| format!("s{}", i % 300))),
        ));
        let numbers: ArrayRef = Arc::new(arrow::array::Int64Array::from_iter(
            (0..n as i64).map(|i| (i % 5 != 0).then_some(i * 31)),
        ));
        let batch = RecordBatch::try_from_iter([("s", strings), ("x", numbers)]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            let path = dir.path().join("t.parquet");
            let props = WriterProperties::builder()
                .set_writer_version(version)
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_data_page_row_count_limit(1000)
                .set_max_row_group_row_count(Some(20_000))
                .build();
            write_with(&path, &batch, props);
            let read = read_all(&path);
            let read = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
            assert_eq!(read.num_rows(), n);
            for c in 0..2 {
                let want =
                    arrow::compute::cast(batch.column(c), read.column(c).data_type()).unwrap();
                assert_eq!(
                    read.column(c).as_ref(),
                    want.as_ref(),
                    "{version:?} column {c}"
                );
            }
        }
    }

    /// Reads `columns` of `path` with an early filter of `steps`, step `k`
    /// keeping the rows `r` (of the file) with `keeps[k](r)`, and without,
    /// filtering after.
    fn late_and_whole(
        path: &std::path::Path,
        columns: &[usize],
        steps: Vec<Vec<usize>>,
        keeps: &[&dyn Fn(usize) -> bool],
    ) -> (RecordBatch, RecordBatch) {
        let table = ParquetTable::open(path.to_str().unwrap(), &ObjectStores::default()).unwrap();
        let parts = table.partitions(columns, &[]).unwrap();
        let schema = Arc::new(table.schema().project(columns).unwrap());
        let (mut late, mut whole) = (Vec::new(), Vec::new());
        let mut seen = 0;
        // the file's rows of the current step's input
        let mut current: Vec<usize> = Vec::new();
        for part in &parts {
            let mut apply = |k: usize, b: RecordBatch| {
                if k == 0 {
                    current = (seen..seen + b.num_rows()).collect();
                    seen += b.num_rows();
                }
                assert_eq!(current.len(), b.num_rows(), "step {k}");
                let rows: Vec<u32> = (0..b.num_rows() as u32)
                    .filter(|&r| keeps[k](current[r as usize]))
                    .collect();
                current = rows.iter().map(|&r| current[r as usize]).collect();
                let mask = BooleanArray::from_iter(
                    (0..b.num_rows()).map(|r| Some(rows.contains(&(r as u32)))),
                );
                Ok((arrow::compute::filter_record_batch(&b, &mask)?, rows))
            };
            let mut filter = EarlyFilter {
                steps: steps.clone(),
                apply: &mut apply,
            };
            let mut sink = |b| {
                late.push(b);
                Ok(())
            };
            assert!(part
                .read_filtered(&mut filter, &mut sink, &AtomicU64::new(0))
                .unwrap());
        }
        let keep = |r: usize| keeps.iter().all(|k| k(r));
        let mut at = 0;
        for part in &parts {
            let mut sink = |b: RecordBatch| {
                let mask = BooleanArray::from_iter((0..b.num_rows()).map(|r| Some(keep(at + r))));
                at += b.num_rows();
                whole.push(arrow::compute::filter_record_batch(&b, &mask)?);
                Ok(())
            };
            part.read(&mut sink, &AtomicU64::new(0)).unwrap();
        }
        (
            arrow::compute::concat_batches(&schema, &late).unwrap(),
            arrow::compute::concat_batches(&schema, &whole).unwrap(),
        )
    }

    #[test]
    fn a_late_read_decodes_the_rows_that_pass_as_a_whole_read_does() {
        use parquet::basic::{Compression, ZstdLevel};
        use parquet::file::properties::{WriterProperties, WriterVersion};
        let n = 30_000usize;
        let batch = RecordBatch::try_from_iter([
            (
                "k",
                Arc::new(arrow::array::Int64Array::from_iter_values(
                    (0..n as i64).map(|i| i / 3),
                )) as ArrayRef,
            ),
            // few distinct values: dictionary pages with RLE runs
            (
                "small",
                Arc::new(arrow::array::Int32Array::from_iter_values(
                    (0..n as i32).map(|i| (i / 50) % 4),
                )),
            ),
            // many distinct values: the dictionary overflows into PLAIN pages
            (
                "wide",
                Arc::new(arrow::array::Int64Array::from_iter_values(
                    (0..n as i64).map(|i| i * 7919 % 1_000_003),
                )),
            ),
            (
                "price",
                Arc::new(
                    arrow::array::Decimal128Array::from_iter_values(
                        (0..n as i128).map(|i| i * 13 - 500),
                    )
                    .with_precision_and_scale(15, 2)
                    .unwrap(),
                ),
            ),
            (
                "day",
                Arc::new(arrow::array::Date32Array::from_iter_values(
                    (0..n as i32).map(|i| 9000 + i % 2500),
                )),
            ),
            (
                "f",
                Arc::new(arrow::array::Float64Array::from_iter_values(
                    (0..n).map(|i| i as f64 / 3.0),
                )),
            ),
            (
                "flag",
                Arc::new(arrow::array::StringViewArray::from_iter_values(
                    (0..n).map(|i| ["A", "N", "R"][i % 3]),
                )),
            ),
            (
                "text",
                Arc::new(arrow::array::StringViewArray::from_iter_values((0..n).map(
                    |i| format!("a comment long enough to be out of line {}", i * 7 % 9001),
                ))),
            ),
            // long strings from a dictionary (views into its page)
            (
                "cat",
                Arc::new(arrow::array::StringViewArray::from_iter_values(
                    (0..n).map(|i| format!("category number {} of five", i % 5)),
                )),
            ),
            (
                "maybe",
                Arc::new(arrow::array::Int64Array::from_iter(
                    (0..n as i64).map(|i| (i % 4 != 0).then_some(i)),
                )),
            ),
        ])
        .unwrap();
        let batch = nullable_only(batch, &["maybe"]);
        let dir = tempfile::tempdir().unwrap();
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            let path = dir.path().join("t.parquet");
            let props = WriterProperties::builder()
                .set_writer_version(version)
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_data_page_row_count_limit(700)
                .set_dictionary_page_size_limit(16 * 1024)
                .set_max_row_group_row_count(Some(12_000))
                .build();
            write_with(&path, &batch, props);
            let filters: [(&str, &dyn Fn(usize) -> bool); 4] = [
                ("scattered", &|r| r % 7 == 3 || r % 11 == 0),
                ("dense", &|r| r % 50 != 0),
                ("runs", &|r| (r / 3000) % 2 == 1),
                ("none", &|_| false),
            ];
            // a later step's filter
            let third: &dyn Fn(usize) -> bool = &|r| r % 3 != 1;
            for (name, keep) in filters {
                // the filter's column first, last, and in the middle; in
                // steps, a later one reading a column decoded at chosen rows,
                // a nullable one (decoded whole and taken), and one read by
                // the step before under another place in the projection
                for (columns, steps) in [
                    (vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9], vec![vec![0]]),
                    (vec![7, 3, 0, 6, 8], vec![vec![2, 0]]),
                    (vec![9, 4, 1, 1, 8], vec![vec![1]]),
                    (
                        vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                        vec![vec![0], vec![2, 3]],
                    ),
                    (vec![9, 4, 1, 6, 8], vec![vec![2], vec![0], vec![3]]),
                    (vec![9, 4, 1, 1, 8], vec![vec![2], vec![3, 4]]),
                ] {
                    let keeps = &[keep, third, third][..steps.len()];
                    let (late, whole) = late_and_whole(&path, &columns, steps.clone(), keeps);
                    assert_eq!(late, whole, "{version:?} {name} {columns:?} {steps:?}");
                    assert_eq!(late.num_rows() == 0, name == "none");
                }
            }
        }
    }

    #[test]
    fn a_corrupt_dictionary_index_in_a_late_read_is_an_error_naming_the_file() {
        use parquet::file::properties::WriterProperties;
        let n = 4000;
        let batch = RecordBatch::try_from_iter([
            (
                "k",
                Arc::new(arrow::array::Int64Array::from_iter_values(0..n)) as ArrayRef,
            ),
            (
                "v",
                Arc::new(arrow::array::Int64Array::from_iter_values(
                    (0..n).map(|i| i % 3),
                )),
            ),
        ])
        .unwrap();
        let batch = nullable_only(batch, &[]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_with(&path, &batch, WriterProperties::builder().build());
        // Every bit of v's last index bytes flipped: indices 0..2 of a
        // three-value dictionary become 3 and more.
        let table = ParquetTable::open(path.to_str().unwrap(), &ObjectStores::default()).unwrap();
        let (start, len) = table.files[0]
            .meta
            .metadata()
            .row_group(0)
            .column(1)
            .byte_range();
        let mut bytes = std::fs::read(&path).unwrap();
        for b in &mut bytes[(start + len - 40) as usize..(start + len) as usize] {
            *b ^= 0xff;
        }
        std::fs::write(&path, bytes).unwrap();
        let table = ParquetTable::open(path.to_str().unwrap(), &ObjectStores::default()).unwrap();
        let part = &table.partitions(&[0, 1], &[]).unwrap()[0];
        let mut apply =
            |_: usize, b: RecordBatch| Ok((b.clone(), (0..b.num_rows() as u32).collect()));
        let mut filter = EarlyFilter {
            steps: vec![vec![0]],
            apply: &mut apply,
        };
        let e = part
            .read_filtered(&mut filter, &mut |_| Ok(()), &AtomicU64::new(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.parquet") && e.contains("row group 0"), "{e}");
    }
}
