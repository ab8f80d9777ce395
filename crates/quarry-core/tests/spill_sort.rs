//! External sort: ORDER BY under a memory limit far below the data spills
//! sorted runs and merges them, with the same answer row for row as in
//! memory, and leaves no file behind.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{Decimal128Array, Int64Array, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use quarry_core::{Session, SessionConfig};

#[path = "spill/common.rs"]
mod common;

use common::operator_spilled_bytes;

/// 300,000 rows in a Parquet file of row groups of `group_rows`: `id` unique, `k` with
/// repeats and NULLs, a string key with NULLs, a decimal key, a payload.
fn write_table(path: &Path, group_rows: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("k", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(15, 2), false),
        Field::new("p", DataType::Utf8, false),
    ]));
    let file = std::fs::File::create(path).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .set_max_row_group_bytes(None)
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    for start in (0..300_000i64).step_by(10_000) {
        let ids: Vec<i64> = (start..start + 10_000).collect();
        let k: Int64Array = ids
            .iter()
            .map(|i| (i % 10 != 3).then_some((i * 7919) % 1000))
            .collect();
        let s: StringArray = ids
            .iter()
            .map(|i| (i % 17 != 5).then(|| format!("s{}", (i * 31) % 977)))
            .collect();
        let amount =
            Decimal128Array::from_iter_values(ids.iter().map(|i| (i % 1234) as i128 * 125))
                .with_precision_and_scale(15, 2)
                .unwrap();
        let p: StringArray = ids.iter().map(|i| Some(format!("payload-{i}"))).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(k),
                Arc::new(s),
                Arc::new(amount),
                Arc::new(p),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
}

/// The table in one row group: one scan partition, sorted by one task.
fn one_group() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spill_sort_1.parquet");
        write_table(&path, 300_000);
        path
    })
}

/// The table in 15 row groups: sorted per partition, then gathered and
/// sorted again.
fn many_groups() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spill_sort_15.parquet");
        write_table(&path, 20_000);
        path
    })
}

fn session(temp: &Path) -> Session {
    let session = Session::new(SessionConfig::default().with_threads(2)).unwrap();
    session
        .sql(&format!("SET temp_directory = '{}'", temp.display()))
        .unwrap();
    session
        .register_parquet("t", one_group().to_str().unwrap())
        .unwrap();
    session
        .register_parquet("t15", many_groups().to_str().unwrap())
        .unwrap();
    session
}

fn run(session: &Session, limit: &str, sql: &str) -> quarry_core::Result<RecordBatch> {
    session.sql(&format!("SET memory_limit = '{limit}'"))?;
    let r = session.sql(sql)?;
    Ok(concat_batches(&r.schema, &r.batches).unwrap())
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Runs `sql` under 4GB and under `limit`: the same rows in the same
/// order, spilled by a sort, within the limit, no file left. Returns the
/// bytes the sort spilled.
fn check_spilled_sort(limit: &str, sql: &str) -> u64 {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    let expected = run(&session, "4GB", sql).unwrap();
    assert_eq!(expected.num_rows(), 300_000);
    assert_eq!(session.last_run_stats().unwrap().spilled_bytes, 0);

    let got = run(&session, limit, sql).unwrap();
    let stats = session.last_run_stats().unwrap();
    let spilled = operator_spilled_bytes(&session);
    assert!(spilled > 0, "the sort spilled nothing under {limit}");
    assert!(
        stats.peak_memory <= stats_limit(&session),
        "peak {} over the limit {limit}",
        stats.peak_memory
    );
    assert_eq!(got.schema(), expected.schema());
    for c in 0..got.num_columns() {
        assert_eq!(got.column(c), expected.column(c), "column {c} differs");
    }
    assert_eq!(files_in(temp.path()), 0, "spill files left behind");

    // EXPLAIN ANALYZE shows it on the sort.
    let r = session.sql(&format!("EXPLAIN ANALYZE {sql}")).unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&r.batches)
        .unwrap()
        .to_string();
    assert!(
        text.split('→')
            .any(|op| op.trim_start().starts_with("Sort (") && op.contains("spilled")),
        "{text}"
    );
    assert_eq!(files_in(temp.path()), 0, "spill files left behind");
    spilled
}

fn stats_limit(session: &Session) -> usize {
    session.config().memory_limit
}

#[test]
fn order_by_many_keys_spills_runs_and_merges_them() {
    check_spilled_sort(
        "32MB",
        "SELECT * FROM t ORDER BY k DESC NULLS FIRST, s ASC NULLS LAST, amount DESC, id",
    );
}

#[test]
fn a_string_and_a_decimal_key_with_a_multi_pass_merge() {
    let sql = "SELECT s, amount, k, id, p FROM t \
               ORDER BY s NULLS FIRST, amount, k ASC NULLS LAST, id DESC";
    let one_pass = check_spilled_sort("32MB", sql);
    // 2MB: batches of ~150 rows, a merge of ~20 runs at most, and more
    // than that many runs: the runs are merged into longer ones first,
    // so the rows are written more than once.
    let passes = check_spilled_sort("2MB", sql);
    assert!(passes > one_pass * 3 / 2, "{passes} vs {one_pass} bytes");
}

#[test]
fn sorted_partitions_gathered_and_sorted_again() {
    // 15 partitions, each sorted, then merged by a sort of the gathered
    // runs that spills.
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    let sql = "SELECT id, k, s, amount FROM t15 ORDER BY amount DESC, s, id";
    let expected = run(&session, "4GB", sql).unwrap();
    let got = run(&session, "32MB", sql).unwrap();
    assert!(operator_spilled_bytes(&session) > 0);
    assert_eq!(got, expected);
    assert_eq!(files_in(temp.path()), 0);
}

#[test]
fn a_limit_an_error_and_a_tiny_budget_leave_no_files() {
    let temp = tempfile::tempdir().unwrap();
    let session = session(temp.path());
    // LIMIT above the sort's subquery: the sort runs in full, spilled.
    let sql = "SELECT id, k FROM (SELECT id, k, s FROM t ORDER BY s DESC, id) AS x \
               WHERE k > 10 LIMIT 5";
    let expected = run(&session, "4GB", sql).unwrap();
    let got = run(&session, "8MB", sql).unwrap();
    assert_eq!(got, expected);
    assert_eq!(got.num_rows(), 5);
    assert_eq!(files_in(temp.path()), 0);

    // An error while the sorted rows flow on (a cast that fails after the
    // sort) ends the query; its runs are removed.
    let bad = "SELECT CAST(p AS BIGINT) FROM (SELECT p FROM t ORDER BY s, id) AS x";
    let err = run(&session, "8MB", bad).unwrap_err().to_string();
    assert!(err.contains("payload"), "{err}");
    assert_eq!(files_in(temp.path()), 0);

    // A limit too small for even one batch: an error naming the sort and
    // the limit.
    let err = run(&session, "100KB", "SELECT * FROM t ORDER BY s, id")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sort") && err.contains("memory limit"),
        "{err}"
    );
    assert_eq!(files_in(temp.path()), 0);
    // The session goes on.
    let n = run(&session, "4GB", "SELECT count(*) FROM t").unwrap();
    assert_eq!(n.num_rows(), 1);
}
