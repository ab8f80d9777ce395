//! The `quarry` binary end to end: flags, output formats, scripts, stdin and
//! error reporting. Each test runs the binary in its own process and makes
//! its own files, so the tests depend on nothing on the machine.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Runs `quarry args…` with `stdin` piped in (empty when `None`).
fn quarry(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start quarry");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    // (quarry -c may have ended, not reading its input, before it is written)
    if let Err(e) = pipe.write_all(stdin.unwrap_or("").as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(pipe);
    child.wait_with_output().expect("run quarry")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the run succeeded, showing stderr when it did not.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}, stderr:\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts the run failed with `code`; returns stdout and stderr.
fn fails(out: Output, code: i32) -> (String, String) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    (stdout(&out), stderr(&out))
}

/// A script file in a fresh temporary directory (removed on drop).
fn script(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("script.sql");
    std::fs::write(&path, sql).expect("write script");
    (dir, path)
}

const SELECT: &str = "SELECT 1 AS x, 'a' AS y";

// --- output formats --------------------------------------------------------

#[test]
fn csv_output() {
    let out = ok(quarry(&["--format", "csv", "-c", SELECT], None));
    assert_eq!(out, "x,y\n1,a\n");
}

#[test]
fn json_output() {
    let out = ok(quarry(&["--format", "json", "-c", SELECT], None));
    assert_eq!(out.trim_end(), r#"[{"x":1,"y":"a"}]"#);
}

#[test]
fn table_output_is_the_default_and_undecorated_in_a_pipe() {
    let out = ok(quarry(&["-c", SELECT], None));
    let lines: Vec<&str> = out.lines().collect();
    // Top border, header, separator, one row, bottom border: nothing else.
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[1].contains('x') && lines[1].contains('y'), "{out}");
    assert!(lines[3].contains('1') && lines[3].contains('a'), "{out}");
    assert!(!out.contains("row"), "no footer in a pipe: {out}");
}

#[test]
fn nulls_are_empty_in_csv_and_shown_in_tables() {
    let out = ok(quarry(
        &["--format", "csv", "-c", "SELECT NULL AS n, 1 AS x"],
        None,
    ));
    assert_eq!(out, "n,x\n,1\n");
    let out = ok(quarry(&["-c", "SELECT NULL AS n, 1 AS x"], None));
    assert!(out.contains("NULL"), "{out}");
}

#[test]
fn markdown_output() {
    let out = ok(quarry(&["--format", "markdown", "-c", SELECT], None));
    assert!(out.starts_with("| x | y |\n"), "{out}");
}

// --- inputs ----------------------------------------------------------------

#[test]
fn script_on_stdin_with_two_statements() {
    let sql = "SELECT 1 AS a;\n-- a comment; with a semicolon\nSELECT 'two;' AS b;\n";
    let out = ok(quarry(&["--format", "csv"], Some(sql)));
    assert_eq!(out, "a\n1\nb\ntwo;\n");
}

#[test]
fn script_file_with_f_and_as_argument() {
    let (_dir, path) = script("SELECT 1 AS a;\nSELECT 2 AS b;\n");
    let path = path.to_str().expect("utf-8 temp path");
    let out = ok(quarry(&["--format", "csv", "-f", path], None));
    assert_eq!(out, "a\n1\nb\n2\n");
    let out = ok(quarry(&["--format", "csv", path], None));
    assert_eq!(out, "a\n1\nb\n2\n");
}

#[test]
fn commands_and_files_run_in_the_order_given() {
    let (_dir, path) = script("SELECT 2 AS b;");
    let path = path.to_str().expect("utf-8 temp path");
    let args = [
        "--format",
        "csv",
        "-c",
        "SELECT 1 AS a",
        "-f",
        path,
        "-c",
        "SELECT 3 AS c",
    ];
    let out = ok(quarry(&args, None));
    assert_eq!(out, "a\n1\nb\n2\nc\n3\n");
}

