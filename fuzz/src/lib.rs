//! The checks behind quarry's fuzz targets, in a library so that they run
//! under libFuzzer (`cargo fuzz run …`, nightly) and as plain tests on stable
//! (`cargo test --manifest-path fuzz/Cargo.toml`, a seeded random loop and a
//! replay of the regression inputs). See docs/robustness.md.
//!
//! - [`check_frontend`]: SQL text → parse → bind → optimize → lower, never
//!   executed (`EXPLAIN <query>`). Any panic is a bug; an error must have a
//!   message.
//! - [`check_file`]: bytes → a Parquet or CSV file → open, scan every column,
//!   count rows. Any panic is a bug; an error must name the file; `count(*)`
//!   must equal the number of rows a full scan returns.

pub mod grammar;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
    Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use quarry_core::sql::{parse, QuarryStatement};
use quarry_core::{Session, SessionConfig};

/// A directory for the fuzzers' data, shared by all runs of this machine:
/// `$QUARRY_FUZZ_DATA` or `fuzz/target/fuzz-data`.
fn data_root() -> PathBuf {
    std::env::var_os("QUARRY_FUZZ_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-data"))
}

/// The small table `t`: one column of each type the engine knows.
pub fn typed_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int32, true),
        Field::new("c", DataType::Float64, true),
        Field::new("d", DataType::Decimal128(15, 2), true),
        Field::new("s", DataType::Utf8, true),
        Field::new("dt", DataType::Date32, true),
        Field::new("f", DataType::Boolean, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![
            Some(1),
            Some(-2),
            None,
            Some(i64::MAX),
            Some(0),
        ])),
        Arc::new(Int32Array::from(vec![
            Some(10),
            None,
            Some(-30),
            Some(0),
            Some(i32::MIN),
        ])),
        Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(f64::NAN),
            Some(-0.0),
            None,
            Some(1e300),
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(150),
                Some(-99),
                None,
                Some(0),
                Some(9_999_999_999_999),
            ])
            .with_precision_and_scale(15, 2)
            .expect("valid decimal type"),
        ),
        Arc::new(StringArray::from(vec![
            Some("abc"),
            Some(""),
            None,
            Some("é%_"),
            Some("1995-03-15"),
        ])),
        Arc::new(Date32Array::from(vec![
            Some(9204),
            Some(0),
            None,
            Some(-1),
            Some(2_932_896),
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
            None,
        ])),
    ];
    RecordBatch::try_new(schema, columns).expect("valid batch")
}

/// Writes `batches` as a Parquet file (`row_group_rows` rows per row group).
pub fn write_parquet(path: &Path, batches: &[RecordBatch], row_group_rows: usize) {
    let file = std::fs::File::create(path).expect("create parquet file");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), Some(props))
        .expect("parquet writer");
    for b in batches {
        w.write(b).expect("write batch");
    }
    w.close().expect("close parquet writer");
}

/// Data for the front-end session: TPC-H SF 0.001 and `t.parquet`. Made
/// once (into a temporary directory, then renamed) and reused.
fn frontend_data() -> PathBuf {
    let dir = data_root().join("frontend");
    if dir.join("t.parquet").is_file() {
        return dir;
    }
    let tmp = data_root().join(format!("frontend.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("create fuzz data directory");
    quarry_tpch::generate(0.001, &tmp).expect("generate TPC-H SF 0.001");
    write_parquet(&tmp.join("t.parquet"), &[typed_batch()], 2);
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process made it first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// The session of the front-end target: TPC-H tables and `t`, registered once.
pub fn frontend_session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        let dir = frontend_data();
        let session = Session::new(SessionConfig::default().with_threads(1)).expect("session");
        quarry_tpch::register_tables(&session, &dir).expect("register TPC-H");
        session
            .register_parquet("t", dir.join("t.parquet").to_str().expect("utf-8 path"))
            .expect("register t");
        session
    })
}

