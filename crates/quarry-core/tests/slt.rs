//! The SQL behaviour suite: runs every `crates/quarry-core/tests/slt/*.slt` file with the
//! `sqllogictest` crate, each against a fresh `quarry_core::Session`.
//!
//! `cargo test --test slt [-- FILTER]` runs the files whose name contains
//! FILTER. Fixtures (the CSV files of `crates/quarry-core/tests/data/` and Parquet files built
//! below) are written to a temporary directory, or to `$QUARRY_SLT_DATA` when
//! set (then kept, e.g. to run the same SQL in DuckDB); `__DATA__` in the SQL
//! is replaced by that directory.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use quarry_core::{QuarryError, Session, SessionConfig};
use sqllogictest::{DBOutput, DefaultColumnType, Record, Runner, DB};

/// One connection of the suite: a quarry session and the fixture directory.
struct QuarryDb {
    session: Session,
    data_dir: String,
}

impl DB for QuarryDb {
    type Error = QuarryError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, QuarryError> {
        let sql = sql.replace("__DATA__", &self.data_dir);
        let result = self.session.sql(&sql)?;
        if result.is_empty_statement() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = result
            .schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let result = result.displayable()?;
        let mut rows = Vec::new();
        for batch in &result.batches {
            rows.extend(format_batch(batch)?);
        }
        Ok(DBOutput::Rows { types, rows })
    }

    fn engine_name(&self) -> &str {
        "quarry"
    }
}

/// `I` for integers, `R` for floats and decimals, `T` for the rest. The
/// runner does not check the letters (its default column validator accepts
/// anything); they document the expected types.
fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating() || data_type.is_decimal() {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

/// Formats every value as text: NULL as `NULL`, the empty string as
/// `(empty)`, doubles in shortest form (`2.0`, `0.5`), decimals with their
/// scale (`12.50`), dates as `YYYY-MM-DD`, booleans as `true`/`false`.
fn format_batch(batch: &RecordBatch) -> Result<Vec<Vec<String>>, QuarryError> {
    let options = FormatOptions::new().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut values = Vec::with_capacity(batch.num_columns());
        for (column, formatter) in batch.columns().iter().zip(&formatters) {
            let text = formatter.value(row).try_to_string()?;
            if text.is_empty() && column.is_valid(row) {
                values.push("(empty)".to_string());
            } else {
                values.push(text);
            }
        }
        rows.push(values);
    }
    Ok(rows)
}

// ---------------------------------------------------------------- fixtures

/// Copies `crates/quarry-core/tests/data/*` into `dir` and writes the Parquet fixtures:
/// - `orders.parquet`: 12 rows of every column type, 3 row groups;
/// - `numbers.parquet`: n = 1..=1000 with derived columns, 8 row groups;
/// - `parts/part-{1,2,3}.parquet`: one table split over three files.
fn write_fixtures(source: &Path, dir: &Path) {
    std::fs::create_dir_all(dir.join("parts")).expect("create fixture directory");
    for entry in std::fs::read_dir(source).expect("read tests/data") {
        let path = entry.expect("read tests/data").path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).expect("copy fixture");
        }
    }
    write_parquet(&dir.join("orders.parquet"), &orders(), 5);
    write_parquet(&dir.join("numbers.parquet"), &numbers(), 128);
    write_parquet(&dir.join("events.parquet"), &events(), 3);
    let parts = parts();
    for (i, (offset, len)) in [(0, 2), (2, 3), (5, 1)].into_iter().enumerate() {
        let path = dir.join(format!("parts/part-{}.parquet", i + 1));
        write_parquet(&path, &parts.slice(offset, len), 2);
    }
}

fn write_parquet(path: &Path, batch: &RecordBatch, max_row_group_rows: usize) {
    let file = std::fs::File::create(path).expect("create parquet fixture");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(max_row_group_rows))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("parquet writer");
    writer.write(batch).expect("write parquet fixture");
    writer.close().expect("close parquet fixture");
}

/// A batch of nullable columns from a text table: one row a line, cells
/// separated by `|` and trimmed, `NULL` for null (an empty cell is the empty
/// string), each column cast from text to its type.
fn table(columns: &[(&str, DataType)], rows: &str) -> RecordBatch {
    let rows: Vec<Vec<&str>> = rows
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split('|').map(str::trim).collect())
        .collect();
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let arrays = columns
        .iter()
        .enumerate()
        .map(|(i, (_, data_type))| {
            let text: StringArray = rows
                .iter()
                .map(|row| Some(row[i]).filter(|cell| *cell != "NULL"))
                .collect();
            cast_with_options(&text, data_type, &strict).expect("fixture cell")
        })
        .collect();
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, data_type)| Field::new(*name, data_type.clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("fixture table")
}

