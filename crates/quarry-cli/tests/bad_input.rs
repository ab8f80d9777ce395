//! The catalogue of bad inputs (issue 7): broken SQL, broken files and
//! strange settings. For each item: the error names what is wrong and where
//! (the path of a file; the name and a suggestion for an unknown name; the
//! line and column for SQL), nothing panics or hangs, no partial result is
//! returned as if it were whole, and the SAME session then still answers
//! `SELECT 1` (and a query over a table) correctly.
//!
//! Broken files are made in a temporary directory: valid Parquet written with
//! `parquet::arrow::ArrowWriter`, then truncated or corrupted; CSV text with
//! ragged rows, bad numbers and wrong encodings.
//!
//! Tests marked `#[ignore = "bug: …"]` are regression tests of bugs found and
//! not yet fixed: `cargo test --test bad_input -- --ignored` runs them.
//! docs/robustness.md lists them.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use quarry_core::{QuarryError, QueryResult, Session, SessionConfig};
use quarry_tpch::answers::Answer;

/// Longest time one statement may take before the test calls it a hang.
const TIMEOUT: Duration = Duration::from_secs(120);

// ------------------------------------------------------------------ fixture

/// A session over small tables written for the test, and their directory.
struct Fixture {
    session: Arc<Session>,
    dir: tempfile::TempDir,
}

const ORDERS_ROWS: i64 = 30;

fn orders_batch() -> RecordBatch {
    let n = ORDERS_ROWS;
    let schema = Arc::new(Schema::new(vec![
        Field::new("o_orderkey", DataType::Int64, false),
        Field::new("o_custkey", DataType::Int64, true),
        Field::new("o_status", DataType::Utf8, true),
        Field::new("o_totalprice", DataType::Decimal128(15, 2), true),
        Field::new("o_orderdate", DataType::Date32, true),
        Field::new("o_ratio", DataType::Float64, true),
    ]));
    let statuses = ["F", "O", "P"];
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(1..=n)) as ArrayRef,
            Arc::new(Int64Array::from_iter_values((1..=n).map(|k| k % 7))),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|k| statuses[k as usize % 3]),
            )),
            Arc::new(
                Decimal128Array::from_iter_values((1..=n).map(|k| k as i128 * 10_050))
                    .with_precision_and_scale(15, 2)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from_iter_values(
                (0..n).map(|k| 9_000 + k as i32),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|k| k as f64 / 4.0),
            )),
        ],
    )
    .unwrap()
}

fn lineitem_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("l_orderkey", DataType::Int64, false),
        Field::new("l_linenumber", DataType::Int32, false),
        Field::new("l_quantity", DataType::Decimal128(15, 2), true),
    ]));
    let keys: Vec<i64> = (1..=ORDERS_ROWS).flat_map(|k| [k, k]).collect();
    let lines: Vec<i32> = (1..=ORDERS_ROWS).flat_map(|_| [1, 2]).collect();
    let qty: Vec<i128> = (0..keys.len() as i128).map(|q| q * 100 + 100).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(keys)) as ArrayRef,
            Arc::new(Int32Array::from(lines)),
            Arc::new(
                Decimal128Array::from(qty)
                    .with_precision_and_scale(15, 2)
                    .unwrap(),
            ),
        ],
    )
    .unwrap()
}

/// Extreme values: BIGINT and INTEGER maxima and minima, DECIMAL(38,0) near
/// its largest value.
fn nums_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("big", DataType::Int64, false),
        Field::new("small", DataType::Int64, false),
        Field::new("i", DataType::Int32, false),
        Field::new("d38", DataType::Decimal128(38, 0), false),
    ]));
    let d38 = 10i128.pow(38) - 1;
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![i64::MAX, i64::MAX])) as ArrayRef,
            Arc::new(Int64Array::from(vec![i64::MIN, i64::MIN])),
            Arc::new(Int32Array::from(vec![i32::MAX, i32::MAX])),
            Arc::new(
                Decimal128Array::from(vec![d38, d38])
                    .with_precision_and_scale(38, 0)
                    .unwrap(),
            ),
        ],
    )
    .unwrap()
}

/// Writes `batch` as Parquet (ZSTD, `rows_per_group` rows per row group).
fn write_parquet(path: &Path, batch: &RecordBatch, rows_per_group: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group))
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn parquet_bytes(batch: &RecordBatch, rows_per_group: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.parquet");
    write_parquet(&path, batch, rows_per_group);
    std::fs::read(path).unwrap()
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("temporary paths are UTF-8").to_string()
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        write_parquet(&dir.path().join("orders.parquet"), &orders_batch(), 10);
        write_parquet(&dir.path().join("lineitem.parquet"), &lineitem_batch(), 20);
        write_parquet(&dir.path().join("nums.parquet"), &nums_batch(), 10);
        let session = Session::new(SessionConfig::default()).unwrap();
        for t in ["orders", "lineitem", "nums"] {
            session
                .register_parquet(t, &path_str(&dir.path().join(format!("{t}.parquet"))))
                .unwrap();
        }
        Fixture {
            session: Arc::new(session),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `bytes` to `name` in the fixture's directory; returns the path.
    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        path_str(&p)
    }

    /// Runs `sql`; fails the test on a hang.
    fn run(&self, sql: &str) -> quarry_core::Result<QueryResult> {
        run_with_timeout(&self.session, sql)
    }

    /// Runs `sql`, which must succeed; its rows as text (NULL as "").
    fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match self.run(sql) {
            Ok(r) => text_rows(&r),
            Err(e) => panic!("{sql}\nfailed: {e}"),
        }
    }

    /// Runs `sql`, which must fail; checks that the session goes on.
    fn error(&self, sql: &str) -> QuarryError {
        let e = match self.run(sql) {
            Ok(r) => panic!(
                "{sql}\nshould fail, but returned {} rows: {:?}",
                r.num_rows(),
                text_rows(&r).into_iter().take(5).collect::<Vec<_>>()
            ),
            Err(e) => e,
        };
        assert!(
            !e.to_string().trim().is_empty(),
            "{sql}: empty error message"
        );
        self.assert_alive();
        e
    }

    /// The session still answers: `SELECT 1` and a query over a table.
    fn assert_alive(&self) {
        assert_eq!(self.rows("SELECT 1"), vec![vec!["1".to_string()]]);
        assert_eq!(
            self.rows("SELECT count(*), sum(o_orderkey) FROM orders"),
            vec![vec!["30".to_string(), "465".to_string()]]
        );
    }
}

fn run_with_timeout(session: &Arc<Session>, sql: &str) -> quarry_core::Result<QueryResult> {
    let (tx, rx) = mpsc::channel();
    let s = Arc::clone(session);
    let text = sql.to_string();
    std::thread::Builder::new()
        .name("statement".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.sql(&text)));
            let _ = tx.send(r);
        })
        .unwrap();
    match rx.recv_timeout(TIMEOUT) {
        Ok(Ok(r)) => r,
        Ok(Err(p)) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("PANIC in Session::sql for:\n{sql}\n{msg}")
        }
        Err(_) => panic!("HANG: no answer after {TIMEOUT:?} for:\n{sql}"),
    }
}

fn text_rows(r: &QueryResult) -> Vec<Vec<String>> {
    Answer::from_batches(&r.schema, &r.batches)
        .expect("format the result")
        .0
        .rows
}

/// The error's message contains every needle (case-insensitive).
#[track_caller]
fn assert_mentions(e: &QuarryError, needles: &[&str]) {
    let msg = e.to_string().to_lowercase();
    for n in needles {
        assert!(
            msg.contains(&n.to_lowercase()),
            "the error should mention '{n}': {e}"
        );
    }
}

/// Line and column (1-based, in characters) of the first occurrence of
/// `token` in `sql`.
fn position_of(sql: &str, token: &str) -> (u64, u64) {
    let at = sql
        .find(token)
        .unwrap_or_else(|| panic!("'{token}' not in {sql}"));
    let before = &sql[..at];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() as u64 + 1;
    (line, col)
}

/// The error points at `token` in `sql`.
#[track_caller]
fn assert_at_token(e: &QuarryError, sql: &str, token: &str) {
    let (line, column) = position_of(sql, token);
    let loc = e
        .location()
        .unwrap_or_else(|| panic!("no line/column in the error for {sql:?}: {e}"));
    assert_eq!(
        (loc.line, loc.column),
        (line, column),
        "the error should point at '{token}' (line {line}, column {column}) of {sql:?}: {e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("line {line}, column {column}")),
        "the message should say where: {e}"
    );
}

