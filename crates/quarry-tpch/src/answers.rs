//! Expected answers of TPC-H queries and the comparison of a query result
//! against them. Used by `crates/quarry-tpch/tests/tpch.rs` and by the benchmark harness.
//!
//! An expected answer is a CSV file: a header row of column names, then one
//! row per result row, NULL as an empty field, decimals printed exactly,
//! doubles with full precision (see `tpch/duckdb_answers.py`). The CSV carries
//! no types: how two values are compared follows the Arrow type of the actual
//! result column:
//!
//! - decimals: exactly, as decimal numbers (`1.50` equals `1.5`: only the
//!   value counts, not the scale);
//! - floats: to a relative difference of [`FLOAT_RELATIVE_TOLERANCE`];
//! - integers: as integers;
//! - everything else (strings, dates, …): the displayed text exactly.
//!
//! Rows are compared in order: the queries' ORDER BY fixes it.

use std::fmt;
use std::path::Path;

use arrow::array::Array;
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use quarry_core::error::{QuarryError, Result};

/// Largest relative difference at which two floats count as equal.
pub const FLOAT_RELATIVE_TOLERANCE: f64 = 1e-9;

/// How many differences a mismatch report lists at most.
const MAX_REPORTED: usize = 10;

/// A table of values as text: column names and rows. NULL is the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// How the values of one column are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Decimal,
    Float,
    Integer,
    Text,
}

impl ValueKind {
    pub fn of(data_type: &DataType) -> ValueKind {
        match data_type {
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => ValueKind::Decimal,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => ValueKind::Float,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => ValueKind::Integer,
            DataType::Dictionary(_, value) => ValueKind::of(value),
            _ => ValueKind::Text,
        }
    }
}

impl Answer {
    /// Reads an answer CSV file.
    pub fn from_csv_file(path: &Path) -> Result<Answer> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| QuarryError::Io(format!("cannot read {}: {e}", path.display())))?;
        Answer::parse_csv(&text)
            .map_err(|e| QuarryError::Io(format!("bad answer file {}: {e}", path.display())))
    }

    /// Parses CSV text (RFC 4180: `,` separated, `"` quoted, `""` for a quote
    /// inside quotes, `\n` or `\r\n` line ends); the first record is the header.
    pub fn parse_csv(text: &str) -> Result<Answer> {
        let mut records = parse_csv_records(text)?;
        if records.is_empty() {
            return Err(QuarryError::Io("empty CSV: no header row".into()));
        }
        let columns = records.remove(0);
        for (i, r) in records.iter().enumerate() {
            if r.len() != columns.len() {
                return Err(QuarryError::Io(format!(
                    "CSV row {} has {} fields, the header has {}",
                    i + 1,
                    r.len(),
                    columns.len()
                )));
            }
        }
        Ok(Answer {
            columns,
            rows: records,
        })
    }

    /// Formats Arrow batches as text (NULL as the empty string), with the
    /// kind of each column.
    pub fn from_batches(
        schema: &Schema,
        batches: &[RecordBatch],
    ) -> Result<(Answer, Vec<ValueKind>)> {
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        let kinds = schema
            .fields()
            .iter()
            .map(|f| ValueKind::of(f.data_type()))
            .collect();
        let options = FormatOptions::default().with_null("");
        let mut rows = Vec::new();
        for batch in batches {
            if batch.num_columns() != schema.fields().len() {
                return Err(QuarryError::exec(format!(
                    "a result batch has {} columns, the schema {}",
                    batch.num_columns(),
                    schema.fields().len()
                )));
            }
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref() as &dyn Array, &options))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| f.value(row).to_string())
                        .collect::<Vec<_>>(),
                );
            }
        }
        Ok((Answer { columns, rows }, kinds))
    }

    /// Formats the answer as CSV, in the format [`Answer::parse_csv`] reads.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        write_csv_record(&mut out, &self.columns);
        for row in &self.rows {
            write_csv_record(&mut out, row);
        }
        out
    }
}

fn write_csv_record(out: &mut String, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push('\n');
}