/// The SQL text of a front-end input: the first byte chooses raw text (the
/// rest as UTF-8, lossily) or the grammar (the rest as choices).
pub fn frontend_sql(data: &[u8]) -> String {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => grammar::generate(rest),
        Some((_, rest)) => String::from_utf8_lossy(rest).into_owned(),
        None => String::new(),
    }
}

/// Stack size of the thread that plans a fuzzed statement: 8 MiB, a main
/// thread's (quarry plans on a stack of its own, deep expressions are
/// refused past 1000 levels). `QUARRY_FUZZ_STACK_MB` sets another.
fn stack_bytes() -> usize {
    static MB: OnceLock<usize> = OnceLock::new();
    *MB.get_or_init(|| {
        std::env::var("QUARRY_FUZZ_STACK_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8)
    }) << 20
}

fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .stack_size(stack_bytes())
            .spawn_scoped(s, f)
            .expect("spawn planning thread");
        match h.join() {
            Ok(v) => v,
            // Re-raise on this thread, so that libFuzzer sees the crash.
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Whether fuzzed SQL may make the binder read the machine's files:
/// absolute paths, `..`, and globs (`FROM '*/*.csv'`) are left out; relative
/// plain names are harmless (the fuzz crate's directory has no Parquet or
/// CSV files).
fn names_outside_files(sql: &str) -> bool {
    if sql.contains("'/") || sql.contains("\"/") || sql.contains("..") {
        return true;
    }
    // a quote, then a glob character before the next quote
    sql.split('\'')
        .skip(1)
        .step_by(2)
        .any(|lit| lit.contains(['*', '?', '[']))
}

/// The front-end check: parse; a single query is planned with EXPLAIN (bound,
/// optimized, lowered into a task graph, not run). No panic, no hang;
/// errors have a message. (`EXPLAIN ` + the text may fail to parse where the
/// text alone parses, e.g. after leading `;` or at sqlparser's depth limit:
/// that is not checked.)
pub fn check_frontend(data: &[u8]) {
    let sql = frontend_sql(data);
    check_frontend_sql(&sql);
}

pub fn check_frontend_sql(sql: &str) {
    if sql.len() > 20_000 || names_outside_files(sql) {
        return;
    }
    let session = frontend_session();
    on_big_stack(|| {
        let statements = match parse(sql) {
            Ok(s) => s,
            Err(e) => {
                assert!(!e.to_string().trim().is_empty(), "empty error for {sql:?}");
                return;
            }
        };
        let [QuarryStatement::Sql(statement)] = statements.as_slice() else {
            return;
        };
        if !matches!(statement.as_ref(), sqlparser::ast::Statement::Query(_)) {
            return;
        }
        let body = sql.trim_start_matches(|c: char| c == ';' || c.is_whitespace());
        match session.sql(&format!("EXPLAIN {body}")) {
            Ok(r) => assert!(r.num_rows() > 0, "empty EXPLAIN for {sql:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.trim().is_empty(), "empty error for {sql:?}");
            }
        }
    })
}

/// The file the file target writes its input to (one per process).
fn file_path(ext: &str) -> PathBuf {
    let dir = data_root().join(format!("files{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("input.{ext}"))
}

/// The file-reader check: the first byte chooses the format (even: Parquet,
/// odd: CSV); the rest is the file. The file is opened as a table and read:
/// every row, the row count, and min/max of each column.
pub fn check_file(data: &[u8]) {
    let Some((mode, bytes)) = data.split_first() else {
        return;
    };
    let ext = if mode % 2 == 0 { "parquet" } else { "csv" };
    let path = file_path(ext);
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let path_str = path.to_str().expect("utf-8 path").to_string();
    check_file_at(&path_str, ext);
}

/// Panics of known bugs that the fuzzers look past when
/// `QUARRY_FUZZ_KNOWN_BUGS=mask`: none at present (the bugs found so far are
/// fixed and kept by regression tests in crates/quarry-cli/tests/bad_input.rs). A bug found
/// and not yet fixed gets its message here, and a regression test.
const KNOWN_PANICS: &[&str] = &[];

/// Errors of known bugs that do not name the file (as above: none now).
const KNOWN_ERRORS: &[&str] = &[];

/// Set when a known panic unwinds on any thread (tasks run on workers).
static MASKED_ANYWHERE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    /// Set when a known panic unwinds on this thread.
    static MASKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once, a panic hook that lets the panics of known bugs unwind
/// quietly (to be caught below) and hands every other panic to the hook
/// before it (libFuzzer's, which aborts: a crash).
fn mask_known_panics() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if !mask_known_bugs() {
            return;
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(|s| s.as_str())
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            // Any panic of the Parquet decoder on corrupt input: quarry
            // turns it into an error that does not name the file (known
            // bug, parquet_decoder_panics_are_errors_naming_the_file).
            // Likewise of arrow-ipc decoding the Arrow schema embedded in a
            // Parquet footer (parquet_with_a_corrupt_arrow_schema_is_an_error).
            // Or deeper, in a crate the Parquet reader calls (arrow-buffer…):
            // the backtrace tells.
            let in_parquet = info.location().is_some_and(|l| {
                l.file().contains("/parquet-") || l.file().contains("/arrow-ipc-")
            }) || std::backtrace::Backtrace::force_capture()
                .to_string()
                .contains("parquet::arrow::");
            if in_parquet || KNOWN_PANICS.iter().any(|k| msg.contains(k)) {
                MASKED.with(|m| m.set(true));
                MASKED_ANYWHERE.store(true, std::sync::atomic::Ordering::SeqCst);
                return;
            }
            previous(info)
        }));
    });
}