#[test]
fn commands_ignore_stdin() {
    let out = ok(quarry(
        &["--format", "csv", "-c", "SELECT 1 AS a"],
        Some("SELECT 2 AS b;"),
    ));
    assert_eq!(out, "a\n1\n");
}

#[test]
fn threads_flag_is_accepted() {
    let out = ok(quarry(
        &["--threads", "2", "--format", "csv", "-c", SELECT],
        None,
    ));
    assert_eq!(out, "x,y\n1,a\n");
}

// --- errors ----------------------------------------------------------------

#[test]
fn syntax_error_exits_1_with_the_line() {
    let (out, err) = fails(quarry(&["-c", "SELEC 1"], None), 1);
    assert_eq!(out, "");
    assert!(err.starts_with("Error: "), "{err}");
    let err = err.to_lowercase();
    assert!(err.contains("syntax error"), "{err}");
    assert!(err.contains("line"), "{err}");
}

#[test]
fn unknown_table_exits_1_and_names_it() {
    let (out, err) = fails(quarry(&["-c", "SELECT * FROM no_such_table_q7"], None), 1);
    assert_eq!(out, "");
    assert!(err.starts_with("Error: "), "{err}");
    assert!(err.contains("no_such_table_q7"), "{err}");
}

#[test]
fn error_in_second_statement_keeps_the_first_result_and_stops() {
    let sql = "SELECT 1 AS x; SELECT * FROM missing_q7; SELECT 3 AS z";
    let (out, err) = fails(quarry(&["--format", "csv", "-c", sql], None), 1);
    assert_eq!(out, "x\n1\n");
    assert!(err.contains("missing_q7"), "{err}");

    // The same across -c flags: the third one never runs.
    let args = [
        "--format",
        "csv",
        "-c",
        "SELECT 1 AS x",
        "-c",
        "SELEC 2",
        "-c",
        "SELECT 3 AS z",
    ];
    let (out, err) = fails(quarry(&args, None), 1);
    assert_eq!(out, "x\n1\n");
    assert!(err.to_lowercase().contains("syntax error"), "{err}");
}

#[test]
fn error_in_a_script_stops_it() {
    let (_dir, path) = script("SELECT 1 AS x;\nSELECT *\nFROM missing_q8;\nSELECT 3 AS z;\n");
    let path = path.to_str().expect("utf-8 temp path");
    let (out, err) = fails(quarry(&["--format", "csv", "-f", path], None), 1);
    assert_eq!(out, "x\n1\n");
    assert!(err.contains("missing_q8"), "{err}");
}

#[test]
fn missing_script_file_exits_1_and_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-script.sql");
    let (out, err) = fails(
        quarry(&["-f", path.to_str().expect("utf-8 temp path")], None),
        1,
    );
    assert_eq!(out, "");
    assert!(
        err.starts_with("Error: ") && err.contains("no-such-script.sql"),
        "{err}"
    );
}

#[test]
fn bad_threads_are_refused() {
    for bad in ["0", "-3", "many", ""] {
        let flag = format!("--threads={bad}");
        let (out, err) = fails(quarry(&[&flag, "-c", SELECT], None), 2);
        assert_eq!(out, "");
        assert!(err.contains("--threads"), "{err}");
    }
}

#[test]
fn unknown_format_is_refused() {
    let (out, err) = fails(quarry(&["--format", "xml", "-c", SELECT], None), 2);
    assert_eq!(out, "");
    assert!(err.contains("xml"), "{err}");
}

// --- help and subcommands --------------------------------------------------

#[test]
fn help_lists_the_flags() {
    let out = ok(quarry(&["--help"], None));
    for flag in ["--command", "--file", "--threads", "--format", "tpch"] {
        assert!(out.contains(flag), "{flag} missing from:\n{out}");
    }
}

