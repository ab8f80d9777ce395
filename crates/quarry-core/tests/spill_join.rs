//! Hash joins whose build side does not fit the memory limit: a grace hash
//! join spills both sides by a hash of the key and joins sub-partition by
//! sub-partition (cutting again when one still does not fit). Every join
//! kind, broadcast and partitioned, must answer as it does in memory, show
//! what it spilled and leave no file in the temp directory.

use std::path::Path;

#[path = "spill/common.rs"]
mod common;

use common::{assert_empty, rows, run, session_spilling_into};
use quarry_core::{Session, SessionConfig};

/// `big`: 200K rows, n = 0..200K, k = n % 60000, a string `s`.
/// `dim`: 50K rows, m = 0..50K, k = m + 20000 (so 20000..59999 match),
/// `nk` = k but NULL every 1000th row, w = 3m, a string `label`.
fn session(temp: &Path) -> Session {
    let session = session_spilling_into(temp);
    session
        .sql(
            "CREATE TABLE big AS SELECT n, n % 60000 AS k, 'row-' || n AS s \
             FROM (SELECT a.i * 100000 + b.i * 10000 + c.i * 1000 + e.i * 100 + f.i * 10 + g.i AS n \
                   FROM d a, d b, d c, d e, d f, d g WHERE a.i < 2)",
        )
        .unwrap();
    session
        .sql(
            "CREATE TABLE dim AS SELECT m, m + 20000 AS k, \
             CASE WHEN m % 1000 = 7 THEN NULL ELSE m + 20000 END AS nk, \
             m * 3 AS w, 'dim-' || m AS label \
             FROM (SELECT b.i * 10000 + c.i * 1000 + e.i * 100 + f.i * 10 + g.i AS m \
                   FROM d b, d c, d e, d f, d g WHERE b.i < 5)",
        )
        .unwrap();
    assert_eq!(
        rows(&session.sql("SELECT count(*) FROM big").unwrap().batches),
        ["200000"]
    );
    assert_eq!(
        rows(
            &session
                .sql("SELECT count(*), count(nk) FROM dim")
                .unwrap()
                .batches
        ),
        ["50000|49950"]
    );
    session
}

/// The EXPLAIN ANALYZE lines of `sql` under `limit`, one per operator.
fn analyze(session: &Session, limit: &str, sql: &str) -> Vec<String> {
    session
        .sql(&format!("SET memory_limit = '{limit}'"))
        .unwrap();
    let r = session.sql(&format!("EXPLAIN ANALYZE {sql}")).unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&r.batches)
        .unwrap()
        .to_string();
    text.split(['→', '\n']).map(|s| s.to_string()).collect()
}

/// `dim` behind a filter that keeps every row but that the planner
/// estimates keeps a few (0.05 per equality): a partitioned join gets no
/// more partitions for it and its build side meets the limit as a surprise,
/// which is when a grace hash join matters.
const DIM_MISESTIMATED: &str = "(SELECT * FROM dim WHERE m % 1 = 0 AND w % 1 = 0 AND k % 1 = 0)";

/// Each query under a large limit and under `limit`: the same answer, the
/// join (of the `kind` named, `broadcast` or partitioned) spilled, no file
/// left behind.
fn check(session: &Session, temp: &Path, limit: &str, cases: &[(&str, &str)]) {
    for (join, sql) in cases {
        let (expected, spilled) = run(session, "4GB", sql);
        assert_eq!(spilled, 0, "nothing spills in memory: {sql}");
        assert!(!expected.is_empty());
        let (got, spilled) = run(session, limit, sql);
        assert!(spilled > 0, "nothing spilled under {limit}: {sql}");
        assert_eq!(got, expected, "answers differ under {limit}: {sql}");
        assert_empty(temp);
        let ops = analyze(session, limit, sql);
        assert!(
            ops.iter()
                .any(|op| op.contains(join) && op.contains("spilled")),
            "no {join} spilled under {limit}: {sql}\n{}",
            ops.join("\n")
        );
        assert_empty(temp);
    }
}

