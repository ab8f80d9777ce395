//! Writing query results to local Parquet and CSV files (COPY … TO).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{QuarryError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    Csv,
}

impl FileFormat {
    /// The format a file name's extension says, if it says one.
    pub fn of_path(path: &str) -> Option<FileFormat> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".parquet") {
            Some(FileFormat::Parquet)
        } else if lower.ends_with(".csv") || lower.ends_with(".tsv") {
            Some(FileFormat::Csv)
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
}

/// Writes `batches` to the local file `path` (replacing it) and returns the
/// number of rows written. Parquet row groups hold up to 122,880 rows and
/// ZSTD (level 1) pages; CSV writes NULL as an empty field.
pub fn write_file(
    path: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    options: &WriteOptions,
) -> Result<usize> {
    if path.contains("://") {
        return Err(QuarryError::plan(format!(
            "COPY … TO writes local files only, not '{path}'"
        )));
    }
    let io_error = |e: std::io::Error| QuarryError::exec(format!("cannot write '{path}': {e}"));
    let file = File::create(Path::new(path)).map_err(io_error)?;
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    match options.format {
        FileFormat::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_max_row_group_row_count(Some(122_880))
                .build();
            let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
            for b in batches {
                writer.write(b)?;
            }
            writer.close()?;
        }
        FileFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(options.header)
                .with_delimiter(options.delimiter)
                .build(BufWriter::new(file));
            for b in batches {
                writer.write(b)?;
            }
        }
    }
    Ok(rows)
}
