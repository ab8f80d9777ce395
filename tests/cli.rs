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
    pipe.write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
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
