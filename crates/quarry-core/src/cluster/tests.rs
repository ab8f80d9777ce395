//! Running graphs through the exchange and the driver in one process: the
//! answers of a local run, and a task run again when its worker is lost.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;

use super::driver::{run_tasks, Slot, TaskError};
use super::exchange::{ExchangeDir, TaskEnv, TaskManifest};
use super::read_output;
use super::shared::SharedBuilds;
use super::worker::run_in;
use crate::graph::TaskGraph;
use crate::runtime::memory::MemoryPool;
use crate::runtime::ready::TaskId;
use crate::{Session, SessionConfig};

/// A worker in this process. The first worker to be handed the task in
/// `lose_at` is "lost" then (the task is taken out: the next run of it
/// goes through).
struct InProcess {
    worker: usize,
    graph: Arc<TaskGraph>,
    temp: PathBuf,
    lose_at: Arc<Mutex<Option<TaskId>>>,
    shared: Arc<SharedBuilds>,
}

impl Slot for InProcess {
    fn worker(&self) -> usize {
        self.worker
    }

    fn run(
        &mut self,
        exchange: &ExchangeDir,
        (stage, partition): TaskId,
    ) -> std::result::Result<TaskManifest, TaskError> {
        let mut lose_at = self.lose_at.lock().unwrap();
        if *lose_at == Some((stage, partition)) {
            *lose_at = None;
            return Err(TaskError::Lost("the test lost it".into()));
        }
        drop(lose_at);
        let env = TaskEnv {
            pool: MemoryPool::new(1 << 30),
            temp_dir: self.temp.clone(),
            cancel: Arc::new(AtomicBool::new(false)),
            shared: &self.shared,
        };
        run_in(&self.graph, exchange, (stage, partition), env, false).map_err(TaskError::Failed)
    }

    fn interrupter(&self) -> Box<dyn Fn() + Send + Sync> {
        Box::new(|| {})
    }
}

fn session() -> Session {
    let s = Session::new(SessionConfig::default().with_threads(3)).unwrap();
    s.sql(
        "CREATE TABLE t AS SELECT i % 7 AS k, i AS v, 'name ' || (i % 13) AS s FROM range(0, 5000) r(i);
         CREATE TABLE u AS SELECT i AS k, i * 10 AS w FROM range(0, 7) r(i)",
    )
    .unwrap();
    s
}

