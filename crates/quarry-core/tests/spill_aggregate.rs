//! Hash aggregation under a memory limit too small for its groups: it spills
//! them by hash of the key, merges each sub-partition on its own (splitting
//! again when one still does not fit) and answers as it does in memory,
//! leaving no file in the temp directory.

use std::path::Path;

#[path = "spill/common.rs"]
mod common;

use common::{assert_empty, rows, run, session_spilling_into};
use quarry_core::Session;

/// `t`: 400K rows, n = 0..400K, with k = n % 200000 (200K keys, two rows
/// each), a string key, a decimal key and a decimal amount.
fn session(temp: &Path) -> Session {
    let session = session_spilling_into(temp);
    session
        .sql(
            "CREATE TABLE t AS SELECT n, n % 200000 AS k, 'key-' || (n % 200000) AS s, \
             CAST(n % 200000 AS DECIMAL(12,2)) / 4 AS dk, n * 1.25 AS amount \
             FROM (SELECT a.i * 100000 + b.i * 10000 + c.i * 1000 + e.i * 100 + f.i * 10 + g.i AS n \
                   FROM d a, d b, d c, d e, d f, d g WHERE a.i < 4)",
        )
        .unwrap();
    assert_eq!(
        rows(&session.sql("SELECT count(*) FROM t").unwrap().batches),
        ["400000"]
    );
    session
}

const BY_KEY: &str = "SELECT k, count(*), sum(n), avg(n), min(n), max(amount), sum(amount), \
                      min(s), max(s) FROM t GROUP BY k";
const BY_STRING_AND_DECIMAL: &str = "SELECT s, dk, count(*), sum(amount), avg(amount), \
                                     min(amount), max(n) FROM t GROUP BY s, dk";

#[test]
fn many_groups_spill_and_give_the_in_memory_answer() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    for sql in [BY_KEY, BY_STRING_AND_DECIMAL] {
        let (expected, spilled) = run(&session, "4GB", sql);
        assert_eq!(expected.len(), 200_000);
        assert_eq!(spilled, 0, "nothing spills in memory");
        let (got, spilled) = run(&session, "4MB", sql);
        assert!(spilled > 0, "the aggregate spilled");
        assert!(got == expected, "answers differ under 4MB: {sql}");
        assert_empty(temp.path());
    }
}

#[test]
fn explain_analyze_shows_what_the_aggregate_spilled() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    session.sql("SET memory_limit = '4MB'").unwrap();
    let r = session.sql(&format!("EXPLAIN ANALYZE {BY_KEY}")).unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&r.batches)
        .unwrap()
        .to_string();
    assert!(
        text.lines()
            .any(|l| l.contains("FinalAggregate(1 keys) (200000 rows") && l.contains("spilled")),
        "{text}"
    );
    assert_empty(temp.path());
}

#[test]
fn a_spilled_partition_that_still_does_not_fit_is_split_again() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    let (expected, _) = run(&session, "4GB", BY_STRING_AND_DECIMAL);
    // A sixteenth of a Final task's groups (~1.5 MB) does not fit in 600 KB.
    let (got, spilled) = run(&session, "600KB", BY_STRING_AND_DECIMAL);
    assert!(spilled > 0);
    assert!(got == expected, "answers differ under 600KB");
    assert_empty(temp.path());
}

#[test]
fn equal_intervals_spelled_differently_stay_one_group_when_spilled() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    // Each k as k months (n < 200000) and as k × 30 days: equal intervals
    // whose fields differ, one group of two rows (as in DuckDB), which a
    // spilled table must send to one file. (The group's k, not the
    // interval, is shown: which spelling a group keeps depends on the
    // order its rows come in.)
    let sql = "SELECT min(k), max(k), count(*) FROM \
               (SELECT k, CASE WHEN n < 200000 THEN INTERVAL 1 MONTH * k \
                ELSE INTERVAL 30 DAY * k END AS i FROM t) GROUP BY i";
    let (expected, spilled) = run(&session, "4GB", sql);
    assert_eq!(spilled, 0, "nothing spills in memory");
    assert_eq!(expected.len(), 200_000);
    assert!(
        expected.iter().all(|r| {
            let f: Vec<&str> = r.split('|').collect();
            f[0] == f[1] && f[2] == "2"
        }),
        "{:?}",
        &expected[..3]
    );
    let (got, spilled) = run(&session, "4MB", sql);
    assert!(spilled > 0, "the aggregate spilled");
    assert!(got == expected, "answers differ under 4MB");
    assert_empty(temp.path());
}

#[test]
fn a_limit_too_small_for_any_progress_names_the_aggregate_and_the_limit() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    session.sql("SET memory_limit = '1000B'").unwrap();
    let err = session.sql(BY_KEY).unwrap_err().to_string();
    assert!(
        err.contains("hash aggregate") && err.contains("memory limit of 1000 B"),
        "{err}"
    );
    assert_empty(temp.path());
    // the session goes on
    session.sql("SET memory_limit = '4GB'").unwrap();
    assert_eq!(session.sql(BY_KEY).unwrap().num_rows(), 200_000);
}
