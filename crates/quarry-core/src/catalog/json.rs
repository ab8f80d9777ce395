//! JSON tables: newline-delimited JSON (one object per line) or one
//! top-level array of objects, as DuckDB's `read_json` reads them. The
//! schema is inferred from the start of the files; a scan partition is a
//! file, read in chunks and decoded by arrow's JSON decoder batch by batch.
//! Nested objects and arrays become VARCHAR columns holding their JSON text.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::reader::{infer_json_schema_from_iterator, Decoder, ReaderBuilder};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use serde::{Deserialize, Serialize};

use super::scan_descriptor::check_columns;
use super::store::{list_files, read_range, FileDescriptor, FileRef, ObjectStores};
use super::{ScanDescriptor, ScanPartition, TableProvider, TableStats};
use crate::error::{QuarryError, Result};
use crate::plan::Expr;

/// Bytes read (and decoded) at a time.
const CHUNK_BYTES: u64 = 1024 * 1024;
/// Records read to infer the schema, at most.
const INFER_RECORDS: usize = 10_000;
const BATCH_ROWS: usize = 8192;

/// How the records of a JSON file are laid out (DuckDB's `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JsonFormat {
    /// An array if the file starts with `[`, else newline-delimited.
    Auto,
    NewlineDelimited,
    Array,
}

impl JsonFormat {
    pub fn parse(name: &str) -> Result<JsonFormat> {
        match name.to_ascii_lowercase().as_str() {
            "auto" => Ok(JsonFormat::Auto),
            "newline_delimited" | "nd" => Ok(JsonFormat::NewlineDelimited),
            "array" => Ok(JsonFormat::Array),
            other => Err(QuarryError::plan(format!(
                "unknown JSON format '{other}' (expected 'auto', 'newline_delimited' or 'array')"
            ))),
        }
    }

    /// Whether a file that starts with `head` holds one array of records.
    fn is_array(self, head: &[u8]) -> bool {
        match self {
            JsonFormat::Array => true,
            JsonFormat::NewlineDelimited => false,
            JsonFormat::Auto => head
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'['),
        }
    }
}

#[derive(Debug)]
pub struct JsonTable {
    files: Vec<FileRef>,
    /// The columns as the engine sees them (nested values as VARCHAR).
    schema: SchemaRef,
    /// The columns as the decoder reads them.
    decoded: SchemaRef,
    format: JsonFormat,
}

impl JsonTable {
    pub fn open(location: &str, format: JsonFormat, stores: &ObjectStores) -> Result<Self> {
        let files = list_files(location, "json", stores)?;
        let mut records: Vec<serde_json::Value> = Vec::new();
        for file in &files {
            if records.len() >= INFER_RECORDS {
                break;
            }
            sample_records(file, format, &mut records)?;
        }
        let inferred = infer_json_schema_from_iterator(records.iter().map(Ok)).map_err(|e| {
            QuarryError::Io(format!("cannot read JSON file '{}': {e}", files[0].display))
        })?;
        if inferred.fields().is_empty() {
            return Err(QuarryError::Io(format!(
                "JSON file '{}' has no records with fields",
                files[0].display
            )));
        }
        // A column of nulls only is read as VARCHAR (DuckDB: JSON).
        let decoded = Schema::new(
            inferred
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Null => Field::new(f.name(), DataType::Utf8, true),
                    _ => f.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        );
        let schema = Schema::new(
            decoded
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), engine_type(f.data_type()), true))
                .collect::<Vec<_>>(),
        );
        Ok(JsonTable {
            files,
            schema: Arc::new(schema),
            decoded: Arc::new(decoded),
            format,
        })
    }
}

/// The engine's type for a decoded JSON column: nested values are kept as
/// their JSON text (the engine has no STRUCT or LIST).
fn engine_type(t: &DataType) -> DataType {
    if t.is_nested() {
        DataType::Utf8
    } else {
        t.clone()
    }
}

