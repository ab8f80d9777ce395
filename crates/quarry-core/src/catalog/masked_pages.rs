//! Decoding a column chunk at chosen rows only (late materialisation): once
//! a scan's filters have run on their own columns, the other columns are
//! decoded just at the rows that passed. PLAIN values and dictionary
//! indices are read by position, so a row that did not pass costs nothing
//! past its page's decompression (parquet's own reader decodes every value
//! and skips by runs, which is slow when the rows that pass are scattered).
//!
//! For required, non-nested INT32, INT64, DOUBLE and BYTE_ARRAY columns with
//! PLAIN or dictionary pages; other columns are read by parquet's reader.

use std::sync::Arc;

use arrow::array::{
    make_view, ArrayRef, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    StringViewArray,
};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::DataType;
use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::ColumnChunkMetaData;

use crate::error::{QuarryError, Result};

#[derive(Debug, Clone, Copy)]
enum Physical {
    Int32,
    Int64,
    Double,
    ByteArray,
}

impl Physical {
    /// Bytes of a PLAIN value; None for byte arrays (length-prefixed).
    fn width(self) -> Option<usize> {
        match self {
            Physical::Int32 => Some(4),
            Physical::Int64 | Physical::Double => Some(8),
            Physical::ByteArray => None,
        }
    }
}

/// The physical type a column chunk is decoded from here into `target`, or
/// None when this module does not decode it.
fn physical(chunk: &ColumnChunkMetaData, target: &DataType) -> Option<Physical> {
    let descr = chunk.column_descr();
    if descr.max_def_level() != 0 || descr.max_rep_level() != 0 {
        return None;
    }
    let plain_or_dictionary = chunk.encodings().all(|e| {
        matches!(
            e,
            Encoding::PLAIN | Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY | Encoding::RLE
        )
    });
    if !plain_or_dictionary {
        return None;
    }
    match (descr.physical_type(), target) {
        (PhysicalType::INT32, DataType::Int32 | DataType::Date32 | DataType::Decimal128(..)) => {
            Some(Physical::Int32)
        }
        (PhysicalType::INT64, DataType::Int64 | DataType::Decimal128(..)) => Some(Physical::Int64),
        (PhysicalType::DOUBLE, DataType::Float64) => Some(Physical::Double),
        (PhysicalType::BYTE_ARRAY, DataType::Utf8View) => Some(Physical::ByteArray),
        _ => None,
    }
}

/// Whether [`MaskedColumn`] decodes this chunk into `target`.
pub(crate) fn supported(chunk: &ColumnChunkMetaData, target: &DataType) -> bool {
    physical(chunk, target).is_some()
}

/// A column chunk read a batch of rows at a time, decoded only at the rows
/// asked for.
pub(crate) struct MaskedColumn {
    pages: Box<dyn PageReader>,
    physical: Physical,
    target: DataType,
    dictionary: Option<Values>,
    page: Option<DataPage>,
    /// The positions in the page of a read's selected rows.
    positions: Vec<u32>,
}

/// A dictionary: fixed-width values read in place from its PLAIN page (a
/// large dictionary is mostly not needed whole), strings as views of the
/// page (its buffer is the first of every array made from the dictionary).
enum Values {
    Fixed { data: Bytes, count: usize },
    Strings { data: Buffer, views: Vec<u128> },
}

struct DataPage {
    data: Bytes,
    rows: usize,
    /// The next row of the page to be read.
    at: usize,
    kind: PageKind,
}

enum PageKind {
    Plain,
    /// PLAIN byte arrays: each value's place in the page.
    PlainStrings(Vec<(u32, u32)>),
    Dictionary(Indices),
}

/// What a batch's selected rows decode to, before it becomes an array.
enum Output {
    Fixed(Vec<i64>),
    /// Views of the dictionary (buffer 0, when there is one) and of PLAIN
    /// pages (the buffers after it).
    Strings {
        views: Vec<u128>,
        buffers: Vec<Buffer>,
    },
}

fn corrupt(what: impl std::fmt::Display) -> QuarryError {
    QuarryError::Io(format!("corrupt parquet page: {what}"))
}

impl MaskedColumn {
    /// None when the chunk is not one this module decodes.
    pub(crate) fn new(
        pages: Box<dyn PageReader>,
        chunk: &ColumnChunkMetaData,
        target: &DataType,
    ) -> Option<Self> {
        Some(MaskedColumn {
            pages,
            physical: physical(chunk, target)?,
            target: target.clone(),
            dictionary: None,
            page: None,
            positions: Vec::new(),
        })
    }

