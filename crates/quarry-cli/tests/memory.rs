//! The memory budget as a user meets it: settings, and a limit too small
//! for an operator gives an error naming the operator and the limit.

use quarry_core::{Session, SessionConfig};

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

/// The sets of a DISTINCT aggregate count against the budget: one that
/// outgrows it is an error naming the aggregate and the limit (they cannot
/// spill), where it had grown unseen. Aggregates all DISTINCT over one
/// argument need no sets: they group by it, and that spills.
#[test]
fn distinct_sets_are_counted_against_the_budget() {
    let session = session_with_numbers();
    let rows: Vec<String> = (0..20_000)
        .map(|i| format!("('value number {i}')"))
        .collect();
    session
        .sql(&format!(
            "CREATE TABLE words AS SELECT * FROM (VALUES {}) AS v(w)",
            rows.join(",")
        ))
        .unwrap();
    let distinct = "SELECT count(DISTINCT w) AS n, count(*) FROM words";
    // 20,000 strings of about 18 bytes: over 1 MB as a set, under 4 MB.
    session.sql("SET memory_limit = '1MB'").unwrap();
    let grouped = session
        .sql("SELECT count(DISTINCT w) FROM words")
        .unwrap_or_else(|e| panic!("count(DISTINCT w) alone under 1MB: {e}"));
    let n = grouped.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>();
    assert_eq!(n.map(|a| a.value(0)), Some(20_000));
    let err = session.sql(distinct).unwrap_err().to_string();
    assert!(
        err.contains("hash aggregate") && err.contains("memory limit of 976.6 KiB"),
        "{err}"
    );
    session.sql("SET memory_limit = '16MB'").unwrap();
    let r = session.sql(distinct).unwrap();
    let n = r.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>();
    assert_eq!(n.map(|a| a.value(0)), Some(20_000));
}

#[test]
fn past_the_pause_threshold_the_scheduler_holds_back_new_tasks() {
    let session = Session::new(SessionConfig::default().with_threads(2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    session
        .sql(&format!("SET temp_directory = '{}'", dir.path().display()))
        .unwrap();
    // A GROUP BY into 8 partitions of a hash exchange: the partition store
    // holds them against the budget, so memory stays in use while the
    // final aggregates run, and the second worker waits.
    let digits = "(VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9))";
    session
        .sql(&format!(
            "CREATE TABLE t AS SELECT a.x * 100000 + b.x * 10000 + c.x * 1000 + d.x * 100 + e.x * 10 + f.x AS k \
             FROM {digits} a(x), {digits} b(x), {digits} c(x), {digits} d(x), {digits} e(x), {digits} f(x)"
        ))
        .unwrap();
    session.sql("SET memory_limit = '1GB'").unwrap();
    // a million groups, so that each final aggregate takes a while
    let query = "SELECT count(*), sum(n) FROM (SELECT k, count(*) AS n FROM t GROUP BY k)";
    session.sql("SET target_partitions = 8").unwrap();
    let expected = session.sql(query).unwrap();
    assert_eq!(session.last_run_stats().unwrap().pauses, 0);

    session.sql("SET memory_pause = 0.0001").unwrap();
    let paused = session.sql(query).unwrap();
    assert_eq!(paused.batches, expected.batches, "the same answer");
    let stats = session.last_run_stats().unwrap();
    assert!(
        stats.pauses > 0,
        "no pause at 0.01% of the limit: {stats:?}"
    );

    // bad values name the setting and what it takes
    for bad in ["0", "1.5", "'lots'"] {
        let err = session
            .sql(&format!("SET memory_pause = {bad}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("memory_pause") && err.contains("(0, 1]"),
            "{err}"
        );
    }
    let shown = session.sql("SHOW memory_pause").unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&shown.batches)
        .unwrap()
        .to_string();
    assert!(text.contains("0.0001"), "{text}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A cross join whose probe batches each meet millions of pairs hands them
/// on a part at a time: the process stays small, and the answer is right.
/// (It had collected each batch's 8 million pairs before handing them on.)
#[test]
fn a_cross_join_hands_its_pairs_on_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let numbers = |name: &str| {
        let rows: String = (0..4_000).map(|i| format!("{i}\n")).collect();
        std::fs::write(
            dir.path().join(format!("{name}.csv")),
            format!("{name}\n{rows}"),
        )
        .unwrap();
    };
    numbers("x");
    numbers("y");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .current_dir(dir.path())
        .args([
            "--memory-limit",
            "64MB",
            "--format",
            "csv",
            "-c",
            // (`<>`: a nested loop that makes every pair; `<` would be a
            // range join that only counts them)
            "SELECT count(*) AS n FROM 'x.csv', 'y.csv' WHERE x <> y",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 4,000 × 3,999 pairs with x <> y
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n15996000\n");
    // The only child process of this test binary: its peak is this one's.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    let peak_mib = usage.ru_maxrss / 1024;
    assert!(peak_mib < 80, "peak RSS {peak_mib} MiB");
}

/// A Parquet scan counts the column chunks it holds while decoding: the
/// query's peak reserved memory covers the compressed chunk it read.
#[test]
fn parquet_read_buffers_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let options = quarry_tpch::GenerateOptions {
        tables: vec!["orders".into()],
        parts: Some(1),
        ..Default::default()
    };
    quarry_tpch::generate_with(0.01, dir.path(), &options, &|_| {}).unwrap();
    let path = dir.path().join("orders.parquet");
    let file = std::fs::File::open(&path).unwrap();
    let meta = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    let row_group = parquet::file::reader::FileReader::metadata(&meta).row_group(0);
    let comment = row_group
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "o_comment")
        .unwrap();
    let chunk = comment.compressed_size() as usize;
    assert!(chunk > 100_000, "{chunk}");
    let session = Session::new(SessionConfig::default().with_threads(1)).unwrap();
    let r = session
        .sql(&format!(
            "SELECT count(*) AS n FROM '{}' WHERE o_comment = 'none'",
            path.display()
        ))
        .unwrap();
    assert_eq!(r.num_rows(), 1);
    let peak = session.last_run_stats().unwrap().peak_memory;
    assert!(peak >= chunk, "peak {peak} B, the chunk alone {chunk} B");
}

/// The issue's query in small: `count(*)` of a self-join of strings by `<`
/// under a memory limit. It is a range join whose pairs are counted,
/// not made: 45 billion pairs answered exactly in a moment (made one by one
/// they would take hours), and the process stays small.
#[test]
fn count_of_an_inequality_self_join_is_counted_not_made() {
    let dir = tempfile::tempdir().unwrap();
    // 300,000 rows, 100,000 distinct strings three times each
    let rows: String = (0..300_000)
        .map(|i: u64| {
            format!(
                "c{:08x}\n",
                (i % 100_000).wrapping_mul(2_654_435_761) % (1 << 32)
            )
        })
        .collect();
    std::fs::write(dir.path().join("t.csv"), format!("s\n{rows}")).unwrap();
    // (other tests of this binary run children too, so the peak is the
    // child's own, from wait4)
    let run = |query: &str| {
        #[allow(clippy::zombie_processes)] // reaped by wait4 below
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
            .current_dir(dir.path())
            .args(["--memory-limit", "256MB", "--format", "csv", "-c", query])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        let (mut stdout, mut stderr) = (child.stdout.unwrap(), child.stderr.unwrap());
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
            text
        });
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        let (mut status, mut usage): (libc::c_int, libc::rusage) =
            (0, unsafe { std::mem::zeroed() });
        // SAFETY: wait4 writes into the status and struct it is given.
        assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{}",
            errors.join().unwrap()
        );
        let peak_mib = usage.ru_maxrss / 1024;
        assert!(peak_mib < 120, "{query}: peak RSS {peak_mib} MiB");
        out
    };
    // (300,000² - 100,000 × 3²) / 2 pairs have a.s < b.s
    assert_eq!(
        run("SELECT count(*) AS n FROM 't.csv' a, 't.csv' b WHERE a.s < b.s"),
        "n\n44999550000\n"
    );
    // and 100,000 × 3² have a.s = b.s
    assert_eq!(
        run("SELECT count(*) AS n FROM 't.csv' a JOIN 't.csv' b ON a.s = b.s"),
        "n\n900000\n"
    );
}

