//! One row group's column chunks, fetched whole into memory, as parquet's
//! decoders read them, with ZSTD pages decompressed by the worker thread's
//! one reused context.
//!
//! Why not parquet's own page decompression: it makes a ZSTD compression
//! and a decompression context for every column chunk it reads, and making
//! one asks the CPU what it supports (`cpuid`), which a virtual machine
//! traps: 3–5 % of the time of a scan-bound query on a VM like ours. It also
//! zeroes every page's buffer before decompressing into it.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::RowGroups;
use parquet::basic::Compression;
use parquet::column::page::{Page, PageIterator, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;

/// A row group whose projected column chunks are in memory.
pub(crate) struct FetchedRowGroup<'a> {
    pub metadata: &'a ParquetMetaData,
    pub row_group: usize,
    /// By leaf column: its chunk's bytes, for the columns fetched.
    pub chunks: Vec<Option<Arc<ChunkBytes>>>,
}

/// A column chunk's bytes and where they start in the file.
pub(crate) struct ChunkBytes {
    pub start: u64,
    pub data: Bytes,
}

impl ChunkBytes {
    fn from(&self, at: u64) -> Result<Bytes> {
        at.checked_sub(self.start)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o <= self.data.len())
            .map(|o| self.data.slice(o..))
            .ok_or_else(|| {
                ParquetError::General(format!(
                    "read at byte {at} outside the column chunk's bytes {}..{}",
                    self.start,
                    self.start + self.data.len() as u64
                ))
            })
    }
}

impl Length for ChunkBytes {
    fn len(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

impl ChunkReader for ChunkBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        Ok(self.from(start)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        let rest = self.from(start)?;
        if length > rest.len() {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at byte {start}: the column chunk ends before"
            )));
        }
        Ok(rest.slice(..length))
    }
}

impl RowGroups for FetchedRowGroup<'_> {
    fn num_rows(&self) -> usize {
        self.row_group_meta().num_rows().max(0) as usize
    }

    fn column_chunks(&self, i: usize) -> Result<Box<dyn PageIterator>> {
        let data = self
            .chunks
            .get(i)
            .and_then(|c| c.clone())
            .ok_or_else(|| ParquetError::General(format!("column {i} was not fetched")))?;
        let meta = self.row_group_meta().column(i);
        let rows = self.num_rows();
        let pages: Box<dyn PageReader> = if matches!(meta.compression(), Compression::ZSTD(_)) {
            // The page reader is told the chunk is not compressed, so that
            // it hands over the pages as stored; they are decompressed here.
            let stored = meta
                .clone()
                .into_builder()
                .set_compression(Compression::UNCOMPRESSED)
                .build()?;
            let inner = SerializedPageReader::new(data, &stored, rows, None)?;
            Box::new(ZstdPages {
                inner: Box::new(inner),
            })
        } else {
            Box::new(SerializedPageReader::new(data, meta, rows, None)?)
        };
        Ok(Box::new(OneChunk(Some(pages))))
    }

    fn row_groups(&self) -> Box<dyn Iterator<Item = &RowGroupMetaData> + '_> {
        Box::new(std::iter::once(self.row_group_meta()))
    }

    fn metadata(&self) -> &ParquetMetaData {
        self.metadata
    }
}

impl FetchedRowGroup<'_> {
    fn row_group_meta(&self) -> &RowGroupMetaData {
        self.metadata.row_group(self.row_group)
    }
}

/// The page readers of a column over the row groups read: one here.
struct OneChunk(Option<Box<dyn PageReader>>);

impl Iterator for OneChunk {
    type Item = Result<Box<dyn PageReader>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.take().map(Ok)
    }
}

impl PageIterator for OneChunk {}

/// The pages of a ZSTD column chunk, as stored, decompressed on the way.
struct ZstdPages {
    inner: Box<dyn PageReader>,
}

