//! Spill files: batches written to Arrow IPC files in the temp directory and
//! read back in order. A file is removed when its handle is dropped, so a
//! query that ends, fails or is cancelled leaves none behind.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use arrow::record_batch::RecordBatchOptions;

use crate::error::{QuarryError, Result};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A finished spill file.
#[derive(Debug)]
pub struct SpillFile {
    path: PathBuf,
    pub bytes: u64,
}

impl SpillFile {
    /// Writes `batches` to a new file in `dir`.
    pub fn write(dir: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<SpillFile> {
        let name = format!(
            "quarry-spill-{}-{}.arrow",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let io = |e: std::io::Error| {
            QuarryError::Io(format!(
                "cannot write spill file in '{}': {e}",
                dir.display()
            ))
        };
        let file = File::create(&path).map_err(io)?;
        let spill = SpillFile { path, bytes: 0 };
        let mut writer = FileWriter::try_new(BufWriter::new(file), schema)
            .map_err(|e| QuarryError::Io(format!("cannot write spill file: {e}")))?;
        for b in batches {
            // A piece of a split batch would write every string of the whole.
            let b = &compact_views(b.clone())?;
            writer.write(b).map_err(|e| {
                QuarryError::Io(format!("cannot write spill file (disk full?): {e}"))
            })?;
        }
        writer
            .finish()
            .map_err(|e| QuarryError::Io(format!("cannot write spill file (disk full?): {e}")))?;
        let mut spill = spill;
        spill.bytes = std::fs::metadata(&spill.path).map(|m| m.len()).unwrap_or(0);
        Ok(spill)
    }

    /// Reads the batches back, one at a time.
    pub fn reader(&self) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
        let file = File::open(&self.path).map_err(|e| {
            QuarryError::Io(format!(
                "cannot read spill file '{}': {e}",
                self.path.display()
            ))
        })?;
        let reader = FileReader::try_new(BufReader::new(file), None)
            .map_err(|e| QuarryError::Io(format!("cannot read spill file: {e}")))?;
        Ok(reader.map(|b| b.map_err(|e| QuarryError::Io(format!("cannot read spill file: {e}")))))
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `take` or `slice` of a string or binary view column keeps all the data
/// buffers of the original: a piece would hold (and write to disk) the
/// strings of the whole batch. Copies just its own strings, where the
/// buffers are much larger than what its views point at.
pub fn compact_views(batch: RecordBatch) -> Result<RecordBatch> {
    if !batch
        .columns()
        .iter()
        .any(|c| matches!(c.data_type(), DataType::Utf8View | DataType::BinaryView))
    {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            match c.data_type() {
                DataType::Utf8View if holds_more(c.as_string_view().data_buffers(), c) => {
                    Arc::new(c.as_string_view().gc())
                }
                DataType::BinaryView if holds_more(c.as_binary_view().data_buffers(), c) => {
                    Arc::new(c.as_binary_view().gc())
                }
                _ => c.clone(),
            }
        })
        .collect();
    let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &opts,
    )?)
}

/// Whether the data buffers of view array `c` hold much more than the bytes
/// its views point at, or are many.
fn holds_more(buffers: &[arrow::buffer::Buffer], c: &ArrayRef) -> bool {
    let held: usize = buffers.iter().map(|b| b.len()).sum();
    // (many buffers: each slice or take copies the list of them)
    buffers.len() > 16
        || (held > 64 * 1024 && held > 2 * crate::runtime::memory::array_bytes(c.as_ref()))
}
