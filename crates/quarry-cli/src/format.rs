//! Turning a query result into text: a table (or `column = value` lines) for
//! people; CSV, TSV, JSON, NDJSON and Markdown for programs and documents.

use std::io::{self, Write};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use arrow::json::writer::JsonArray;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::{presets, CellAlignment, Table};

use quarry_core::QueryResult;

/// `--format` and `.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A boxed table for people.
    Table,
    /// CSV with a header row; NULL is an empty field.
    Csv,
    /// Tab-separated values with a header row; NULL is an empty field.
    Tsv,
    /// A JSON array of objects, one per row.
    Json,
    /// Newline-delimited JSON: one object per line.
    Ndjson,
    /// A Markdown table.
    Markdown,
    /// One `column = value` line per value, a blank line between rows.
    Line,
}

impl OutputFormat {
    /// The names, for messages: `table|csv|…`.
    pub fn names() -> String {
        use clap::ValueEnum;
        OutputFormat::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|v| v.get_name().to_string())
            .collect::<Vec<_>>()
            .join("|")
    }

    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// Writing a result failed: the output went away, or a value has no text form.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Arrow(#[from] ArrowError),
}

impl OutputError {
    /// The reader of our stdout is gone (`quarry … | head`): stop quietly.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            OutputError::Io(e) => e,
            OutputError::Arrow(ArrowError::IoError(_, e)) => e,
            OutputError::Arrow(_) => return false,
        };
        io.kind() == io::ErrorKind::BrokenPipe
    }
}

/// How results are shown: the format plus the decoration people want and
/// programs do not.
#[derive(Debug, Clone)]
pub struct Printer {
    pub format: OutputFormat,
    /// A `(3 rows)` line under tables (terminal and REPL only).
    pub footer: bool,
    /// `OK` for statements without a result (REPL only: a script stays quiet).
    pub ok_for_statements: bool,
    /// `Run Time: …` after each statement (`.timer on`).
    pub timer: bool,
    /// Tables longer than this show their first and last rows and the total
    /// count (`.maxrows`; None shows every row).
    pub maxrows: Option<usize>,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Self {
        Printer {
            format,
            footer: false,
            ok_for_statements: false,
            timer: false,
            maxrows: None,
        }
    }

    /// Writes one statement's result, then flushes so that the output of a
    /// statement is out before the error of the next one.
    pub fn print(
        &self,
        out: &mut dyn Write,
        result: &QueryResult,
        elapsed: Duration,
    ) -> Result<(), OutputError> {
        // timestamps and intervals printed as DuckDB prints them
        let displayed = result
            .displayable()
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        let result = &displayed;
        if result.is_empty_statement() {
            if self.ok_for_statements {
                writeln!(out, "OK")?;
            }
        } else {
            match self.format {
                OutputFormat::Table => {
                    let shown =
                        write_table(out, result, presets::UTF8_FULL_CONDENSED, self.maxrows)?;
                    let n = result.num_rows();
                    let rows = format!("{n} row{}", if n == 1 { "" } else { "s" });
                    if shown < n {
                        writeln!(out, "({rows}, {shown} shown; .maxrows to see more)")?;
                    } else if self.footer {
                        writeln!(out, "({rows})")?;
                    }
                }
                OutputFormat::Markdown => {
                    write_table(out, result, presets::ASCII_MARKDOWN, None)?;
                }
                OutputFormat::Csv => write_delimited(out, result, b',')?,
                OutputFormat::Tsv => write_delimited(out, result, b'\t')?,
                OutputFormat::Json => write_json(out, result)?,
                OutputFormat::Ndjson => write_ndjson(out, result)?,
                OutputFormat::Line => write_lines(out, result)?,
            }
        }
        if self.timer {
            writeln!(out, "Run Time: {:.3} s", elapsed.as_secs_f64())?;
        }
        out.flush()?;
        Ok(())
    }