/// Adds the records that start in the first chunk of `file` to `out`, up
/// to `INFER_RECORDS` in all.
fn sample_records(
    file: &FileRef,
    format: JsonFormat,
    out: &mut Vec<serde_json::Value>,
) -> Result<()> {
    let mut chunk = read_range(file, 0..file.size.min(CHUNK_BYTES), &AtomicU64::new(0))?.to_vec();
    let mut records = Records::new(format.is_array(&chunk));
    let mut spans = Vec::new();
    let mut start = None;
    records
        .scan(&mut chunk, &mut |event| match event {
            Event::Start { at, line } => start = Some((at, line)),
            Event::End { at } => {
                if let Some((s, line)) = start.take() {
                    spans.push((s, at, line));
                }
            }
        })
        .map_err(|line| not_array(file, line))?;
    for (s, e, line) in spans {
        if out.len() >= INFER_RECORDS {
            break;
        }
        let value: serde_json::Value = serde_json::from_slice(&chunk[s..e]).map_err(|err| {
            QuarryError::Io(format!(
                "malformed JSON in file '{}' at line {}: {err}",
                file.display,
                line + err.line() - 1
            ))
        })?;
        if !value.is_object() {
            return Err(QuarryError::Io(format!(
                "JSON file '{}' line {line}: a record is not an object: {}",
                file.display,
                truncate(&chunk[s..e])
            )));
        }
        out.push(value);
    }
    if let Some((_, line)) = start.filter(|_| file.size <= CHUNK_BYTES) {
        return Err(QuarryError::Io(format!(
            "malformed JSON in file '{}' at line {line}: the file ends inside this record",
            file.display
        )));
    }
    Ok(())
}

fn not_array(file: &FileRef, line: usize) -> QuarryError {
    QuarryError::Io(format!(
        "JSON file '{}' line {line}: expected a top-level array ('[') for format 'array'",
        file.display
    ))
}

fn truncate(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.into_owned(),
    }
}

impl TableProvider for JsonTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn statistics(&self) -> TableStats {
        TableStats::default()
    }

    fn kind(&self) -> &'static str {
        "json"
    }

    fn partitions(
        &self,
        projection: &[usize],
        _filters: &[Expr],
    ) -> Result<Vec<Arc<dyn ScanPartition>>> {
        Ok(self
            .files
            .iter()
            .map(|file| {
                Arc::new(JsonFile {
                    file: file.clone(),
                    format: self.format,
                    decoded: self.decoded.clone(),
                    schema: self.schema.clone(),
                    projection: projection.to_vec(),
                }) as Arc<dyn ScanPartition>
            })
            .collect())
    }
}

#[derive(Debug)]
pub(super) struct JsonFile {
    file: FileRef,
    format: JsonFormat,
    decoded: SchemaRef,
    schema: SchemaRef,
    projection: Vec<usize>,
}

/// A `JsonFile` as data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonFileDescriptor {
    file: FileDescriptor,
    format: JsonFormat,
    decoded: SchemaRef,
    schema: SchemaRef,
    projection: Vec<usize>,
}

impl JsonFileDescriptor {
    pub(super) fn open(&self, stores: &ObjectStores) -> Result<JsonFile> {
        check_columns("a JSON file", &self.projection, &self.schema)?;
        check_columns("a JSON file", &self.projection, &self.decoded)?;
        Ok(JsonFile {
            file: self.file.open(stores)?,
            format: self.format,
            decoded: self.decoded.clone(),
            schema: self.schema.clone(),
            projection: self.projection.clone(),
        })
    }
}

impl JsonFile {
    /// The columns the decoder reads: the projected ones, or the first one
    /// when only the row count is needed.
    fn decoder(&self, batch_rows: usize) -> Result<Decoder> {
        let columns = if self.projection.is_empty() {
            vec![0]
        } else {
            self.projection.clone()
        };
        Ok(
            ReaderBuilder::new(Arc::new(self.decoded.project(&columns)?))
                .with_batch_size(batch_rows)
                // a column of numbers and strings is VARCHAR: numbers read as text
                .with_coerce_primitive(true)
                .build_decoder()?,
        )
    }

