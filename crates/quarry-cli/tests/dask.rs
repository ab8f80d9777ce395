//! Dask: queries run on a Dask cluster (`SET cluster = 'dask://HOST:PORT'`)
//! give the answers of a local run. The test starts the cluster itself:
//! a `LocalCluster` of 2 worker processes with a thread each
//! (`python/tests/local_cluster.py`, under `crates/quarry-cli/tests/remote/supervise.py`, which
//! ends it when the test process ends, however it ends).
//!
//! - `python/tests` (the quarry_dask package on its own, against a stand-in
//!   for `quarry worker serve`): the graph's shape, barriers ordering the
//!   stages, a failed task, a cancel, a killed worker.
//! - All 22 TPC-H queries at SF 0.01 against `crates/quarry-tpch/tests/tpch_answers/sf0.01`.
//! - A Dask worker killed (SIGKILL) while its quarry runs a task: Dask
//!   runs the task again, the answer is still right, the quarry worker
//!   beside it is gone with it, and the nanny's new worker gets a quarry
//!   of its own (TPC-H Q9 on it).
//! - A task that fails: the query fails with the error of a local run.
//! - A query cancelled while both quarries run its tasks: `query
//!   cancelled` at once, the quarries stop, no exchange files are left,
//!   and the next query runs.
//! - Errors: a scheduler where nothing listens (at `SET`, and the session
//!   goes on), a quarry the Dask workers cannot start.
//! - The binary: `quarry --cluster dask://…` answers as a local run.
//!
//! Run it with `cargo test --release --test dask` (`-- --nocapture` shows
//! the timings). It installs, on first use, a virtual environment at
//! `target/dask-venv` with the pinned packages of `python/requirements.txt`
//! (made again when that file changes; `QUARRY_PYTHON` names the Python
//! that makes it). Without python3, venv or network for pip, the tests that
//! need Dask print `SKIPPED` and return, except under `CI=true`, where it
//! is a failure. The cluster's log goes to `<target>/tmp/dask-logs/`.
//!
//! The tests share one cluster and take turns on it (a lock): a worker
//! killed by one must not disturb another's timings.

// the helpers of quarry-core's integration tests
#[path = "../../quarry-core/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

use quarry_core::runtime::Progress;
use quarry_core::{QuarryError, Session, SessionConfig};

use common::{check_tpch_query, run_ok, target_venv};

const SF: f64 = 0.01;

/// How long the cluster may take to start (about 2 s here).
const START_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------ skip or fail

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// What the test needs cannot be had: a failure under `CI=true`, a skip
/// (printed) elsewhere. `None` means "return now".
fn available<T>(test: &str, what: &Result<T, String>) -> Option<T>
where
    T: Clone,
{
    match what {
        Ok(v) => Some(v.clone()),
        Err(why) => {
            assert!(!ci(), "{test}: CI=true and Dask cannot be had:\n{why}");
            eprintln!("SKIPPED {test}: Dask cannot be had (CI=true makes this a failure):\n{why}");
            None
        }
    }
}

// ----------------------------------------------------------- the cluster

fn tmp() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// `path` in the checkout (this crate is crates/quarry-cli).
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The Python of `target/dask-venv`, with the pinned dask[distributed].
fn venv_python() -> Result<PathBuf, String> {
    target_venv("dask-venv", &repo("python/requirements.txt"))
}

/// The submitter runs on the venv's Python, and the Dask workers start
/// the quarry binary (this test binary is not quarry). Set once, before
/// any session; std's environment accesses take a lock.
fn init_env(python: &Path) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        std::env::set_var("QUARRY_PYTHON", python);
        std::env::set_var("QUARRY_WORKER_PROGRAM", env!("CARGO_BIN_EXE_quarry"));
    });
}

