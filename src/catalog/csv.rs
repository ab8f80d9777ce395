//! CSV tables: the schema is inferred from the start of the first file; a
//! scan partition is a byte range of a file, widened to whole lines.
//! (A quoted field holding a newline that straddles a range boundary is not
//! supported.)

use std::io::Cursor;
use std::sync::Arc;

use arrow::csv::reader::Format;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::store::{list_files, read_range, FileRef};
use super::{ScanPartition, TableProvider, TableStats};
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
    pub fn open(location: &str, has_header: bool) -> Result<Self> {
        let files = list_files(location, "csv")?;
        let first = &files[0];
        if first.size == 0 {
            return Err(QuarryError::Io(format!(
                "CSV file '{}' is empty",
                first.display
            )));
        }
        let head = read_range(first, 0..first.size.min(INFER_BYTES))?;
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
            let mut start = 0;
            while start < file.size {
                let end = (start + RANGE_BYTES).min(file.size);
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
struct CsvRange {
    file: FileRef,
    start: u64,
    end: u64,
    skip_header: bool,
    schema: SchemaRef,
    projection: Vec<usize>,
}

impl CsvRange {
    /// The bytes of the lines that start inside [start, end).
    fn line_bytes(&self) -> Result<Vec<u8>> {
        let size = self.file.size;
        // A line belongs to the range its first byte is in; a line starts at 0
        // or right after a newline, so look one byte back.
        let from = self.start.saturating_sub(1);
        let mut buf = read_range(&self.file, from..self.end)?.to_vec();
        let mut first = 0usize;
        if self.start > 0 {
            match buf.iter().position(|b| *b == b'\n') {
                Some(p) => first = p + 1,
                None => return Ok(vec![]),
            }
        }
        // Extend to the end of the last line.
        let mut pos = self.end;
        while pos < size && buf.last() != Some(&b'\n') {
            let next = (pos + 64 * 1024).min(size);
            let more = read_range(&self.file, pos..next)?;
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
            return Ok(vec![]);
        }
        Ok(buf.split_off(first))
    }
}

impl ScanPartition for CsvRange {
    fn read(&self, sink: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        let bytes = self.line_bytes()?;
        let projected = Arc::new(self.schema.project(&self.projection)?);
        if self.projection.is_empty() {
            // Only the row count is needed.
            let mut rows = bytes.iter().filter(|b| **b == b'\n').count();
            if bytes.last().is_some_and(|b| *b != b'\n') {
                rows += 1;
            }
            if self.skip_header {
                rows = rows.saturating_sub(1);
            }
            let opts = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
            return sink(RecordBatch::try_new_with_options(projected, vec![], &opts)?);
        }
        let reader = arrow::csv::ReaderBuilder::new(self.schema.clone())
            .with_header(self.skip_header)
            .with_batch_size(8192)
            .with_projection(self.projection.clone())
            .build(Cursor::new(bytes))
            .map_err(|e| {
                QuarryError::Io(format!("cannot read CSV file '{}': {e}", self.file.display))
            })?;
        for batch in reader {
            let batch = batch.map_err(|e| {
                QuarryError::Io(format!("in CSV file '{}': {e}", self.file.display))
            })?;
            sink(RecordBatch::try_new(
                projected.clone(),
                batch.columns().to_vec(),
            )?)?;
        }
        Ok(())
    }
}
