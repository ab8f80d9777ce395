//! Dask: queries run on a Dask cluster (`SET cluster = 'dask://HOST:PORT'`)
//! give the answers of a local run. The test starts the cluster itself:
//! a `LocalCluster` of 2 worker processes with a thread each
//! (`tests/dask/local_cluster.py`, under `tests/remote/supervise.py`, which
//! ends it when the test process ends, however it ends).
//!
//! - `python/tests` (the quarry_dask package on its own, against a stand-in
//!   for `quarry worker serve`): the graph's shape, barriers ordering the
//!   stages, a failed task, a cancel, a killed worker.
//! - All 22 TPC-H queries at SF 0.01 against `tests/tpch_answers/sf0.01`.
//! - A Dask worker killed (SIGKILL) mid-query: the answer is still right,
//!   the quarry worker beside it is gone with it, and the nanny's new
//!   worker gets a quarry of its own.
//! - A query cancelled mid-way: `query cancelled`, no exchange files left,
//!   the next query runs. A scheduler where nothing listens: a clear error
//!   at `SET`, and the session goes on.
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

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

use quarry::runtime::Progress;
use quarry::{QuarryError, Session, SessionConfig};

use common::{check_tpch_query, pinned_venv, run_ok};

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

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The Python of `target/dask-venv`, with the pinned dask[distributed].
fn venv_python() -> Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = tmp()
            .parent()
            .expect("target/tmp has a parent")
            .join("dask-venv");
        pinned_venv(&venv, &repo("python/requirements.txt"))
    })
    .clone()
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
            .arg(repo("tests/remote/supervise.py"))
            .arg(&python)
            .arg(repo("tests/dask/local_cluster.py"))
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
                .arg(repo("tests/dask/local_cluster.py"))
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

/// TPC-H SF 0.01, generated once into `<target>/tmp/dask-tpch-sf0.01`.
fn tpch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmp().join("dask-tpch-sf0.01");
        if !quarry::tpch::TABLES
            .iter()
            .all(|t| dir.join(format!("{t}.parquet")).is_file())
        {
            quarry::tpch::generate(SF, &dir).expect("generate TPC-H SF 0.01");
        }
        dir
    })
}

/// A session on the cluster, with the TPC-H tables and an exchange
/// directory of its own (`exchange`, to look into afterwards).
fn dask_session(cluster: &Cluster, exchange: &Path) -> Session {
    let session = Session::new(SessionConfig::default()).expect("new session");
    quarry::tpch::register_tables(&session, tpch_dir()).expect("register the TPC-H tables");
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
                let tasks = session.last_run_stats().map(|s| s.tasks).unwrap_or(0);
                // every finished task was reported, and ran on the cluster
                assert_eq!(ticks.load(Ordering::Relaxed) - before, tasks, "q{n:02}");
                assert!(tasks > 0, "q{n:02}: no task ran");
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

    // SIGKILL one worker when the first task is done
    let killed_at = Arc::new(Mutex::new(None));
    let k = killed_at.clone();
    let fired = AtomicBool::new(false);
    session.set_progress(Some(Arc::new(move |p: &Progress| {
        if !fired.swap(true, Ordering::Relaxed) {
            let status = Command::new("kill")
                .args(["-KILL", &victim.to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -KILL {victim}");
            *k.lock().unwrap() = Some((p.tasks_done, p.tasks_total));
        }
    })));
    let started = Instant::now();
    check_tpch_query(&session, 9, &actual_dir(), "killed-").unwrap();
    println!(
        "q09 with a worker killed: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (done, total) = killed_at.lock().unwrap().expect("the worker was killed");
    assert!(
        done < total,
        "killed after the last task ({done} of {total})"
    );
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
fn a_cancelled_query_leaves_nothing_and_the_session_goes_on() {
    let Some((cluster, _turn)) = cluster("a_cancelled_query") else {
        return;
    };
    let exchange = tmp().join("dask-exchange-cancel");
    let session = dask_session(cluster, &exchange);
    let cancel = session.cancel_flag();
    session.set_progress(Some(Arc::new(move |_: &Progress| {
        cancel.store(true, Ordering::Relaxed);
    })));
    let started = Instant::now();
    let err = session.sql(quarry::tpch::query(18).unwrap()).unwrap_err();
    assert!(matches!(err, QuarryError::Cancelled), "{err}");
    println!("q18 cancelled: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(leftovers(&exchange), Vec::<String>::new());
    session.set_progress(None);
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