/// Line and column just past the last character of `sql` (trailing
/// whitespace ignored): where an error about unexpected end points.
fn end_position(sql: &str) -> (u64, u64) {
    let t = sql.trim_end();
    let line = t.matches('\n').count() as u64 + 1;
    let col = t.rsplit('\n').next().unwrap_or("").chars().count() as u64 + 1;
    (line, col)
}

// ------------------------------------------------------------ 1. SQL text

#[test]
fn malformed_sql_says_where() {
    let f = Fixture::new();
    let cases: &[(&str, &str)] = &[
        // (SQL, the token the error must point at)
        ("SELEC 1", "SELEC"),
        // (`AND` is taken for a column name: the error is at what follows)
        (
            "SELECT o_orderkey FROM orders WHERE AND o_orderkey = 1",
            "o_orderkey = 1",
        ),
        (
            "SELECT o_orderkey\nFROM orders\nWHERE o_orderkey = = 1",
            "= 1",
        ),
        ("SELECT o_orderkey FROM orders ORDER o_orderkey", "ORDER o_"),
        ("SELECT * FROM orders o1 o2", "o2"),
        ("SELECT 1 1", "1\n"),
        (
            "SELECT o_orderkey FROM orders GROUP BY BY o_custkey",
            "o_custkey",
        ),
        ("  \n\n   SELECT * FROM orders WHERE )", ")"),
        ("SELECT (1 + 2)) FROM orders", ") FROM"),
        ("SELECT 1; SELEC 2", "SELEC 2"),
    ];
    for (sql, token) in cases {
        // Tokens that end a line are written with their "\n" to be unique;
        // the text itself has no trailing newline.
        let sql_text = sql.to_string();
        let (probe_sql, probe_token) = if token.ends_with('\n') {
            (format!("{sql_text}\n"), *token)
        } else {
            (sql_text.clone(), *token)
        };
        let e = f.error(&sql_text);
        assert!(
            matches!(e, QuarryError::Syntax { .. }),
            "{sql}: expected a syntax error, got {e}"
        );
        assert_at_token(&e, &probe_sql, probe_token);
    }
    // A syntax error anywhere runs nothing: the first statement did not
    // create its view.
    f.error("CREATE VIEW v AS SELECT 1 AS x; SELEC 2");
    assert_mentions(&f.error("SELECT * FROM v"), &["'v'", "not found"]);
}

#[test]
fn truncated_sql_points_at_the_end() {
    let f = Fixture::new();
    let cases = [
        "SELECT o_orderkey FROM orders WHERE",
        "SELECT o_orderkey FROM orders WHERE o_orderkey IN (1, 2",
        "SELECT (1 + 2",
        "SELECT count(",
        "SELECT o_orderkey FROM orders ORDER BY",
        "SELECT o_orderkey\nFROM orders\nWHERE o_orderkey BETWEEN 1 AND",
        "SELECT CASE WHEN o_orderkey > 1 THEN 'a' FROM orders",
        "SELECT CAST(o_orderkey AS",
        "WITH x AS (SELECT 1)",
        "SELECT",
    ];
    for sql in cases {
        let e = f.error(sql);
        assert!(matches!(e, QuarryError::Syntax { .. }), "{sql}: {e}");
        let loc = e
            .location()
            .unwrap_or_else(|| panic!("{sql}: no location in {e}"));
        let (line, _) = end_position(sql);
        assert_eq!(loc.line, line, "{sql}: {e}");
        assert!(e.to_string().contains("line "), "{sql}: {e}");
    }
    // Unterminated literals and identifiers point at where they start.
    for (sql, token) in [
        ("SELECT 'abc", "'abc"),
        ("SELECT o_orderkey FROM orders WHERE o_status = 'F", "'F"),
        ("SELECT \"o_orderkey FROM orders", "\"o_orderkey"),
    ] {
        let e = f.error(sql);
        assert_at_token(&e, sql, token);
    }
    // Every prefix of a valid query: an answer or an error, never a panic or
    // a hang; every syntax error has a location.
    let full = "SELECT o_status, count(*) AS n, sum(o_totalprice)\nFROM orders\n\
                WHERE o_orderdate >= DATE '1994-08-01' AND o_orderkey IN (SELECT l_orderkey FROM lineitem)\n\
                GROUP BY o_status HAVING count(*) > 1\nORDER BY n DESC, o_status\nLIMIT 2";
    let chars: Vec<(usize, char)> = full.char_indices().collect();
    for (i, _) in chars.iter().skip(1) {
        let prefix = &full[..*i];
        match f.run(prefix) {
            Ok(_) => {}
            Err(e @ QuarryError::Syntax { .. }) => {
                assert!(e.location().is_some(), "{prefix:?}: no location in {e}")
            }
            Err(e) => assert!(!e.to_string().is_empty(), "{prefix:?}"),
        }
    }
    assert_eq!(
        f.rows(full),
        vec![vec!["F", "10", "14572.50"], vec!["O", "10", "15577.50"]]
    );
    f.assert_alive();
}

#[test]
fn unknown_table_is_named_with_a_suggestion() {
    let f = Fixture::new();
    let sql = "SELECT count(*) FROM order";
    let e = f.error(sql);
    assert_mentions(&e, &["'order'", "not found", "did you mean 'orders'"]);
    assert_at_token(&e, sql, "order");

    let sql = "SELECT o_orderkey FROM orders JOIN lineitems ON o_orderkey = l_orderkey";
    let e = f.error(sql);
    assert_mentions(&e, &["'lineitems'", "did you mean 'lineitem'"]);
    assert_at_token(&e, sql, "lineitems");

    let sql = "SELECT o_orderkey FROM orders WHERE o_orderkey IN (SELECT l_orderkey FROM lineitm)";
    let e = f.error(sql);
    assert_mentions(&e, &["'lineitm'", "did you mean 'lineitem'"]);
    assert_at_token(&e, sql, "lineitm");

    // nothing close: no suggestion, still the name
    let e = f.error("SELECT * FROM zzzzzzzzzz");
    assert_mentions(&e, &["'zzzzzzzzzz'", "not found"]);
    assert!(!e.to_string().contains("did you mean"), "{e}");

    assert_mentions(
        &f.error("DROP TABLE ordrs"),
        &["'ordrs'", "did you mean 'orders'"],
    );
    assert_mentions(
        &f.error("DESCRIBE ordrs"),
        &["'ordrs'", "did you mean 'orders'"],
    );
}

#[test]
fn unknown_column_is_named_with_a_suggestion() {
    let f = Fixture::new();
    for (sql, name, suggestion) in [
        ("SELECT o_totlprice FROM orders", "o_totlprice", "o_totalprice"),
        (
            "SELECT o_orderkey FROM orders WHERE o_stauts = 'F'",
            "o_stauts",
            "o_status",
        ),
        (
            "SELECT o_status, count(*) FROM orders GROUP BY o_statsu",
            "o_statsu",
            "o_status",
        ),
        (
            "SELECT o_orderkey FROM orders ORDER BY o_orderdat",
            "o_orderdat",
            "o_orderdate",
        ),
        (
            "SELECT o_orderkey\nFROM orders\nWHERE EXISTS (SELECT * FROM lineitem WHERE l_orderky = o_orderkey)",
            "l_orderky",
            "l_orderkey",
        ),
        (
            "SELECT orders.o_custky FROM orders",
            "o_custky",
            "o_custkey",
        ),
    ] {
        let e = f.error(sql);
        assert_mentions(
            &e,
            &[name, &format!("did you mean '{suggestion}'")],
        );
        assert_at_token(&e, sql, name);
    }
    // an unknown qualifier
    let sql = "SELECT x.o_orderkey FROM orders";
    let e = f.error(sql);
    assert_mentions(&e, &["x.o_orderkey"]);
    assert!(e.location().is_some(), "{e}");
}

#[test]
fn unknown_function_is_named_with_a_suggestion() {
    let f = Fixture::new();
    for (sql, name, suggestion) in [
        ("SELECT sume(o_totalprice) FROM orders", "sume", Some("sum")),
        ("SELECT uper(o_status) FROM orders", "uper", Some("upper")),
        (
            "SELECT o_orderkey FROM orders WHERE lenght(o_status) = 1",
            "lenght",
            Some("length"),
        ),
        ("SELECT frobnicate(1)", "frobnicate", None),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &[&format!("'{name}'"), "function"]);
        if let Some(s) = suggestion {
            assert_mentions(&e, &[&format!("did you mean '{s}'")]);
        }
        assert_at_token(&e, sql, name);
    }
}

