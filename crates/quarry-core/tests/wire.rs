//! The task graph on the wire (`quarry_core::graph::wire`): every TPC-H query's
//! graph at SF 0.01, and graphs over CSV, JSON, in-memory tables and
//! `range(…)`, encoded, decoded through object stores of their own (as a
//! worker process would), encoded again to the same bytes, and run to the
//! same rows as the query itself.
//!
//! The data is generated once per run of this test binary, with
//! `quarry_tpch::generate`, into `<target>/tmp/wire-tpch-sf0.01`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use quarry_core::catalog::ObjectStores;
use quarry_core::graph::wire::{decode, encode};
use quarry_core::graph::{Source, TaskGraph};
use quarry_core::{QueryResult, Session, SessionConfig};
use quarry_tpch::answers::{check_batches, Answer};

use common::tpch_answers_dir;

fn tpch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wire-tpch-sf0.01");
        quarry_tpch::generate(0.01, &dir).expect("generate TPC-H SF 0.01");
        dir
    })
}

fn session() -> Session {
    Session::new(SessionConfig::default()).expect("new session")
}

/// The graph of `sql` encoded, decoded through stores of its own (no
/// footer cached, as in a fresh process) and encoded again to the same
/// bytes; the decoded graph and its encoding.
fn round_trip(session: &Session, sql: &str) -> (TaskGraph, Vec<u8>) {
    let graph = session.task_graph(sql).expect("task graph");
    let bytes = encode(&graph).expect("encode");
    let decoded = decode(&bytes, &Arc::new(ObjectStores::default())).expect("decode");
    assert_eq!(decoded.stages.len(), graph.stages.len());
    let again = encode(&decoded).expect("encode the decoded graph");
    assert!(
        again == bytes,
        "the decoded graph encodes to other bytes:\n{}\n{}",
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&again)
    );
    (decoded, bytes)
}

/// All of a result's rows in one batch (its column names aside).
fn rows(result: &QueryResult) -> RecordBatch {
    let schema = result
        .batches
        .first()
        .map(|b| b.schema())
        .unwrap_or(result.schema.clone());
    concat_batches(&schema, &result.batches).expect("concat")
}

/// The decoded graph of `sql` gives the rows the query gives: those rows
/// (with the query's column names) and the encoded graph.
fn check_same_rows(session: &Session, sql: &str) -> (QueryResult, Vec<u8>) {
    let (decoded, bytes) = round_trip(session, sql);
    let from_graph = session.run_graph(&decoded).expect("run the decoded graph");
    let direct = session.sql(sql).expect("run the query");
    let (a, b) = (rows(&from_graph), rows(&direct));
    assert_eq!(a.num_rows(), b.num_rows(), "{sql}");
    assert!(
        a.columns() == b.columns(),
        "{sql}: the decoded graph's rows differ:\n{}\n{}",
        arrow::util::pretty::pretty_format_batches(std::slice::from_ref(&a)).unwrap(),
        arrow::util::pretty::pretty_format_batches(std::slice::from_ref(&b)).unwrap()
    );
    // (the planned column names: the output stage's may be internal ones)
    let result = QueryResult {
        schema: direct.schema,
        batches: from_graph.batches,
    };
    (result, bytes)
}

