//! A Parquet file whose row groups are encoded on several threads at once
//! (COPY … TO 'x.parquet').
//!
//! The producer hands in batches in result order; they are cut into row
//! groups of [`ROW_GROUP_ROWS`] rows. Each group is encoded and compressed
//! on a thread of its own while the next group fills, and the encoded groups
//! are appended to the file in the order they were cut, so the file keeps
//! the rows' order. At most `threads` groups are between being cut and
//! being appended (`threads` + 1 held, with the one filling), and their
//! bytes are reserved against the query's memory budget: a producer that
//! gets ahead, or finds the budget full, waits for the oldest group and
//! appends it first (back-pressure).

use std::collections::VecDeque;
use std::fmt::Display;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::error::{QuarryError, Result};
use crate::runtime::memory::{batch_bytes, MemoryPool, Reservation};

/// Rows per row group (the last one holds the rest).
pub const ROW_GROUP_ROWS: usize = 122_880;

/// Arrow bytes at which a row group is cut before it has its rows: wide
/// rows would otherwise hold 122,880 of them in memory, several times over.
pub const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// A Parquet file being written; see the module comment.
pub struct ParallelParquetWriter {
    /// For error messages.
    path: String,
    schema: SchemaRef,
    file: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    /// Rows of the next row group, not yet handed to an encoder.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_bytes: usize,
    /// Groups cut and not yet appended, oldest first.
    in_flight: VecDeque<Group>,
    /// One per core: more would only share the cores.
    max_in_flight: usize,
    /// Row groups cut so far (the index of the next one).
    groups: usize,
    group_bytes: usize,
    pool: Arc<MemoryPool>,
    /// Tells the encoders to give up (the file will not be finished).
    stop: Arc<AtomicBool>,
}

/// A row group between being cut and being appended.
struct Group {
    encoder: JoinHandle<Result<Vec<ArrowColumnChunk>>>,
    /// Its input's bytes in the memory budget, until it is appended (the
    /// encoded chunks, compressed, take less).
    _reservation: Reservation,
}

impl ParallelParquetWriter {
    /// Starts the Parquet file `file` (named `path` in errors) for rows of
    /// `schema`, with `threads` encoders; ZSTD (level 1) pages.
    pub fn create(
        file: File,
        path: &str,
        schema: &SchemaRef,
        threads: usize,
        pool: &Arc<MemoryPool>,
    ) -> Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        // (ArrowWriter puts the Arrow schema into the file's metadata)
        let (file, factory) = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .and_then(|w| w.into_serialized_writer())
            .map_err(|e| write_error(path, e))?;
        Ok(ParallelParquetWriter {
            path: path.to_string(),
            schema: schema.clone(),
            file,
            factory,
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
            in_flight: VecDeque::new(),
            max_in_flight: threads.max(1),
            groups: 0,
            group_bytes: ROW_GROUP_BYTES,
            pool: pool.clone(),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() != self.schema.fields().len() {
            return Err(write_error(
                &self.path,
                format!(
                    "a batch of {} columns for a file of {}",
                    batch.num_columns(),
                    self.schema.fields().len()
                ),
            ));
        }
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            if column.data_type() != field.data_type() {
                return Err(write_error(
                    &self.path,
                    format!(
                        "column '{}' is {} here but {} in the file",
                        field.name(),
                        column.data_type(),
                        field.data_type()
                    ),
                ));
            }
        }
        let mut offset = 0;
        while offset < batch.num_rows() {
            let rows = (ROW_GROUP_ROWS - self.pending_rows).min(batch.num_rows() - offset);
            let part = batch.slice(offset, rows);
            offset += rows;
            self.pending_bytes += batch_bytes(&part);
            self.pending_rows += rows;
            self.pending.push(part);
            if self.pending_rows >= ROW_GROUP_ROWS || self.pending_bytes >= self.group_bytes {
                self.cut()?;
            }
        }
        Ok(())
    }

    /// Encodes the last rows, appends every group and the footer.
    pub fn finish(mut self) -> Result<()> {
        self.cut()?;
        while !self.in_flight.is_empty() {
            self.append_oldest()?;
        }
        self.file.finish().map_err(|e| write_error(&self.path, e))?;
        Ok(())
    }