#[test]
fn wrong_argument_types_name_the_types() {
    let f = Fixture::new();
    for (sql, needles, token) in [
        (
            "SELECT abs(o_status) FROM orders",
            &["abs", "varchar"][..],
            "abs",
        ),
        (
            "SELECT sum(o_status) FROM orders",
            &["sum", "varchar"][..],
            "sum",
        ),
        (
            "SELECT avg(o_orderdate) FROM orders",
            &["avg", "date"][..],
            "avg",
        ),
        (
            "SELECT o_status + 1 FROM orders",
            &["varchar", "bigint"][..],
            "o_status",
        ),
        (
            "SELECT o_orderkey FROM orders WHERE o_orderdate = 5",
            &["date", "bigint"][..],
            "o_orderdate",
        ),
        (
            "SELECT extract(year FROM o_orderkey) FROM orders",
            &["extract", "bigint"][..],
            "o_orderkey)",
        ),
        (
            "SELECT upper(o_orderdate) FROM orders",
            &["upper", "date"][..],
            "upper",
        ),
        (
            "SELECT o_orderkey FROM orders WHERE o_orderkey",
            &["boolean", "bigint"][..],
            "o_orderkey\0",
        ),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, needles);
        if let Some(t) = token.strip_suffix('\0') {
            // the last occurrence
            let at = sql.rfind(t).unwrap();
            let (line, col) = position_of(&sql[at..], t);
            assert_eq!(line, 1);
            let loc = e
                .location()
                .unwrap_or_else(|| panic!("{sql}: no location: {e}"));
            assert_eq!(loc.column, at as u64 + col, "{sql}: {e}");
        } else {
            assert!(e.location().is_some(), "{sql}: no location: {e}");
            assert_at_token(&e, sql, token);
        }
    }
}

#[test]
fn wrong_argument_counts_name_the_function() {
    let f = Fixture::new();
    for (sql, name) in [
        ("SELECT abs(1, 2)", "abs"),
        ("SELECT round()", "round"),
        ("SELECT round(1.5, 1, 2)", "round"),
        ("SELECT upper()", "upper"),
        ("SELECT count(o_orderkey, o_custkey) FROM orders", "count"),
        ("SELECT sum(o_orderkey, 1) FROM orders", "sum"),
        ("SELECT length('a', 'b')", "length"),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &[name, "argument"]);
        assert_at_token(&e, sql, name);
    }
}

#[test]
fn ambiguous_column_is_named() {
    let f = Fixture::new();
    for (sql, name, token) in [
        (
            "SELECT o_orderkey FROM orders a, orders b WHERE a.o_orderkey = b.o_orderkey",
            "o_orderkey",
            "o_orderkey",
        ),
        (
            "SELECT a.o_orderkey FROM orders a JOIN orders b ON a.o_orderkey = b.o_orderkey WHERE o_status = 'F'",
            "o_status",
            "o_status",
        ),
        ("SELECT x FROM (SELECT 1 AS x, 2 AS x)", "x", "x FROM"),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &[&format!("'{name}'"), "ambiguous"]);
        assert_at_token(&e, sql, token);
    }
    // qualified, it works
    assert_eq!(
        f.rows("SELECT count(*) FROM orders a, orders b WHERE a.o_orderkey = b.o_orderkey"),
        vec![vec!["30"]]
    );
}

#[test]
fn division_by_zero_is_an_error() {
    let f = Fixture::new();
    for sql in [
        "SELECT 1 / 0",
        "SELECT 5 % 0",
        "SELECT o_orderkey / (o_orderkey - 3) FROM orders",
        "SELECT o_totalprice / 0.00 FROM orders",
        "SELECT o_orderkey % (o_custkey * 0) FROM orders",
        "SELECT sum(o_orderkey) / (count(*) - 30) FROM orders",
        // the zero is in the last row group only: no partial result
        "SELECT o_orderkey / (30 - o_orderkey) FROM orders",
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &["division by zero"]);
    }
}

#[test]
fn integer_overflow_is_an_error() {
    let f = Fixture::new();
    for (sql, needles) in [
        ("SELECT 9223372036854775807 + 1", &["overflow"][..]),
        ("SELECT big + 1 FROM nums", &["overflow"][..]),
        ("SELECT big * 2 FROM nums", &["overflow"][..]),
        ("SELECT small - 1 FROM nums", &["overflow"][..]),
        ("SELECT -small FROM nums", &["overflow"][..]),
        ("SELECT sum(big) FROM nums", &["overflow", "sum"][..]),
        ("SELECT CAST(big AS INTEGER) FROM nums", &["integer"][..]),
        ("SELECT CAST(300 AS TINYINT)", &["300", "tinyint"][..]),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, needles);
    }
    // INTEGER arithmetic: an error or the exact value, never a wrapped one
    match f.run("SELECT i + i FROM nums") {
        Ok(r) => assert_eq!(text_rows(&r)[0][0], "4294967294"),
        Err(e) => assert_mentions(&e, &["overflow"]),
    }
    // abs of the smallest BIGINT: an error or the exact value
    match f.run("SELECT abs(small) FROM nums") {
        Ok(r) => assert_eq!(text_rows(&r)[0][0], "9223372036854775808"),
        Err(e) => assert_mentions(&e, &["overflow"]),
    }
    f.assert_alive();
}

#[test]
fn decimal_overflow_is_an_error() {
    let f = Fixture::new();
    for (sql, needles) in [
        ("SELECT d38 + d38 FROM nums", &["overflow"][..]),
        ("SELECT d38 * 10 FROM nums", &["overflow"][..]),
        ("SELECT sum(d38) FROM nums", &["overflow"][..]),
        (
            "SELECT CAST(9999999999999999999999999999999999.99 AS DECIMAL(36,2)) * CAST(9999999999999999999999999999999999.99 AS DECIMAL(36,2))",
            &["overflow"][..],
        ),
        ("SELECT CAST(12345.67 AS DECIMAL(4,2))", &["12345.67", "decimal(4,2)"][..]),
        ("SELECT CAST(o_totalprice AS DECIMAL(3,1)) FROM orders", &["decimal(3,1)"][..]),
        ("SELECT CAST(1e308 AS DECIMAL(38,2))", &["decimal(38,2)"][..]),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, needles);
    }
}

#[test]
fn invalid_dates_are_errors() {
    let f = Fixture::new();
    for (sql, token) in [
        ("SELECT DATE '2023-02-30'", "'2023-02-30'"),
        ("SELECT DATE '2023-13-01'", "'2023-13-01'"),
        ("SELECT DATE 'yesterday'", "'yesterday'"),
        ("SELECT DATE ''", "''"),
        (
            "SELECT o_orderkey FROM orders WHERE o_orderdate < DATE '1995-02-29'",
            "'1995-02-29'",
        ),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &["date", token]);
        assert_at_token(&e, sql, token);
    }
    for (sql, value) in [
        ("SELECT CAST('2023-13-01' AS DATE)", "2023-13-01"),
        ("SELECT CAST('abc' AS DATE)", "abc"),
        ("SELECT CAST(o_status AS DATE) FROM orders", "f"),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &["date", value]);
    }
    assert_mentions(
        &f.error("SELECT DATE '1995-01-01' + INTERVAL '9999999999' DAY"),
        &["interval", "9999999999"],
    );
}

#[test]
fn invalid_casts_are_errors() {
    let f = Fixture::new();
    for (sql, needles) in [
        ("SELECT CAST('abc' AS INTEGER)", &["abc", "integer"][..]),
        ("SELECT CAST('1.5' AS BIGINT)", &["1.5", "bigint"][..]),
        (
            "SELECT CAST(o_status AS DOUBLE) FROM orders",
            &["double"][..],
        ),
        ("SELECT CAST(1e300 AS BIGINT)", &["bigint"][..]),
        (
            "SELECT CAST(CAST('nan' AS DOUBLE) AS BIGINT)",
            &["nan", "bigint"][..],
        ),
        (
            "SELECT CAST(o_ratio * 1e300 AS INTEGER) FROM orders",
            &["integer"][..],
        ),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, needles);
    }
    // types that do not exist or are not valid: named, with the place
    for (sql, token, needle) in [
        ("SELECT CAST(1 AS nosuchtype)", "1 AS", "nosuchtype"),
        (
            "SELECT CAST(1.5 AS DECIMAL(100,2))",
            "1.5",
            "decimal(100,2)",
        ),
        ("SELECT CAST(1.5 AS DECIMAL(5,10))", "1.5", "decimal(5,10)"),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &[needle]);
        // (the place of the CAST's operand)
        assert_at_token(&e, sql, token);
    }
}

