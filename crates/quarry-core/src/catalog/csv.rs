//! CSV tables: the schema is inferred from the start of the first file; a
//! scan partition is a byte range of a file, widened to whole lines.
//! (A quoted field holding a newline that straddles a range boundary is not
//! supported.)

use std::io::Cursor;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow::csv::reader::Format;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use serde::{Deserialize, Serialize};

use super::scan_descriptor::check_columns;
use super::store::{current_size, list_files, read_range, FileDescriptor, FileRef, ObjectStores};
use super::{ScanDescriptor, ScanPartition, TableProvider, TableStats};
use crate::error::{QuarryError, Result};
use crate::plan::Expr;

/// Bytes per scan partition.
const RANGE_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes read to infer the schema.
const INFER_BYTES: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct CsvTable {
    files: Vec<FileRef>,
    schema: SchemaRef,
    has_header: bool,
}

impl CsvTable {
    pub fn open(location: &str, has_header: bool, stores: &ObjectStores) -> Result<Self> {
        let files = list_files(location, "csv", stores)?;
        let first = &files[0];
        if first.size == 0 {
            return Err(QuarryError::Io(format!(
                "CSV file '{}' is empty",
                first.display
            )));
        }
        let head = read_range(first, 0..first.size.min(INFER_BYTES), &AtomicU64::new(0))?;
        if has_header && matches!(head.first(), Some(b'\n' | b'\r')) {
            return Err(QuarryError::Io(format!(
                "CSV file '{}' has no header: its first line is empty",
                first.display
            )));
        }
        // Infer from whole lines only.
        let head = if first.size > INFER_BYTES {
            match head.iter().rposition(|b| *b == b'\n') {
                Some(p) => head.slice(..p + 1),
                None => head,
            }
        } else {
            head
        };
        let (schema, _) = Format::default()
            .with_header(has_header)
            .infer_schema(Cursor::new(head), Some(10_000))
            .map_err(|e| {
                QuarryError::Io(format!("cannot read CSV file '{}': {e}", first.display))
            })?;
        if schema.fields().is_empty() {
            return Err(QuarryError::Io(format!(
                "CSV file '{}' has no columns: its first line is empty",
                first.display
            )));
        }
        // timestamps of any inferred unit are read as microseconds
        let schema = arrow::datatypes::Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| match super::parquet::engine_type(f.data_type()) {
                    Some(t) => f.as_ref().clone().with_data_type(t),
                    None => f.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        );
        Ok(CsvTable {
            files,
            schema: Arc::new(schema),
            has_header,
        })
    }
}

impl TableProvider for CsvTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn statistics(&self) -> TableStats {
        TableStats::default()
    }

    fn kind(&self) -> &'static str {
        "csv"
    }

    fn partitions(
        &self,
        projection: &[usize],
        _filters: &[Expr],
    ) -> Result<Vec<Arc<dyn ScanPartition>>> {
        let mut out: Vec<Arc<dyn ScanPartition>> = Vec::new();
        for file in &self.files {
            // A file rewritten since the table was opened is read whole.
            let size = current_size(file)?;
            let file = &FileRef {
                size,
                ..file.clone()
            };
            let mut start = 0;
            while start < size {
                let end = (start + RANGE_BYTES).min(size);
                out.push(Arc::new(CsvRange {
                    file: file.clone(),
                    start,
                    end,
                    skip_header: self.has_header && start == 0,
                    schema: self.schema.clone(),
                    projection: projection.to_vec(),
                }));
                start = end;
            }
        }
        Ok(out)
    }
}

#[derive(Debug)]
pub(super) struct CsvRange {
    file: FileRef,
    start: u64,
    end: u64,
    skip_header: bool,
    schema: SchemaRef,
    projection: Vec<usize>,
}

/// A `CsvRange` as data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CsvRangeDescriptor {
    file: FileDescriptor,
    start: u64,
    end: u64,
    skip_header: bool,
    schema: SchemaRef,
    projection: Vec<usize>,
}

impl CsvRangeDescriptor {
    pub(super) fn open(&self, stores: &ObjectStores) -> Result<CsvRange> {
        check_columns("a CSV range", &self.projection, &self.schema)?;
        Ok(CsvRange {
            file: self.file.open(stores)?,
            start: self.start,
            end: self.end,
            skip_header: self.skip_header,
            schema: self.schema.clone(),
            projection: self.projection.clone(),
        })
    }
}

impl CsvRange {
    /// The bytes of the lines that start inside [start, end), and the
    /// offset in the file of the first of them.
    fn line_bytes(&self, fetched: &AtomicU64) -> Result<(Vec<u8>, u64)> {
        let size = self.file.size;
        // A line belongs to the range its first byte is in; a line starts at 0
        // or right after a newline, so look one byte back.
        let from = self.start.saturating_sub(1);
        let mut buf = read_range(&self.file, from..self.end, fetched)?.to_vec();
        let mut first = 0usize;
        if self.start > 0 {
            match buf.iter().position(|b| *b == b'\n') {
                Some(p) => first = p + 1,
                None => return Ok((vec![], self.start)),
            }
        }
        // Extend to the end of the last line.
        let mut pos = self.end;
        while pos < size && buf.last() != Some(&b'\n') {
            let next = (pos + 64 * 1024).min(size);
            let more = read_range(&self.file, pos..next, fetched)?;
            match more.iter().position(|b| *b == b'\n') {
                Some(p) => {
                    buf.extend_from_slice(&more[..p + 1]);
                    break;
                }
                None => buf.extend_from_slice(&more),
            }
            pos = next;
        }
        if first >= buf.len() {
            return Ok((vec![], self.start));
        }
        Ok((buf.split_off(first), from + first as u64))
    }

