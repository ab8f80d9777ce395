//! Queries run by `quarry worker` processes: TPC-H SF 0.01 on three
//! workers (`quarry worker serve`, started here) with the answers of
//! `crates/quarry-tpch/tests/tpch_answers/sf0.01`; a worker killed while it runs a task, whose
//! task runs again on another; `local:N` clusters the session starts
//! itself; one-shot `quarry worker run` tasks; and the errors a user meets.
//!
//! The data is generated once per run into
//! `<target>/tmp/cluster-tpch-sf0.01-4parts` (4 row groups per table);
//! each query's exchange is a directory under a temp dir the workers share
//! (they all run on this machine).

// the helpers of quarry-core's integration tests
#[path = "../../quarry-core/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use quarry_core::cluster::exchange::ExchangeDir;
use quarry_core::cluster::{read_output, LISTENING};
use quarry_core::runtime::ready::ReadyTasks;
use quarry_core::{Session, SessionConfig};

use common::{check_tpch_query, run_ok};

const QUARRY: &str = env!("CARGO_BIN_EXE_quarry");

fn data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-tpch-sf0.01-4parts");
        // four row groups per scaled table: a scan is four tasks
        let options = quarry_tpch::GenerateOptions {
            parts: Some(4),
            ..Default::default()
        };
        quarry_tpch::generate_with(0.01, &dir, &options, &|_| {}).expect("generate TPC-H SF 0.01");
        dir
    })
}

/// A `quarry worker serve` process, killed when dropped.
struct Worker {
    child: Child,
    address: String,
    /// Its log: a line as each task starts and ends (`--verbose`).
    log: Option<BufReader<ChildStderr>>,
}

