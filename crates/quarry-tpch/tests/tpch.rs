//! TPC-H at SF 0.01: quarry's answers against DuckDB's
//! (`crates/quarry-tpch/tests/tpch_answers/sf0.01/qNN.csv`, see the README there).
//!
//! The data is generated once per run of this test binary, with
//! `quarry_tpch::generate`, into `<target>/tmp/tpch-sf0.01`.
//!
//! `cargo test --test tpch` runs all 22 queries. The result of a query that differs is written to
//! `<target>/tmp/tpch-actual/qNN.csv` for diffing.

// the helpers of quarry-core's integration tests
#[path = "../../quarry-core/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use quarry_core::{Session, SessionConfig};
use quarry_tpch::answers::Answer;

use common::{check_tpch_query, tpch_answers_dir};

const SF: f64 = 0.01;

fn data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tpch-sf0.01");
        quarry_tpch::generate(SF, &dir).expect("generate TPC-H SF 0.01");
        dir
    })
}

fn session() -> Session {
    let session = Session::new(SessionConfig::default()).expect("new session");
    quarry_tpch::register_tables(&session, data_dir()).expect("register the TPC-H tables");
    session
}

/// Runs query `n` and compares it to the expected answer.
fn run_query(session: &Session, n: usize) -> Result<(), String> {
    check_tpch_query(
        session,
        n,
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("tpch-actual"),
        "",
    )
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
fn all_22_queries_match_duckdb() {
    let all: Vec<usize> = (1..=22).collect();
    let failures = run_queries(&all);
    assert!(failures.is_empty(), "TPC-H SF 0.01:\n{}", report(&failures));
}

/// The plan of each query: no cross product (a join without keys is allowed
/// only against a one-row subquery, shown as a keyless left join), and the
/// queries joining lineitem with several tables never hash the lineitem
/// table itself (a build side may hold an already joined and filtered part
/// of it when that is the smaller side).
#[test]
fn plans_have_no_cross_join_and_do_not_hash_lineitem() {
    let session = session();
    for n in 1..=22 {
        let sql = quarry_tpch::query(n).expect("query 1..=22");
        let plan = explain(&session, sql);
        assert!(
            !plan.contains("CrossJoin"),
            "Q{n} has a cross join:\n{plan}"
        );
        if [5, 7, 8, 9, 21].contains(&n) {
            for build in join_build_sides(&plan) {
                assert!(
                    !build.contains("Scan: lineitem") || build.contains("Join"),
                    "Q{n} builds a hash table on lineitem:\n{plan}"
                );
            }
        }
    }
}

fn explain(session: &Session, sql: &str) -> String {
    let result = session
        .sql(&format!("EXPLAIN {sql}"))
        .unwrap_or_else(|e| panic!("EXPLAIN failed: {e}"));
    let mut lines = Vec::new();
    for batch in &result.batches {
        let col = batch.column(0);
        let col = col
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("EXPLAIN gives text");
        lines.extend(col.iter().map(|l| l.unwrap_or_default().to_string()));
    }
    lines.join("\n")
}

/// The text of the right (build) input of every join in the logical plan:
/// the second child subtree of each `…Join:` line.
fn join_build_sides(plan: &str) -> Vec<String> {
    let lines: Vec<&str> = plan
        .lines()
        .take_while(|l| !l.starts_with("Task graph"))
        .collect();
    let depth = |l: &str| l.len() - l.trim_start().len();
    let mut builds = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.trim_start().contains("Join") {
            continue;
        }
        let d = depth(line);
        // children are the following lines at depth d + 2; the second one starts the build side
        let children: Vec<usize> = (i + 1..lines.len())
            .take_while(|&k| depth(lines[k]) > d)
            .filter(|&k| depth(lines[k]) == d + 2)
            .collect();
        if let Some(&start) = children.get(1) {
            let subtree: Vec<&str> = (start..lines.len())
                .take_while(|&k| k == start || depth(lines[k]) > d + 2)
                .map(|k| lines[k])
                .collect();
            builds.push(subtree.join("\n"));
        }
    }
    builds
}

#[test]
fn expected_answers_exist_for_all_22_queries() {
    for n in 1..=22 {
        let path = tpch_answers_dir().join(format!("q{n:02}.csv"));
        let answer = Answer::from_csv_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!answer.columns.is_empty(), "{}", path.display());
        assert!(!answer.rows.is_empty(), "{}: no rows", path.display());
    }
    // Q1 looks like TPC-H: the four (returnflag, linestatus) groups
    let q1 = Answer::from_csv_file(&tpch_answers_dir().join("q01.csv")).unwrap();
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
    for table in quarry_tpch::TABLES {
        assert!(dir.join(format!("{table}.parquet")).is_file(), "{table}");
    }
}