#[test]
fn negative_limit_is_an_error() {
    let f = Fixture::new();
    for (sql, needles, token) in [
        (
            "SELECT o_orderkey FROM orders LIMIT -1",
            &["limit", "-1"][..],
            "-1",
        ),
        (
            "SELECT o_orderkey FROM orders LIMIT 1 OFFSET -5",
            &["offset", "-5"][..],
            "-5",
        ),
        (
            "SELECT o_orderkey FROM orders LIMIT 'abc'",
            &["limit"][..],
            "'abc'",
        ),
        (
            "SELECT o_orderkey FROM orders LIMIT 1.5",
            &["limit"][..],
            "1.5",
        ),
        (
            "SELECT o_orderkey FROM orders LIMIT o_orderkey",
            &["limit"][..],
            "o_orderkey\0",
        ),
        (
            "SELECT o_orderkey FROM orders LIMIT 99999999999999999999999",
            &["limit"][..],
            "99999999999999999999999",
        ),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, needles);
        let loc = e
            .location()
            .unwrap_or_else(|| panic!("{sql}: no location: {e}"));
        let t = token.trim_end_matches('\0');
        let at = if token.ends_with('\0') {
            sql.rfind(t).unwrap()
        } else {
            sql.find(t).unwrap()
        };
        // `-1`: the sign or the number
        let sign = u64::from(t.starts_with('-'));
        assert!(
            loc.line == 1 && (at as u64 + 1..=at as u64 + 1 + sign).contains(&loc.column),
            "{sql}: should point at column {}: {e}",
            at + 1
        );
    }
    // LIMIT 0 and a huge LIMIT are fine
    assert!(f.rows("SELECT o_orderkey FROM orders LIMIT 0").is_empty());
    assert_eq!(
        f.rows("SELECT count(*) FROM (SELECT * FROM orders LIMIT 9223372036854775807)"),
        vec![vec!["30"]]
    );
}

// ----------------------------------------------------------------- 1. files

#[test]
fn missing_file_is_named() {
    let f = Fixture::new();
    let missing = path_str(&f.path("no_such_file.parquet"));
    let missing_csv = path_str(&f.path("no_such_file.csv"));
    for sql in [
        format!("SELECT * FROM '{missing}'"),
        format!("SELECT * FROM read_parquet('{missing}')"),
        format!("SELECT * FROM read_csv('{missing_csv}')"),
        format!("SELECT count(*) FROM '{missing_csv}'"),
        format!("CREATE EXTERNAL TABLE m STORED AS PARQUET LOCATION '{missing}'"),
        format!("CREATE EXTERNAL TABLE m STORED AS CSV LOCATION '{missing_csv}'"),
    ] {
        let e = f.error(&sql);
        let path = if sql.contains(".csv") {
            &missing_csv
        } else {
            &missing
        };
        assert_mentions(&e, &[path.as_str(), "not found"]);
    }
    let e = f.session.register_parquet("m", &missing).unwrap_err();
    assert_mentions(&e, &[missing.as_str()]);
    let e = f.session.register_csv("m", &missing_csv).unwrap_err();
    assert_mentions(&e, &[missing_csv.as_str()]);
    // nothing was registered
    assert_mentions(&f.error("SELECT * FROM m"), &["'m'", "not found"]);
    f.assert_alive();
}

#[test]
fn unsupported_url_scheme_is_named() {
    let f = Fixture::new();
    for sql in [
        "SELECT * FROM 'ftp://host/data/x.parquet'",
        "SELECT * FROM read_csv('sftp://host/x.csv')",
        "CREATE EXTERNAL TABLE m STORED AS PARQUET LOCATION 'hdfs://nn/x.parquet'",
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &["unsupported scheme", "s3://"]);
    }
    f.assert_alive();
}

#[test]
fn empty_file_is_an_error_naming_it() {
    let f = Fixture::new();
    let pq = f.file("empty.parquet", b"");
    let csv = f.file("empty.csv", b"");
    let magic_only = f.file("magic.parquet", b"PAR1");
    let two_magics = f.file("magic2.parquet", b"PAR1PAR1");
    for (sql, path) in [
        (format!("SELECT * FROM '{pq}'"), &pq),
        (format!("SELECT count(*) FROM read_parquet('{pq}')"), &pq),
        (format!("SELECT * FROM '{csv}'"), &csv),
        (format!("SELECT * FROM '{magic_only}'"), &magic_only),
        (format!("SELECT * FROM '{two_magics}'"), &two_magics),
    ] {
        let e = f.error(&sql);
        assert_mentions(&e, &[path.as_str()]);
    }
    // A CSV with a header and no rows is an empty table, not an error.
    let header_only = f.file("header_only.csv", b"a,b\n");
    assert!(f.rows(&format!("SELECT * FROM '{header_only}'")).is_empty());
    assert_eq!(
        f.rows(&format!("SELECT count(*) FROM '{header_only}'")),
        vec![vec!["0"]]
    );
    // A Parquet file with no rows is an empty table.
    let no_rows = f.file(
        "no_rows.parquet",
        parquet_bytes(&orders_batch().slice(0, 0), 10),
    );
    assert_eq!(
        f.rows(&format!("SELECT count(*) FROM '{no_rows}'")),
        vec![vec!["0"]]
    );
    f.assert_alive();
}

#[test]
fn truncated_parquet_is_an_error_naming_it() {
    let f = Fixture::new();
    let bytes = parquet_bytes(&orders_batch(), 10);
    let n = bytes.len();
    for cut in [n - 1, n - 4, n - 8, n - 9, n - 100, n / 2, 100, 8, 4, 1] {
        let name = format!("cut{cut}.parquet");
        let path = f.file(&name, &bytes[..cut]);
        for sql in [
            format!("SELECT * FROM '{path}'"),
            format!("SELECT count(*) FROM '{path}'"),
        ] {
            let e = f.error(&sql);
            assert_mentions(&e, &[&path]);
        }
    }
    // registered as a table: the error comes at registration
    let path = f.file("cut.parquet", &bytes[..n / 2]);
    let e = f.session.register_parquet("cut", &path).unwrap_err();
    assert_mentions(&e, &[&path]);
    f.assert_alive();
}

/// The byte ranges of the column chunks of row group `rg`.
fn column_chunk_ranges(bytes: &[u8], rg: usize) -> Vec<std::ops::Range<usize>> {
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(bytes::Bytes::from(
        bytes.to_vec(),
    ))
    .unwrap();
    use parquet::file::reader::FileReader;
    let md = reader.metadata().row_group(rg).clone();
    md.columns()
        .iter()
        .map(|c| {
            let (start, len) = c.byte_range();
            start as usize..(start + len) as usize
        })
        .collect()
}

#[test]
fn corrupt_parquet_data_is_an_error_not_a_partial_result() {
    let f = Fixture::new();
    let bytes = parquet_bytes(&orders_batch(), 10);
    // Garbage in every column chunk of the LAST row group (of 3): the first
    // two read fine, so a partial result could slip out.
    let mut bad = bytes.clone();
    for r in column_chunk_ranges(&bytes, 2) {
        for b in &mut bad[r.start + 4..r.end] {
            *b = 0xA5;
        }
    }
    let path = f.file("corrupt_data.parquet", &bad);
    f.session.register_parquet("corrupt", &path).unwrap();
    for sql in [
        "SELECT * FROM corrupt",
        "SELECT sum(o_totalprice) FROM corrupt",
        "SELECT o_status, count(*) FROM corrupt GROUP BY 1 ORDER BY 1",
        "SELECT o_orderkey FROM corrupt ORDER BY o_orderkey DESC LIMIT 3",
        "SELECT o_orderkey FROM corrupt WHERE o_orderkey > 25",
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &[&path]);
    }
    // The first row groups alone read fine.
    assert_eq!(
        f.rows("SELECT count(*) FROM corrupt WHERE o_orderkey <= 20"),
        vec![vec!["20"]]
    );
    f.assert_alive();
}