    /// Decodes the next `rows` rows of the column at `selected`, increasing
    /// row numbers among those rows; the array has one value per selected
    /// row.
    pub(crate) fn read(&mut self, rows: usize, selected: &[u32]) -> Result<ArrayRef> {
        // (a chunk's dictionary page comes first: loaded now, its buffer is
        // the first of the array's)
        if rows > 0 {
            self.load_page()?;
        }
        let mut out = match (self.physical, &self.dictionary) {
            (Physical::ByteArray, dictionary) => Output::Strings {
                views: Vec::with_capacity(selected.len()),
                buffers: match dictionary {
                    Some(Values::Strings { data, .. }) => vec![data.clone()],
                    _ => vec![],
                },
            },
            _ => Output::Fixed(Vec::with_capacity(selected.len())),
        };
        let mut done = 0;
        let mut selected = selected;
        while done < rows {
            self.load_page()?;
            let Some(page) = self.page.as_mut() else {
                return Err(corrupt("a column chunk ends before its row group"));
            };
            let take = (rows - done).min(page.rows - page.at);
            let end = selected.partition_point(|&r| (r as usize) < done + take);
            let at = page.at;
            self.positions.clear();
            self.positions.extend(
                selected[..end]
                    .iter()
                    .map(|&r| (at + (r as usize - done)) as u32),
            );
            decode(
                page,
                self.physical,
                self.dictionary.as_ref(),
                &self.positions,
                &mut out,
            )?;
            selected = &selected[end..];
            page.at += take;
            done += take;
        }
        if !selected.is_empty() {
            return Err(QuarryError::exec(
                "internal error: a selected row past the rows read",
            ));
        }
        finish(out, &self.target)
    }

    /// Makes `page` a data page with rows left, reading a dictionary page
    /// met on the way.
    fn load_page(&mut self) -> Result<()> {
        while self.page.as_ref().is_none_or(|p| p.at >= p.rows) {
            self.page = None;
            let Some(page) = self.pages.get_next_page()? else {
                return Ok(());
            };
            match page {
                Page::DictionaryPage {
                    buf, num_values, ..
                } => {
                    self.dictionary = Some(plain_values(self.physical, &buf, num_values as usize)?);
                }
                Page::DataPage {
                    buf,
                    num_values,
                    encoding,
                    ..
                } => self.page = Some(self.data_page(buf, num_values as usize, encoding)?),
                Page::DataPageV2 {
                    buf,
                    num_values,
                    encoding,
                    def_levels_byte_len,
                    rep_levels_byte_len,
                    ..
                } => {
                    let levels = def_levels_byte_len as usize + rep_levels_byte_len as usize;
                    if levels > buf.len() {
                        return Err(corrupt("levels longer than the page"));
                    }
                    self.page =
                        Some(self.data_page(buf.slice(levels..), num_values as usize, encoding)?);
                }
            }
        }
        Ok(())
    }

    fn data_page(&self, data: Bytes, rows: usize, encoding: Encoding) -> Result<DataPage> {
        let kind = match (encoding, self.physical.width()) {
            (Encoding::PLAIN, Some(width)) => {
                if data.len() < rows * width {
                    return Err(corrupt("fewer PLAIN values than rows"));
                }
                PageKind::Plain
            }
            (Encoding::PLAIN, None) => PageKind::PlainStrings(string_spans(&data, rows)?),
            (Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY, _) => {
                if self.dictionary.is_none() {
                    return Err(corrupt("dictionary indices without a dictionary page"));
                }
                PageKind::Dictionary(Indices::new(&data, rows)?)
            }
            (other, _) => return Err(corrupt(format!("unexpected encoding {other}"))),
        };
        Ok(DataPage {
            data,
            rows,
            at: 0,
            kind,
        })
    }
}