    /// Hands the pending rows to an encoder, once there is room for them.
    fn cut(&mut self) -> Result<()> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.pending);
        let bytes = std::mem::take(&mut self.pending_bytes);
        self.pending_rows = 0;
        let mut reservation = Reservation::new(&self.pool, "COPY's Parquet encoders");
        loop {
            if self.in_flight.len() < self.max_in_flight {
                // One group always gets encoded, budget or not: the
                // rows are in memory already, and the file must go on.
                if self.in_flight.is_empty() {
                    reservation.force_grow(bytes);
                    break;
                }
                if reservation.try_grow(bytes) {
                    break;
                }
            }
            self.append_oldest()?;
        }
        let writers = self
            .factory
            .create_column_writers(self.groups)
            .map_err(|e| write_error(&self.path, e))?;
        self.groups += 1;
        let schema = self.schema.clone();
        let stop = self.stop.clone();
        let handle = std::thread::Builder::new()
            .name("quarry-parquet-encoder".to_string())
            .spawn(move || encode(&schema, writers, &batches, &stop))
            .map_err(|e| write_error(&self.path, format!("cannot start an encoder thread: {e}")))?;
        self.in_flight.push_back(Group {
            encoder: handle,
            _reservation: reservation,
        });
        Ok(())
    }

    /// Waits for the oldest group's encoder and appends its row group.
    fn append_oldest(&mut self) -> Result<()> {
        let Some(group) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let encoded = group
            .encoder
            .join()
            .unwrap_or_else(|_| Err(QuarryError::exec("a Parquet encoder thread panicked")));
        let chunks = encoded.map_err(|e| match e {
            QuarryError::Cancelled => e,
            e => write_error(&self.path, e),
        })?;
        let appended = (|| {
            let mut row_group = self.file.next_row_group()?;
            for chunk in chunks {
                chunk.append_to_row_group(&mut row_group)?;
            }
            row_group.close()?;
            Ok::<_, parquet::errors::ParquetError>(())
        })();
        appended.map_err(|e| write_error(&self.path, e))
    }
}

impl Drop for ParallelParquetWriter {
    /// A file left unfinished (an error, a cancelled query): the encoders
    /// stop at their next column and are waited for, so that no thread
    /// outlives the statement.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for group in self.in_flight.drain(..) {
            let _ = group.encoder.join();
        }
    }
}