#[test]
fn tpch_subcommand_is_wired() {
    let out = ok(quarry(&["tpch", "--help"], None));
    assert!(out.contains("gen"), "{out}");
    // `gen` needs --sf: clap's usage error, not a query.
    let (out, err) = fails(quarry(&["tpch", "gen"], None), 2);
    assert_eq!(out, "");
    assert!(err.contains("--sf"), "{err}");
}

// --- more formats, output files, decorations --------------------------------

#[test]
fn tsv_ndjson_and_line_output() {
    let out = ok(quarry(&["--format", "tsv", "-c", SELECT], None));
    assert_eq!(out, "x\ty\n1\ta\n");
    let (_dir, path) = script("");
    let csv = path.with_file_name("xy.csv");
    std::fs::write(&csv, "x,y\n1,a\n2,\n").expect("csv");
    let sql = format!("SELECT x, y FROM '{}' ORDER BY x", csv.display());
    let out = ok(quarry(&["--format", "ndjson", "-c", &sql], None));
    assert_eq!(out, "{\"x\":1,\"y\":\"a\"}\n{\"x\":2,\"y\":null}\n");
    let out = ok(quarry(&["--format", "line", "-c", &sql], None));
    assert_eq!(out, "x = 1\ny = a\n\nx = 2\ny = NULL\n");
}

#[test]
fn output_flag_writes_results_to_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("out.csv");
    let path_text = path.to_str().expect("utf-8 temp path");
    let out = ok(quarry(
        &["--format", "csv", "--output", path_text, "-c", SELECT],
        None,
    ));
    assert_eq!(out, "");
    assert_eq!(
        std::fs::read_to_string(&path).expect("output file"),
        "x,y\n1,a\n"
    );
}

#[test]
fn a_pipe_gets_every_row_and_no_decoration() {
    // Long results are cut (head and tail) only on a terminal.
    let (_dir, csv) = groups_csv();
    let sql = format!("SELECT v FROM '{csv}' WHERE v < 8");
    let output = quarry(&["--maxrows", "2", "-c", &sql], None);
    assert_eq!(stderr(&output), "", "no progress bar or notes on stderr");
    let out = ok(output);
    assert_eq!(out.lines().count(), 8 + 4, "{out}");
    assert!(!out.contains('…') && !out.contains("rows"), "{out}");
}

#[test]
fn dot_commands_work_in_scripts() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("t.csv"), "a,b\n1,x\n2,y\n").expect("csv");
    let script = format!(
        ".open {}\n.mode csv\nSELECT a, b FROM t ORDER BY a;\n.mode json\nSELECT count(*) AS n FROM t;\n.quit\nSELECT 'not reached';\n",
        dir.path().join("t.csv").display()
    );
    let out = ok(quarry(&[], Some(&script)));
    assert_eq!(out, "1 table: t\na,b\n1,x\n2,y\n[{\"n\":2}]\n");
}

// --- stopping at errors ----------------------------------------------------

#[test]
fn no_bail_goes_on_after_errors_and_still_exits_1() {
    let (_dir, path) = script("SELECT 1 AS a;\nSELEC 2;\nSELECT * FROM nope_q9;\nSELECT 3 AS c;\n");
    let path = path.to_str().expect("utf-8 temp path");
    let (out, err) = fails(quarry(&["--format", "csv", "--no-bail", path], None), 1);
    assert_eq!(out, "a\n1\nc\n3\n");
    assert_eq!(err.matches("Error: ").count(), 2, "{err}");
    assert!(err.contains("script.sql:2: SELEC 2;"), "{err}");
    assert!(
        err.contains("script.sql:3: SELECT * FROM nope_q9;"),
        "{err}"
    );
    // The default (and --bail): the first error stops the run.
    let (out, err) = fails(quarry(&["--format", "csv", "--bail", path], None), 1);
    assert_eq!(out, "a\n1\n");
    assert_eq!(err.matches("Error: ").count(), 1, "{err}");
}

