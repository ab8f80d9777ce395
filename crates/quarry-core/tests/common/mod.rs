//! Helpers shared by the integration tests: running a command, a pinned
//! Python venv, and checking a TPC-H answer.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use quarry_core::Session;
use quarry_tpch::answers::{check_batches, Answer};

/// Runs `cmd`; its stdout, or an error with both outputs when it fails.
pub fn run_ok(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The Python that makes venvs: `$QUARRY_PYTHON` or `python3`.
pub fn base_python() -> String {
    std::env::var("QUARRY_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The Python of the venv at `venv`, made (or remade, when `requirements`
/// changed since) with the pinned packages of `requirements`.
pub fn pinned_venv(venv: &Path, requirements: &Path) -> Result<PathBuf, String> {
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    if python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    let hint = "(it needs python3 with venv and pip, and network access to PyPI the first time)";
    let _ = std::fs::remove_dir_all(venv);
    run_ok(Command::new(base_python()).args(["-m", "venv"]).arg(venv))
        .map_err(|e| format!("{e}\n{hint}"))?;
    run_ok(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(requirements),
    )
    .map_err(|e| format!("{e}\n{hint}"))?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// The Python of the venv `<target>/<name>`, made by [`pinned_venv`] from
/// `requirements` at most once per test process (later calls get the
/// first call's outcome).
pub fn target_venv(name: &str, requirements: &Path) -> Result<PathBuf, String> {
    use std::sync::Mutex;
    static VENVS: Mutex<Vec<(String, Result<PathBuf, String>)>> = Mutex::new(Vec::new());
    let mut venvs = VENVS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, made)) = venvs.iter().find(|(n, _)| n == name) {
        return made.clone();
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join(name);
    let made = pinned_venv(&venv, requirements);
    venvs.push((name.to_string(), made.clone()));
    made
}

/// The DuckDB answers of TPC-H SF 0.01 (see the README there).
pub fn tpch_answers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../quarry-tpch/tests/tpch_answers/sf0.01")
}

/// Runs TPC-H query `n` and compares it with the SF 0.01 answer; a result
/// that differs is written to `actual_dir/<prefix>qNN.csv` for diffing.
pub fn check_tpch_query(
    session: &Session,
    n: usize,
    actual_dir: &Path,
    prefix: &str,
) -> Result<(), String> {
    let sql = quarry_tpch::query(n).expect("query 1..=22");
    let expected = Answer::from_csv_file(&tpch_answers_dir().join(format!("q{n:02}.csv")))
        .map_err(|e| e.to_string())?;
    let result = session.sql(sql).map_err(|e| format!("error: {e}"))?;
    check_batches(&expected, &result.schema, &result.batches).map_err(|mismatch| {
        let mut msg = mismatch.to_string();
        if let Ok((actual, _)) = Answer::from_batches(&result.schema, &result.batches) {
            let path = actual_dir.join(format!("{prefix}q{n:02}.csv"));
            if std::fs::create_dir_all(actual_dir).is_ok()
                && std::fs::write(&path, actual.to_csv()).is_ok()
            {
                msg.push_str(&format!("\n  (result written to {})", path.display()));
            }
        }
        msg
    })
}