fn parse_csv_records(text: &str) -> Result<Vec<Vec<String>>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut at_field_start = true;
    let mut line = 1;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                at_field_start = false;
            }
            '"' => {
                return Err(QuarryError::Io(format!(
                    "CSV line {line}: a quote inside an unquoted field"
                )))
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                at_field_start = true;
                line += 1;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return Err(QuarryError::Io(format!(
            "CSV line {line}: unterminated quoted field"
        )));
    }
    if !field.is_empty() || !record.is_empty() || !at_field_start {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// The differences between an expected answer and a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// One line per difference, at most [`MAX_REPORTED`] (then a count).
    pub differences: Vec<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the result differs from the expected answer:")?;
        for d in &self.differences {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Mismatch {}

/// Compares a query result (schema and batches) to an expected answer.
pub fn check_batches(
    expected: &Answer,
    schema: &Schema,
    batches: &[RecordBatch],
) -> std::result::Result<(), Mismatch> {
    let (actual, kinds) = Answer::from_batches(schema, batches).map_err(|e| Mismatch {
        differences: vec![format!("cannot format the result: {e}")],
    })?;
    check(expected, &actual, &kinds)
}

/// Compares an actual answer, whose columns are of the given kinds, to the
/// expected one: same column count, column names (case-insensitive; names
/// that are expressions such as `sum(l_quantity)` are not compared, engines
/// name them differently), same rows in the same order, values compared by kind.
pub fn check(
    expected: &Answer,
    actual: &Answer,
    kinds: &[ValueKind],
) -> std::result::Result<(), Mismatch> {
    let mut diffs = Vec::new();
    if expected.columns.len() != actual.columns.len() {
        diffs.push(format!(
            "{} columns expected ({}), got {} ({})",
            expected.columns.len(),
            expected.columns.join(", "),
            actual.columns.len(),
            actual.columns.join(", ")
        ));
        return Err(Mismatch { differences: diffs });
    }
    for (i, (e, a)) in expected.columns.iter().zip(&actual.columns).enumerate() {
        let plain = e.chars().all(|c| c.is_alphanumeric() || c == '_');
        if plain && !e.eq_ignore_ascii_case(a) {
            diffs.push(format!("column {}: name '{a}', expected '{e}'", i + 1));
        }
    }
    if expected.rows.len() != actual.rows.len() {
        diffs.push(format!(
            "{} rows expected, got {}",
            expected.rows.len(),
            actual.rows.len()
        ));
    }
    let mut more = 0usize;
    for (r, (er, ar)) in expected.rows.iter().zip(&actual.rows).enumerate() {
        for (c, (ev, av)) in er.iter().zip(ar).enumerate() {
            let kind = kinds.get(c).copied().unwrap_or(ValueKind::Text);
            if !values_equal(kind, ev, av) {
                if diffs.len() < MAX_REPORTED {
                    diffs.push(format!(
                        "row {}, column {} ({}): expected {}, got {}",
                        r + 1,
                        c + 1,
                        expected.columns[c],
                        show(ev),
                        show(av)
                    ));
                } else {
                    more += 1;
                }
            }
        }
    }
    if more > 0 {
        diffs.push(format!("… and {more} more differing values"));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(Mismatch { differences: diffs })
    }
}

fn show(v: &str) -> String {
    if v.is_empty() {
        "NULL".into()
    } else {
        format!("'{v}'")
    }
}

/// True when `expected` and `actual` (both as text, NULL as "") are the same
/// value for a column of kind `kind`.
pub fn values_equal(kind: ValueKind, expected: &str, actual: &str) -> bool {
    if expected == actual {
        return true;
    }
    if expected.is_empty() || actual.is_empty() {
        return false;
    }
    match kind {
        ValueKind::Decimal => match (normalize_decimal(expected), normalize_decimal(actual)) {
            (Some(e), Some(a)) => e == a,
            _ => false,
        },
        ValueKind::Float => match (expected.trim().parse::<f64>(), actual.trim().parse::<f64>()) {
            (Ok(e), Ok(a)) => floats_close(e, a),
            _ => false,
        },
        ValueKind::Integer => match (
            expected.trim().parse::<i128>(),
            actual.trim().parse::<i128>(),
        ) {
            (Ok(e), Ok(a)) => e == a,
            _ => false,
        },
        ValueKind::Text => false,
    }
}

/// Relative comparison to [`FLOAT_RELATIVE_TOLERANCE`]; NaN equals NaN,
/// infinities equal themselves.
pub fn floats_close(e: f64, a: f64) -> bool {
    if e == a || (e.is_nan() && a.is_nan()) {
        return true;
    }
    if !e.is_finite() || !a.is_finite() {
        return false;
    }
    (e - a).abs() <= FLOAT_RELATIVE_TOLERANCE * e.abs().max(a.abs())
}

/// The canonical text of a plain decimal number: no `+`, no leading zeros in
/// the integer part, no trailing zeros in the fraction, no `-` on zero
/// (`"-007.500"` → `"-7.5"`, `"0.00"` → `"0"`). `None` if `s` is not a plain
/// decimal number (no exponent allowed: decimals are printed exactly).
pub fn normalize_decimal(s: &str) -> Option<String> {
    let s = s.trim();
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let is_zero = int == "0" && frac.is_empty();
    let mut out = String::with_capacity(s.len());
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn decimal_normalization() {
        let cases = [
            ("1.50", "1.5"),
            ("1.5", "1.5"),
            ("-007.500", "-7.5"),
            ("0.00", "0"),
            ("-0.00", "0"),
            ("+3", "3"),
            ("12", "12"),
            ("12.", "12"),
            (".25", "0.25"),
            ("100.000000", "100"),
            ("56586554400.7300", "56586554400.73"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_decimal(input).as_deref(), Some(want), "{input}");
        }
        for bad in ["", "-", ".", "1e5", "1.2.3", "abc", "1,5", "--1"] {
            assert_eq!(normalize_decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn decimals_compare_exactly_whatever_the_scale() {
        assert!(values_equal(ValueKind::Decimal, "38273.13", "38273.1300"));
        assert!(values_equal(ValueKind::Decimal, "0", "0.000000"));
        assert!(!values_equal(ValueKind::Decimal, "38273.13", "38273.1301"));
        assert!(!values_equal(ValueKind::Decimal, "38273.13", "-38273.13"));
        // a decimal column must not hold an approximate value
        assert!(!values_equal(
            ValueKind::Decimal,
            "0.3",
            "0.30000000000000004"
        ));
        assert!(!values_equal(ValueKind::Decimal, "1.5", "1.5e0"));
    }

    #[test]
    fn floats_compare_to_relative_tolerance() {
        assert!(values_equal(
            ValueKind::Float,
            "25.522005853257337",
            "25.52200585325734"
        ));
        assert!(values_equal(ValueKind::Float, "1000000000", "1000000000.5"));
        assert!(!values_equal(ValueKind::Float, "1000", "1000.001"));
        assert!(values_equal(ValueKind::Float, "0.0", "0"));
        assert!(values_equal(ValueKind::Float, "1e+16", "10000000000000000"));
        assert!(values_equal(ValueKind::Float, "NaN", "NaN"));
        assert!(values_equal(ValueKind::Float, "inf", "inf"));
        assert!(!values_equal(ValueKind::Float, "inf", "-inf"));
        assert!(!values_equal(ValueKind::Float, "0", "1e-300"));
        assert!(!values_equal(ValueKind::Float, "1.0", "x"));
    }

    #[test]
    fn integers_text_and_nulls() {
        assert!(values_equal(ValueKind::Integer, "42", "42"));
        assert!(!values_equal(ValueKind::Integer, "42", "43"));
        assert!(values_equal(ValueKind::Text, "Brand#12", "Brand#12"));
        assert!(!values_equal(ValueKind::Text, "a ", "a"));
        assert!(values_equal(ValueKind::Decimal, "", ""));
        assert!(!values_equal(ValueKind::Decimal, "", "0"));
        assert!(!values_equal(ValueKind::Float, "0", ""));
    }

    #[test]
    fn csv_round_trip_with_quotes_commas_and_newlines() {
        let answer = Answer {
            columns: vec!["a".into(), "b".into(), "c".into()],
            rows: vec![
                vec!["1".into(), "x, y".into(), "say \"hi\"".into()],
                vec!["".into(), " lead and trail ".into(), "two\nlines".into()],
            ],
        };
        let text = answer.to_csv();
        assert_eq!(
            text,
            "a,b,c\n1,\"x, y\",\"say \"\"hi\"\"\"\n, lead and trail ,\"two\nlines\"\n"
        );
        assert_eq!(Answer::parse_csv(&text).unwrap(), answer);
        // CRLF line ends and no final newline
        let crlf = Answer::parse_csv("a,b\r\n1,2\r\n3,4").unwrap();
        assert_eq!(crlf.rows, vec![vec!["1", "2"], vec!["3", "4"]]);
        assert!(Answer::parse_csv("a,b\n1\n").is_err());
        assert!(Answer::parse_csv("a\n\"open\n").is_err());
        assert!(Answer::parse_csv("").is_err());
        // header only: no rows
        assert!(Answer::parse_csv("a,b\n").unwrap().rows.is_empty());
    }

    fn result() -> (Arc<Schema>, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("total", DataType::Decimal128(38, 4), true),
            Field::new("avg", DataType::Float64, true),
            Field::new("n", DataType::Int64, false),
            Field::new("day", DataType::Date32, false),
        ]));
        let batch = |names: Vec<Option<&str>>, totals: Vec<Option<i128>>, avgs, ns, days| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(
                        Decimal128Array::from(totals)
                            .with_precision_and_scale(38, 4)
                            .unwrap(),
                    ),
                    Arc::new(Float64Array::from(avgs)),
                    Arc::new(Int64Array::from(ns)),
                    Arc::new(Date32Array::from(days)),
                ],
            )
            .unwrap()
        };
        let b1 = batch(
            vec![Some("A, F"), None],
            vec![Some(12345678), None],
            vec![Some(25.522005853257337), Some(0.05)],
            vec![1, 2],
            vec![9204, 9205],
        );
        let b2 = batch(
            vec![Some("R")],
            vec![Some(-500)],
            vec![None],
            vec![3],
            vec![0],
        );
        (schema, vec![b1, b2])
    }

    const EXPECTED: &str = "name,total,avg,n,day\n\
        \"A, F\",1234.5678,25.52200585325734,1,1995-03-15\n\
        ,,0.05,2,1995-03-16\n\
        R,-0.05,,3,1970-01-01\n";

    #[test]
    fn a_matching_result_passes() {
        let (schema, batches) = result();
        let expected = Answer::parse_csv(EXPECTED).unwrap();
        check_batches(&expected, &schema, &batches).unwrap();
        // column names are compared without case
        let upper = Answer::parse_csv(&EXPECTED.replacen("name,total", "NAME,Total", 1)).unwrap();
        check_batches(&upper, &schema, &batches).unwrap();
    }

    #[test]
    fn mismatches_are_reported() {
        let (schema, batches) = result();
        let bad_value = EXPECTED.replace("1234.5678", "1234.5679");
        let err =
            check_batches(&Answer::parse_csv(&bad_value).unwrap(), &schema, &batches).unwrap_err();
        assert_eq!(err.differences.len(), 1, "{err}");
        assert!(
            err.differences[0].contains("row 1, column 2 (total)"),
            "{err}"
        );
        assert!(
            err.differences[0].contains("expected '1234.5679', got '1234.5678'"),
            "{err}"
        );

        let bad_float = EXPECTED.replace("0.05,2", "0.0500001,2");
        assert!(check_batches(&Answer::parse_csv(&bad_float).unwrap(), &schema, &batches).is_err());

        let null_vs_value = EXPECTED.replace("R,-0.05,", "R,,");
        let err = check_batches(
            &Answer::parse_csv(&null_vs_value).unwrap(),
            &schema,
            &batches,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("expected NULL, got '-0.0500'"),
            "{err}"
        );

        let bad_date = EXPECTED.replace("1995-03-16", "1995-03-17");
        assert!(check_batches(&Answer::parse_csv(&bad_date).unwrap(), &schema, &batches).is_err());

        // order matters
        let lines: Vec<&str> = EXPECTED.lines().collect();
        let swapped = format!("{}\n{}\n{}\n{}\n", lines[0], lines[2], lines[1], lines[3]);
        assert!(check_batches(&Answer::parse_csv(&swapped).unwrap(), &schema, &batches).is_err());

        let missing_row = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]);
        let err = check_batches(&Answer::parse_csv(&missing_row).unwrap(), &schema, &batches)
            .unwrap_err();
        assert!(err.to_string().contains("2 rows expected, got 3"), "{err}");

        let renamed = EXPECTED.replacen("avg", "average", 1);
        let err =
            check_batches(&Answer::parse_csv(&renamed).unwrap(), &schema, &batches).unwrap_err();
        assert!(
            err.to_string().contains("name 'avg', expected 'average'"),
            "{err}"
        );

        let fewer_columns = "name\nA\n";
        let err = check_batches(
            &Answer::parse_csv(fewer_columns).unwrap(),
            &schema,
            &batches,
        )
        .unwrap_err();
        assert!(err.to_string().contains("1 columns expected"), "{err}");
    }

    #[test]
    fn expression_column_names_are_not_compared() {
        let expected = Answer::parse_csv("sum(l_quantity)\n5\n").unwrap();
        let actual = Answer {
            columns: vec!["sum(lineitem.l_quantity)".into()],
            rows: vec![vec!["5.00".into()]],
        };
        check(&expected, &actual, &[ValueKind::Decimal]).unwrap();
    }

    #[test]
    fn long_reports_are_capped() {
        let expected = Answer {
            columns: vec!["n".into()],
            rows: (0..50).map(|i| vec![i.to_string()]).collect(),
        };
        let actual = Answer {
            columns: vec!["n".into()],
            rows: (0..50).map(|i| vec![(i + 1).to_string()]).collect(),
        };
        let err = check(&expected, &actual, &[ValueKind::Integer]).unwrap_err();
        assert_eq!(err.differences.len(), MAX_REPORTED + 1);
        assert!(err.differences.last().unwrap().contains("40 more"), "{err}");
    }
}
