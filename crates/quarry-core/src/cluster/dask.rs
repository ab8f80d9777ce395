//! Running a query's tasks on a Dask cluster (`dask://HOST:PORT`).
//!
//! Dask schedules; quarry computes. The driver writes the task graph and a
//! stage list (`stages.json`) to the exchange directory, then starts the
//! Python submitter (`python -m quarry_dask run`, the package in
//! `python/`), which turns the stage list into a Dask graph — a key per
//! task, a barrier key per stage — and submits it. Each Dask worker runs a
//! `quarry worker serve` beside it (a worker plugin the submitter
//! registers), and a Dask task asks that worker to run one quarry task.
//! Data never passes through Dask: it stays in the exchange directory.
//!
//! The submitter reports each finished task on its stdout (the progress
//! bar), and `ok` at the end; a failure is its last stderr line. Closing
//! its stdin cancels the query (Ctrl-C).
//!
//! The binary carries the package's source (`include_str!`) and writes it
//! to a private temporary directory put on `PYTHONPATH`, so that only
//! `dask[distributed]` has to be installed: the package is always the one of
//! this build, and nothing needs `pip install` of quarry's own code.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::driver::ClusterStats;
use super::exchange::ExchangeDir;
use crate::error::{QuarryError, Result};
use crate::graph::TaskGraph;
use crate::runtime::{Progress, ProgressFn};

/// The package's files, as `python/` has them.
const PACKAGE: &[(&str, &str)] = &[
    (
        "quarry_dask/__init__.py",
        include_str!("../../../../python/quarry_dask/__init__.py"),
    ),
    (
        "quarry_dask/__main__.py",
        include_str!("../../../../python/quarry_dask/__main__.py"),
    ),
    (
        "quarry_dask/byvalue.py",
        include_str!("../../../../python/quarry_dask/byvalue.py"),
    ),
    (
        "quarry_dask/graph.py",
        include_str!("../../../../python/quarry_dask/graph.py"),
    ),
    (
        "quarry_dask/server.py",
        include_str!("../../../../python/quarry_dask/server.py"),
    ),
    (
        "quarry_dask/submit.py",
        include_str!("../../../../python/quarry_dask/submit.py"),
    ),
];

/// The pinned versions (`python/requirements.txt`), quoted in errors.
const REQUIREMENTS: &str = include_str!("../../../../python/requirements.txt");

/// The version of `stages.json` (`STAGES_VERSION` in the package).
const STAGES_VERSION: u32 = 1;

/// How long the scheduler may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a cancelled submitter may take to cancel the query's tasks
/// (it waits up to 10 s for them) before it is killed.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(15);

/// A Dask cluster queries run on.
pub struct Dask {
    /// HOST:PORT of the scheduler.
    scheduler: String,
    python: String,
    /// The quarry program on the workers.
    program: PathBuf,
    package: PackageDir,
    /// The Dask workers that ran tasks of the last query.
    workers_seen: AtomicUsize,
}

impl Dask {
    /// Checks that the scheduler answers and that Python can run the
    /// submitter; `program` is the quarry binary's path on the workers.
    pub fn start(scheduler: &str, program: &Path) -> Result<Dask> {
        check_reachable(scheduler)?;
        let dask = Dask {
            scheduler: scheduler.to_string(),
            python: std::env::var("QUARRY_PYTHON").unwrap_or_else(|_| "python3".into()),
            program: program.to_path_buf(),
            package: PackageDir::write()?,
            workers_seen: AtomicUsize::new(0),
        };
        dask.check_python()?;
        Ok(dask)
    }

    /// The Dask workers that ran tasks of the last query (Dask's workers
    /// come and go).
    pub fn workers(&self) -> usize {
        self.workers_seen.load(Ordering::Relaxed)
    }