fn scan_partitions(graph: &TaskGraph) -> usize {
    graph
        .stages
        .iter()
        .map(|s| match &s.source {
            Source::Scan { partitions, .. } => partitions.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn every_tpch_query_graph_round_trips_and_runs_to_the_answer() {
    let session = session();
    quarry_tpch::register_tables(&session, tpch_dir()).expect("register the TPC-H tables");
    let mut failures = Vec::new();
    for n in 1..=22 {
        let sql = quarry_tpch::query(n).expect("query 1..=22");
        let (result, bytes) = check_same_rows(&session, sql);
        println!("q{n:02}: {} bytes", bytes.len());
        let expected = Answer::from_csv_file(&tpch_answers_dir().join(format!("q{n:02}.csv")))
            .expect("the answer");
        if let Err(e) = check_batches(&expected, &result.schema, &result.batches) {
            failures.push(format!("q{n:02}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_parquet_graph_names_its_row_groups_and_no_store() {
    let session = session();
    quarry_tpch::register_tables(&session, tpch_dir()).expect("register the TPC-H tables");
    let (decoded, bytes) = round_trip(&session, "SELECT count(*) FROM lineitem");
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.contains(r#""ParquetRowGroup":{"file":{"location":"#),
        "{text}"
    );
    assert!(text.contains("lineitem"), "{text}");
    assert!(scan_partitions(&decoded) > 0);
    let result = session.run_graph(&decoded).unwrap();
    let count = rows(&result);
    let count = count
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    assert_eq!(count.value(0), 60_175);
}

#[test]
fn csv_json_memory_and_range_graphs_round_trip_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("items.csv");
    let mut text = String::from("id,name,price\n");
    for i in 0..500 {
        text.push_str(&format!("{i},item {},{}.{:02}\n", i % 7, i * 3, i % 100));
    }
    std::fs::write(&csv, text).unwrap();
    let json = dir.path().join("tags.json");
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&format!(
            "{{\"id\": {i}, \"tag\": \"t{}\", \"nested\": {{\"k\": {i}}}}}\n",
            i % 5
        ));
    }
    std::fs::write(&json, text).unwrap();

    let session = session();
    session
        .register_csv("items", csv.to_str().unwrap())
        .unwrap();
    session
        .sql(
            "CREATE TABLE stock (id INTEGER, qty BIGINT, note VARCHAR, at TIMESTAMP);
             INSERT INTO stock VALUES (1, 10, 'a', TIMESTAMP '2024-01-02 03:04:05'),
                 (2, NULL, NULL, NULL), (3, 30, 'c''s', TIMESTAMP '1999-12-31 23:59:59');
             INSERT INTO stock VALUES (4, 40, 'd', NULL);",
        )
        .unwrap();
    let json_path = json.to_str().unwrap();
    for sql in [
        "SELECT name, count(*), sum(price), min(id) FROM items WHERE price > 10.5 \
         GROUP BY name ORDER BY name"
            .to_string(),
        "SELECT count(*) FROM items".to_string(),
        format!(
            "SELECT tag, count(*), max(nested) FROM read_json('{json_path}') \
             GROUP BY tag ORDER BY tag"
        ),
        "SELECT * FROM stock ORDER BY id".to_string(),
        "SELECT sum(qty), count(note), max(at) FROM stock".to_string(),
        "SELECT sum(range), count(*), max(range) FROM range(0, 3000000, 1)".to_string(),
        "SELECT count(*) FROM generate_series(1, 10)".to_string(),
        format!(
            "SELECT s.id, s.note, i.name, j.tag FROM stock s \
             JOIN items i ON i.id = s.id JOIN read_json('{json_path}') j ON j.id = s.id \
             ORDER BY s.id"
        ),
        "SELECT * FROM (VALUES (1, 'x'), (2, NULL)) t(a, b) ORDER BY a".to_string(),
        // operators and expressions TPC-H does not have: windows (with a
        // RANGE offset), UNION ALL, LIMIT/OFFSET, quantiles, CASE, LIKE,
        // intervals
        "SELECT id, sum(qty) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW),          rank() OVER (PARTITION BY note IS NULL ORDER BY qty),          count(*) OVER (ORDER BY id RANGE BETWEEN 2 PRECEDING AND CURRENT ROW)          FROM stock ORDER BY id"
            .to_string(),
        "SELECT id FROM stock UNION ALL SELECT id FROM items WHERE id < 3 ORDER BY id"
            .to_string(),
        "SELECT * FROM items ORDER BY price DESC, id LIMIT 5 OFFSET 2".to_string(),
        "SELECT name, median(price), quantile_disc(id, 0.3) FROM items          GROUP BY name ORDER BY name"
            .to_string(),
        "SELECT CASE WHEN price > 100 THEN 'hi' ELSE 'lo' END AS c, count(*) FROM items          WHERE name LIKE 'item%' AND id NOT IN (1, 2, 3) GROUP BY c ORDER BY c"
            .to_string(),
        "SELECT id, at + INTERVAL 3 DAY, extract(year FROM at) FROM stock ORDER BY id"
            .to_string(),
    ] {
        let (result, _) = check_same_rows(&session, &sql);
        assert!(result.num_rows() > 0, "{sql}: no rows");
    }
    // range() in several partitions, each one's stretch its own
    let (decoded, _) = round_trip(&session, "SELECT sum(range) FROM range(0, 3000000, 1)");
    assert_eq!(scan_partitions(&decoded), 3);
    let sum = rows(&session.run_graph(&decoded).unwrap());
    let sum = sum
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    assert_eq!(sum.value(0), 2_999_999 * 3_000_000 / 2);
}

#[test]
fn a_graph_over_a_missing_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("gone.csv");
    std::fs::write(&csv, "a\n1\n").unwrap();
    let session = session();
    session.register_csv("gone", csv.to_str().unwrap()).unwrap();
    let graph = session.task_graph("SELECT * FROM gone").unwrap();
    let bytes = encode(&graph).unwrap();
    std::fs::remove_file(&csv).unwrap();
    // CSV files are opened when read: the run names the file
    let decoded = decode(&bytes, &Arc::new(ObjectStores::default())).unwrap();
    let e = session.run_graph(&decoded).unwrap_err().to_string();
    assert!(e.contains("gone.csv"), "{e}");

    // a Parquet footer is read when the graph is decoded
    let pq = dir.path().join("gone.parquet");
    session
        .sql(&format!(
            "COPY (SELECT 1 AS a) TO '{}' (FORMAT PARQUET)",
            pq.display()
        ))
        .unwrap();
    session
        .register_parquet("gone_pq", pq.to_str().unwrap())
        .unwrap();
    let bytes = encode(&session.task_graph("SELECT * FROM gone_pq").unwrap()).unwrap();
    std::fs::remove_file(&pq).unwrap();
    let e = decode(&bytes, &Arc::new(ObjectStores::default()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gone.parquet"), "{e}");
}
