//! Writing query results to local Parquet and CSV files (COPY … TO).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::parallel_parquet::ParallelParquetWriter;
use crate::error::{QuarryError, Result};
use crate::runtime::memory::MemoryPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    Csv,
    /// Newline-delimited JSON: an object per row, every column in it.
    Json,
}

impl FileFormat {
    /// The format a file name's extension says, if it says one.
    pub fn of_path(path: &str) -> Option<FileFormat> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".parquet") {
            Some(FileFormat::Parquet)
        } else if lower.ends_with(".csv") || lower.ends_with(".tsv") {
            Some(FileFormat::Csv)
        } else if super::is_json_path(&lower) {
            Some(FileFormat::Json)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub format: FileFormat,
    /// CSV: a header line of column names
    pub header: bool,
    /// CSV: the field separator
    pub delimiter: u8,
    /// Parquet: row groups encoded at once (CSV and JSON are written on
    /// the caller's thread)
    pub threads: usize,
}

/// A file being written batch by batch (COPY … TO streams the result into
/// it). Parquet row groups hold up to 122,880 rows and ZSTD (level 1)
/// pages, and are encoded on several threads (`ParallelParquetWriter`);
/// CSV writes NULL as an empty field.
pub struct FileWriter {
    path: String,
    rows: usize,
    inner: Inner,
}

enum Inner {
    Parquet(Box<ParallelParquetWriter>),
    Csv(Box<arrow::csv::Writer<BufWriter<File>>>),
    Json(Box<arrow::json::LineDelimitedWriter<BufWriter<File>>>),
}

impl FileWriter {
    /// Creates (or replaces) the local file `path` for rows of `schema`;
    /// Parquet row groups being encoded are reserved in `memory`.
    pub fn create(
        path: &str,
        schema: &SchemaRef,
        options: &WriteOptions,
        memory: &Arc<MemoryPool>,
    ) -> Result<Self> {
        if path.contains("://") {
            return Err(QuarryError::plan(format!(
                "COPY … TO writes local files only, not '{path}'"
            )));
        }
        let file = File::create(Path::new(path))
            .map_err(|e| QuarryError::exec(format!("cannot write '{path}': {e}")))?;
        let inner = match options.format {
            FileFormat::Parquet => Inner::Parquet(Box::new(ParallelParquetWriter::create(
                file,
                path,
                schema,
                options.threads,
                memory,
            )?)),
            FileFormat::Csv => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(options.header)
                    .with_delimiter(options.delimiter)
                    .build(BufWriter::new(file));
                // the header line, even of an empty result
                w.write(&RecordBatch::new_empty(schema.clone()))?;
                Inner::Csv(Box::new(w))
            }
            // (NULLs written out, as DuckDB does: every object has every
            // column)
            FileFormat::Json => Inner::Json(Box::new(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(BufWriter::new(file)),
            )),
        };
        Ok(FileWriter {
            path: path.to_string(),
            rows: 0,
            inner,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.inner {
            Inner::Parquet(w) => w.write(batch)?,
            Inner::Csv(w) => w.write(batch)?,
            Inner::Json(w) => w.write(batch)?,
        }
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Finishes the file and returns the number of rows written.
    pub fn finish(self) -> Result<usize> {
        match self.inner {
            Inner::Parquet(w) => w.finish()?,
            Inner::Csv(w) => {
                w.into_inner()
                    .into_inner()
                    .map_err(|e| QuarryError::exec(format!("cannot write '{}': {e}", self.path)))?;
            }
            Inner::Json(mut w) => {
                w.finish()?;
                w.into_inner()
                    .into_inner()
                    .map_err(|e| QuarryError::exec(format!("cannot write '{}': {e}", self.path)))?;
            }
        }
        Ok(self.rows)
    }
}