#[test]
fn corrupt_parquet_metadata_errors_name_the_file() {
    let f = Fixture::new();
    let bytes = parquet_bytes(&orders_batch(), 10);
    let n = bytes.len();
    let footer_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let footer = n - 8 - footer_len..n - 8;
    // Every byte of the footer, in turn, replaced by 0xFF (and by 0x00):
    // an error that names the file, or an answer; never a panic or hang.
    let path = path_str(&f.path("meta.parquet"));
    let mut answered = 0;
    let mut errors = 0;
    let mut unnamed = std::collections::BTreeSet::new();
    let step = (footer_len / 300).max(1);
    for i in footer.clone().step_by(step) {
        for v in [0xFFu8, 0x00] {
            let mut bad = bytes.clone();
            if bad[i] == v {
                continue;
            }
            bad[i] = v;
            std::fs::write(&path, &bad).unwrap();
            for sql in [
                format!("SELECT * FROM '{path}'"),
                format!("SELECT count(*), min(o_orderkey) FROM '{path}' WHERE o_orderkey > 5"),
            ] {
                match f.run(&sql) {
                    Ok(_) => answered += 1,
                    Err(e) => {
                        errors += 1;
                        if !e.to_string().contains(&path) {
                            unnamed.insert(e.to_string().replace(&path, "PATH"));
                        }
                    }
                }
            }
        }
    }
    assert!(errors > 0, "no corruption detected at all");
    println!("corrupt footers: {errors} errors, {answered} answers");
    assert!(
        unnamed.is_empty(),
        "errors that do not name the file:\n{}",
        unnamed.into_iter().collect::<Vec<_>>().join("\n")
    );
    f.assert_alive();
}

#[test]
fn corrupt_parquet_footer_is_an_error_naming_the_file() {
    let f = Fixture::new();
    let bytes = parquet_bytes(&orders_batch(), 10);
    let n = bytes.len();
    // wrong magic bytes
    let mut bad = bytes.clone();
    bad[n - 1] = b'X';
    let p = f.file("magic_end.parquet", &bad);
    assert_mentions(&f.error(&format!("SELECT * FROM '{p}'")), &[&p]);
    // a footer length larger than the file
    let mut bad = bytes.clone();
    bad[n - 8..n - 4].copy_from_slice(&(n as u32 * 2).to_le_bytes());
    let p = f.file("footer_len.parquet", &bad);
    assert_mentions(&f.error(&format!("SELECT * FROM '{p}'")), &[&p]);
    f.assert_alive();
}

#[test]
fn csv_ragged_rows_are_errors_naming_file_and_line() {
    let f = Fixture::new();
    let short = f.file("short.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n");
    let long = f.file("long.csv", "a,b\n1,2\n3,4,5\n");
    for (path, line) in [(&short, 3), (&long, 3)] {
        let e = f.error(&format!("SELECT * FROM '{path}'"));
        assert_mentions(&e, &[path.as_str(), &format!("line {line}")]);
    }
    // far from the start: past the rows used to infer the schema
    let mut text = String::from("a,b\n");
    for i in 0..20_000 {
        text.push_str(&format!("{i},{i}\n"));
    }
    text.push_str("1,2,3\n");
    let far = f.file("far.csv", &text);
    let e = f.error(&format!("SELECT sum(a) FROM '{far}'"));
    assert_mentions(&e, &[far.as_str(), "line 20002"]);
    f.assert_alive();
}

#[test]
fn csv_bad_numbers_are_errors_naming_file_value_and_line() {
    let f = Fixture::new();
    // The schema is inferred from the first rows: a later bad value is an
    // error when the query reads it, not a NULL and not a partial result.
    let mut text = String::from("n,x\n");
    for i in 0..15_000 {
        text.push_str(&format!("{i},{}.5\n", i));
    }
    text.push_str("oops,1.5\n"); // line 15002
    let bad_int = f.file("bad_int.csv", &text);
    let e = f.error(&format!("SELECT sum(n) FROM '{bad_int}'"));
    assert_mentions(&e, &[bad_int.as_str(), "'oops'"]);
    let e = f.error(&format!("SELECT * FROM '{bad_int}'"));
    assert_mentions(&e, &[bad_int.as_str(), "'oops'"]);
    // a column that does not contain it reads fine
    assert_eq!(
        f.rows(&format!("SELECT count(x) FROM '{bad_int}'")),
        vec![vec!["15001"]]
    );
    let mut text = String::from("n,x\n");
    for i in 0..15_000 {
        text.push_str(&format!("{i},{i}.25\n"));
    }
    text.push_str("1,1.2.3\n");
    let bad_float = f.file("bad_float.csv", &text);
    let e = f.error(&format!("SELECT sum(x) FROM '{bad_float}'"));
    assert_mentions(&e, &[bad_float.as_str(), "'1.2.3'"]);
    f.assert_alive();
}

#[test]

fn csv_bad_number_reports_the_line_of_the_file() {
    let f = Fixture::new();
    let mut text = String::from("n\n");
    for i in 0..15_000 {
        text.push_str(&format!("{i}\n"));
    }
    text.push_str("oops\n"); // line 15002
    let p = f.file("bad_line.csv", &text);
    let e = f.error(&format!("SELECT sum(n) FROM '{p}'"));
    assert_mentions(&e, &[p.as_str(), "'oops'", "line 15002"]);
}

#[test]

fn csv_error_line_numbers_count_from_the_start_of_the_file() {
    let f = Fixture::new();
    let mut text = String::with_capacity(40 << 20);
    text.push_str("a,b\n");
    let rows = 1_500_000;
    for i in 0..rows as i64 {
        text.push_str(&format!("{i},{}\n", i * 1_000_003));
    }
    text.push_str("1,2,3\n"); // line rows + 2
    let p = f.file("big_ragged.csv", &text);
    drop(text);
    let e = f.error(&format!("SELECT sum(a) FROM '{p}'"));
    assert_mentions(&e, &[p.as_str(), &format!("line {}", rows + 2)]);
}

#[test]
fn csv_wrong_encodings_are_errors_naming_the_file() {
    let f = Fixture::new();
    // Latin-1 é in a text column, on line 3
    let mut latin1 = b"name,v\nabc,1\ncaf".to_vec();
    latin1.extend_from_slice(b"\xe9,2\n");
    let p1 = f.file("latin1.csv", &latin1);
    // UTF-16 LE with a byte order mark
    let utf16: Vec<u8> = "\u{feff}name,v\nabc,1\n"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let p2 = f.file("utf16.csv", &utf16);
    // invalid UTF-8 far down, past schema inference
    let mut late = String::from("name,v\n");
    for i in 0..12_000 {
        late.push_str(&format!("row{i},{i}\n"));
    }
    let mut late = late.into_bytes();
    late.extend_from_slice(b"\xff\xfe,1\n");
    let p3 = f.file("late_bad_utf8.csv", &late);
    for p in [&p1, &p2, &p3] {
        let e = f.error(&format!("SELECT * FROM '{p}'"));
        assert_mentions(&e, &[p.as_str(), "utf-8"]);
    }
    let e = f.error(&format!("SELECT * FROM '{p1}'"));
    assert_mentions(&e, &["line 3"]);
    f.assert_alive();
}

#[test]
fn csv_utf8_byte_order_mark_is_not_part_of_the_first_name() {
    let f = Fixture::new();
    let p = f.file("bom.csv", "\u{feff}a,b\n1,2\n");
    assert_eq!(
        f.rows(&format!("SELECT a, b FROM '{p}'")),
        vec![vec!["1", "2"]]
    );
}

#[test]
fn glob_matching_nothing_is_an_error_naming_the_pattern() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("emptydir")).unwrap();
    let glob = path_str(&f.path("emptydir/*.parquet"));
    let glob_csv = path_str(&f.path("emptydir/*.csv"));
    let nodir = path_str(&f.path("no_such_dir/*.parquet"));
    let dir = path_str(&f.path("emptydir"));
    // a directory that holds files, none of them Parquet
    f.file("textdir/readme.txt", "hello");
    let textdir = path_str(&f.path("textdir"));
    for (sql, needle) in [
        (format!("SELECT * FROM read_parquet('{glob}')"), &glob),
        (format!("SELECT * FROM '{glob}'"), &glob),
        (format!("SELECT * FROM read_csv('{glob_csv}')"), &glob_csv),
        (format!("SELECT * FROM read_parquet('{nodir}')"), &nodir),
        (format!("SELECT * FROM read_parquet('{dir}')"), &dir),
        (format!("SELECT * FROM read_parquet('{textdir}')"), &textdir),
        (
            format!("CREATE EXTERNAL TABLE g STORED AS PARQUET LOCATION '{glob}'"),
            &glob,
        ),
    ] {
        let e = f.error(&sql);
        assert_mentions(&e, &[needle.as_str()]);
    }
    // an invalid glob pattern
    let bad = path_str(&f.path("[a-.parquet"));
    let e = f.error(&format!("SELECT * FROM read_parquet('{bad}')"));
    assert_mentions(&e, &[&bad]);
    // files of different schemas under one glob
    f.file("mixed/a.parquet", parquet_bytes(&orders_batch(), 10));
    f.file("mixed/b.parquet", parquet_bytes(&lineitem_batch(), 10));
    let mixed = path_str(&f.path("mixed/*.parquet"));
    let e = f.error(&format!("SELECT * FROM read_parquet('{mixed}')"));
    assert_mentions(&e, &["b.parquet", "schema"]);
    f.assert_alive();
}