/// The LocalCluster, under supervise.py (a process that lives as long as
/// this test binary: a static is never dropped, and the supervisor ends
/// the cluster when our end of its stdin closes at exit).
struct Cluster {
    address: String,
    python: PathBuf,
    _supervisor: Mutex<Child>,
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let python = venv_python()?;
        let logs = tmp().join("dask-logs");
        std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
        let log = logs.join(format!("cluster-{}.log", std::process::id()));
        let address_file = logs.join(format!("cluster-{}.address", std::process::id()));
        let _ = std::fs::remove_file(&address_file);
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(&python)
            .arg(repo("crates/quarry-cli/tests/remote/supervise.py"))
            .arg(&python)
            .arg(repo("python/tests/local_cluster.py"))
            .arg("serve")
            .arg(&address_file)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the Dask cluster: {e}"))?;
        let started = Instant::now();
        loop {
            if let Ok(address) = std::fs::read_to_string(&address_file) {
                return Ok(Cluster {
                    address,
                    python,
                    _supervisor: Mutex::new(child),
                });
            }
            let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the Dask cluster exited ({status}):\n{}",
                    log_text()
                ));
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                return Err(format!(
                    "the Dask cluster did not start in {START_TIMEOUT:?}:\n{}",
                    log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Each worker's process id and those of the quarry workers beside it.
    fn workers(&self) -> Vec<(u32, Vec<u32>)> {
        let out = run_ok(
            Command::new(&self.python)
                .arg(repo("python/tests/local_cluster.py"))
                .args(["info", &self.address]),
        )
        .expect("local_cluster.py info");
        let info: serde_json::Value = serde_json::from_str(out.trim()).expect("info is JSON");
        let mut workers: Vec<(u32, Vec<u32>)> = info
            .as_object()
            .expect("an object")
            .values()
            .map(|w| {
                let pid = |v: &serde_json::Value| v.as_u64().expect("a pid") as u32;
                let quarry = w["quarry"].as_array().expect("a list");
                (pid(&w["pid"]), quarry.iter().map(pid).collect())
            })
            .collect();
        workers.sort();
        workers
    }
}

/// The cluster, shared by the tests, and the turn to use it. `None`: the
/// test is skipped (said so).
fn cluster(test: &str) -> Option<(&'static Cluster, MutexGuard<'static, ()>)> {
    static TURN: Mutex<()> = Mutex::new(());
    static CLUSTER: OnceLock<Result<&'static Cluster, String>> = OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = CLUSTER.get_or_init(|| {
        let c = Cluster::start()?;
        init_env(&c.python);
        Ok(&*Box::leak(Box::new(c)))
    });
    available(test, cluster).map(|c| (c, turn))
}

// ------------------------------------------------------------------ data

/// TPC-H SF 0.01, generated once into `<target>/tmp/dask-tpch-sf0.01`,
/// each scaled table in 3 row groups: scans of several tasks, spread over
/// both workers.
fn tpch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmp().join("dask-tpch-sf0.01");
        if !quarry_tpch::TABLES
            .iter()
            .all(|t| dir.join(format!("{t}.parquet")).is_file())
        {
            let options = quarry_tpch::GenerateOptions {
                parts: Some(3),
                ..Default::default()
            };
            quarry_tpch::generate_with(SF, &dir, &options, &|_| {})
                .expect("generate TPC-H SF 0.01");
        }
        dir
    })
}

/// A session on the cluster, with the TPC-H tables and an exchange
/// directory of its own (`exchange`, to look into afterwards).
fn dask_session(cluster: &Cluster, exchange: &Path) -> Session {
    let session = Session::new(SessionConfig::default()).expect("new session");
    quarry_tpch::register_tables(&session, tpch_dir()).expect("register the TPC-H tables");
    std::fs::create_dir_all(exchange).unwrap();
    session
        .sql(&format!(
            "SET exchange_directory = '{}'",
            exchange.display()
        ))
        .unwrap();
    let started = Instant::now();
    session
        .sql(&format!("SET cluster = 'dask://{}'", cluster.address))
        .expect("SET cluster");
    println!(
        "SET cluster = 'dask://{}': {:.1} s",
        cluster.address,
        started.elapsed().as_secs_f64()
    );
    session
}

