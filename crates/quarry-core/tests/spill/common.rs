//! What the spill tests share: a session spilling into a temp directory,
//! answers as sorted text, and the bytes operators spilled.
// (each test file uses a part)
#![allow(dead_code)]

use std::path::Path;

use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use quarry_core::{Session, SessionConfig};

/// A 2-thread session whose spill files go to `temp`, with `d`: the digits
/// 0 to 9 in column `i`, to make big tables of by cross joins.
pub fn session_spilling_into(temp: &Path) -> Session {
    let session = Session::new(SessionConfig::default().with_threads(2)).unwrap();
    session
        .sql(&format!("SET temp_directory = '{}'", temp.display()))
        .unwrap();
    session
        .sql("CREATE TABLE d AS SELECT * FROM (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) AS v(i)")
        .unwrap();
    session
}

/// The rows as sorted text, to compare answers whatever their order.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = formatters.iter().map(|f| f.value(r).to_string()).collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

/// Runs `sql` under `limit`: its rows (sorted) and the bytes spilled by
/// operators (the partition store's spills not counted).
pub fn run(session: &Session, limit: &str, sql: &str) -> (Vec<String>, u64) {
    session
        .sql(&format!("SET memory_limit = '{limit}'"))
        .unwrap();
    let result = session
        .sql(sql)
        .unwrap_or_else(|e| panic!("{limit}: {e}\n{sql}"));
    (rows(&result.batches), operator_spilled_bytes(session))
}

/// Bytes that operators (not the partition store) spilled in the last run.
pub fn operator_spilled_bytes(session: &Session) -> u64 {
    let stats = session.last_run_stats().expect("run stats");
    stats
        .op_metrics
        .iter()
        .flatten()
        .map(|m| m.spilled.bytes)
        .sum()
}

pub fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}