fn orders() -> RecordBatch {
    table(
        &[
            ("o_orderkey", DataType::Int64),
            ("o_custkey", DataType::Int32),
            ("o_status", DataType::Utf8),
            ("o_totalprice", DataType::Decimal128(15, 2)),
            ("o_orderdate", DataType::Date32),
            ("o_discount", DataType::Float64),
            ("o_urgent", DataType::Boolean),
            ("o_comment", DataType::Utf8),
        ],
        "
         1 | 10   | F    | 173665.47 | 1996-01-02 | 0.125  | true  | quickly final deposits
         2 | 20   | O    | 46929.18  | 1996-12-01 | 0.25   | false | furiously special foxes
         3 | 10   | F    | 193846.25 | 1993-10-14 | 0.0    | true  | sly final accounts
         4 | 30   | O    | 32151.78  | 1995-10-11 | NULL   | false |
         5 | 40   | F    | 144659.20 | 1994-07-30 | 0.5    | NULL  | final ideas
         6 | 20   | F    | 58749.59  | 1992-02-21 | 0.375  | false | carefully regular requests
         7 | NULL | O    | 252004.18 | 1996-01-10 | 0.75   | true  | NULL
         8 | 30   | P    | 12.50     | 1995-03-15 | 0.5    | false | pending
         9 | 10   | NULL | 100.00    | 1998-09-02 | 0.25   | true  | Express
        10 | 40   | P    | 0.05      | 1998-12-01 | 1.0    | NULL  | bulk order
        11 | NULL | F    | NULL      | 1992-01-01 | 0.125  | false | no price
        12 | 50   | O    | 999.99    | 1997-02-28 | 0.0625 | true  | almost final
        ",
    )
}

fn parts() -> RecordBatch {
    table(
        &[
            ("p_partkey", DataType::Int64),
            ("p_name", DataType::Utf8),
            ("p_retailprice", DataType::Decimal128(15, 2)),
            ("p_size", DataType::Int32),
        ],
        "
        1 | red bolt   | 10.50   | 5
        2 | blue screw | 3.25    | 12
        3 | green nut  | 0.75    | NULL
        4 | red washer | 1.00    | 3
        5 | NULL       | 99.99   | 40
        6 | steel beam | 1250.00 | 100
        ",
    )
}

/// Timestamps as files hold them: milliseconds without a zone,
/// nanoseconds in UTC (read as TIMESTAMP and TIMESTAMP WITH TIME ZONE).
fn events() -> RecordBatch {
    use arrow::datatypes::TimeUnit;
    table(
        &[
            ("id", DataType::Int64),
            ("kind", DataType::Utf8),
            ("at_ms", DataType::Timestamp(TimeUnit::Millisecond, None)),
            (
                "at_ns",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            ),
            ("day", DataType::Date32),
        ],
        "
        1 | login  | 2024-01-02 03:04:05.123 | 2024-01-02 03:04:05.123456789 | 2024-01-02
        2 | click  | 2024-01-02 03:04:06     | 2024-01-02 13:00:00           | 2024-01-02
        3 | login  | 2024-01-03 23:59:59.999 | 1999-12-31 23:59:59.5         | 2024-01-03
        4 | logout | 2023-12-31 00:00:00     | NULL                          | 2023-12-31
        5 | click  | NULL                    | 2024-02-29 12:00:00           | NULL
        6 | login  | 2024-01-02 03:04:05.123 | 1970-01-01 00:00:00           | 2024-01-02
        ",
    )
}

/// n = 1..=1000, g = n % 7, s = 's' || n % 3, x = n / 4, amount = n * 1.25.
fn numbers() -> RecordBatch {
    let rows: String = (1..=1000i64)
        .map(|n| {
            format!(
                "{n}|{}|s{}|{}|{}\n",
                n % 7,
                n % 3,
                n as f64 / 4.0,
                n as f64 * 1.25
            )
        })
        .collect();
    table(
        &[
            ("n", DataType::Int64),
            ("g", DataType::Int32),
            ("s", DataType::Utf8),
            ("x", DataType::Float64),
            ("amount", DataType::Decimal128(15, 2)),
        ],
        &rows,
    )
}

// ------------------------------------------------------------------ runner

/// Runs one file on a fresh session; returns the number of records and the
/// failures (the runner goes on after a failing record).
fn run_file(path: &Path, data_dir: &str) -> (usize, Vec<String>) {
    let records = match sqllogictest::parse_file::<DefaultColumnType>(path) {
        Ok(records) => records,
        Err(e) => return (0, vec![format!("cannot parse: {e}")]),
    };
    let data_dir = data_dir.to_string();
    let mut runner = Runner::new(move || {
        let data_dir = data_dir.clone();
        async move {
            let session = Session::new(SessionConfig::default())?;
            Ok(QuarryDb { session, data_dir })
        }
    });
    let (mut count, mut failures) = (0, Vec::new());
    for record in records {
        let loc = match &record {
            Record::Halt { .. } => break,
            Record::Statement { loc, .. } | Record::Query { loc, .. } => Some(loc.clone()),
            _ => None,
        };
        count += usize::from(loc.is_some());
        match panic::catch_unwind(AssertUnwindSafe(|| runner.run(record))) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let at = loc.map(|l| format!("\nat {l}")).unwrap_or_default();
                failures.push(format!("panic: {message}{at}"));
            }
        }
    }
    (count, failures)
}

fn main() -> ExitCode {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");

    let (_temp, data_dir) = match std::env::var_os("QUARRY_SLT_DATA") {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let temp = tempfile::tempdir().expect("create temporary directory");
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    };
    write_fixtures(&tests.join("data"), &data_dir);
    let data_dir = data_dir.to_string_lossy().into_owned();

    let mut files: Vec<PathBuf> = std::fs::read_dir(tests.join("slt"))
        .expect("read tests/slt")
        .map(|entry| entry.expect("read tests/slt").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            filter.as_ref().is_none_or(|f| name.contains(f.as_str()))
        })
        .collect();
    files.sort();

    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        let (count, failures) = run_file(file, &data_dir);
        if failures.is_empty() {
            passed += 1;
            println!("PASS {name} ({count} records)");
        } else {
            failed += 1;
            println!("FAIL {name} ({} of {count} records failed)", failures.len());
            for failure in &failures {
                println!("  - {}", failure.trim_end().replace('\n', "\n    "));
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
