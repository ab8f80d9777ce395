//! The fuzz checks on the stable toolchain (no libFuzzer):
//!
//! - `replay`: every seed (`fuzz/seeds/<target>/`) and every input that once
//!   crashed (`fuzz/regressions/<target>/`) through its check;
//! - `random_*`: a seeded mutation loop over the seeds for
//!   `QUARRY_FUZZ_SECS` seconds (default 10), seed `QUARRY_FUZZ_SEED`
//!   (default 1). A failing input is written to
//!   `fuzz/target/stable-crashes/<target>-<seed>-<n>` before the test fails.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml --release -- --nocapture`

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quarry_fuzz::{check_file, check_frontend, mutate, Rng};

fn inputs(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_file())
                .map(|e| (e.path(), std::fs::read(e.path()).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let mut all = inputs(&format!("seeds/{target}"));
    all.extend(inputs(&format!("regressions/{target}")));
    assert!(
        !all.is_empty(),
        "no seeds for {target}: run the make_seeds example"
    );
    let mut failed = Vec::new();
    for (path, data) in &all {
        if catch_unwind(AssertUnwindSafe(|| check(data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: failing inputs:\n{}",
        failed.join("\n")
    );
}

#[test]
fn replay_sql_frontend() {
    replay("sql_frontend", check_frontend);
}

#[test]
fn replay_file_reader() {
    replay("file_reader", check_file);
}

fn random_loop(target: &str, check: fn(&[u8]), max_len: usize) {
    let secs: u64 = std::env::var("QUARRY_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("QUARRY_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut corpus: Vec<Vec<u8>> = inputs(&format!("seeds/{target}"))
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert!(!corpus.is_empty(), "no seeds for {target}");
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0u64;
    let mut failures = Vec::new();
    while Instant::now() < deadline {
        let base = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base, max_len);
        runs += 1;
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/stable-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{target}-{seed}-{runs}"));
            let _ = std::fs::write(&path, &input);
            failures.push(path.display().to_string());
            if failures.len() >= 10 {
                break;
            }
        } else if rng.below(16) == 0 && corpus.len() < 10_000 {
            // Keep some mutants as new bases (no coverage feedback here).
            corpus.push(input);
        }
    }
    println!("{target}: {runs} inputs in {secs} s (seed {seed})");
    assert!(
        failures.is_empty(),
        "{target}: failing inputs written to:\n{}",
        failures.join("\n")
    );
}

#[test]
fn random_sql_frontend() {
    random_loop("sql_frontend", check_frontend, 4096);
}

#[test]
fn random_file_reader() {
    random_loop("file_reader", check_file, 64 * 1024);
}

/// `QUARRY_FUZZ_INPUT=path QUARRY_FUZZ_TARGET=file_reader cargo test … replay_one -- --nocapture`:
/// runs one input (a crash file of cargo fuzz or of the loops above).
#[test]
fn replay_one() {
    let Ok(path) = std::env::var("QUARRY_FUZZ_INPUT") else {
        return;
    };
    let data = std::fs::read(&path).expect("read QUARRY_FUZZ_INPUT");
    match std::env::var("QUARRY_FUZZ_TARGET").as_deref() {
        Ok("sql_frontend") => {
            println!("SQL: {}", quarry_fuzz::frontend_sql(&data));
            check_frontend(&data)
        }
        _ => check_file(&data),
    }
}