/// What a query left in the exchange directory (nothing, after it ends).
fn leftovers(exchange: &Path) -> Vec<String> {
    std::fs::read_dir(exchange)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn actual_dir() -> PathBuf {
    tmp().join("dask-actual")
}

/// A query of 3 scan tasks of about a second per million rows each, and
/// one that adds up: `rows` and `300 * rows`.
fn heavy_query(rows: u64) -> String {
    format!(
        "SELECT count(*) AS n, sum(length(lpad(CAST(i AS VARCHAR), 300, '*'))) AS chars \
         FROM range(0, {rows}) r(i)"
    )
}

/// The CPU time process `pid` has used, in clock ticks (0 when gone).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // after the name in parentheses: state is field 3, utime 14, stime 15
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

/// Whether process `pid` runs (a zombie nobody has reaped does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

// ----------------------------------------------------------------- tests

#[test]
fn the_python_package_on_its_own() {
    let Some((cluster, _turn)) = cluster("the_python_package_on_its_own") else {
        return;
    };
    let started = Instant::now();
    let out = Command::new(&cluster.python)
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(repo("python"))
        .output()
        .expect("run python -m unittest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python/tests failed:\n{stderr}");
    // (no test of it may be skipped here: dask is installed)
    assert!(!stderr.contains("skipped"), "{stderr}");
    let ran = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .expect("unittest says how many tests ran");
    assert!(ran >= 10, "only {ran} tests ran:\n{stderr}");
    println!(
        "python/tests: {ran} tests, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn all_22_tpch_queries_on_dask() {
    let Some((cluster, _turn)) = cluster("all_22_tpch_queries_on_dask") else {
        return;
    };
    let exchange = tmp().join("dask-exchange-tpch");
    let session = dask_session(cluster, &exchange);
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    session.set_progress(Some(Arc::new(move |_: &Progress| {
        t.fetch_add(1, Ordering::Relaxed);
    })));
    let started = Instant::now();
    let mut failures = Vec::new();
    for n in 1..=22 {
        let start = Instant::now();
        let before = ticks.load(Ordering::Relaxed);
        match check_tpch_query(&session, n, &actual_dir(), "") {
            Ok(()) => {
                let stats = session.last_run_stats().expect("the run's figures");
                let tasks = stats.tasks;
                // every finished task was reported, and ran on the cluster,
                // on one of its two workers
                assert_eq!(ticks.load(Ordering::Relaxed) - before, tasks, "q{n:02}");
                assert!(tasks > 0, "q{n:02}: no task ran");
                assert_eq!(stats.task_records.len(), tasks, "q{n:02}");
                assert!((1..=2).contains(&stats.busy.len()), "q{n:02}");
                assert!(stats.cluster.is_some(), "q{n:02}");
                println!(
                    "q{n:02}: ok, {tasks} tasks ({:.0} ms)",
                    start.elapsed().as_secs_f64() * 1e3
                );
            }
            Err(e) => failures.push(format!("q{n:02}: {e}")),
        }
        assert_eq!(leftovers(&exchange), Vec::<String>::new(), "q{n:02}");
    }
    println!(
        "22 queries on Dask: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_worker_killed_mid_query_the_answer_is_still_right() {
    let Some((cluster, _turn)) = cluster("a_worker_killed_mid_query") else {
        return;
    };
    let exchange = tmp().join("dask-exchange-kill");
    let session = dask_session(cluster, &exchange);
    // a first query: each worker has its quarry beside it
    session.sql("SELECT count(*) FROM nation").unwrap();
    let workers = cluster.workers();
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(workers.iter().all(|(_, q)| q.len() == 1), "{workers:?}");
    let (victim, victim_quarry) = (workers[0].0, workers[0].1[0]);

    // A query of 3 tasks of about a second each (then one that adds up),
    // whose answer is known: the victim is certainly running one when a
    // watcher sees its quarry use CPU, and is SIGKILLed then.
    let sql = heavy_query(3_000_000);
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    session.set_progress(Some(Arc::new(move |p: &Progress| {
        d.store(p.tasks_done, Ordering::Relaxed);
    })));
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let d = done.clone();
    let killer = std::thread::spawn(move || {
        let mut last = cpu_ticks(victim_quarry);
        while !f.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            let now = cpu_ticks(victim_quarry);
            if now > last {
                let status = Command::new("kill")
                    .args(["-KILL", &victim.to_string()])
                    .status()
                    .expect("run kill");
                assert!(status.success(), "kill -KILL {victim}");
                return Some(d.load(Ordering::Relaxed));
            }
            last = now;
        }
        None
    });
    let started = Instant::now();
    let result = session.sql(&sql);
    finished.store(true, Ordering::Relaxed);
    let done_at_kill = killer.join().unwrap().expect("the victim never ran a task");
    let result = result.unwrap();
    println!(
        "a worker killed after {done_at_kill} of 4 tasks: {:.1} s, {} ran again",
        started.elapsed().as_secs_f64(),
        session.last_run_stats().map_or(0, |s| s.retries)
    );
    let table = arrow::util::pretty::pretty_format_batches(&result.batches)
        .unwrap()
        .to_string();
    assert!(table.contains("| 3000000 | 900000000 |"), "{table}");
    assert!(done_at_kill < 3, "killed after the tasks ran");
    // Dask ran again the task the worker was running
    let retries = session.last_run_stats().map_or(0, |s| s.retries);
    assert!(retries >= 1, "no task ran again");
    assert_eq!(leftovers(&exchange), Vec::<String>::new());

    // its quarry went with it
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(victim_quarry) {
        assert!(
            Instant::now() < deadline,
            "the quarry worker {victim_quarry} of the killed Dask worker lives on"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // the nanny's new worker has a quarry of its own, and answers
    session.set_progress(None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = cluster.workers();
        if now.len() == 2 && now.iter().all(|(_, q)| q.len() == 1) {
            assert!(now.iter().all(|(pid, _)| *pid != victim), "{now:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not recover: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    check_tpch_query(&session, 9, &actual_dir(), "after-kill-").unwrap();
}

#[test]
fn a_cancelled_query_stops_its_tasks_leaves_nothing_and_the_session_goes_on() {
    let Some((cluster, _turn)) = cluster("a_cancelled_query") else {
        return;
    };
    let exchange = tmp().join("dask-exchange-cancel");
    let session = dask_session(cluster, &exchange);
    session.sql("SELECT count(*) FROM nation").unwrap();
    let quarries: Vec<u32> = cluster.workers().into_iter().flat_map(|w| w.1).collect();
    assert_eq!(quarries.len(), 2);
    // tasks of some 3 s each: cancelled (Ctrl-C) once both quarries run one
    let cancel = session.cancel_flag();
    let cancelled_at = Arc::new(Mutex::new(None));
    let at = cancelled_at.clone();
    let q = quarries.clone();
    let watcher = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last: Vec<u64> = q.iter().map(|&p| cpu_ticks(p)).collect();
        let mut busy = vec![false; q.len()];
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            for (i, &p) in q.iter().enumerate() {
                let now = cpu_ticks(p);
                busy[i] |= now > last[i];
                last[i] = now;
            }
            if busy.iter().all(|&b| b) {
                cancel.store(true, Ordering::Relaxed);
                *at.lock().unwrap() = Some(Instant::now());
                return;
            }
        }
    });
    let err = session.sql(&heavy_query(9_000_000)).unwrap_err();
    watcher.join().unwrap();
    let cancelled_at = cancelled_at
        .lock()
        .unwrap()
        .expect("both quarries ran a task");
    assert!(matches!(err, QuarryError::Cancelled), "{err}");
    let took = cancelled_at.elapsed();
    println!(
        "cancelled: the query returned in {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(2), "the cancel took {took:?}");
    // the quarries stopped their tasks (which had seconds to go): a task
    // burns some 30 ticks in 300 ms, half that on a loaded host; an idle
    // quarry may still spend a few (its connection threads and the batch it
    // was in winding down, the allocator: 6 seen once under load)
    std::thread::sleep(Duration::from_millis(100));
    let before: Vec<u64> = quarries.iter().map(|&p| cpu_ticks(p)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let after: Vec<u64> = quarries.iter().map(|&p| cpu_ticks(p)).collect();
    let moved: Vec<u64> = before.iter().zip(&after).map(|(b, a)| a - b).collect();
    assert!(
        moved.iter().all(|&m| m <= 10),
        "a quarry still works on the cancelled query: ticks {before:?} -> {after:?}"
    );
    assert_eq!(leftovers(&exchange), Vec::<String>::new());
    check_tpch_query(&session, 6, &actual_dir(), "after-cancel-").unwrap();
}

#[test]
fn a_scheduler_where_nothing_listens_is_a_clear_error() {
    // A port just let go: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let session = Session::new(SessionConfig::default()).unwrap();
    let err = session
        .sql(&format!("SET cluster = 'dask://127.0.0.1:{port}'"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "cannot reach the Dask scheduler at 127.0.0.1:{port}: "
        )),
        "{err}"
    );
    // the setting stays what it was, and queries run here
    assert_eq!(session.config().get("cluster").unwrap(), "none");
    let out = session.sql("SELECT 6 * 7 AS answer").unwrap();
    let answer = out.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .map(|a| a.value(0));
    assert_eq!(answer, Some(42));
}

#[test]
fn a_task_that_fails_fails_the_query_with_its_error() {
    let Some((cluster, _turn)) = cluster("a_task_that_fails") else {
        return;
    };
    let sql = "SELECT i / (i - i) FROM range(0, 10) r(i)";
    let local = Session::new(SessionConfig::default())
        .unwrap()
        .sql(sql)
        .unwrap_err()
        .to_string();
    let exchange = tmp().join("dask-exchange-fail");
    let session = dask_session(cluster, &exchange);
    let err = session.sql(sql).unwrap_err().to_string();
    assert_eq!(err, local);
    assert_eq!(leftovers(&exchange), Vec::<String>::new());
    // and the session goes on, on the cluster
    check_tpch_query(&session, 1, &actual_dir(), "after-failure-").unwrap();
}

#[test]
fn a_quarry_the_workers_cannot_start_is_a_clear_error() {
    let Some((cluster, _turn)) = cluster("a_quarry_the_workers_cannot_start") else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["--cluster", &format!("dask://{}", cluster.address)])
        .args(["-c", "SELECT count(*) FROM range(0, 10) r(i)"])
        .env("QUARRY_WORKER_PROGRAM", "/nonexistent/quarry")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "Error: quarry did not start on the Dask workers: cannot start \
             '/nonexistent/quarry worker serve' beside Dask worker tcp://127.0.0.1:"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("QUARRY_WORKER_PROGRAM"), "{stderr}");
}

#[test]
fn the_binary_runs_a_query_on_dask() {
    let Some((cluster, _turn)) = cluster("the_binary_runs_a_query_on_dask") else {
        return;
    };
    let lineitem = tpch_dir().join("lineitem.parquet");
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(["--cluster", &format!("dask://{}", cluster.address)])
            .args(["--format", "csv", "-c"])
            .arg(format!(
                "SELECT l_returnflag, count(*) AS n FROM '{}' GROUP BY 1 ORDER BY 1",
                lineitem.display()
            )),
    )
    .unwrap();
    // the counts of a local run
    let session = Session::new(SessionConfig::default()).unwrap();
    let local = session
        .sql(&format!(
            "SELECT l_returnflag, count(*) AS n FROM '{}' GROUP BY 1 ORDER BY 1",
            lineitem.display()
        ))
        .unwrap();
    let mut expected = String::from("l_returnflag,n\n");
    let batch = &local.batches[0];
    let flags = arrow::util::display::ArrayFormatter::try_new(
        batch.column(0).as_ref(),
        &Default::default(),
    )
    .unwrap();
    let counts = arrow::util::display::ArrayFormatter::try_new(
        batch.column(1).as_ref(),
        &Default::default(),
    )
    .unwrap();
    for i in 0..batch.num_rows() {
        expected.push_str(&format!("{},{}\n", flags.value(i), counts.value(i)));
    }
    assert_eq!(batch.num_rows(), 3);
    assert_eq!(out, expected);
}