impl Worker {
    fn start(threads: usize) -> Worker {
        let mut child = Command::new(QUARRY)
            .args(["worker", "serve", "--verbose", "--memory-limit", "1GB"])
            .args(["--threads", &threads.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start quarry worker serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix(LISTENING)
            .unwrap_or_else(|| panic!("worker said {line:?}"))
            .to_string();
        let log = child.stderr.take().map(BufReader::new);
        Worker {
            child,
            address,
            log,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A session whose queries run on `workers`, exchanging through a temp dir.
fn cluster_session(workers: &[Worker], exchange: &Path) -> Session {
    let session = Session::new(SessionConfig::default().with_threads(2)).unwrap();
    quarry_tpch::register_tables(&session, data_dir()).unwrap();
    let list: Vec<&str> = workers.iter().map(|w| w.address.as_str()).collect();
    session
        .sql(&format!(
            "SET exchange_directory = '{}'; SET cluster = 'quarry://{}'",
            exchange.display(),
            list.join(",")
        ))
        .unwrap();
    session
}

fn actual_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-actual")
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn all_22_tpch_queries_on_three_workers_match_the_answers() {
    let workers: Vec<Worker> = (0..3).map(|_| Worker::start(1)).collect();
    let exchange = tempfile::tempdir().unwrap();
    let session = cluster_session(&workers, exchange.path());
    let mut failures = Vec::new();
    let mut tasks = 0;
    for n in 1..=22 {
        let started = Instant::now();
        match check_tpch_query(&session, n, &actual_dir(), "cluster-") {
            Ok(()) => println!(
                "q{n:02}: ok ({:.0} ms)",
                started.elapsed().as_secs_f64() * 1e3
            ),
            Err(e) => failures.push(format!("q{n:02}: {e}")),
        }
        let stats = session.last_run_stats().unwrap();
        assert_eq!(stats.retries, 0, "q{n:02}: {stats:?}");
        tasks += stats.tasks;
    }
    assert!(tasks > 200, "{tasks} tasks");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // EXPLAIN ANALYZE tells what the tasks did on the workers
    let plan = session
        .sql(&format!(
            "EXPLAIN ANALYZE {}",
            quarry_tpch::query(6).unwrap()
        ))
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&plan.batches)
        .unwrap()
        .to_string();
    assert!(
        text.contains("Scan lineitem (4 partitions) (60175 rows)"),
        "{text}"
    );
    assert!(text.contains("on 3 workers"), "{text}");
    assert!(text.contains("Cluster: 0 tasks run again;"), "{text}");
    // every query's files are gone
    assert_eq!(entries(exchange.path()), 0);
}

#[test]
fn a_worker_killed_while_it_runs_a_task_has_the_task_run_again() {
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(1)).collect();
    let exchange = tempfile::tempdir().unwrap();
    let session = cluster_session(&workers, exchange.path());
    // Kill worker 0 as it starts its third task of Q18.
    let mut log = workers[0].log.take().unwrap();
    let pid = workers[0].child.id();
    let killer = std::thread::spawn(move || {
        let mut started = 0;
        let mut line = String::new();
        while log.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains(" started") {
                started += 1;
                if started == 3 {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                    return true;
                }
            }
            line.clear();
        }
        false
    });
    let answer = check_tpch_query(&session, 18, &actual_dir(), "killed-");
    // (should worker 0 have run fewer tasks, its log ends now)
    let _ = workers[0].child.kill();
    assert!(killer.join().unwrap(), "worker 0 ran fewer than 3 tasks");
    answer.unwrap();
    let stats = session.last_run_stats().unwrap();
    assert!(stats.retries >= 1, "{stats:?}");
    let _ = workers[0].child.wait();
    // The next query runs on the workers that are left.
    check_tpch_query(&session, 3, &actual_dir(), "killed-").unwrap();
    assert_eq!(session.last_run_stats().unwrap().retries, 0);
}

#[test]
fn a_local_cluster_starts_and_stops_its_own_workers() {
    // (the session starts workers from the program it runs in, so this
    // goes through the binary)
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        ".open {}\nSET cluster = 'local:2';\nSHOW cluster;\n{}",
        data_dir().display(),
        quarry_tpch::query(1).unwrap()
    );
    let out = run_ok(
        Command::new(QUARRY)
            .args(["--format", "csv", "--temp-dir"])
            .arg(dir.path())
            .args(["-c", &script]),
    )
    .unwrap();
    assert!(out.contains("local:2"), "{out}");
    // Q01's first row: A,F, sum_qty 380456
    assert!(out.contains("A,F,380456"), "{out}");
    assert_eq!(entries(dir.path()), 0, "the query's files are removed");
}

#[test]
fn one_shot_worker_runs_compute_a_graph_task_by_task() {
    let session = Session::new(SessionConfig::default().with_threads(2)).unwrap();
    quarry_tpch::register_tables(&session, data_dir()).unwrap();
    let sql = quarry_tpch::query(5).unwrap();
    let graph = session.task_graph(sql).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exchange = ExchangeDir::create(&dir.path().join("q5"), &Default::default()).unwrap();
    exchange
        .put_graph(quarry_core::graph::wire::encode(&graph).unwrap())
        .unwrap();
    let mut tasks = ReadyTasks::new(&graph);
    let mut runs = 0;
    while let Some((stage, partition)) = tasks.pop() {
        let manifest = run_ok(
            Command::new(QUARRY)
                .args(["worker", "run", "--exchange"])
                .arg(exchange.root())
                .args(["--stage", &stage.to_string()])
                .args(["--partition", &partition.to_string()]),
        )
        .unwrap();
        assert!(
            manifest.contains(&format!("\"stage\":{stage}")),
            "{manifest}"
        );
        tasks.finished(stage);
        runs += 1;
    }
    assert!(tasks.all_done() && runs > 3);
    let out = read_output(&graph, &exchange).unwrap();
    let expected = session.sql(sql).unwrap();
    assert_eq!(
        arrow::util::pretty::pretty_format_batches(&out)
            .unwrap()
            .to_string(),
        arrow::util::pretty::pretty_format_batches(&expected.batches)
            .unwrap()
            .to_string()
    );
}

#[test]
fn cluster_errors_are_clear_and_the_session_goes_on() {
    let session = Session::new(SessionConfig::default()).unwrap();
    let err = |sql: &str| session.sql(sql).unwrap_err().to_string();
    assert!(err("SET cluster = 'lokal:2'").contains("expected local:N or quarry://"));
    assert!(err("SET cluster = 'local:0'").contains("1 to 64"));
    assert!(err("SET exchange_directory = '/no/such/dir'").contains("/no/such/dir"));
    assert!(err("SET exchange_directory = 's3://'").contains("names no bucket"));
    assert!(err("SET exchange_directory = 'ftp://host/x'").contains("unsupported scheme"));
    // a worker address where nothing listens: the query names it
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = free.local_addr().unwrap().to_string();
    drop(free);
    session
        .sql(&format!("SET cluster = 'quarry://{address}'"))
        .unwrap();
    let e = err("SELECT 1");
    assert!(e.contains(&address) && e.contains("no worker"), "{e}");
    session.sql("SET cluster = 'none'").unwrap();
    assert_eq!(session.sql("SELECT 41 + 1").unwrap().num_rows(), 1);
    // a bad worker request gets a clear refusal
    let out = Command::new(QUARRY)
        .args(["worker", "run", "--exchange", "/no/such/exchange"])
        .args(["--stage", "0", "--partition", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'/no/such/exchange' does not exist"));
}

#[test]
fn cancelling_a_query_on_a_cluster_stops_its_tasks_and_the_workers_go_on() {
    let mut workers: Vec<Worker> = (0..2).map(|_| Worker::start(1)).collect();
    let exchange = tempfile::tempdir().unwrap();
    let session = cluster_session(&workers, exchange.path());
    let cancel = session.cancel_flag();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let started = Instant::now();
    // billions of pairs: minutes, unless cancelled
    let err = session
        .sql(
            "SELECT count(*) FROM lineitem a, lineitem b \
             WHERE a.l_quantity + b.l_quantity > 1000",
        )
        .unwrap_err();
    canceller.join().unwrap();
    assert_eq!(err.to_string(), "query cancelled");
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    // the same workers answer the next query
    check_tpch_query(&session, 6, &actual_dir(), "cancelled-").unwrap();
    assert_eq!(entries(exchange.path()), 0);
    // and a worker's log tells that the running task stopped
    let mut logs = String::new();
    for w in &mut workers {
        let _ = w.child.kill();
        let _ = std::io::Read::read_to_string(w.log.as_mut().unwrap(), &mut logs);
    }
    assert!(logs.contains("failed: query cancelled"), "{logs}");
}
