//! The memory budget as a user meets it: settings, and a limit too small
//! for an operator gives an error naming the operator and the limit.

use quarry::{Session, SessionConfig};

fn session_with_numbers() -> Session {
    let session = Session::new(SessionConfig::default().with_threads(2)).unwrap();
    session
        .sql("CREATE TABLE t AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c')) AS v(k, s)")
        .unwrap();
    session
}

#[test]
fn settings_are_shown_and_checked() {
    let session = session_with_numbers();
    session.sql("SET memory_limit = '2GB'").unwrap();
    let r = session.sql("SHOW memory_limit").unwrap();
    let shown = arrow::util::pretty::pretty_format_batches(&r.batches)
        .unwrap()
        .to_string();
    assert!(shown.contains("1.9 GiB"), "{shown}");

    let err = session
        .sql("SET memory_limit = 'lots'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory_limit") && err.contains("2GB"), "{err}");
    let err = session
        .sql("SET temp_directory = '/no/such/quarry/dir'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/quarry/dir"), "{err}");
    let err = session
        .sql("SET memory_limt = '1GB'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean 'memory_limit'"), "{err}");
    // the session goes on
    assert_eq!(session.sql("SELECT count(*) FROM t").unwrap().num_rows(), 1);
}

#[test]
fn an_aggregate_over_the_budget_names_itself_and_the_limit() {
    let session = session_with_numbers();
    // 243 distinct values, made under the default limit so that only the
    // aggregate meets the small one.
    session
        .sql(
            "CREATE TABLE x AS SELECT a.k * 10000 + b.k * 1000 + c.k * 100 + d.k * 10 + e.k AS x \
             FROM t a, t b, t c, t d, t e",
        )
        .unwrap();
    let big = "SELECT x % 100000 AS g, count(*) FROM x GROUP BY 1";
    // 243 groups do not fit in 1 KB at once (each group's key and state are
    // counted): the aggregate spills them and merges a few at a time.
    session.sql("SET memory_limit = '1KB'").unwrap();
    assert_eq!(session.sql(big).unwrap().num_rows(), 243);
    let stats = session.last_run_stats().unwrap();
    let spilled: u64 = stats
        .op_metrics
        .iter()
        .flatten()
        .map(|m| m.spilled.bytes)
        .sum();
    assert!(spilled > 0, "the aggregate spilled");
    // In 100 B not even one group fits: an error naming the aggregate and the limit.
    session.sql("SET memory_limit = '100B'").unwrap();
    let err = session.sql(big).unwrap_err().to_string();
    assert!(
        err.contains("hash aggregate") && err.contains("memory limit of 100 B"),
        "{err}"
    );
    session.sql("SET memory_limit = '1GB'").unwrap();
    assert_eq!(session.sql(big).unwrap().num_rows(), 243);
}