    /// An error of arrow's CSV reader over `bytes` (which start at `offset`
    /// in the file), with its "line N" made the line of the file: arrow
    /// counts records from the start of the range, the header included in
    /// some messages and not in others.
    fn error(&self, e: arrow::error::ArrowError, bytes: &[u8], offset: u64) -> QuarryError {
        let message = e.to_string();
        let located = locate_line(&message).and_then(|(at, len, n)| {
            // "Error while parsing value …" counts data records only.
            let header = usize::from(self.skip_header && message.contains("parsing value"));
            let line = line_of_record(bytes, n + header)?;
            let before = self.lines_before(offset).ok()?;
            Some(format!(
                "{}{}{}",
                &message[..at],
                before + line,
                &message[at + len..]
            ))
        });
        QuarryError::Io(format!(
            "in CSV file '{}': {}",
            self.file.display,
            located.unwrap_or(message)
        ))
    }

    /// Lines that end before `offset` (read in chunks: only on an error).
    fn lines_before(&self, offset: u64) -> Result<usize> {
        let mut lines = 0;
        let mut pos = 0;
        while pos < offset {
            let next = (pos + RANGE_BYTES).min(offset);
            let chunk = read_range(&self.file, pos..next, &AtomicU64::new(0))?;
            lines += chunk.iter().filter(|b| **b == b'\n').count();
            pos = next;
        }
        Ok(lines)
    }
}

/// Where the number of the last "line N" in `message` is: its byte offset,
/// length and value.
fn locate_line(message: &str) -> Option<(usize, usize, usize)> {
    let at = message.rfind("line ")? + "line ".len();
    let len = message[at..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(message.len() - at);
    let n = message[at..at + len].parse().ok()?;
    Some((at, len, n))
}

/// The line (1-based) of `bytes` on which record `n` (1-based) starts, as a
/// CSV reader counts records: blank lines are skipped and a quoted field
/// may hold line breaks.
fn line_of_record(bytes: &[u8], n: usize) -> Option<usize> {
    let (mut line, mut record) = (1, 0);
    let (mut at_line_start, mut in_quotes) = (true, false);
    for &b in bytes {
        if at_line_start && !in_quotes && b != b'\n' && b != b'\r' {
            record += 1;
            if record == n {
                return Some(line);
            }
        }
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' => line += 1,
            _ => {}
        }
        at_line_start = b == b'\n' && !in_quotes || (at_line_start && b == b'\r');
    }
    None
}

impl ScanPartition for CsvRange {
    fn read(
        &self,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        fetched: &AtomicU64,
    ) -> Result<()> {
        let (bytes, offset) = self.line_bytes(fetched)?;
        let projected = Arc::new(self.schema.project(&self.projection)?);
        // Only the row count is needed: parse the first column anyway, as
        // blank lines and quoted line breaks make newlines no count of rows.
        let count_only = self.projection.is_empty();
        let projection = if count_only {
            vec![0]
        } else {
            self.projection.clone()
        };
        let reader = arrow::csv::ReaderBuilder::new(self.schema.clone())
            .with_header(self.skip_header)
            .with_batch_size(8192)
            .with_projection(projection)
            .build(Cursor::new(bytes.as_slice()))
            .map_err(|e| {
                QuarryError::Io(format!("cannot read CSV file '{}': {e}", self.file.display))
            })?;
        for batch in reader {
            let batch = batch.map_err(|e| self.error(e, &bytes, offset))?;
            if count_only {
                let opts = arrow::record_batch::RecordBatchOptions::new()
                    .with_row_count(Some(batch.num_rows()));
                sink(RecordBatch::try_new_with_options(
                    projected.clone(),
                    vec![],
                    &opts,
                )?)?;
                continue;
            }
            sink(RecordBatch::try_new(
                projected.clone(),
                batch.columns().to_vec(),
            )?)?;
        }
        Ok(())
    }

    fn describe(&self) -> Result<ScanDescriptor> {
        Ok(ScanDescriptor::CsvRange(CsvRangeDescriptor {
            file: self.file.describe(),
            start: self.start,
            end: self.end,
            skip_header: self.skip_header,
            schema: self.schema.clone(),
            projection: self.projection.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_on_their_lines() {
        let text = b"a,b\n1,2\n\n3,\"x\ny\"\n4,5\n";
        assert_eq!(line_of_record(text, 1), Some(1));
        assert_eq!(line_of_record(text, 2), Some(2));
        // the blank line 3 is no record; record 3 spans lines 4 and 5
        assert_eq!(line_of_record(text, 3), Some(4));
        assert_eq!(line_of_record(text, 4), Some(6));
        assert_eq!(line_of_record(text, 5), None);
        assert_eq!(
            locate_line("bad value at line 42. Row data"),
            Some((18, 2, 42))
        );
    }
}