    /// Writes text as it is (EXPLAIN (FORMAT dot)): no table around it.
    pub fn print_raw(&self, out: &mut dyn Write, text: &str) -> Result<(), OutputError> {
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            writeln!(out)?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Formats rows `range` of the result (indexes over all batches) as strings.
fn rows_as_text(
    result: &QueryResult,
    range: std::ops::Range<usize>,
    null: &str,
) -> Result<Vec<Vec<String>>, OutputError> {
    let options = FormatOptions::default().with_null(null);
    let mut rows = Vec::with_capacity(range.len());
    let mut first = 0;
    for batch in &result.batches {
        let end = first + batch.num_rows();
        let (from, to) = (range.start.max(first), range.end.min(end));
        if from < to {
            let formatters = batch
                .columns()
                .iter()
                .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in from - first..to - first {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| f.value(row).try_to_string())
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
        }
        first = end;
    }
    Ok(rows)
}

/// A boxed table; with `maxrows`, a long result shows its first and last
/// rows around a row of `…`. Returns how many rows were shown.
fn write_table(
    out: &mut dyn Write,
    result: &QueryResult,
    preset: &str,
    maxrows: Option<usize>,
) -> Result<usize, OutputError> {
    let mut table = Table::new();
    table.load_preset(preset);
    table.set_header(result.schema.fields().iter().map(|f| f.name().as_str()));
    let total = result.num_rows();
    let shown = match maxrows {
        Some(max) if total > max => {
            let head = max.div_ceil(2);
            let tail = max - head;
            for row in rows_as_text(result, 0..head, "NULL")? {
                table.add_row(row);
            }
            table.add_row(vec!["…"; result.schema.fields().len()]);
            for row in rows_as_text(result, total - tail..total, "NULL")? {
                table.add_row(row);
            }
            max
        }
        _ => {
            for row in rows_as_text(result, 0..total, "NULL")? {
                table.add_row(row);
            }
            total
        }
    };
    for (i, field) in result.schema.fields().iter().enumerate() {
        if field.data_type().is_numeric() {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    writeln!(out, "{table}")?;
    Ok(shown)
}

/// `name = value` lines, names right-aligned, a blank line between rows.
fn write_lines(out: &mut dyn Write, result: &QueryResult) -> Result<(), OutputError> {
    let names: Vec<&str> = result
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for (i, row) in rows_as_text(result, 0..result.num_rows(), "NULL")?
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            writeln!(out)?;
        }
        for (name, value) in names.iter().zip(row) {
            writeln!(out, "{name:>width$} = {value}")?;
        }
    }
    Ok(())
}

fn write_delimited(
    out: &mut dyn Write,
    result: &QueryResult,
    delimiter: u8,
) -> Result<(), OutputError> {
    let mut watched = PipeWatch { out, broken: false };
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .with_delimiter(delimiter)
        .build(&mut watched);
    // The header comes with the first batch: an empty answer still gets one.
    let empty = RecordBatch::new_empty(result.schema.clone());
    let batches = match result.batches.as_slice() {
        [] => std::slice::from_ref(&empty),
        batches => batches,
    };
    let written = batches.iter().try_for_each(|b| writer.write(b));
    drop(writer);
    match written {
        Err(_) if watched.broken => Err(io::Error::from(io::ErrorKind::BrokenPipe).into()),
        other => Ok(other?),
    }
}

/// A writer that remembers whether its reader went away: arrow's CSV
/// writer reports an io error as text, which loses its kind, and a closed
/// pipe (`quarry … | head`) must stop the output quietly.
struct PipeWatch<'a> {
    out: &'a mut dyn Write,
    broken: bool,
}

impl Write for PipeWatch<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.out.write(buf);
        self.broken |= r
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::BrokenPipe);
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.out.flush();
        self.broken |= r
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::BrokenPipe);
        r
    }
}

fn write_json(out: &mut dyn Write, result: &QueryResult) -> Result<(), OutputError> {
    // Explicit nulls: every object has every column, as a reader expects.
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(&mut *out);
    for batch in &result.batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    writeln!(out)?;
    Ok(())
}