#[test]
fn broadcast_joins_of_every_kind_spill_and_give_the_in_memory_answer() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    let broadcast = [
        (
            "InnerJoin(broadcast",
            "SELECT count(*), sum(b.n), sum(x.w), min(x.label), max(b.s) \
             FROM big b JOIN dim x ON b.k = x.k",
        ),
        (
            // A residual filter besides the key.
            "InnerJoin(broadcast",
            "SELECT count(*), sum(b.n), sum(x.w) \
             FROM big b JOIN dim x ON b.k = x.k AND b.n % 3 <> x.w % 5",
        ),
        (
            "LeftJoin(broadcast",
            "SELECT count(*), count(x.w), sum(x.w), sum(b.n), max(x.label) \
             FROM big b LEFT JOIN dim x ON b.k = x.nk",
        ),
        (
            "SemiJoin(broadcast",
            "SELECT count(*), sum(n) FROM big b WHERE EXISTS (SELECT 1 FROM dim x WHERE x.k = b.k)",
        ),
        (
            "SemiJoin(broadcast",
            "SELECT count(*), sum(n) FROM big b WHERE b.k IN (SELECT nk FROM dim)",
        ),
        (
            "AntiJoin(broadcast",
            "SELECT count(*), sum(n) FROM big b \
             WHERE NOT EXISTS (SELECT 1 FROM dim x WHERE x.nk = b.k)",
        ),
        (
            // EXISTS in an OR (decorrelated to a left join).
            "Join(broadcast",
            "SELECT count(*), sum(n) FROM big b \
             WHERE b.n < 1000 OR EXISTS (SELECT 1 FROM dim x WHERE x.k = b.k)",
        ),
        (
            // IN in an OR: a mark join.
            "MarkJoin(broadcast",
            "SELECT count(*), sum(n) FROM big b \
             WHERE b.n < 1000 OR b.k IN (SELECT nk FROM dim)",
        ),
        (
            // NOT IN without NULLs.
            "Join(broadcast",
            "SELECT count(*), sum(n) FROM big b WHERE b.k NOT IN (SELECT k FROM dim)",
        ),
        (
            // The mark of NOT IN against a build side with NULLs: false or
            // NULL, never true; the NULL is a property of the whole build
            // side, not of the sub-partition a row falls in.
            "MarkJoin(broadcast",
            "SELECT count(*), sum(n) FROM big b WHERE (b.k NOT IN (SELECT nk FROM dim)) IS NULL",
        ),
    ];
    check(&session, temp.path(), "1MB", &broadcast);
    // NOT IN against NULLs keeps nothing.
    let (none, _) = run(
        &session,
        "1MB",
        "SELECT count(*) FROM big b WHERE b.k NOT IN (SELECT nk FROM dim)",
    );
    assert_eq!(none, ["0"]);
    // Keys 0..19999 (4 rows each) and the 40 keys whose dim row has a NULL
    // nk (3 rows each) are unmatched: their mark is NULL, not false.
    let (unknown, _) = run(
        &session,
        "1MB",
        "SELECT count(*) FROM big b WHERE (b.k NOT IN (SELECT nk FROM dim)) IS NULL",
    );
    assert_eq!(unknown, ["80120"]);
    assert_empty(temp.path());
}

#[test]
fn partitioned_joins_spill_and_give_the_in_memory_answer() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    let dim = DIM_MISESTIMATED;
    let partitioned = [
        (
            "RightJoin(partitioned",
            format!(
                "SELECT count(*), count(b.n), sum(x.w), sum(b.n), min(x.label) \
                 FROM big b RIGHT JOIN {dim} x ON b.k = x.nk"
            ),
        ),
        (
            "FullJoin(partitioned",
            format!(
                "SELECT count(*), count(b.n), count(x.w), sum(b.n), sum(x.w), max(b.s), \
                 max(x.label) FROM big b FULL JOIN {dim} x ON b.k = x.nk"
            ),
        ),
        (
            // The larger subquery side: the outer side is hashed instead.
            "RightSemiJoin(partitioned",
            format!(
                "SELECT count(*), sum(w) FROM {dim} x \
                 WHERE EXISTS (SELECT 1 FROM big b WHERE b.k = x.nk)"
            ),
        ),
        (
            "RightAntiJoin(partitioned",
            format!(
                "SELECT count(*), sum(w) FROM {dim} x \
                 WHERE NOT EXISTS (SELECT 1 FROM big b WHERE b.k = x.nk)"
            ),
        ),
    ];
    let partitioned: Vec<(&str, &str)> =
        partitioned.iter().map(|(j, q)| (*j, q.as_str())).collect();
    check(&session, temp.path(), "1MB", &partitioned);
}

#[test]
fn a_sub_partition_that_still_does_not_fit_is_split_again() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    // A sixteenth of the build side (with its table) does not fit in 200 KB.
    let full = format!(
        "SELECT count(*), count(b.n), count(x.w), sum(b.n), sum(x.w) \
         FROM big b FULL JOIN {DIM_MISESTIMATED} x ON b.k = x.nk"
    );
    let cases = [
        (
            "InnerJoin(broadcast",
            "SELECT count(*), sum(b.n), sum(x.w), min(x.label), max(b.s) \
             FROM big b JOIN dim x ON b.k = x.k",
        ),
        ("FullJoin(partitioned", &full),
    ];
    check(&session, temp.path(), "200KB", &cases);
}