#[test]
fn errors_point_at_the_place_in_the_script() {
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("people.csv");
    std::fs::write(&csv, "name,age\nann,31\n").expect("csv");
    let sql = format!(
        "SELECT 1 AS ok;\n\nSELECT name,\n       agee\nFROM '{}';\n",
        csv.display()
    );
    let (_dir2, path) = script(&sql);
    let path_text = path.to_str().expect("utf-8 temp path");
    let (_, err) = fails(quarry(&["-f", path_text], None), 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0], "Error: column 'agee' not found, did you mean 'age'?",
        "{err}"
    );
    let prefix = format!("{path_text}:4: ");
    assert_eq!(lines[1], format!("{prefix}       agee"), "{err}");
    assert_eq!(lines[2].find('^'), Some(prefix.len() + 7), "{err}");
}

#[test]
fn unknown_settings_and_commands_suggest_names() {
    let (_, err) = fails(quarry(&["-c", "SET thread = 2"], None), 1);
    assert!(err.contains("did you mean 'threads'?"), "{err}");
    let (_, err) = fails(quarry(&["-c", ".tabels"], None), 1);
    assert!(err.contains("did you mean '.tables'?"), "{err}");
}

#[test]
fn set_and_show_settings() {
    let out = ok(quarry(
        &[
            "--format",
            "csv",
            "-c",
            "SET threads = 3; SHOW threads; SHOW profile",
        ],
        None,
    ));
    assert_eq!(out, "threads\n3\nprofile\noff\n");
}

// --- EXPLAIN ---------------------------------------------------------------

/// A CSV with a few groups, in a fresh directory.
fn groups_csv() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("g.csv");
    let rows: String = (0..1000).map(|i| format!("{},{i}\n", i % 7)).collect();
    std::fs::write(&path, format!("k,v\n{rows}")).expect("csv");
    std::fs::write(
        dir.path().join("names.csv"),
        "k,name\n0,zero\n1,one\n2,two\n3,three\n4,four\n5,five\n6,six\n",
    )
    .expect("csv");
    let path = path.to_str().expect("utf-8 temp path").to_string();
    (dir, path)
}

/// A query of more than one stage: a join and a grouping.
fn join_query(dir: &tempfile::TempDir, csv: &str) -> String {
    format!(
        "SELECT n.name, sum(g.v) FROM '{}' n JOIN '{csv}' g ON n.k = g.k GROUP BY n.name",
        dir.path().join("names.csv").display()
    )
}

#[test]
fn explain_analyze_shows_rows_and_time_per_operator() {
    let (dir, csv) = groups_csv();
    let sql = format!("EXPLAIN ANALYZE {}", join_query(&dir, &csv));
    let out = ok(quarry(
        &["--threads", "2", "--format", "csv", "-c", &sql],
        None,
    ));
    assert!(out.contains("(1000 rows)"), "scan rows: {out}");
    assert!(
        out.contains("Join(broadcast build of stage 0) (1000 rows, "),
        "{out}"
    );
    assert!(out.contains("Aggregate(1 keys) (7 rows, "), "{out}");
    assert!(out.contains("Run: 7 rows in"), "{out}");
    assert!(out.contains("on 2 workers (busy: "), "{out}");
}

#[test]
fn a_cte_used_twice_is_computed_once() {
    let (_dir, csv) = groups_csv();
    // TPC-H Q15's shape: the CTE in FROM and in a scalar subquery
    let query = format!(
        "WITH t AS (SELECT k, sum(v) AS s FROM '{csv}' GROUP BY k) \
         SELECT k, s FROM t WHERE s = (SELECT max(s) FROM t)"
    );
    let out = ok(quarry(&["--format", "csv", "-c", &query], None));
    assert_eq!(out, "k,s\n5,71786\n");
    let plan = ok(quarry(
        &["--format", "csv", "-c", &format!("EXPLAIN ANALYZE {query}")],
        None,
    ));
    let scans = plan.lines().filter(|l| l.contains(": Scan ")).count();
    assert_eq!(scans, 1, "{plan}");
    assert!(plan.contains("forward → "), "{plan}");
}