/// Opens and reads the file at `path` as `ext` ("parquet" or "csv").
pub fn check_file_at(path: &str, ext: &str) {
    mask_known_panics();
    MASKED.with(|m| m.set(false));
    MASKED_ANYWHERE.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_file_inner(path, ext)));
    if let Err(p) = r {
        // A known bug, masked: look past it. Anything else is a finding.
        if !MASKED.with(|m| m.get()) {
            std::panic::resume_unwind(p);
        }
    }
}

fn check_file_inner(path: &str, ext: &str) {
    let session = Session::new(SessionConfig::default().with_threads(1)).expect("session");
    let file_name = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
        .to_string();
    // Every error about this file must say which file it is.
    let names_file = |e: &quarry_core::QuarryError, what: &str| {
        let msg = e.to_string();
        if mask_known_bugs()
            && (KNOWN_ERRORS.iter().any(|k| msg.contains(k))
                || (msg.contains("a task panicked")
                    && MASKED_ANYWHERE.load(std::sync::atomic::Ordering::SeqCst)))
        {
            return;
        }
        assert!(
            msg.contains(&file_name),
            "{what}: the error does not name the file '{file_name}': {msg}"
        );
    };
    let registered = if ext == "parquet" {
        session.register_parquet("f", path)
    } else {
        session.register_csv("f", path)
    };
    if let Err(e) = registered {
        names_file(&e, "open");
        return;
    }
    let all = match session.sql("SELECT * FROM f") {
        Ok(r) => Some(r.num_rows()),
        Err(e) => {
            names_file(&e, "SELECT *");
            None
        }
    };
    // count(*) takes the row counts of the Parquet footer as they are: a
    // negative one panics (known bug, parquet_with_a_negative_row_count_is_an_error).
    if ext == "parquet" && mask_known_bugs() && has_bad_row_count(path) {
        return;
    }
    match session.sql("SELECT count(*) FROM f") {
        Ok(r) => {
            let n = count_value(&r);
            // A Parquet row group that yields fewer rows than its footer
            // declares is read short without an error (known bug,
            // parquet_row_groups_read_short_are_errors).
            let short_parquet = ext == "parquet" && all.is_some_and(|a| n.is_some_and(|n| (a as i64) < n));
            let known = mask_known_bugs()
                && ((ext == "csv" && csv_count_is_known_bug(path)) || short_parquet);
            if let (Some(all), false) = (all, known) {
                assert_eq!(
                    n,
                    Some(all as i64),
                    "count(*) disagrees with the rows of SELECT *"
                );
            }
        }
        Err(e) => names_file(&e, "count(*)"),
    }
    if let Ok(d) = session.sql("DESCRIBE f") {
        let names: Vec<String> = d
            .batches
            .iter()
            .flat_map(|b| {
                let col = b.column(0);
                let s = col
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("DESCRIBE gives strings");
                (0..s.len())
                    .map(|i| s.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        for n in names.iter().take(16) {
            let quoted = n.replace('"', "\"\"");
            let q =
                format!("SELECT min(\"{quoted}\"), max(\"{quoted}\"), count(\"{quoted}\") FROM f");
            if let Err(e) = session.sql(&q) {
                // Type errors (min of a list) are not about the file.
                if !matches!(e, quarry_core::QuarryError::Plan { .. }) {
                    names_file(&e, &q);
                }
            }
        }
    }
}

/// Whether to look past bugs that are known and kept by regression tests
/// (`crates/quarry-cli/tests/bad_input.rs`), so that a fuzz run finds new ones:
/// `QUARRY_FUZZ_KNOWN_BUGS=mask` turns the masks on (off by default: every
/// bug found so far is fixed).
pub fn mask_known_bugs() -> bool {
    std::env::var("QUARRY_FUZZ_KNOWN_BUGS").is_ok_and(|v| v == "mask")
}

/// `count(*)` of a CSV counts newline bytes, not records: it is wrong when
/// the file has blank lines, quoted fields with line breaks, or lone `\r`
/// line ends (known bug, `csv_count_star_counts_records_not_newlines`).
fn csv_count_is_known_bug(path: &str) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    bytes.contains(&b'"')
        || bytes.contains(&b'\r')
        || bytes.first() == Some(&b'\n')
        || bytes.windows(2).any(|w| w == b"\n\n")
}

/// Whether a row group of the Parquet file at `path` claims a negative or
/// absurd number of rows, or one its column chunks do not hold.
fn has_bad_row_count(path: &str) -> bool {
    use parquet::file::reader::FileReader;
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let Ok(reader) = parquet::file::serialized_reader::SerializedFileReader::new(
        bytes::Bytes::from(bytes),
    ) else {
        return false;
    };
    reader
        .metadata()
        .row_groups()
        .iter()
        .any(|rg| {
            rg.num_rows() < 0
                || rg.num_rows() > 1 << 40
                // a flat column chunk holding another number of values than
                // the row group has rows: read silently short (known bug,
                // parquet_row_group_shorter_than_its_footer_is_an_error)
                || rg
                    .columns()
                    .iter()
                    .any(|c| c.column_descr().max_rep_level() == 0 && c.num_values() != rg.num_rows())
        })
}

fn count_value(r: &quarry_core::QueryResult) -> Option<i64> {
    let b = r.batches.iter().find(|b| b.num_rows() > 0)?;
    b.column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .map(|a| a.value(0))
}

/// A tiny deterministic random generator (xorshift) for the stable-toolchain
/// loops: no dependency, reproducible from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A libFuzzer-like mutation of `input`: flip, insert, delete, copy or
/// overwrite bytes; used by the stable loops.
pub fn mutate(rng: &mut Rng, input: &[u8], max_len: usize) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if v.len() < max_len => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(16));
                v.drain(i..i + n);
            }
            3 if !v.is_empty() && v.len() < max_len => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(32));
                let chunk = v[i..i + n].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            4 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0, 0xff, 0x7f, 0x80, b'\n', b',', b'"', b'9'][rng.below(8)];
            }
            _ if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v.truncate(max_len);
    v
}