fn write_ndjson(out: &mut dyn Write, result: &QueryResult) -> Result<(), OutputError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(&mut *out);
    for batch in &result.batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn sample() -> QueryResult {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Float64, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 20])),
            Arc::new(StringArray::from(vec![Some("a,b"), None])),
            Arc::new(Float64Array::from(vec![Some(1.5), None])),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("valid batch");
        QueryResult {
            schema,
            batches: vec![batch.clone(), batch.slice(1, 1)],
        }
    }

    fn render(printer: &Printer, result: &QueryResult) -> String {
        let mut out = Vec::new();
        printer
            .print(&mut out, result, Duration::from_millis(1500))
            .expect("printing works");
        String::from_utf8(out).expect("utf-8 output")
    }

    #[test]
    fn csv_has_header_and_empty_nulls() {
        let text = render(&Printer::new(OutputFormat::Csv), &sample());
        assert_eq!(text, "id,name,price\n1,\"a,b\",1.5\n20,,\n20,,\n");
    }

    #[test]
    fn csv_of_no_rows_is_the_header() {
        let result = QueryResult {
            schema: sample().schema,
            batches: vec![],
        };
        assert_eq!(
            render(&Printer::new(OutputFormat::Csv), &result),
            "id,name,price\n"
        );
    }

    #[test]
    fn json_is_one_array_with_explicit_nulls() {
        let text = render(&Printer::new(OutputFormat::Json), &sample());
        assert_eq!(
            text,
            "[{\"id\":1,\"name\":\"a,b\",\"price\":1.5},{\"id\":20,\"name\":null,\"price\":null},\
             {\"id\":20,\"name\":null,\"price\":null}]\n"
        );
        let result = QueryResult {
            schema: sample().schema,
            batches: vec![],
        };
        assert_eq!(render(&Printer::new(OutputFormat::Json), &result), "[]\n");
    }

    #[test]
    fn table_shows_nulls_and_right_aligns_numbers() {
        let text = render(&Printer::new(OutputFormat::Table), &sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert!(
            lines[1].contains("id") && lines[1].contains("name"),
            "{text}"
        );
        // `1` sits under the right end of the `id` column, NULL fills the gaps.
        assert_eq!(lines[3], "│  1 ┆ a,b  ┆   1.5 │", "{text}");
        assert!(lines[4].contains("NULL"), "{text}");
        assert!(!text.contains("rows)"), "no footer unless asked: {text}");
    }

    #[test]
    fn footer_timer_and_ok_are_opt_in() {
        let mut printer = Printer::new(OutputFormat::Table);
        printer.footer = true;
        printer.timer = true;
        printer.ok_for_statements = true;
        let text = render(&printer, &sample());
        assert!(text.ends_with("(3 rows)\nRun Time: 1.500 s\n"), "{text}");
        assert_eq!(
            render(&printer, &QueryResult::empty()),
            "OK\nRun Time: 1.500 s\n"
        );
        // A script prints nothing for DDL.
        let quiet = Printer::new(OutputFormat::Table);
        assert_eq!(render(&quiet, &QueryResult::empty()), "");
    }

    #[test]
    fn markdown_table() {
        let text = render(&Printer::new(OutputFormat::Markdown), &sample());
        assert!(text.starts_with("| id | name | price |\n|----|"), "{text}");
    }

    #[test]
    fn tsv_ndjson_and_line() {
        let text = render(&Printer::new(OutputFormat::Tsv), &sample());
        assert_eq!(text, "id\tname\tprice\n1\ta,b\t1.5\n20\t\t\n20\t\t\n");
        let text = render(&Printer::new(OutputFormat::Ndjson), &sample());
        assert_eq!(
            text,
            "{\"id\":1,\"name\":\"a,b\",\"price\":1.5}\n\
             {\"id\":20,\"name\":null,\"price\":null}\n\
             {\"id\":20,\"name\":null,\"price\":null}\n"
        );
        let text = render(&Printer::new(OutputFormat::Line), &sample());
        assert!(
            text.starts_with("   id = 1\n name = a,b\nprice = 1.5\n\n   id = 20\n name = NULL\n"),
            "{text}"
        );
    }

    fn numbers(n: i64) -> QueryResult {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        // Several batches, so that head and tail cross batch borders.
        let batches = (0..n)
            .collect::<Vec<_>>()
            .chunks(7)
            .map(|c| {
                let column: ArrayRef = Arc::new(Int64Array::from(c.to_vec()));
                RecordBatch::try_new(schema.clone(), vec![column]).expect("valid batch")
            })
            .collect();
        QueryResult { schema, batches }
    }

    #[test]
    fn maxrows_shows_head_and_tail_and_the_count() {
        let mut printer = Printer::new(OutputFormat::Table);
        printer.maxrows = Some(5);
        let text = render(&printer, &numbers(100));
        let cells: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with('│'))
            .map(|l| l.trim_matches(|c| c == '│' || c == ' '))
            .collect();
        assert_eq!(cells, ["n", "0", "1", "2", "…", "98", "99"], "{text}");
        assert!(
            text.ends_with("(100 rows, 5 shown; .maxrows to see more)\n"),
            "{text}"
        );
        // Short results are whole, with no count unless the footer is on.
        let text = render(&printer, &numbers(5));
        assert_eq!(
            text.lines().filter(|l| l.starts_with('│')).count(),
            6,
            "{text}"
        );
        assert!(!text.contains("rows"), "{text}");
        // Other formats are never cut.
        printer.format = OutputFormat::Csv;
        assert_eq!(render(&printer, &numbers(100)).lines().count(), 101);
    }

    #[test]
    fn format_names() {
        assert_eq!(
            OutputFormat::names(),
            "table|csv|tsv|json|ndjson|markdown|line"
        );
        assert_eq!(OutputFormat::Ndjson.name(), "ndjson");
    }

    #[test]
    fn csv_into_a_closed_pipe_is_a_broken_pipe() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
        }
        let e = write_delimited(&mut Closed, &sample(), b',').unwrap_err();
        assert!(e.is_broken_pipe(), "{e}");
    }

    #[test]
    fn broken_pipe_is_recognised() {
        let e = OutputError::Io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(e.is_broken_pipe());
        let e = OutputError::Arrow(ArrowError::IoError(
            "x".into(),
            io::Error::from(io::ErrorKind::BrokenPipe),
        ));
        assert!(e.is_broken_pipe());
        assert!(!OutputError::Arrow(ArrowError::ComputeError("x".into())).is_broken_pipe());
    }
}