    /// `python -m quarry_dask` with the package on the path.
    fn submitter(&self) -> Command {
        let mut path = std::ffi::OsString::from(self.package.0.as_os_str());
        if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
            path.push(":");
            path.push(old);
        }
        let mut cmd = Command::new(&self.python);
        // (run in the package's directory: `-m` puts the working directory
        // first on the path, and the user's might hold a `quarry_dask` too)
        cmd.env("PYTHONPATH", path)
            .current_dir(&self.package.0)
            .args(["-m", "quarry_dask"]);
        cmd
    }

    fn check_python(&self) -> Result<()> {
        let out = self.submitter().arg("check").output().map_err(|e| {
            QuarryError::Config(format!(
                "cannot run Python '{}' for the Dask cluster: {e}; set QUARRY_PYTHON to a Python \
                 that has {} (pip install -r python/requirements.txt, in quarry's source)",
                self.python,
                dask_pin()
            ))
        })?;
        if out.status.success() {
            return Ok(());
        }
        Err(QuarryError::Config(format!(
            "Python '{}' cannot run quarry's Dask submitter: {}; install {} with \
             pip install -r python/requirements.txt (in quarry's source), or set QUARRY_PYTHON \
             to a Python that has it",
            self.python,
            last_error(&String::from_utf8_lossy(&out.stderr), out.status),
            dask_pin()
        )))
    }

    /// Runs `graph`, whose encoding is in `exchange` already, on the
    /// cluster; every task's output is in `exchange` when this returns.
    pub fn run(
        &self,
        graph: &TaskGraph,
        exchange: &ExchangeDir,
        cancel: &AtomicBool,
        progress: Option<&ProgressFn>,
    ) -> Result<ClusterStats> {
        let started = Instant::now();
        write_stages(graph, exchange)?;
        let total: usize = graph.stages.iter().map(|s| s.partitions).sum();
        if total == 0 {
            return Ok(ClusterStats::default());
        }
        check_reachable(&self.scheduler)?;
        // The workers have other working directories.
        let root = std::path::absolute(exchange.root())
            .map_err(|e| QuarryError::Io(format!("exchange directory: {e}")))?;
        let child = self
            .submitter()
            .args(["run", "--scheduler", &self.scheduler, "--exchange"])
            .arg(&root)
            .arg("--quarry")
            .arg(&self.program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                QuarryError::Io(format!(
                    "cannot start the Dask submitter ('{} -m quarry_dask'): {e}",
                    self.python
                ))
            })?;
        let mut submitter = Submitter::new(child);
        let mut done = Vec::new();
        let mut workers: Vec<String> = Vec::new();
        let mut runs_of_tasks = Vec::new();
        let (mut rows, mut bytes) = (0usize, 0u64);
        let mut runs = None;
        loop {
            if cancel.load(Ordering::Relaxed) {
                submitter.cancel();
                return Err(QuarryError::Cancelled);
            }
            let line = match submitter.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match parse_line(&line) {
                Some(Line::Done {
                    stage,
                    partition,
                    rows_in,
                    bytes_fetched,
                    worker,
                    seconds,
                }) => {
                    done.push((stage, partition));
                    // (the end is when the driver hears of it; the start is
                    // as long before as the task took on its worker)
                    let end = started.elapsed();
                    let start = end.saturating_sub(Duration::from_secs_f64(seconds));
                    let w = match workers.iter().position(|a| *a == worker) {
                        Some(w) => w,
                        None => {
                            workers.push(worker);
                            workers.len() - 1
                        }
                    };
                    runs_of_tasks.push((w, start, end));
                    rows += rows_in;
                    bytes += bytes_fetched;
                    if let Some(f) = progress {
                        f(&Progress {
                            tasks_done: done.len(),
                            tasks_total: total,
                            rows_read: rows,
                            bytes_fetched: bytes,
                            elapsed: started.elapsed(),
                        });
                    }
                }
                Some(Line::Ok { runs: n }) => runs = Some(n),
                None => {}
            }
        }
        let (status, stderr) = submitter.finish()?;
        let runs = match runs {
            Some(n) if status.success() => n,
            _ => return Err(QuarryError::exec(last_error(&stderr, status))),
        };
        if !stderr.trim().is_empty() {
            eprint!("{stderr}");
        }
        let retries = runs.saturating_sub(total);
        match retries {
            0 => {}
            1 => eprintln!("quarry: Dask ran a task again (a worker was lost)"),
            n => eprintln!("quarry: Dask ran {n} tasks again (a worker was lost)"),
        }
        let manifests = done
            .iter()
            .map(|&(s, p)| exchange.manifest(s, p))
            .collect::<Result<Vec<_>>>()?;
        self.workers_seen.store(workers.len(), Ordering::Relaxed);
        Ok(ClusterStats {
            manifests,
            runs: runs_of_tasks,
            retries,
            elapsed: started.elapsed(),
        })
    }
}

/// The running submitter: its stdout lines, its stderr, and the process,
/// killed if dropped before it ends.
struct Submitter {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Submitter {
    fn new(mut child: Child) -> Self {
        let (send, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = err.read_to_end(&mut bytes);
                String::from_utf8_lossy(&bytes).into_owned()
            })
        });
        Submitter {
            child,
            lines,
            stderr,
        }
    }

    /// Its exit status and what it wrote on stderr.
    fn finish(&mut self) -> Result<(ExitStatus, String)> {
        let status = self
            .child
            .wait()
            .map_err(|e| QuarryError::Io(format!("the Dask submitter: {e}")))?;
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        Ok((status, stderr))
    }

    /// Closing its stdin tells it to cancel the query's tasks; it is
    /// killed if it takes too long.
    fn cancel(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + CANCEL_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Submitter {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Debug, PartialEq)]