const QUERIES: &[&str] = &[
    "SELECT k, count(*), sum(v), min(s) FROM t GROUP BY k ORDER BY k",
    "SELECT t.k, sum(u.w), count(DISTINCT t.s) FROM t JOIN u ON t.k = u.k WHERE v % 3 = 0 GROUP BY t.k ORDER BY 1",
    "SELECT v, s FROM t ORDER BY v DESC LIMIT 5",
    "SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY v) AS n FROM t QUALIFY n <= 2 ORDER BY k, v",
    "SELECT k FROM u WHERE k NOT IN (SELECT k FROM t WHERE v < 20) UNION ALL SELECT 100 ORDER BY 1",
    "SELECT count(*) FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.w > 30)",
];

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// Runs `sql` through the exchange on `workers` in-process workers.
fn run_on_cluster(
    session: &Session,
    sql: &str,
    workers: usize,
    lose_at: Option<TaskId>,
) -> (Vec<RecordBatch>, usize) {
    let graph = Arc::new(session.task_graph(sql).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let exchange = ExchangeDir::create(&dir.path().join("q"), &Default::default()).unwrap();
    let lose_at = Arc::new(Mutex::new(lose_at));
    let slots: Vec<Box<dyn Slot>> = (0..workers)
        .map(|w| {
            Box::new(InProcess {
                worker: w,
                graph: graph.clone(),
                temp: dir.path().to_path_buf(),
                lose_at: lose_at.clone(),
                shared: Arc::default(),
            }) as Box<dyn Slot>
        })
        .collect();
    let never = AtomicBool::new(false);
    let stats = run_tasks(&graph, &exchange, slots, &never, None).unwrap();
    let out = read_output(&graph, &exchange).unwrap();
    // the driver wrote one manifest per stage, the tasks none of their own
    for s in &graph.stages {
        let stage_file = dir.path().join("q").join(format!("s{}.json", s.id));
        assert_eq!(
            stage_file.exists(),
            s.partitions > 0,
            "{sql}: stage {}",
            s.id
        );
        if let Ok(files) = std::fs::read_dir(dir.path().join("q").join(format!("s{}", s.id))) {
            for f in files {
                let name = f.unwrap().file_name().to_string_lossy().into_owned();
                assert!(name.ends_with(".arrow"), "{sql}: {name}");
            }
        }
    }
    exchange.remove().unwrap();
    assert!(!dir.path().join("q").exists());
    (out, stats.retries)
}

#[test]
fn a_graph_run_through_the_exchange_answers_as_a_local_run() {
    let s = session();
    for sql in QUERIES {
        let local = text(&s.sql(sql).unwrap().batches);
        let (out, retries) = run_on_cluster(&s, sql, 2, None);
        assert_eq!(text(&out), local, "{sql}");
        assert_eq!(retries, 0);
    }
}

#[test]
fn a_task_whose_worker_is_lost_runs_again_on_another() {
    let s = session();
    let sql = QUERIES[1];
    let local = text(&s.sql(sql).unwrap().batches);
    // the worker handed the last stage's first task is lost: its slot
    // ends, the other worker runs the task and the rest
    let graph = s.task_graph(sql).unwrap();
    let last = graph.stages.len() - 1;
    let (out, retries) = run_on_cluster(&s, sql, 2, Some((last, 0)));
    assert_eq!(text(&out), local);
    assert_eq!(retries, 1);
}

/// Runs `sql` on one in-process worker, lost at task `lose_at`: the error.
#[test]
fn a_task_writes_one_file_and_each_partition_reads_its_own_batches() {
    use crate::runtime::{StageIo, TaskOutput};
    use arrow::array::{Array, Int64Array};
    let s = session();
    let graph = s.task_graph("SELECT k, sum(v) FROM t GROUP BY k").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exchange = ExchangeDir::create(&dir.path().join("q"), &Default::default()).unwrap();
    let shared = SharedBuilds::default();
    let env = TaskEnv {
        pool: MemoryPool::new(1 << 30),
        temp_dir: dir.path().to_path_buf(),
        cancel: Arc::new(AtomicBool::new(false)),
        shared: &shared,
    };
    let files = super::exchange::TaskFiles::new(&exchange, &graph, (0, 0), env);
    let batch = |values: &[i64]| {
        let a: Arc<dyn Array> = Arc::new(Int64Array::from(values.to_vec()));
        RecordBatch::try_from_iter([("x", a)]).unwrap()
    };
    // partitions interleaved, as a repartition hands them over
    files.put(0, 2, vec![batch(&[20, 21])]).unwrap();
    files.put(0, 0, vec![batch(&[0])]).unwrap();
    files
        .put(0, 2, vec![batch(&[22]), batch(&[23, 24, 25])])
        .unwrap();
    let output = TaskOutput {
        rows_in: 7,
        bytes_fetched: 0,
        metrics: vec![],
    };
    let manifest = files.finish(&output, 1, true).unwrap();
    // a segment per hand-over, in the order written
    let parts: Vec<(usize, usize, usize)> = manifest
        .outputs
        .iter()
        .map(|o| (o.partition, o.rows, o.segments.len()))
        .collect();
    assert_eq!(parts, [(0, 1, 1), (2, 6, 2)]);
    let (p0, p2) = (&manifest.outputs[0].segments, &manifest.outputs[1].segments);
    assert!(p2[0].0 < p0[0].0 && p0[0].0 < p2[1].0, "{p0:?} {p2:?}");
    for o in &manifest.outputs {
        assert_eq!(o.bytes, o.segments.iter().map(|s| s.1).sum::<u64>());
    }
    let stage_dir = dir.path().join("q").join("s0");
    let arrow_files = std::fs::read_dir(&stage_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "arrow")
        .count();
    assert_eq!(arrow_files, 1);
    let values = |p: Option<usize>| -> Vec<i64> {
        let tasks = graph.stages[0].partitions;
        // (the other tasks of the stage left nothing)
        for t in 1..tasks {
            let empty = super::exchange::TaskFiles::new(
                &exchange,
                &graph,
                (0, t),
                TaskEnv {
                    pool: MemoryPool::new(1 << 20),
                    temp_dir: dir.path().to_path_buf(),
                    cancel: Arc::new(AtomicBool::new(false)),
                    shared: &shared,
                },
            );
            empty.finish(&output, 1, true).unwrap();
        }
        exchange
            .read(0, tasks, p)
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                a.values().to_vec()
            })
            .collect()
    };
    assert_eq!(values(Some(2)), [20, 21, 22, 23, 24, 25]);
    assert_eq!(values(Some(0)), [0]);
    assert_eq!(values(Some(1)), Vec::<i64>::new());
    assert_eq!(values(None), [0, 20, 21, 22, 23, 24, 25]);
}

fn error_on_one_worker(s: &Session, sql: &str, lose_at: Option<TaskId>) -> String {
    let graph = Arc::new(s.task_graph(sql).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let exchange = ExchangeDir::create(dir.path(), &Default::default()).unwrap();
    let slot = InProcess {
        worker: 0,
        graph: graph.clone(),
        temp: dir.path().to_path_buf(),
        lose_at: Arc::new(Mutex::new(lose_at)),
        shared: Arc::default(),
    };
    let never = AtomicBool::new(false);
    run_tasks(&graph, &exchange, vec![Box::new(slot)], &never, None)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_query_fails_when_every_worker_is_lost() {
    let err = error_on_one_worker(&session(), QUERIES[0], Some((0, 0)));
    assert!(
        err.contains("every worker of the cluster was lost"),
        "{err}"
    );
}

#[test]
fn a_task_that_fails_fails_the_query_with_its_message() {
    let s = session();
    let sql = "SELECT v / (k - k) FROM t";
    let local = s.sql(sql).unwrap_err().to_string();
    assert_eq!(error_on_one_worker(&s, sql, None), local);
}

#[test]
fn a_dask_cluster_is_named_by_its_scheduler() {
    use super::ClusterSpec;
    let spec = ClusterSpec::parse("dask://127.0.0.1:8786").unwrap();
    assert_eq!(spec, ClusterSpec::Dask("127.0.0.1:8786".into()));
    assert_eq!(spec.to_string(), "dask://127.0.0.1:8786");
    assert_eq!(
        ClusterSpec::parse("'dask://scheduler.example:8786/'").unwrap(),
        ClusterSpec::Dask("scheduler.example:8786".into())
    );
    for bad in ["dask://", "dask://host", "dask://:8786", "dask://host:port"] {
        let e = ClusterSpec::parse(bad).unwrap_err().to_string();
        assert!(e.contains("the Dask scheduler is HOST:PORT"), "{bad}: {e}");
        assert!(e.contains("dask://HOST:PORT"), "{bad}: {e}");
    }
}