/// Appends the page's values at `positions` (increasing) to `out`.
fn decode(
    page: &mut DataPage,
    physical: Physical,
    dictionary: Option<&Values>,
    positions: &[u32],
    out: &mut Output,
) -> Result<()> {
    match (&mut page.kind, out) {
        (PageKind::Plain, Output::Fixed(values)) => {
            let width = physical.width().unwrap_or(8);
            values.extend(
                positions
                    .iter()
                    .map(|&p| fixed_at(&page.data, p as usize * width, physical)),
            );
        }
        (PageKind::PlainStrings(spans), Output::Strings { views, buffers }) => {
            let block = buffers.len() as u32;
            for &p in positions {
                let (start, len) = spans[p as usize];
                let bytes = &page.data[start as usize..(start + len) as usize];
                std::str::from_utf8(bytes).map_err(|_| corrupt("a string value is not UTF-8"))?;
                views.push(make_view(bytes, block, start));
            }
            if !positions.is_empty() {
                buffers.push(Buffer::from(page.data.clone()));
            }
        }
        (PageKind::Dictionary(indices), out) => match (dictionary, out) {
            (Some(Values::Fixed { data, count }), Output::Fixed(values)) => {
                let width = physical.width().unwrap_or(8);
                let value = |k: usize| fixed_at(data, k * width, physical);
                indices.gather(&page.data, *count, value, positions, values)?
            }
            (Some(Values::Strings { views: dict, data }), Output::Strings { views, buffers }) => {
                // The dictionary's views name buffer 0.
                if !buffers.first().is_some_and(|b| b.ptr_eq(data)) {
                    return Err(QuarryError::exec(
                        "internal error: a dictionary page after the first read",
                    ));
                }
                indices.gather(&page.data, dict.len(), |k| dict[k], positions, views)?
            }
            _ => return Err(corrupt("dictionary of another type")),
        },
        _ => {
            return Err(QuarryError::exec(
                "internal error: page and output types differ",
            ))
        }
    }
    Ok(())
}

/// The fixed-width PLAIN value at byte `at` (bounds checked by the page).
fn fixed_at(data: &[u8], at: usize, physical: Physical) -> i64 {
    match physical {
        Physical::Int32 => i32::from_le_bytes(data[at..at + 4].try_into().unwrap_or([0; 4])) as i64,
        _ => i64::from_le_bytes(data[at..at + 8].try_into().unwrap_or([0; 8])),
    }
}

/// Where each of `count` PLAIN byte arrays (a 4-byte length, then the bytes)
/// lies in `data`.
fn string_spans(data: &[u8], count: usize) -> Result<Vec<(u32, u32)>> {
    let mut spans = Vec::with_capacity(count);
    let mut at = 0usize;
    for _ in 0..count {
        let len = data
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| corrupt("a string's length past the page"))?;
        let start = at + 4;
        if start + len > data.len() || start + len > u32::MAX as usize {
            return Err(corrupt("a string past the page"));
        }
        spans.push((start as u32, len as u32));
        at = start + len;
    }
    Ok(spans)
}

/// A dictionary page's values.
fn plain_values(physical: Physical, data: &Bytes, count: usize) -> Result<Values> {
    match physical.width() {
        Some(width) => {
            if data.len() < count * width {
                return Err(corrupt("fewer dictionary values than declared"));
            }
            Ok(Values::Fixed {
                data: data.clone(),
                count,
            })
        }
        None => {
            let views = string_spans(data, count)?
                .into_iter()
                .map(|(start, len)| {
                    let bytes = &data[start as usize..(start + len) as usize];
                    std::str::from_utf8(bytes)
                        .map_err(|_| corrupt("a dictionary string is not UTF-8"))?;
                    Ok(make_view(bytes, 0, start))
                })
                .collect::<Result<_>>()?;
            Ok(Values::Strings {
                data: Buffer::from(data.clone()),
                views,
            })
        }
    }
}

fn finish(out: Output, target: &DataType) -> Result<ArrayRef> {
    Ok(match (out, target) {
        (Output::Strings { views, buffers }, _) => {
            // Safety: every view was made by `make_view` from a UTF-8 value
            // of the buffer it names.
            Arc::new(unsafe {
                StringViewArray::new_unchecked(ScalarBuffer::from(views), buffers, None)
            })
        }
        (Output::Fixed(v), DataType::Int64) => Arc::new(Int64Array::from(v)),
        (Output::Fixed(v), DataType::Int32) => Arc::new(Int32Array::from_iter_values(
            v.into_iter().map(|x| x as i32),
        )),
        (Output::Fixed(v), DataType::Date32) => Arc::new(Date32Array::from_iter_values(
            v.into_iter().map(|x| x as i32),
        )),
        (Output::Fixed(v), DataType::Float64) => Arc::new(Float64Array::from_iter_values(
            v.into_iter().map(|x| f64::from_bits(x as u64)),
        )),
        (Output::Fixed(v), DataType::Decimal128(p, s)) => Arc::new(
            Decimal128Array::from_iter_values(v.into_iter().map(i128::from))
                .with_precision_and_scale(*p, *s)?,
        ),
        (_, other) => {
            return Err(QuarryError::exec(format!(
                "internal error: no masked decoding into {other}"
            )))
        }
    })
}