#[test]
fn a_runaway_recursion_is_cancelled_or_meets_the_limit() {
    let session = std::sync::Arc::new(session_with_numbers());
    // UNION ALL of the same row for ever: Ctrl-C (the cancel flag) ends it.
    let cancel = session.cancel_flag();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let started = std::time::Instant::now();
    let err = session
        .sql("WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x FROM r) SELECT count(*) FROM r")
        .unwrap_err();
    setter.join().unwrap();
    assert!(matches!(err, quarry_core::QuarryError::Cancelled), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Rows that double each iteration meet the memory limit.
    session.sql("SET memory_limit = '16MB'").unwrap();
    let err = session
        .sql(
            "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x FROM r, t) \
             SELECT count(*) FROM r",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("recursive query 'r' holds more than the memory limit"),
        "{err}"
    );
    // the session goes on
    assert_eq!(session.sql("SELECT count(*) FROM t").unwrap().num_rows(), 1);
}

#[test]
fn copy_to_streams_a_result_larger_than_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::new(SessionConfig::default().with_threads(2)).unwrap();
    // 3 million rows of two BIGINTs: 48 MB of values against a 16 MB limit
    session.sql("SET memory_limit = '16MB'").unwrap();
    for (file, format) in [("big.parquet", "parquet"), ("big.csv", "csv")] {
        let path = dir.path().join(file);
        let path = path.display();
        let r = session
            .sql(&format!(
                "COPY (SELECT range AS a, range * 3 AS b FROM range(3000000)) \
                 TO '{path}' (FORMAT {format})"
            ))
            .unwrap();
        let count = r.batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(count, 3_000_000);
        let back = session
            .sql(&format!(
                "SELECT count(*), sum(a), sum(b), min(b), max(a) FROM '{path}'"
            ))
            .unwrap();
        let shown = arrow::util::pretty::pretty_format_batches(&back.batches)
            .unwrap()
            .to_string();
        // sum of 0..3e6 = 4499998500000
        assert!(
            shown.contains("| 3000000  | 4499998500000 | 13499995500000 | 0      | 2999999 |"),
            "{format}: {shown}"
        );
    }
}