/// Encodes and compresses `batches` into the column chunks of a row group.
fn encode(
    schema: &SchemaRef,
    mut writers: Vec<ArrowColumnWriter>,
    batches: &[RecordBatch],
    stop: &AtomicBool,
) -> Result<Vec<ArrowColumnChunk>> {
    for batch in batches {
        // (a nested column has several leaves, each a writer of its own)
        let mut leaf_writers = writers.iter_mut();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if stop.load(Ordering::Relaxed) {
                return Err(QuarryError::Cancelled);
            }
            for leaf in compute_leaves(field, column)? {
                let writer = leaf_writers.next().ok_or_else(|| {
                    QuarryError::exec(format!("column '{}' does not fit the file", field.name()))
                })?;
                writer.write(&leaf)?;
            }
        }
    }
    Ok(writers
        .into_iter()
        .map(|w| w.close())
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

fn write_error(path: &str, e: impl Display) -> QuarryError {
    QuarryError::exec(format!("cannot write '{path}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int64Array, StringArray,
        StringViewArray, TimestampMicrosecondArray,
    };
    use arrow::compute::concat_batches;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Compression;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("note", DataType::Utf8View, true),
            Field::new("price", DataType::Decimal128(15, 2), true),
            Field::new("day", DataType::Date32, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("flag", DataType::Boolean, true),
        ]))
    }

    /// Rows `start..start + n`; every column but `id` NULL in every 7th row.
    fn rows(start: usize, n: usize) -> RecordBatch {
        let ids = start as i64..(start + n) as i64;
        let null = |i: i64| i % 7 == 3;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(StringArray::from_iter(
                ids.clone()
                    .map(|i| (!null(i)).then(|| format!("name {}", i % 1000))),
            )),
            Arc::new(StringViewArray::from_iter(ids.clone().map(|i| {
                (!null(i)).then(|| format!("a note longer than twelve bytes, {i}"))
            }))),
            Arc::new(
                Decimal128Array::from_iter(
                    ids.clone().map(|i| (!null(i)).then_some(i as i128 * 101)),
                )
                .with_precision_and_scale(15, 2)
                .unwrap(),
            ),
            Arc::new(Date32Array::from_iter(
                ids.clone().map(|i| (!null(i)).then_some((i % 3000) as i32)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    ids.clone().map(|i| (!null(i)).then_some(i * 1_000_003)),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(BooleanArray::from_iter(
                ids.map(|i| (!null(i)).then_some(i % 2 == 0)),
            )),
        ];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    /// The batches of the file at `path`, and its row groups' row counts.
    fn read_back(path: &std::path::Path) -> (RecordBatch, Vec<i64>, Vec<Compression>) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        let meta = builder.metadata().clone();
        let groups = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        let compressions = meta.row_groups()[0]
            .columns()
            .iter()
            .map(|c| c.compression())
            .collect();
        let batches = builder
            .build()
            .unwrap()
            .collect::<std::result::Result<Vec<_>, _>>()
            .unwrap();
        (
            concat_batches(&schema(), &batches).unwrap(),
            groups,
            compressions,
        )
    }

    fn write_all(
        path: &std::path::Path,
        batches: &[RecordBatch],
        threads: usize,
        pool: &Arc<MemoryPool>,
        group_bytes: usize,
    ) -> Result<()> {
        let file = File::create(path).unwrap();
        let name = path.display().to_string();
        let mut w = ParallelParquetWriter::create(file, &name, &schema(), threads, pool)?;
        w.group_bytes = group_bytes;
        for b in batches {
            w.write(b)?;
        }
        w.finish()
    }

    #[test]
    fn row_groups_encoded_in_parallel_keep_the_rows_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        // 300,000 rows in batches of 10,000, then one that spans a group
        let mut batches: Vec<RecordBatch> = (0..15).map(|i| rows(i * 10_000, 10_000)).collect();
        batches.push(rows(150_000, 150_000));
        let pool = MemoryPool::new(1 << 30);
        write_all(&path, &batches, 3, &pool, ROW_GROUP_BYTES).unwrap();
        assert_eq!(pool.used(), 0);
        let (back, groups, compressions) = read_back(&path);
        assert_eq!(groups, vec![122_880, 122_880, 54_240]);
        assert!(compressions
            .iter()
            .all(|c| matches!(c, Compression::ZSTD(_))));
        assert_eq!(back, concat_batches(&schema(), &batches).unwrap());
        assert_eq!(back.column(1).null_count(), 300_000 / 7);
    }

    #[test]
    fn groups_in_flight_stay_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let batches: Vec<RecordBatch> = (0..40).map(|i| rows(i * 5_000, 5_000)).collect();
        // (later rows have longer strings: the first group is the smallest)
        let one_group: usize = batches[..4].iter().map(batch_bytes).sum();
        let largest = batches
            .chunks(4)
            .map(|g| g.iter().map(batch_bytes).sum::<usize>())
            .max()
            .unwrap_or_default();
        // Groups of 20,000 rows (cut by bytes), four threads: at most
        // four groups are out, however far ahead the producer is.
        let pool = MemoryPool::new(1 << 30);
        write_all(&path, &batches, 4, &pool, one_group).unwrap();
        assert!(
            pool.peak() <= 4 * largest,
            "{} > 4 × {largest}",
            pool.peak()
        );
        // (the producer only slices: it gets ahead of the encoders)
        assert!(pool.peak() > one_group, "one group at a time");
        let (back, groups, _) = read_back(&path);
        assert_eq!(groups, vec![20_000; 10]);
        assert_eq!(back, concat_batches(&schema(), &batches).unwrap());
        // A budget with room for none: one group at a time, still the file.
        let pool = MemoryPool::new(1);
        write_all(&path, &batches, 4, &pool, one_group).unwrap();
        assert!(pool.peak() <= largest, "{} > {largest}", pool.peak());
        assert_eq!(pool.used(), 0);
        let (back, _, _) = read_back(&path);
        assert_eq!(back, concat_batches(&schema(), &batches).unwrap());
    }

    #[test]
    fn a_failed_write_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        std::fs::write(&path, b"").unwrap();
        let pool = MemoryPool::new(1 << 30);
        // a file opened for reading only: appending the first group fails
        let file = File::open(&path).unwrap();
        let name = path.display().to_string();
        let mut w = ParallelParquetWriter::create(file, &name, &schema(), 2, &pool).unwrap();
        let mut result = Ok(());
        for i in 0..10 {
            result = w.write(&rows(i * 100_000, 100_000));
            if result.is_err() {
                break;
            }
        }
        let err = match result {
            Err(e) => {
                drop(w);
                e
            }
            Ok(()) => w.finish().unwrap_err(),
        }
        .to_string();
        assert!(err.contains(&format!("cannot write '{name}'")), "{err}");
        assert_eq!(pool.used(), 0);
        // a batch that does not fit the file
        let file = File::create(&path).unwrap();
        let mut w = ParallelParquetWriter::create(file, &name, &schema(), 2, &pool).unwrap();
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            other.clone(),
            vec![Arc::new(StringArray::from(vec!["x"])) as ArrayRef],
        )
        .unwrap();
        let err = w.write(&batch).unwrap_err().to_string();
        assert!(err.contains(&format!("cannot write '{name}'")), "{err}");
    }

    #[test]
    fn an_unfinished_file_stops_its_encoders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let pool = MemoryPool::new(1 << 30);
        let file = File::create(&path).unwrap();
        let name = path.display().to_string();
        let mut w = ParallelParquetWriter::create(file, &name, &schema(), 2, &pool).unwrap();
        w.write(&rows(0, 300_000)).unwrap();
        assert!(!w.in_flight.is_empty() && pool.used() > 0);
        // (what a failed or cancelled COPY does with its writer)
        drop(w);
        assert_eq!(pool.used(), 0);
    }
}