#[test]
fn an_inequality_join_is_a_range_join() {
    let query = "SELECT count(*) FROM (VALUES (1), (5), (9)) a(v), \
                 (VALUES (2), (5), (8), (NULL)) b(w) WHERE b.w > a.v AND a.v <> 9";
    let out = ok(quarry(&["--format", "csv", "-c", query], None));
    assert_eq!(out, "count(*)\n4\n");
    let plan = ok(quarry(
        &["--format", "csv", "-c", &format!("EXPLAIN {query}")],
        None,
    ));
    // the larger side probes: b.w > a.v is a.v < b.w from a's side
    assert!(
        plan.contains("InnerJoin(range <, broadcast build")
            || plan.contains("InnerJoin(range >, broadcast build"),
        "{plan}"
    );
}

#[test]
fn count_star_over_a_join_counts_its_pairs() {
    let from = "FROM (VALUES (1), (5), (9)) a(v), (VALUES (2), (5), (8), (NULL)) b(w)";
    let explain = |condition: &str| {
        let query = format!("EXPLAIN SELECT count(*) {from} WHERE {condition}");
        ok(quarry(&["--format", "csv", "-c", &query], None))
    };
    for condition in ["a.v < b.w", "a.v = b.w"] {
        let plan = explain(condition);
        assert!(plan.contains("pairs counted"), "{condition}: {plan}");
    }
    // Another condition on the pairs: they are made and filtered.
    let plan = explain("a.v < b.w AND a.v + b.w <> 9");
    assert!(!plan.contains("pairs counted"), "{plan}");
    let query = format!("SELECT count(*) {from} WHERE a.v < b.w AND a.v + b.w <> 9");
    assert_eq!(
        ok(quarry(&["--format", "csv", "-c", &query], None)),
        "count(*)\n3\n"
    );
}

#[test]
fn explain_format_dot_draws_the_task_graph() {
    let (dir, csv) = groups_csv();
    let query = join_query(&dir, &csv);
    let text = ok(quarry(
        &[
            "--threads",
            "2",
            "--format",
            "csv",
            "-c",
            &format!("EXPLAIN {query}"),
        ],
        None,
    ));
    let stages = text.lines().filter(|l| l.starts_with("Stage ")).count();
    assert!(stages >= 2, "{text}");
    let dot = ok(quarry(
        &[
            "--threads",
            "2",
            "-c",
            &format!("EXPLAIN (FORMAT dot) {query}"),
        ],
        None,
    ));
    assert!(dot.starts_with("digraph task_graph {\n"), "{dot}");
    assert!(dot.ends_with("}\n"), "{dot}");
    let nodes = dot
        .lines()
        .filter(|l| l.trim_start().starts_with('s') && l.contains("[label=\"Stage "))
        .count();
    assert_eq!(nodes, stages, "{dot}");
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(edges.len(), stages - 1, "{dot}");
    assert!(
        edges.iter().any(|e| e.contains("build\", style=dashed]")),
        "the join's build side: {dot}"
    );
    // An error inside points into the statement as written.
    let (_, err) = fails(
        quarry(
            &[
                "-c",
                &format!("EXPLAIN (FORMAT dot) SELECT kk FROM '{csv}'"),
            ],
            None,
        ),
        1,
    );
    assert!(err.contains("did you mean 'k'?"), "{err}");
    let caret = err.lines().nth(2).and_then(|l| l.find('^'));
    assert_eq!(
        caret,
        Some("line 1: EXPLAIN (FORMAT dot) SELECT ".len()),
        "{err}"
    );
}

// --- profiles --------------------------------------------------------------

fn trace_events(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("trace file");
    let trace: serde_json::Value = serde_json::from_str(&text).expect("trace is JSON");
    trace["traceEvents"]
        .as_array()
        .expect("traceEvents")
        .clone()
}