#[test]
fn parquet_file_changed_after_planning_is_an_error_naming_it() {
    let f = Fixture::new();
    let good = parquet_bytes(&orders_batch(), 10);
    let path = f.file("changing.parquet", &good);
    f.session.register_parquet("changing", &path).unwrap();
    assert_eq!(f.rows("SELECT count(*) FROM changing"), vec![vec!["30"]]);

    // truncated in place
    std::fs::write(&path, &good[..64]).unwrap();
    let e = f.error("SELECT sum(o_totalprice) FROM changing");
    assert_mentions(&e, &[&path]);

    // deleted
    std::fs::remove_file(&path).unwrap();
    let e = f.error("SELECT sum(o_totalprice) FROM changing");
    assert_mentions(&e, &[&path]);

    // restored: the table reads again
    std::fs::write(&path, &good).unwrap();
    assert_eq!(f.rows("SELECT count(*) FROM changing"), vec![vec!["30"]]);
    f.assert_alive();
}

#[test]
fn parquet_file_replaced_after_planning_is_detected() {
    let f = Fixture::new();
    let path = f.file("replaced.parquet", parquet_bytes(&orders_batch(), 10));
    f.session.register_parquet("replaced", &path).unwrap();
    // a different file of the same schema: other values, one row group
    let other = orders_batch();
    let doubled: Vec<ArrayRef> = other
        .columns()
        .iter()
        .map(|c| arrow::compute::concat(&[c.as_ref(), c.as_ref()]).unwrap())
        .collect();
    let other = RecordBatch::try_new(other.schema(), doubled).unwrap();
    std::fs::write(&path, parquet_bytes(&other, 1000)).unwrap();
    // Right answers for the new file are 60 rows, sum 930; the old file had
    // 30 and 465. Either the new answer or an error naming the file.
    match f.run("SELECT count(*), sum(o_orderkey) FROM replaced") {
        Ok(r) => assert_eq!(text_rows(&r), vec![vec!["60", "930"]]),
        Err(e) => assert_mentions(&e, &[&path]),
    }
    f.assert_alive();
}

#[test]
fn csv_file_changed_after_planning_is_read_whole_or_an_error() {
    let f = Fixture::new();
    let make = |rows: i64, base: i64| {
        let mut s = String::from("a,b\n");
        for i in 0..rows {
            s.push_str(&format!("{},{}\n", base + i, i));
        }
        s
    };
    let path = f.file("changing.csv", make(100, 0));
    f.session.register_csv("changing", &path).unwrap();
    assert_eq!(
        f.rows("SELECT count(*), sum(a) FROM changing"),
        vec![vec!["100", "4950"]]
    );
    // rewritten, longer: 200 rows, a = 1000..1199
    std::fs::write(&path, make(200, 1000)).unwrap();
    match f.run("SELECT count(*), sum(a) FROM changing") {
        Ok(r) => assert_eq!(text_rows(&r), vec![vec!["200", "219900"]]),
        Err(e) => assert_mentions(&e, &[&path]),
    }
    // rewritten, shorter
    std::fs::write(&path, make(10, 0)).unwrap();
    match f.run("SELECT count(*), sum(a) FROM changing") {
        Ok(r) => assert_eq!(text_rows(&r), vec![vec!["10", "45"]]),
        Err(e) => assert_mentions(&e, &[&path]),
    }
    f.assert_alive();
}

#[test]
fn csv_file_shrunk_or_deleted_after_planning_is_an_error_naming_it() {
    let f = Fixture::new();
    let mut text = String::from("a,b\n");
    for i in 0..1000 {
        text.push_str(&format!("{i},{i}\n"));
    }
    let path = f.file("shrinking.csv", &text);
    f.session.register_csv("shrinking", &path).unwrap();
    std::fs::write(&path, "a,b\n1,2\n").unwrap();
    match f.run("SELECT count(*), sum(a) FROM shrinking") {
        Ok(r) => assert_eq!(text_rows(&r), vec![vec!["1", "1"]]),
        Err(e) => assert_mentions(&e, &[&path]),
    }
    std::fs::remove_file(&path).unwrap();
    let e = f.error("SELECT sum(a) FROM shrinking");
    assert_mentions(&e, &[&path]);
    f.assert_alive();
}

// -------------------------------------------------------------- 1. settings

#[test]
fn set_of_an_unknown_setting_or_a_bad_value_is_an_error() {
    let f = Fixture::new();
    let threads_before = f.rows("SHOW threads");
    let e = f.error("SET threds = 4");
    assert_mentions(
        &e,
        &["unknown setting", "'threds'", "did you mean 'threads'"],
    );
    let e = f.error("SET target_partition = 4");
    assert_mentions(
        &e,
        &["'target_partition'", "did you mean 'target_partitions'"],
    );
    let e = f.error("SET zzzzzzzzzzzz = 1");
    assert_mentions(&e, &["unknown setting", "'zzzzzzzzzzzz'"]);
    for (sql, value) in [
        ("SET threads = -1", "-1"),
        ("SET threads = 0", "0"),
        ("SET threads = 'abc'", "abc"),
        ("SET threads = 1.5", "1.5"),
        (
            "SET threads = 99999999999999999999999",
            "99999999999999999999999",
        ),
        ("SET target_partitions = 0", "0"),
        ("SET target_partitions = true", "true"),
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &[value, "invalid value"]);
    }
    assert_mentions(&f.error("SET threads = 1, 2"), &["threads"]);
    assert_mentions(&f.error("SHOW threds"), &["threds"]);
    // nothing changed
    assert_eq!(f.rows("SHOW threads"), threads_before);
    // valid values work, and queries answer under them
    for sql in [
        "SET threads = 1",
        "SET target_partitions = 7",
        "SET threads = '3'",
    ] {
        f.rows(sql);
        f.assert_alive();
    }
    assert_eq!(f.rows("SHOW threads"), vec![vec!["3"]]);
}

#[test]
fn strange_but_valid_settings_still_answer() {
    let f = Fixture::new();
    for sql in [
        "SET threads = 64",
        "SET target_partitions = 1000",
        "SET threads = 1",
        "SET target_partitions = 1",
    ] {
        f.rows(sql);
        assert_eq!(
            f.rows(
                "SELECT o_status, count(*), sum(l_quantity) FROM orders JOIN lineitem ON o_orderkey = l_orderkey GROUP BY o_status ORDER BY 1"
            ),
            vec![
                vec!["F", "20", "570.00"],
                vec!["O", "20", "610.00"],
                vec!["P", "20", "650.00"]
            ],
            "after {sql}"
        );
        f.assert_alive();
    }
}

// ------------------------------------------------------- 2. panics contained

/// A table whose scan partition `panic_at` panics; the others sleep a
/// little first, so that they are running when the panic happens.
#[derive(Debug)]
struct PanickingTable {
    schema: arrow::datatypes::SchemaRef,
    partitions: usize,
    panic_at: usize,
}

#[derive(Debug)]
struct PanickingPartition {
    schema: arrow::datatypes::SchemaRef,
    index: usize,
    panic_at: usize,
}

impl quarry_core::catalog::TableProvider for PanickingTable {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.schema.clone()
    }
    fn statistics(&self) -> quarry_core::catalog::TableStats {
        quarry_core::catalog::TableStats::default()
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn partitions(
        &self,
        _projection: &[usize],
        _filters: &[quarry_core::plan::Expr],
    ) -> quarry_core::Result<Vec<Arc<dyn quarry_core::catalog::ScanPartition>>> {
        Ok((0..self.partitions)
            .map(|index| {
                Arc::new(PanickingPartition {
                    schema: self.schema.clone(),
                    index,
                    panic_at: self.panic_at,
                }) as Arc<dyn quarry_core::catalog::ScanPartition>
            })
            .collect())
    }
}