#[test]
fn spilled_joins_meet_equal_intervals_spelled_differently() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    // k months against k × 30 days: equal keys whose fields differ, which
    // the sub-partitions must hash alike; the answer of the join on k.
    let (want, _) = run(
        &session,
        "4GB",
        "SELECT count(*), sum(b.n), sum(x.w) FROM big b JOIN dim x ON b.k = x.k",
    );
    assert_ne!(want, ["0|NULL|NULL"]);
    let on = "INTERVAL 1 MONTH * b.k = INTERVAL 30 DAY * x.nk";
    let full = format!(
        "SELECT count(*), count(b.n), count(x.w), sum(b.n), sum(x.w) \
         FROM big b FULL JOIN {DIM_MISESTIMATED} x ON {on}"
    );
    let inner = "SELECT count(*), sum(b.n), sum(x.w) FROM big b JOIN dim x \
                 ON INTERVAL 1 MONTH * b.k = INTERVAL 30 DAY * x.k";
    check(
        &session,
        temp.path(),
        "1MB",
        &[
            ("InnerJoin(broadcast", inner),
            ("FullJoin(partitioned", &full),
        ],
    );
    let (got, _) = run(&session, "1MB", inner);
    assert_eq!(got, want);
    let (got, _) = run(&session, "1MB", &full);
    let (by_int, _) = run(
        &session,
        "4GB",
        &format!(
            "SELECT count(*), count(b.n), count(x.w), sum(b.n), sum(x.w) \
             FROM big b FULL JOIN {DIM_MISESTIMATED} x ON b.k = x.nk"
        ),
    );
    assert_eq!(got, by_int);
}

#[test]
fn a_build_side_of_one_key_too_large_names_the_join_and_the_limit() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    session
        .sql("CREATE TABLE one AS SELECT n, 1 AS k, s FROM big")
        .unwrap();
    session.sql("SET memory_limit = '300KB'").unwrap();
    // A left join hashes its right side: 200K rows of one key.
    let sql = "SELECT count(*) FROM dim x LEFT JOIN one o ON o.k = x.m";
    let err = session.sql(sql).unwrap_err().to_string();
    assert!(
        err.contains("hash join's build side") && err.contains("memory limit of 293.0 KiB"),
        "{err}"
    );
    assert_empty(temp.path());
    // the session goes on
    session.sql("SET memory_limit = '4GB'").unwrap();
    let r = session.sql(sql).unwrap();
    assert_eq!(rows(&r.batches), ["249999"]);
}

/// Join-heavy TPC-H queries at SF 0.01 under a limit their build sides do
/// not fit: DuckDB's answers, joins spilled, no file left behind.
#[test]
fn tpch_joins_under_a_small_limit_match_duckdb() {
    use quarry_tpch::answers::{check_batches, Answer};
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tpch-sf0.01-spill-join");
    if !dir.join("lineitem.parquet").exists() {
        quarry_tpch::generate(0.01, &dir).expect("generate TPC-H SF 0.01");
    }
    let temp = tempfile::tempdir().unwrap();
    let session = Session::new(SessionConfig::default().with_threads(2)).unwrap();
    quarry_tpch::register_tables(&session, &dir).unwrap();
    session
        .sql(&format!("SET temp_directory = '{}'", temp.path().display()))
        .unwrap();
    session.sql("SET memory_limit = '1000KB'").unwrap();
    let answers =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../quarry-tpch/tests/tpch_answers/sf0.01");
    let mut join_spilled = 0;
    for n in [3, 5, 9, 10, 13, 18, 21, 22] {
        let sql = quarry_tpch::query(n).unwrap();
        let expected = Answer::from_csv_file(&answers.join(format!("q{n:02}.csv"))).unwrap();
        let result = session
            .sql(sql)
            .unwrap_or_else(|e| panic!("Q{n} under 1000KB: {e}"));
        check_batches(&expected, &result.schema, &result.batches)
            .unwrap_or_else(|m| panic!("Q{n} under 1000KB: {m}"));
        assert_empty(temp.path());
        let ops = analyze(&session, "1000KB", sql);
        join_spilled += ops
            .iter()
            .filter(|op| op.contains("Join(") && op.contains("spilled"))
            .count();
        session.sql("SET memory_limit = '1000KB'").unwrap();
    }
    assert!(join_spilled > 0, "no join spilled");
    assert_empty(temp.path());
}
