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
    session.sql("SET memory_limit = '1KB'").unwrap();
    let big = "SELECT x % 100000 AS g, count(*) FROM (SELECT a.k * 1000 + b.k * 100 + c.k AS x \
               FROM t a, t b, t c) GROUP BY 1";
    // 27 groups fit in 1 KB? no: each group's key and state are counted
    let err = session.sql(big).unwrap_err().to_string();
    assert!(
        err.contains("hash aggregate") && err.contains("memory limit"),
        "{err}"
    );
    assert!(
        err.contains("1000 B") || err.contains("1 KB") || err.contains("1000"),
        "{err}"
    );
    session.sql("SET memory_limit = '1GB'").unwrap();
    assert_eq!(session.sql(big).unwrap().num_rows(), 27);
}
