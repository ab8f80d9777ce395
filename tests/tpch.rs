//! TPC-H at SF 0.01: quarry's answers against DuckDB's
//! (`tests/tpch_answers/sf0.01/qNN.csv`, see the README there).
//!
//! The data is generated once per run of this test binary, with
//! `quarry::tpch::generate`, into `<target>/tmp/tpch-sf0.01`.
//!
//! `cargo test --test tpch` runs the queries in [`SUPPORTED`];
//! `cargo test --test tpch -- --ignored` runs all 22 and lists which pass.
//! The result of a query that differs is written to
//! `<target>/tmp/tpch-actual/qNN.csv` for diffing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use quarry::tpch::answers::{check_batches, Answer};
use quarry::{Session, SessionConfig};

/// The queries the engine answers today (grows to all 22).
const SUPPORTED: &[usize] = &[1, 6];

const SF: f64 = 0.01;

fn answers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tpch_answers/sf0.01")
}

fn data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tpch-sf0.01");
        quarry::tpch::generate(SF, &dir).expect("generate TPC-H SF 0.01");
        dir
    })
}

fn session() -> Session {
    let session = Session::new(SessionConfig::default()).expect("new session");
    quarry::tpch::register_tables(&session, data_dir()).expect("register the TPC-H tables");
    session
}

/// Runs query `n` and compares it to the expected answer.
fn run_query(session: &Session, n: usize) -> Result<(), String> {
    let sql = quarry::tpch::query(n).expect("query 1..=22");
    let expected = Answer::from_csv_file(&answers_dir().join(format!("q{n:02}.csv")))
        .map_err(|e| e.to_string())?;
    let result = session.sql(sql).map_err(|e| format!("error: {e}"))?;
    check_batches(&expected, &result.schema, &result.batches).map_err(|mismatch| {
        let mut msg = mismatch.to_string();
        if let Ok((actual, _)) = Answer::from_batches(&result.schema, &result.batches) {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tpch-actual");
            let path = dir.join(format!("q{n:02}.csv"));
            if std::fs::create_dir_all(&dir).is_ok()
                && std::fs::write(&path, actual.to_csv()).is_ok()
            {
                msg.push_str(&format!("\n  (result written to {})", path.display()));
            }
        }
        msg
    })
}

fn run_queries(queries: &[usize]) -> Vec<(usize, String)> {
    let session = session();
    let mut failures = Vec::new();
    for &n in queries {
        let start = std::time::Instant::now();
        match run_query(&session, n) {
            Ok(()) => println!(
                "q{n:02}: ok ({:.0} ms)",
                start.elapsed().as_secs_f64() * 1e3
            ),
            Err(e) => {
                println!("q{n:02}: FAILED");
                failures.push((n, e));
            }
        }
    }
    failures
}

fn report(failures: &[(usize, String)]) -> String {
    failures
        .iter()
        .map(|(n, e)| format!("q{n:02}: {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn supported_queries_match_duckdb() {
    let failures = run_queries(SUPPORTED);
    assert!(failures.is_empty(), "TPC-H SF 0.01:\n{}", report(&failures));
}

/// All 22 queries; run with `cargo test --test tpch -- --ignored`.
#[test]
#[ignore = "runs all 22 queries, not only the SUPPORTED ones"]
fn all_queries_match_duckdb() {
    let all: Vec<usize> = (1..=22).collect();
    let failures = run_queries(&all);
    println!("{} of 22 queries pass", 22 - failures.len());
    assert!(failures.is_empty(), "TPC-H SF 0.01:\n{}", report(&failures));
}

#[test]
fn expected_answers_exist_for_all_22_queries() {
    for n in 1..=22 {
        let path = answers_dir().join(format!("q{n:02}.csv"));
        let answer = Answer::from_csv_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!answer.columns.is_empty(), "{}", path.display());
        assert!(!answer.rows.is_empty(), "{}: no rows", path.display());
    }
    // Q1 looks like TPC-H: the four (returnflag, linestatus) groups
    let q1 = Answer::from_csv_file(&answers_dir().join("q01.csv")).unwrap();
    let groups: Vec<String> = q1
        .rows
        .iter()
        .map(|r| format!("{}/{}", r[0], r[1]))
        .collect();
    assert_eq!(groups, ["A/F", "N/F", "N/O", "R/F"]);
    let count: u64 = q1.rows.iter().map(|r| r[9].parse::<u64>().unwrap()).sum();
    assert_eq!(
        count, 59307,
        "lineitem rows shipped by 1998-09-02 at SF 0.01"
    );
}

#[test]
fn generated_data_is_tpch_sf_0_01() {
    let dir = data_dir();
    for table in quarry::tpch::TABLES {
        assert!(dir.join(format!("{table}.parquet")).is_file(), "{table}");
    }
}