/// A data page's dictionary indices: RLE / bit-packed runs, found once per
/// page so that an index is read by its position.
struct Indices {
    bit_width: usize,
    runs: Vec<Run>,
    /// The run of the last position read (positions only grow).
    run: usize,
    /// The indices of a bit-packed run's positions.
    scratch: Vec<u32>,
}

struct Run {
    /// The run's first position in the page, and its number of values.
    first: usize,
    len: usize,
    /// Some(value) for a repeated value; None for bit-packed values
    /// starting at byte `offset` of the page.
    value: Option<u32>,
    offset: usize,
}

impl Indices {
    /// The runs of a page of `count` indices: a byte of bit width, then the
    /// runs, each behind a ULEB128 header.
    fn new(data: &[u8], count: usize) -> Result<Self> {
        let bit_width = *data
            .first()
            .ok_or_else(|| corrupt("an empty dictionary page"))? as usize;
        if bit_width > 32 {
            return Err(corrupt(format!("index bit width {bit_width}")));
        }
        let mut runs = Vec::new();
        let mut at = 1;
        let mut first = 0;
        while first < count {
            let header = uleb128(data, &mut at)?;
            if header & 1 == 1 {
                let groups = (header >> 1) as usize;
                let len = (groups * 8).min(count - first);
                // A last run may hold fewer whole bytes than its groups.
                if len == 0 || at + (len * bit_width).div_ceil(8) > data.len() {
                    return Err(corrupt("a bit-packed run past the page"));
                }
                runs.push(Run {
                    first,
                    len,
                    value: None,
                    offset: at,
                });
                at += groups * bit_width;
                first += len;
            } else {
                let repeat = (header >> 1) as usize;
                let bytes = bit_width.div_ceil(8);
                let value = data
                    .get(at..at + bytes)
                    .ok_or_else(|| corrupt("a repeated index past the page"))?
                    .iter()
                    .rev()
                    .fold(0u32, |v, &b| (v << 8) | b as u32);
                if repeat == 0 {
                    return Err(corrupt("an empty run"));
                }
                let len = repeat.min(count - first);
                runs.push(Run {
                    first,
                    len,
                    value: Some(value),
                    offset: at,
                });
                at += bytes;
                first += len;
            }
        }
        Ok(Indices {
            bit_width,
            runs,
            run: 0,
            scratch: Vec::new(),
        })
    }

    /// Appends the dictionary's values at `positions` (increasing, none
    /// lower than those of the last call) to `out`, a run at a time.
    fn gather<T>(
        &mut self,
        data: &[u8],
        dict_len: usize,
        dict: impl Fn(usize) -> T,
        positions: &[u32],
        out: &mut Vec<T>,
    ) -> Result<()> {
        let past = || corrupt("index past the dictionary");
        let mask = (1u64 << self.bit_width) - 1;
        let mut i = 0;
        while i < positions.len() {
            let p = positions[i] as usize;
            while self
                .runs
                .get(self.run)
                .is_some_and(|r| r.first + r.len <= p)
            {
                self.run += 1;
            }
            let run = self
                .runs
                .get(self.run)
                .ok_or_else(|| corrupt("an index past its page"))?;
            let end = run.first + run.len;
            let j = i + positions[i..].partition_point(|&q| (q as usize) < end);
            match run.value {
                Some(v) if (v as usize) < dict_len => {
                    out.extend((i..j).map(|_| dict(v as usize)));
                }
                Some(_) => return Err(past()),
                None => {
                    // Indices first, then the values: two tight loops (the
                    // loads from a large dictionary overlap).
                    let (first, offset, width) = (run.first, run.offset, self.bit_width);
                    self.scratch.clear();
                    self.scratch.extend(positions[i..j].iter().map(move |&q| {
                        let bit = (q as usize - first) * width;
                        let word = word_at(data, offset + bit / 8);
                        ((word >> (bit % 8)) & mask) as u32
                    }));
                    if self.scratch.iter().any(|&k| k as usize >= dict_len) {
                        return Err(past());
                    }
                    out.extend(self.scratch.iter().map(|&k| dict(k as usize)));
                }
            }
            i = j;
        }
        Ok(())
    }
}

/// The 8 bytes at `at` as a little-endian word, zeros past the end.
#[inline]
fn word_at(data: &[u8], at: usize) -> u64 {
    match data.get(at..at + 8) {
        Some(b) => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
        None => {
            let mut word = [0u8; 8];
            let tail = data.get(at..).unwrap_or(&[]);
            word[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(word)
        }
    }
}

fn uleb128(data: &[u8], at: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data
            .get(*at)
            .ok_or_else(|| corrupt("a run header past the page"))?;
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(corrupt("a run header too long"))
}