impl Iterator for ZstdPages {
    type Item = Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for ZstdPages {
    fn get_next_page(&mut self) -> Result<Option<Page>> {
        self.inner.get_next_page()?.map(decompress_page).transpose()
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>> {
        self.inner.peek_next_page()
    }

    fn skip_next_page(&mut self) -> Result<()> {
        self.inner.skip_next_page()
    }

    fn at_record_boundary(&mut self) -> Result<bool> {
        self.inner.at_record_boundary()
    }
}

fn decompress_page(page: Page) -> Result<Page> {
    Ok(match page {
        Page::DataPage {
            buf,
            num_values,
            encoding,
            def_level_encoding,
            rep_level_encoding,
            statistics,
        } => Page::DataPage {
            buf: decompress(&buf, 0)?,
            num_values,
            encoding,
            def_level_encoding,
            rep_level_encoding,
            statistics,
        },
        Page::DataPageV2 {
            buf,
            num_values,
            encoding,
            num_nulls,
            num_rows,
            def_levels_byte_len,
            rep_levels_byte_len,
            is_compressed,
            statistics,
        } => {
            // The levels come first and are never compressed.
            let levels = def_levels_byte_len as usize + rep_levels_byte_len as usize;
            if levels > buf.len() {
                return Err(ParquetError::General(format!(
                    "data page's levels ({levels} bytes) longer than the page ({} bytes)",
                    buf.len()
                )));
            }
            Page::DataPageV2 {
                buf: if is_compressed {
                    decompress(&buf, levels)?
                } else {
                    buf
                },
                num_values,
                encoding,
                num_nulls,
                num_rows,
                def_levels_byte_len,
                rep_levels_byte_len,
                is_compressed: false,
                statistics,
            }
        }
        Page::DictionaryPage {
            buf,
            num_values,
            encoding,
            is_sorted,
        } => Page::DictionaryPage {
            buf: decompress(&buf, 0)?,
            num_values,
            encoding,
            is_sorted,
        },
    })
}

thread_local! {
    /// The worker thread's ZSTD context, made on its first page.
    static CONTEXT: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `buf` with the ZSTD frames after its first `keep` bytes decompressed.
fn decompress(buf: &Bytes, keep: usize) -> Result<Bytes> {
    let compressed = &buf[keep..];
    if compressed.is_empty() {
        // a page without values (all NULL) may store nothing at all
        return Ok(buf.clone());
    }
    let failed = |e: &dyn std::fmt::Display| {
        ParquetError::General(format!("cannot decompress a ZSTD page: {e}"))
    };
    // The size a frame declares; pages of one frame (as writers make them)
    // decompress in one call. Others, or a frame that does not say its
    // size, are decompressed as a stream.
    let declared = zstd::zstd_safe::get_frame_content_size(compressed)
        .ok()
        .flatten()
        .and_then(|size| usize::try_from(size).ok())
        .filter(|&size| size <= MAX_PAGE_BYTES);
    if let Some(size) = declared {
        let mut out = Vec::with_capacity(size);
        let whole = CONTEXT.with(|cell| {
            let mut cell = cell.borrow_mut();
            let context = match cell.as_mut() {
                Some(c) => c,
                None => cell.insert(zstd::bulk::Decompressor::new().map_err(|e| failed(&e))?),
            };
            // Writes `out` from its start, into its capacity: nothing is zeroed.
            Ok::<_, ParquetError>(context.decompress_to_buffer(compressed, &mut out).is_ok())
        })?;
        if whole {
            return Ok(match keep {
                0 => Bytes::from(out),
                _ => Bytes::from([&buf[..keep], &out].concat()),
            });
        }
    }
    let mut out = buf[..keep].to_vec();
    zstd::stream::copy_decode(compressed, &mut out).map_err(|e| failed(&e))?;
    Ok(Bytes::from(out))
}

/// A frame declaring more than this is not believed up front (a corrupt
/// header must not make a huge allocation): it is decompressed as a stream.
const MAX_PAGE_BYTES: usize = 1 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_with_and_without_their_size_decompress_after_the_kept_bytes() {
        let text: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut page = b"levels".to_vec();
        page.extend(zstd::bulk::compress(&text, 3).unwrap());
        let out = decompress(&Bytes::from(page), 6).unwrap();
        assert_eq!(&out[..6], b"levels");
        assert_eq!(&out[6..], &text[..]);

        // a streamed frame does not declare its size
        let mut streamed = Vec::new();
        let mut enc = zstd::stream::Encoder::new(&mut streamed, 3).unwrap();
        std::io::Write::write_all(&mut enc, &text).unwrap();
        enc.finish().unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&streamed),
            Ok(None)
        ));
        assert_eq!(
            &decompress(&Bytes::from(streamed), 0).unwrap()[..],
            &text[..]
        );

        // two frames one after the other
        let mut two = zstd::bulk::compress(&text[..100], 1).unwrap();
        two.extend(zstd::bulk::compress(&text[100..], 1).unwrap());
        assert_eq!(&decompress(&Bytes::from(two), 0).unwrap()[..], &text[..]);

        assert!(decompress(&Bytes::from_static(b"not zstd at all"), 0).is_err());
        assert!(decompress(&Bytes::from_static(b""), 0).unwrap().is_empty());
    }
}