#[test]
fn profile_is_a_chrome_trace_with_a_lane_per_worker() {
    let (dir, csv) = groups_csv();
    let trace = dir.path().join("trace.json");
    let sql = format!(
        "{}; CREATE VIEW x AS SELECT 1; SELECT count(*) FROM '{csv}'",
        join_query(&dir, &csv)
    );
    ok(quarry(
        &[
            "--threads",
            "2",
            "--profile",
            trace.to_str().expect("utf-8"),
            "-c",
            &sql,
        ],
        None,
    ));
    let events = trace_events(&trace);
    let lanes: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().expect("tid"),
                e["args"]["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();
    assert_eq!(
        lanes,
        [
            (0, "queries".to_string()),
            (1, "worker 0".to_string()),
            (2, "worker 1".to_string())
        ]
    );
    let queries: Vec<&serde_json::Value> = events.iter().filter(|e| e["cat"] == "query").collect();
    assert_eq!(queries.len(), 2, "two queries ran (the view did not)");
    let tasks: Vec<&serde_json::Value> = events.iter().filter(|e| e["cat"] == "task").collect();
    let task_count: u64 = queries
        .iter()
        .map(|q| q["args"]["tasks"].as_u64().expect("tasks"))
        .sum();
    assert_eq!(tasks.len() as u64, task_count);
    for t in &tasks {
        assert_eq!(t["ph"], "X");
        let (ts, dur) = (
            t["ts"].as_f64().expect("ts"),
            t["dur"].as_f64().expect("dur"),
        );
        assert!(ts >= 0.0 && dur >= 0.0, "{t}");
        assert!([1, 2].contains(&t["tid"].as_u64().expect("tid")), "{t}");
        // Each task lies within its query's slice.
        let q = queries[t["args"]["query"].as_u64().expect("query") as usize - 1];
        let (qts, qdur) = (
            q["ts"].as_f64().expect("ts"),
            q["dur"].as_f64().expect("dur"),
        );
        assert!(ts >= qts && ts + dur <= qts + qdur + 1.0, "{t} outside {q}");
    }
    // The second query starts after the first ends.
    let end =
        |q: &serde_json::Value| q["ts"].as_f64().unwrap_or(0.0) + q["dur"].as_f64().unwrap_or(0.0);
    assert!(queries[1]["ts"].as_f64().expect("ts") >= end(queries[0]));
    assert!(queries[0]["args"]["sql"]
        .as_str()
        .expect("sql")
        .starts_with("SELECT n.name, sum(g.v)"));
}

#[test]
fn set_profile_starts_and_stops_a_trace() {
    let (dir, csv) = groups_csv();
    let trace = dir.path().join("set.json");
    let sql = format!(
        "SELECT 1; SET profile = '{}'; SELECT count(*) FROM '{csv}'; SET profile = off; SELECT 2",
        trace.display()
    );
    let out = ok(quarry(&["--format", "csv", "-c", &sql], None));
    assert_eq!(out, "1\n1\ncount(*)\n1000\n2\n2\n");
    let events = trace_events(&trace);
    assert_eq!(events.iter().filter(|e| e["cat"] == "query").count(), 1);
    let (_, err) = fails(quarry(&["-c", "SET profile = 42"], None), 1);
    assert!(err.contains("SET profile = 'FILE.json'"), "{err}");
}

#[test]
fn memory_flags_set_the_budget_and_are_checked() {
    let out = quarry(
        &[
            "--memory-limit",
            "512MiB",
            "--format",
            "csv",
            "-c",
            "SHOW memory_limit",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("512.0 MiB"));
    let out = quarry(&["--memory-limit", "lots", "-c", "SELECT 1"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory_limit"));
    let out = quarry(
        &["--temp-dir", "/no/such/quarry/dir", "-c", "SELECT 1"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/quarry/dir"));
}