enum Line {
    Done {
        stage: usize,
        partition: usize,
        rows_in: usize,
        bytes_fetched: u64,
        /// The Dask worker's address.
        worker: String,
        /// How long the task took there.
        seconds: f64,
    },
    Ok {
        runs: usize,
    },
}

/// A line of the submitter's stdout: `done S P ROWS BYTES WORKER SECONDS`
/// or `ok RUNS`.
fn parse_line(line: &str) -> Option<Line> {
    let mut words = line.split_whitespace();
    match words.next()? {
        "done" => {
            let mut next = || words.next();
            let number = |w: Option<&str>| w?.parse::<u64>().ok();
            let done = Line::Done {
                stage: number(next())? as usize,
                partition: number(next())? as usize,
                rows_in: number(next())? as usize,
                bytes_fetched: number(next())?,
                worker: next()?.to_string(),
                seconds: next()?
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)?,
            };
            Some(done)
        }
        "ok" => Some(Line::Ok {
            runs: words.next()?.parse().ok()?,
        }),
        _ => None,
    }
}

/// The submitter's error: from its last `error: ` line on, else the end
/// of what it said.
fn last_error(stderr: &str, status: ExitStatus) -> String {
    let start = if stderr.starts_with("error: ") {
        Some(0)
    } else {
        stderr.rfind("\nerror: ").map(|i| i + 1)
    };
    match start {
        Some(i) => stderr[i + "error: ".len()..].trim().to_string(),
        None => {
            let lines: Vec<&str> = stderr.trim().lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n");
            format!("the Dask submitter failed ({status}): {tail}")
        }
    }
}

/// The `dask[distributed]==…` line of the requirements, for messages.
fn dask_pin() -> &'static str {
    REQUIREMENTS
        .lines()
        .find(|l| l.starts_with("dask[distributed]=="))
        .unwrap_or("dask[distributed]")
}

#[derive(Serialize)]
struct StageList {
    version: u32,
    stages: Vec<StageEntry>,
}

#[derive(Serialize)]
struct StageEntry {
    id: usize,
    partitions: usize,
    inputs: Vec<usize>,
}

/// What the submitter needs of the graph: its stages, their task counts
/// and which stages each reads (`<exchange>/stages.json`).
fn stage_list(graph: &TaskGraph) -> StageList {
    StageList {
        version: STAGES_VERSION,
        stages: graph
            .stages
            .iter()
            .map(|s| {
                let mut inputs = s.inputs();
                inputs.sort_unstable();
                inputs.dedup();
                StageEntry {
                    id: s.id,
                    partitions: s.partitions,
                    inputs,
                }
            })
            .collect(),
    }
}

fn write_stages(graph: &TaskGraph, exchange: &ExchangeDir) -> Result<()> {
    let path = exchange.root().join("stages.json");
    let text = serde_json::to_vec(&stage_list(graph))
        .map_err(|e| QuarryError::exec(format!("internal error: stages.json: {e}")))?;
    std::fs::write(&path, text)
        .map_err(|e| QuarryError::Io(format!("cannot write '{}': {e}", path.display())))
}