impl quarry_core::catalog::ScanPartition for PanickingPartition {
    fn read(
        &self,
        sink: &mut dyn FnMut(RecordBatch) -> quarry_core::Result<()>,
        _fetched: &std::sync::atomic::AtomicU64,
    ) -> quarry_core::Result<()> {
        if self.index == self.panic_at {
            panic!("injected panic in partition {}", self.index);
        }
        std::thread::sleep(Duration::from_millis(20));
        sink(RecordBatch::try_new(
            self.schema.clone(),
            vec![Arc::new(Int64Array::from(vec![self.index as i64; 100])) as ArrayRef],
        )?)
    }
    fn describe(&self) -> quarry_core::Result<quarry_core::catalog::ScanDescriptor> {
        Err(quarry_core::QuarryError::exec(
            "a test partition is never sent elsewhere",
        ))
    }
}

fn panicking_plan(partitions: usize, panic_at: usize) -> quarry_core::plan::LogicalPlan {
    use quarry_core::plan::LogicalPlan;
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
    LogicalPlan::Scan(quarry_core::plan::logical::Scan {
        table_name: "panicking".into(),
        provider: Arc::new(PanickingTable {
            schema: schema.clone(),
            partitions,
            panic_at,
        }),
        projection: vec![0],
        filters: vec![],
        schema,
    })
}

fn run_options() -> quarry_core::runtime::RunOptions<'static> {
    quarry_core::runtime::RunOptions {
        threads: 2,
        cancel: Default::default(),
        progress: None,
        memory: quarry_core::runtime::memory::MemoryPool::new(1 << 30),
        temp_dir: std::env::temp_dir(),
        memory_pause: 0.8,
    }
}

#[test]
fn a_panic_in_a_task_is_an_error_of_that_query() {
    let f = Fixture::new();
    for (partitions, panic_at) in [(1, 0), (8, 0), (8, 7), (32, 13)] {
        let plan = panicking_plan(partitions, panic_at);
        let graph = quarry_core::graph::lower(&plan, 4).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = quarry_core::runtime::run_graph(&graph, run_options()).map(|(b, _)| b.len());
            let _ = tx.send(r);
        });
        let r = rx
            .recv_timeout(TIMEOUT)
            .expect("a panicking task must not hang the query");
        let e = r.expect_err("a panicking task must fail the query");
        assert_mentions(
            &e,
            &["panic", &format!("injected panic in partition {panic_at}")],
        );
        // the next run of the same kind, without the panic, works
        let ok = panicking_plan(partitions, usize::MAX);
        let graph = quarry_core::graph::lower(&ok, 4).unwrap();
        let (batches, _) = quarry_core::runtime::run_graph(&graph, run_options()).unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, partitions * 100);
        // and the session's queries too
        f.assert_alive();
    }
}

// ------------------------------------------------- regressions of bugs found

/// Found by the sql_frontend fuzz target on 2026-12-02
/// (fuzz/regressions/sql_frontend/parse_time_nested_case_subscripts, without
/// its first byte, which chooses raw text): 1 KB of compound names with
/// unclosed subscripts (`a.b[c.d.a.b[…`) made sqlparser backtrack
/// exponentially: 93 s to report the syntax error, about ×7 per level. It
/// must answer, or refuse, within seconds (brackets nested more than 5 deep
/// are refused before parsing).
#[test]
fn pathological_sql_is_refused_quickly() {
    let inputs: [&[u8]; 2] = [
        include_bytes!("../../../fuzz/regressions/sql_frontend/parse_time_nested_case_subscripts"),
        // unclosed `NOT IN (extract(…` 38 deep: 17 s with sqlparser's
        // default recursion limit of 50
        include_bytes!("../../../fuzz/regressions/sql_frontend/parse_time_nested_extract_in"),
    ];
    for input in inputs {
        refused_within_10_seconds(&String::from_utf8_lossy(&input[1..]));
    }
}

fn refused_within_10_seconds(sql: &str) {
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), sql).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .arg("-f")
        .arg(script.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(10) {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(1), "a syntax error");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("still parsing after 10 s");
}