    /// A batch of the decoder as the engine's projected columns.
    fn output(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let projected = Arc::new(self.schema.project(&self.projection)?);
        if self.projection.is_empty() {
            let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            return Ok(RecordBatch::try_new_with_options(projected, vec![], &opts)?);
        }
        let columns = batch
            .columns()
            .iter()
            .map(|c| {
                if c.data_type().is_nested() {
                    json_text(c)
                } else {
                    Ok(c.clone())
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(projected, columns)?)
    }

    /// Decodes the file, handing on each batch; any error of the decoder
    /// is returned as is (`read` then finds its line).
    fn decode(
        &self,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        fetched: &AtomicU64,
    ) -> Result<std::result::Result<(), String>> {
        let mut decoder = self.decoder(BATCH_ROWS)?;
        let mut records: Option<Records> = None;
        let mut pos = 0;
        while pos < self.file.size {
            let end = (pos + CHUNK_BYTES).min(self.file.size);
            let mut chunk = read_range(&self.file, pos..end, fetched)?.to_vec();
            pos = end;
            let records = records.get_or_insert_with(|| Records::new(self.format.is_array(&chunk)));
            if let Err(line) = records.scan(&mut chunk, &mut |_| {}) {
                return Err(not_array(&self.file, line));
            }
            let mut at = 0;
            while at < chunk.len() {
                match decoder.decode(&chunk[at..]) {
                    Ok(n) => at += n,
                    Err(e) => return Ok(Err(e.to_string())),
                }
                if at < chunk.len() {
                    match decoder.flush() {
                        Ok(Some(b)) => sink(self.output(b)?)?,
                        Ok(None) => {}
                        Err(e) => return Ok(Err(e.to_string())),
                    }
                }
            }
        }
        if records.as_ref().is_some_and(|r| r.depth > 0 || r.in_string) {
            return Ok(Err("the file ends inside a record".to_string()));
        }
        match decoder.flush() {
            Ok(Some(b)) => sink(self.output(b)?)?,
            Ok(None) => {}
            Err(e) => return Ok(Err(e.to_string())),
        }
        Ok(Ok(()))
    }

    /// The line of the first record of the file that does not decode, and
    /// why: reads the file again record by record (only after an error).
    fn locate_error(&self) -> Result<Option<(usize, String)>> {
        let fetched = AtomicU64::new(0);
        let mut records: Option<Records> = None;
        let mut current: Vec<u8> = Vec::new();
        let mut start_line: Option<usize> = None;
        let mut found: Option<(usize, String)> = None;
        let mut pos = 0;
        while pos < self.file.size && found.is_none() {
            let end = (pos + CHUNK_BYTES).min(self.file.size);
            let mut chunk = read_range(&self.file, pos..end, &fetched)?.to_vec();
            pos = end;
            let records = records.get_or_insert_with(|| Records::new(self.format.is_array(&chunk)));
            let mut spans: Vec<(Option<usize>, usize, Option<usize>)> = Vec::new();
            if let Err(line) = records.scan(&mut chunk, &mut |event| match event {
                Event::Start { at, line } => spans.push((Some(at), line, None)),
                Event::End { at } => match spans.last_mut() {
                    Some(last) if last.2.is_none() => last.2 = Some(at),
                    _ => spans.push((None, 0, Some(at))),
                },
            }) {
                return Ok(Some((line, "expected a top-level array".to_string())));
            }
            if spans.is_empty() {
                // a record open across the whole chunk
                if start_line.is_some() {
                    current.extend_from_slice(&chunk);
                }
                continue;
            }
            for (s, line, e) in spans {
                if let Some(s) = s {
                    current.clear();
                    start_line = Some(line);
                    current.extend_from_slice(&chunk[s..e.unwrap_or(chunk.len())]);
                } else if let Some(e) = e {
                    current.extend_from_slice(&chunk[..e]);
                }
                if e.is_some() {
                    let line = start_line.take().unwrap_or(0);
                    if let Err(why) = self.decode_one(&current) {
                        found = Some((line, why));
                        break;
                    }
                }
            }
        }
        if found.is_none() {
            if let Some(line) = start_line {
                found = Some((line, "the file ends inside this record".to_string()));
            }
        }
        Ok(found)
    }

    fn decode_one(&self, record: &[u8]) -> std::result::Result<(), String> {
        let mut decoder = self.decoder(1).map_err(|e| e.to_string())?;
        decoder.decode(record).map_err(|e| e.to_string())?;
        if decoder.has_partial_record() {
            return Err("incomplete record".to_string());
        }
        decoder.flush().map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl ScanPartition for JsonFile {
    fn read(
        &self,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        fetched: &AtomicU64,
    ) -> Result<()> {
        let Err(why) = self.decode(sink, fetched)? else {
            return Ok(());
        };
        let message = match self.locate_error()? {
            Some((line, detail)) => format!(
                "malformed JSON in file '{}' at line {line}: {detail}",
                self.file.display
            ),
            None => format!("malformed JSON in file '{}': {why}", self.file.display),
        };
        Err(QuarryError::Io(message))
    }

    fn read_buffer_bytes(&self) -> usize {
        // a chunk and the decoder's tape for it
        2 * CHUNK_BYTES as usize
    }

    fn describe(&self) -> Result<ScanDescriptor> {
        Ok(ScanDescriptor::JsonFile(JsonFileDescriptor {
            file: self.file.describe(),
            format: self.format,
            decoded: self.decoded.clone(),
            schema: self.schema.clone(),
            projection: self.projection.clone(),
        }))
    }
}

/// Nested values as their JSON text.
fn json_text(column: &ArrayRef) -> Result<ArrayRef> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "v",
        column.data_type().clone(),
        true,
    )]));
    let batch = RecordBatch::try_new(schema, vec![column.clone()])?;
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
        writer.write(&batch)?;
        writer.finish()?;
    }
    let text = String::from_utf8_lossy(&buf);
    let mut out = StringBuilder::new();
    for (i, line) in text.lines().enumerate() {
        // each line is {"v":<value>}
        match line
            .strip_prefix("{\"v\":")
            .and_then(|l| l.strip_suffix('}'))
        {
            Some(value) if !column.is_null(i) => out.append_value(value),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Where the records of a JSON text start and end, found chunk by chunk.
/// Records are the top-level values, or for an array file the elements of
/// the one top-level array: its brackets and the commas between its
/// elements are blanked out so that the decoder sees a stream of records.
#[derive(Debug)]
struct Records {
    array: bool,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Inside a record that is a scalar (not an object).
    in_scalar: bool,
    /// The line of the current byte (1-based).
    line: usize,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// A record starts at byte `at` of the chunk, on `line`.
    Start { at: usize, line: usize },
    /// A record ends just before byte `at`.
    End { at: usize },
}

impl Records {
    fn new(array: bool) -> Self {
        Records {
            array,
            depth: 0,
            in_string: false,
            escaped: false,
            in_scalar: false,
            line: 1,
        }
    }

    /// Scans `chunk` (the next bytes of the file); an error is the line of
    /// a value outside the top-level array of an array file.
    fn scan(
        &mut self,
        chunk: &mut [u8],
        on: &mut dyn FnMut(Event),
    ) -> std::result::Result<(), usize> {
        let record_depth = usize::from(self.array);
        for (i, byte) in chunk.iter_mut().enumerate() {
            let b = *byte;
            if b == b'\n' {
                self.line += 1;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.in_scalar {
                        self.in_scalar = false;
                        on(Event::End { at: i + 1 });
                    }
                }
                continue;
            }
            if self.in_scalar {
                if !(b.is_ascii_whitespace() || matches!(b, b',' | b']' | b'{' | b'[')) {
                    continue;
                }
                self.in_scalar = false;
                on(Event::End { at: i });
            }
            let line = self.line - usize::from(b == b'\n');
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'[' if self.array && self.depth == 0 => {
                    self.depth = 1;
                    *byte = b' ';
                }
                b']' if self.array && self.depth == 1 => {
                    self.depth = 0;
                    *byte = b' ';
                }
                b',' if self.array && self.depth == 1 => *byte = b' ',
                _ if self.array && self.depth == 0 => return Err(line),
                b'{' | b'[' => {
                    if self.depth == record_depth {
                        on(Event::Start { at: i, line });
                    }
                    self.depth += 1;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == record_depth {
                        on(Event::End { at: i + 1 });
                    }
                }
                _ => {
                    if self.depth == record_depth {
                        on(Event::Start { at: i, line });
                        self.in_scalar = true;
                    }
                    if b == b'"' {
                        self.in_string = true;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str, array: bool) -> (String, Vec<(usize, usize, usize)>) {
        let mut bytes = text.as_bytes().to_vec();
        let mut out = Vec::new();
        let mut start = None;
        Records::new(array)
            .scan(&mut bytes, &mut |e| match e {
                Event::Start { at, line } => start = Some((at, line)),
                Event::End { at } => {
                    let (s, line) = start.take().unwrap();
                    out.push((s, at, line));
                }
            })
            .unwrap();
        (String::from_utf8(bytes).unwrap(), out)
    }

    #[test]
    fn records_of_lines_and_of_an_array() {
        let (text, found) = spans("{\"a\":\"}\"}\n{\"a\":[1,2]}\n", false);
        assert_eq!(text, "{\"a\":\"}\"}\n{\"a\":[1,2]}\n");
        assert_eq!(found, vec![(0, 9, 1), (10, 21, 2)]);
        let (text, found) = spans("[\n {\"a\": 1},\n {\"a\": \"x,]\"}\n]", true);
        assert_eq!(text, " \n {\"a\": 1} \n {\"a\": \"x,]\"}\n ");
        assert_eq!(found, vec![(3, 11, 2), (14, 26, 3)]);
        // a scalar record
        let (_, found) = spans("{\"a\":1}\n42\n", false);
        assert_eq!(found, vec![(0, 7, 1), (8, 10, 2)]);
    }

    #[test]
    fn a_value_outside_the_array_is_refused() {
        let mut bytes = b"{\"a\":1}".to_vec();
        assert_eq!(Records::new(true).scan(&mut bytes, &mut |_| {}), Err(1));
    }
}