/// A quick connection to the scheduler, for a clear error when nothing
/// listens there (Dask's client would retry for its whole timeout).
fn check_reachable(address: &str) -> Result<()> {
    let unreachable = |why: String| {
        QuarryError::Config(format!(
            "cannot reach the Dask scheduler at {address}: {why} (is `dask scheduler` running there?)"
        ))
    };
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let mut last = String::from("the name has no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(unreachable(last))
}

/// A private directory holding the package, removed when dropped.
struct PackageDir(PathBuf);

impl PackageDir {
    fn write() -> Result<PackageDir> {
        let dir =
            std::env::temp_dir().join(format!("quarry-python-{}", super::place::unique_name()));
        let io = |e: std::io::Error| {
            QuarryError::Io(format!(
                "cannot write quarry's Python files to '{}': {e}",
                dir.display()
            ))
        };
        // A new directory only this user may write: nobody else's code
        // gets on the path.
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(io)?;
        let package = PackageDir(dir.clone());
        std::fs::create_dir(dir.join("quarry_dask")).map_err(io)?;
        for (name, text) in PACKAGE {
            std::fs::write(dir.join(name), text).map_err(io)?;
        }
        Ok(package)
    }
}

impl Drop for PackageDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        assert_eq!(
            parse_line("done 3 1 1500 20480 tcp://10.0.0.2:40123 0.012500"),
            Some(Line::Done {
                stage: 3,
                partition: 1,
                rows_in: 1500,
                bytes_fetched: 20480,
                worker: "tcp://10.0.0.2:40123".into(),
                seconds: 0.0125,
            })
        );
        assert_eq!(parse_line("done 3 1 1500 20480"), None);
        assert_eq!(parse_line("done 3 1 1500 20480 tcp://w:1 -1"), None);
        assert_eq!(parse_line("ok 12"), Some(Line::Ok { runs: 12 }));
        assert_eq!(parse_line("done 3 x 1 2"), None);
        assert_eq!(parse_line("done 3 1"), None);
        assert_eq!(parse_line("something else"), None);
        assert_eq!(parse_line(""), None);
    }

    #[cfg(unix)]
    fn status(code: i32) -> ExitStatus {
        std::os::unix::process::ExitStatusExt::from_raw(code << 8)
    }

    #[cfg(unix)]
    #[test]
    fn the_error_is_the_last_error_line_on() {
        let stderr = "a warning\nerror: task 1 failed:\n  division by zero\n";
        assert_eq!(
            last_error(stderr, status(1)),
            "task 1 failed:\n  division by zero"
        );
        assert_eq!(last_error("error: no scheduler", status(1)), "no scheduler");
        let other = last_error("Traceback …\nKeyError: 'x'\n", status(1));
        assert!(other.contains("KeyError: 'x'"), "{other}");
        assert!(other.contains("exit status: 1"), "{other}");
    }

    #[test]
    fn the_package_is_written_whole_and_removed() {
        let dir = PackageDir::write().unwrap();
        let path = dir.0.clone();
        // every file of python/quarry_dask, as it is there (a file added
        // there and not to PACKAGE would be missing on the path)
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/quarry_dask");
        let mut files = 0;
        for entry in std::fs::read_dir(&source).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".py") {
                let written = std::fs::read_to_string(path.join("quarry_dask").join(&name));
                let there = std::fs::read_to_string(source.join(&name)).unwrap();
                assert_eq!(written.ok().as_deref(), Some(there.as_str()), "{name}");
                files += 1;
            }
        }
        assert_eq!(files, PACKAGE.len());
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn nothing_listening_is_a_clear_error() {
        // A port just freed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let e = check_reachable(&address).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot reach the Dask scheduler at {address}: ")),
            "{e}"
        );
        let e = check_reachable("no-such-host.invalid:8786")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no-such-host.invalid:8786"), "{e}");
    }

    #[test]
    fn a_python_that_is_not_there_is_a_clear_error() {
        let dask = Dask {
            scheduler: "127.0.0.1:1".into(),
            python: "/nonexistent/python3".into(),
            program: "quarry".into(),
            package: PackageDir::write().unwrap(),
            workers_seen: AtomicUsize::new(0),
        };
        let e = dask.check_python().unwrap_err().to_string();
        assert!(
            e.contains("cannot run Python '/nonexistent/python3'"),
            "{e}"
        );
        assert!(e.contains("QUARRY_PYTHON"), "{e}");
        assert!(e.contains("pip install -r python/requirements.txt"), "{e}");
    }

    #[test]
    fn a_python_that_lacks_dask_is_a_clear_error() {
        // A bare venv (python3 with venv is a requirement of the tests):
        // whatever the system has, dask is not in it.
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        let made = Command::new("python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(made.success());
        let python = venv.join("bin/python");
        let dask = Dask {
            scheduler: "127.0.0.1:1".into(),
            python: python.display().to_string(),
            program: "quarry".into(),
            package: PackageDir::write().unwrap(),
            workers_seen: AtomicUsize::new(0),
        };
        let e = dask.check_python().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "Python '{}' cannot run quarry's Dask submitter: cannot import dask.distributed: \
                 No module named 'dask'",
                python.display()
            )),
            "{e}"
        );
        assert!(e.contains(dask_pin()), "{e}");
        assert!(e.contains("pip install -r python/requirements.txt"), "{e}");
    }

    #[test]
    fn the_stage_list_has_each_stage_and_its_inputs() {
        let s = crate::Session::new(crate::SessionConfig::default().with_threads(2)).unwrap();
        s.sql("CREATE TABLE t AS SELECT i % 7 AS k, i AS v FROM range(0, 1000) r(i)")
            .unwrap();
        let graph = s
            .task_graph("SELECT k, count(*) FROM t GROUP BY k ORDER BY k")
            .unwrap();
        let list = stage_list(&graph);
        let json = serde_json::to_value(&list).unwrap();
        assert_eq!(json["version"], 1);
        let stages = json["stages"].as_array().unwrap();
        assert_eq!(stages.len(), graph.stages.len());
        for (entry, stage) in stages.iter().zip(&graph.stages) {
            assert_eq!(entry["id"], stage.id);
            assert_eq!(entry["partitions"], stage.partitions);
        }
        // A group-by reads a stage before it; the first stage reads none.
        assert_eq!(stages[0]["inputs"], serde_json::json!([]));
        assert!(stages
            .iter()
            .skip(1)
            .all(|s| !s["inputs"].as_array().unwrap().is_empty()));
    }
}