#[test]
fn deep_expressions_do_not_crash_the_process() {
    // A stack overflow aborts the process: run it in the CLI, as a child.
    let exe = env!("CARGO_BIN_EXE_quarry");
    for sql in [
        format!("SELECT {}", vec!["1"; 500].join(" + ")),
        format!("SELECT {}", vec!["1"; 5000].join(" + ")),
        format!(
            "SELECT 1 WHERE {}",
            (0..2000)
                .map(|i| format!("{i} = {i}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        ),
        format!(
            "SELECT 1 WHERE 1 IN ({})",
            (0..5000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ] {
        let script = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(script.path(), &sql).unwrap();
        let out = std::process::Command::new(exe)
            .arg("-f")
            .arg(script.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // an answer, or an error message; never a crash
        assert!(
            out.status.code().is_some_and(|c| c == 0 || c == 1),
            "{}…: the process died ({:?}): {}",
            &sql[..60],
            out.status,
            stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
        );
        if out.status.code() == Some(1) {
            assert!(stderr.contains("Error"), "{stderr}");
        }
    }
}

#[test]
fn round_with_a_large_negative_scale_does_not_panic() {
    let f = Fixture::new();
    for sql in [
        "SELECT round(1.2345, -100)",
        "SELECT round(CAST(1.2345 AS DECIMAL(10,4)), -100)",
        "SELECT round(o_totalprice, -40) FROM orders",
        "SELECT round(o_ratio, -400) FROM orders",
        "SELECT round(o_totalprice, 100) FROM orders",
    ] {
        match f.run(sql) {
            Ok(r) => {
                for row in text_rows(&r) {
                    assert!(
                        row[0] == "0" || row[0].parse::<f64>() == Ok(0.0) || sql.contains(", 100)"),
                        "{sql}: {row:?}"
                    );
                }
            }
            Err(e) => assert_mentions(&e, &["round"]),
        }
        f.assert_alive();
    }
}

#[test]
fn min_and_max_of_null_are_null() {
    let f = Fixture::new();
    assert_eq!(f.rows("SELECT min(NULL), max(NULL)"), vec![vec!["", ""]]);
    assert_eq!(f.rows("SELECT max(NULL) FROM orders"), vec![vec![""]]);
    assert_eq!(
        f.rows("SELECT o_status, min(NULL) FROM orders GROUP BY 1 ORDER BY 1"),
        vec![vec!["F", ""], vec!["O", ""], vec!["P", ""]]
    );
}

#[test]
fn scalar_subquery_with_several_rows_is_an_error() {
    let f = Fixture::new();
    for sql in [
        "SELECT o_orderkey FROM orders WHERE o_orderkey = (SELECT l_orderkey FROM lineitem)",
        "SELECT (SELECT l_orderkey FROM lineitem) FROM orders",
        "SELECT (SELECT o_orderkey FROM orders WHERE o_orderkey < 3)",
    ] {
        let e = f.error(sql);
        assert_mentions(&e, &["subquery", "more than one row"]);
    }
    // one row is fine
    assert_eq!(
        f.rows("SELECT o_orderkey FROM orders WHERE o_orderkey = (SELECT max(l_orderkey) FROM lineitem)"),
        vec![vec!["30"]]
    );
}

#[test]
fn qualified_wildcard_selects_the_columns_of_that_table() {
    let f = Fixture::new();
    assert_eq!(
        f.rows("SELECT lineitem.* FROM orders, lineitem WHERE o_orderkey = l_orderkey AND o_orderkey = 1 ORDER BY l_linenumber"),
        vec![vec!["1", "1", "1.00"], vec!["1", "2", "2.00"]]
    );
    assert_eq!(
        f.rows("SELECT o.* FROM orders o WHERE o_orderkey = 1")
            .len(),
        1
    );
}

#[test]
fn unsupported_clauses_are_errors_not_ignored() {
    let f = Fixture::new();
    // Each of these changes the answer; an engine that ignores it answers
    // wrongly. Supported with the right answer, or an error.
    let cases: &[(&str, Vec<Vec<&str>>)] = &[
        (
            "SELECT count(*) FILTER (WHERE o_orderkey > 20) FROM orders",
            vec![vec!["10"]],
        ),
        (
            "SELECT * EXCLUDE (o_custkey, o_status, o_totalprice, o_orderdate, o_ratio) FROM orders WHERE o_orderkey = 1",
            vec![vec!["1"]],
        ),
        (
            "SELECT * REPLACE (0 AS o_orderkey) FROM orders WHERE o_orderkey = 1",
            vec![vec!["0", "1", "F", "100.50", "1994-08-23", "0.0"]],
        ),
        ("SELECT count(*) FROM orders TABLESAMPLE (0 PERCENT)", vec![vec!["0"]]),
        (
            "SELECT count(*) FROM orders PREWHERE o_orderkey > 20",
            vec![vec!["10"]],
        ),
        (
            "SELECT count(*) FROM orders WHERE o_orderkey > 20 CONNECT BY PRIOR o_orderkey = o_custkey",
            vec![],
        ),
    ];
    let mut wrong = Vec::new();
    for (sql, expected) in cases {
        match f.run(sql) {
            Ok(r) => {
                let got = text_rows(&r);
                let exp: Vec<Vec<String>> = expected
                    .iter()
                    .map(|r| r.iter().map(|s| s.to_string()).collect())
                    .collect();
                if expected.is_empty() || got != exp {
                    wrong.push(format!("{sql}\n  answered {got:?}"));
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(wrong.is_empty(), "ignored clauses:\n{}", wrong.join("\n"));
}

#[test]
fn substring_with_one_argument_is_an_error() {
    let f = Fixture::new();
    let sql = "SELECT substring('abc')";
    let e = f.error(sql);
    assert_mentions(&e, &["substring", "argument"]);
    // sqlparser keeps no place for the SUBSTRING keyword: the error points
    // at the call's argument
    assert_at_token(&e, sql, "'abc'");
}

#[test]
fn csv_without_a_header_is_an_error_naming_it() {
    let f = Fixture::new();
    for (name, text) in [("blank.csv", "\n\n"), ("blank_first.csv", "\n1,2\n")] {
        let p = f.file(name, text);
        match f.run(&format!("SELECT * FROM '{p}'")) {
            Ok(r) => panic!("{name}: answered {:?}", text_rows(&r)),
            Err(e) => assert_mentions(&e, &[p.as_str()]),
        }
    }
}

#[test]
fn csv_count_star_counts_records_not_newlines() {
    let f = Fixture::new();
    for (name, text, rows) in [
        ("quoted_newline.csv", "a,b\n1,\"two\nlines\"\n3,x\n", 2),
        ("blank_lines.csv", "a,b\n1,2\n\n\n3,4\n", 2),
        ("blank_end.csv", "a,b\n1,2\n\n", 1),
    ] {
        let p = f.file(name, text);
        let all = f.rows(&format!("SELECT * FROM '{p}'"));
        assert_eq!(all.len(), rows, "{name}: SELECT *");
        assert_eq!(
            f.rows(&format!("SELECT count(*) FROM '{p}'")),
            vec![vec![rows.to_string()]],
            "{name}: count(*) must agree with SELECT *"
        );
    }
}

/// Found by the file_reader fuzz target
/// (fuzz/regressions/file_reader/arrow_schema_type_none, without its first
/// byte, which chooses the format; and arrow_schema_int_overflow): a Parquet file whose embedded Arrow
/// schema (the ARROW:schema footer key) is corrupt. arrow-ipc panics
/// ("not implemented: Type NONE not supported") while the table is opened,
/// on the caller's thread: the panic escapes `Session::sql`.
#[test]
fn parquet_with_a_corrupt_arrow_schema_is_an_error() {
    let f = Fixture::new();
    // ("Type NONE not supported"; a TryFromIntError unwrapped)
    let inputs: [(&str, &[u8]); 2] = [
        (
            "type_none.parquet",
            include_bytes!("../../../fuzz/regressions/file_reader/arrow_schema_type_none"),
        ),
        (
            "int_overflow.parquet",
            include_bytes!("../../../fuzz/regressions/file_reader/arrow_schema_int_overflow"),
        ),
    ];
    for (name, input) in inputs {
        let p = f.file(name, &input[1..]);
        let e = f.error(&format!("SELECT * FROM '{p}'"));
        assert_mentions(&e, &[p.as_str()]);
        let e = f.session.register_parquet("bad", &p).unwrap_err();
        assert_mentions(&e, &[p.as_str()]);
    }
}

/// Found by the file_reader fuzz target
/// (fuzz/regressions/file_reader/row_group_num_rows_corrupt): a Parquet
/// footer whose row group 1 claims -62 rows. `SELECT *` fails cleanly, but
/// `count(*)` takes the row counts from the footer as they are: -62 as a
/// usize is huge, and the aggregate panics with "capacity overflow" (in a
/// task: contained, but the error neither names the file nor says what is
/// wrong; a large positive count would exhaust memory instead).
#[test]
fn parquet_with_a_negative_row_count_is_an_error() {
    let f = Fixture::new();
    let input = include_bytes!("../../../fuzz/regressions/file_reader/row_group_num_rows_corrupt");
    let p = f.file("negative_rows.parquet", &input[1..]);
    for sql in [
        format!("SELECT count(*) FROM '{p}'"),
        format!("SELECT * FROM '{p}'"),
    ] {
        let e = f.error(&sql);
        assert_mentions(&e, &[p.as_str()]);
        assert!(!e.to_string().contains("panicked"), "{sql}: {e}");
    }
}

/// Found by the file_reader fuzz target
/// (fuzz/regressions/file_reader/dictionary_page_missing): corrupt pages
/// that make the parquet crate panic while decoding ("Decoder for dict
/// should have been set"). The scheduler contains the panic, but the error
/// is "internal error: a task panicked: …", without the file. (Reading
/// Parquet under `catch_unwind`, with the panic turned into "cannot read
/// row group N of 'path'", would fix this and the footer panics at once.)
#[test]
fn parquet_decoder_panics_are_errors_naming_the_file() {
    let f = Fixture::new();
    f.rows("SET threads = 1");
    // "Decoder for dict should have been set"; "offset + len out of bounds"
    // (arrow-buffer, reading definition levels)
    let inputs: [(&str, &[u8], &str); 2] = [
        (
            "dictionary_page_missing.parquet",
            include_bytes!("../../../fuzz/regressions/file_reader/dictionary_page_missing"),
            "SELECT min(dt), max(dt), count(dt) FROM",
        ),
        (
            "def_levels_out_of_bounds.parquet",
            include_bytes!("../../../fuzz/regressions/file_reader/def_levels_out_of_bounds"),
            "SELECT min(b), max(b), count(b) FROM",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, input, query) in inputs {
        let p = f.file(name, &input[1..]);
        let sql = format!("{query} '{p}'");
        match f.run(&sql) {
            Ok(r) => wrong.push(format!("{sql}: answered {} rows", r.num_rows())),
            Err(e) if !e.to_string().contains(&p) || e.to_string().contains("panicked") => {
                wrong.push(format!("{sql}: {e}"))
            }
            Err(_) => {}
        }
        f.assert_alive();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Found by the file_reader fuzz target: Parquet row groups that yield
/// fewer rows than their footer declares, read without an error.
///
/// - fuzz/regressions/file_reader/row_group_shorter_than_footer: row group 10
///   declares 10 rows, its column chunk holds 2 values. DuckDB: "Parquet
///   metadata is corrupt. Column has 2 values but row group has 10 rows".
///   quarry: `SELECT *` returns 40 rows as if whole; `count(*)` (from the
///   footer) says 48.
/// - fuzz/regressions/file_reader/pages_yield_no_rows: a consistent footer
///   (5 rows) over corrupt pages. DuckDB: "TProtocolException: Invalid
///   data". quarry: `SELECT *` returns no rows at all; `count(*)` says 5.
///
/// (Checking, per row group, that the rows read equal the footer's count
/// would catch both.)
#[test]
fn parquet_row_groups_read_short_are_errors() {
    let f = Fixture::new();
    let inputs: [(&str, &[u8]); 2] = [
        (
            "short_row_group.parquet",
            include_bytes!("../../../fuzz/regressions/file_reader/row_group_shorter_than_footer"),
        ),
        (
            "no_rows_from_pages.parquet",
            include_bytes!("../../../fuzz/regressions/file_reader/pages_yield_no_rows"),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, input) in inputs {
        let p = f.file(name, &input[1..]);
        let sql = format!("SELECT * FROM '{p}'");
        match f.run(&sql) {
            Ok(r) => wrong.push(format!("{sql}: answered {} rows", r.num_rows())),
            Err(e) if !e.to_string().contains(&p) => wrong.push(format!("{sql}: {e}")),
            Err(_) => {}
        }
        f.assert_alive();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
