//! Running a task graph on several processes or machines. The driver (the
//! session that planned the query) writes the encoded graph to an exchange
//! directory every worker shares; workers run its tasks and leave their
//! output there as Arrow IPC files (`exchange`); the driver reads the last
//! stage's output back.
//!
//! Who schedules the tasks depends on the cluster:
//! - `local:N` starts N `quarry worker serve` processes on this machine,
//!   and `quarry://HOST:PORT,…` connects to running ones; quarry's own
//!   driver (`driver`) hands them tasks and retries a lost worker's task.
//! - `dask://HOST:PORT` submits the graph to a Dask scheduler (`dask`),
//!   whose workers each run a `quarry worker serve` beside them.

pub mod dask;
pub mod driver;
pub mod exchange;
pub mod place;
pub mod shared;
pub mod worker;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;

use arrow::record_batch::RecordBatch;

use self::driver::{ClusterStats, Slot, TaskError};
use self::exchange::{ExchangeDir, TaskManifest};
use self::worker::{write_line, Hello, Reply, Request, PROTOCOL};
use crate::catalog::ObjectStores;
use crate::error::{QuarryError, Result};
use crate::graph::{wire, TaskGraph};
use crate::runtime::ready::TaskId;
use crate::runtime::ProgressFn;

/// Where a query's tasks run, as `SET cluster = '…'` or `--cluster` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSpec {
    /// N worker processes this session starts (and stops) itself.
    Local(usize),
    /// Workers already running (`quarry worker serve`), by address.
    Workers(Vec<String>),
    /// The workers of a Dask scheduler, by its HOST:PORT.
    Dask(String),
}

impl ClusterSpec {
    pub fn parse(text: &str) -> Result<ClusterSpec> {
        let text = text.trim().trim_matches('\'');
        let bad = |why: &str| {
            QuarryError::Config(format!(
                "invalid cluster '{text}': {why} (expected local:N or quarry://HOST:PORT[,HOST:PORT…], or dask://HOST:PORT)"
            ))
        };
        if let Some(n) = text.strip_prefix("local:") {
            return match n.parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => Ok(ClusterSpec::Local(n)),
                _ => Err(bad("the number of workers must be 1 to 64")),
            };
        }
        if let Some(list) = text.strip_prefix("quarry://") {
            let addrs: Vec<String> = list
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
            if addrs.is_empty() || addrs.iter().any(|a| !a.contains(':')) {
                return Err(bad("each worker is HOST:PORT"));
            }
            return Ok(ClusterSpec::Workers(addrs));
        }
        if let Some(address) = text.strip_prefix("dask://") {
            let address = address.trim().trim_end_matches('/');
            return match address.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(ClusterSpec::Dask(address.to_string()))
                }
                _ => Err(bad("the Dask scheduler is HOST:PORT")),
            };
        }
        Err(bad("unknown kind of cluster"))
    }
}

impl std::fmt::Display for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterSpec::Local(n) => write!(f, "local:{n}"),
            ClusterSpec::Workers(a) => write!(f, "quarry://{}", a.join(",")),
            ClusterSpec::Dask(a) => write!(f, "dask://{a}"),
        }
    }
}

/// The workers of a cluster: their addresses, and the processes of those
/// this session started (stopped when it is dropped).
pub struct Cluster {
    spec: ClusterSpec,
    addresses: Vec<String>,
    children: Vec<Child>,
    /// The scheduler, when a Dask cluster runs the tasks.
    dask: Option<dask::Dask>,
}

impl Cluster {
    /// Starts or finds the workers `spec` names. Local workers are this
    /// program run as `quarry worker serve` (`program`), each with
    /// `worker_args` (its memory limit, say).
    pub fn start(spec: &ClusterSpec, program: &Path, worker_args: &[String]) -> Result<Cluster> {
        let mut cluster = Cluster {
            spec: spec.clone(),
            addresses: Vec::new(),
            children: Vec::new(),
            dask: None,
        };
        match spec {
            ClusterSpec::Workers(addrs) => cluster.addresses = addrs.clone(),
            // (the workers are the Dask cluster's: `worker_args` are not theirs)
            ClusterSpec::Dask(scheduler) => {
                cluster.dask = Some(dask::Dask::start(scheduler, program)?)
            }
            ClusterSpec::Local(n) => {
                for _ in 0..*n {
                    let (child, address) = spawn_worker(program, worker_args)?;
                    cluster.children.push(child);
                    cluster.addresses.push(address);
                }
            }
        }
        Ok(cluster)
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// The workers, counting those that do not answer (any more); on
    /// Dask, those that ran tasks of the last query.
    pub fn workers(&self) -> usize {
        match &self.dask {
            Some(dask) => dask.workers(),
            None => self.addresses.len(),
        }
    }

    /// The process ids of the workers this session started (for tests that
    /// stop one).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.children.iter().map(|c| c.id()).collect()
    }

    /// Runs `graph` on the workers: its output, in order, and the run's
    /// figures. The query's files are removed at the end, whatever happens.
    pub fn run(
        &self,
        graph: &TaskGraph,
        exchange_parent: &Path,
        stores: &ObjectStores,
        cancel: &AtomicBool,
        progress: Option<&ProgressFn>,
    ) -> Result<(Vec<RecordBatch>, ClusterStats)> {
        let exchange = ExchangeDir::create(&query_dir(exchange_parent), stores)?;
        if exchange.is_remote() && self.dask.is_some() {
            return Err(QuarryError::Config(format!(
                "an exchange in an object store ('{}') works with quarry's own workers (local:N, quarry://…), not on Dask: set exchange_directory to a directory every Dask worker shares",
                exchange_parent.display()
            )));
        }
        let result = self.run_in(graph, &exchange, cancel, progress);
        let removed = exchange.remove();
        let out = result?;
        removed?;
        Ok(out)
    }

    fn run_in(
        &self,
        graph: &TaskGraph,
        exchange: &ExchangeDir,
        cancel: &AtomicBool,
        progress: Option<&ProgressFn>,
    ) -> Result<(Vec<RecordBatch>, ClusterStats)> {
        exchange.put_graph(wire::encode(graph)?)?;
        if let Some(dask) = &self.dask {
            let stats = dask.run(graph, exchange, cancel, progress)?;
            return Ok((read_output(graph, exchange)?, stats));
        }
        let mut slots: Vec<Box<dyn Slot>> = Vec::new();
        let mut unreachable = Vec::new();
        for (w, address) in self.addresses.iter().enumerate() {
            match TcpSlot::connect(w, address) {
                Ok((first, hello)) => {
                    slots.push(Box::new(first));
                    for _ in 1..hello.threads.max(1) {
                        slots.push(Box::new(TcpSlot::connect(w, address)?.0));
                    }
                }
                Err(e) => unreachable.push(e.to_string()),
            }
        }
        if slots.is_empty() {
            return Err(QuarryError::Config(format!(
                "no worker of cluster {} answers: {}",
                self.spec,
                unreachable.join("; ")
            )));
        }
        let stats = driver::run_tasks(graph, exchange, slots, cancel, progress)?;
        let output = read_output(graph, exchange)?;
        Ok((output, stats))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The output of the graph's last stage, partition by partition.
pub fn read_output(graph: &TaskGraph, exchange: &ExchangeDir) -> Result<Vec<RecordBatch>> {
    let Some(last) = graph.stages.last() else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for p in 0..last.partitions {
        for b in exchange.read(last.id, last.partitions, Some(p))? {
            out.push(b?);
        }
    }
    Ok(out)
}

/// A directory for one query under `parent`, named so that queries of
/// different drivers and of one driver do not meet (the time tells apart
/// drivers of one process id on different machines sharing `parent`).
fn query_dir(parent: &Path) -> PathBuf {
    parent.join(format!("quarry-query-{}", place::unique_name()))
}

/// Starts `program worker serve` on a free local port; returns the process
/// and the address it listens on (the first line it prints).
fn spawn_worker(program: &Path, worker_args: &[String]) -> Result<(Child, String)> {
    let mut child = Command::new(program)
        .args(["worker", "serve", "--listen", "127.0.0.1:0"])
        .args(worker_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            QuarryError::Io(format!(
                "cannot start a worker ('{} worker serve'): {e}",
                program.display()
            ))
        })?;
    let line = child.stdout.take().and_then(|out| {
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).ok()?;
        Some(line)
    });
    match line
        .as_deref()
        .and_then(|l| l.trim().strip_prefix(LISTENING))
    {
        Some(address) => Ok((child, address.trim().to_string())),
        None => {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            Err(QuarryError::Io(format!(
                "a worker ('{} worker serve') did not start ({status})",
                program.display()
            )))
        }
    }
}

/// What `quarry worker serve` prints first, before its address.
pub const LISTENING: &str = "quarry worker listening on ";

/// A connection to a worker, running one task at a time.
struct TcpSlot {
    worker: usize,
    address: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl TcpSlot {
    fn connect(worker: usize, address: &str) -> Result<(TcpSlot, Hello)> {
        let io =
            |e: std::io::Error| QuarryError::Io(format!("cannot connect to worker {address}: {e}"));
        let stream = TcpStream::connect(address).map_err(io)?;
        let _ = stream.set_nodelay(true);
        let writer = stream.try_clone().map_err(io)?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(io)?;
        let hello: Hello = serde_json::from_str(&line).map_err(|_| {
            QuarryError::Io(format!(
                "{address} is not a quarry worker (it said {line:?})"
            ))
        })?;
        if hello.quarry_worker != PROTOCOL {
            return Err(QuarryError::Io(format!(
                "worker {address} speaks protocol {} (this quarry: {PROTOCOL}); run the same quarry on every node",
                hello.quarry_worker
            )));
        }
        Ok((
            TcpSlot {
                worker,
                address: address.to_string(),
                reader,
                writer,
            },
            hello,
        ))
    }
}

impl Slot for TcpSlot {
    fn worker(&self) -> usize {
        self.worker
    }

    fn interrupter(&self) -> Box<dyn Fn() + Send + Sync> {
        let stream = self.writer.try_clone().ok();
        Box::new(move || {
            if let Some(s) = &stream {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        })
    }

    fn run(
        &mut self,
        exchange: &ExchangeDir,
        (stage, partition): TaskId,
    ) -> std::result::Result<TaskManifest, TaskError> {
        let request = Request {
            exchange: exchange.root().to_path_buf(),
            stage,
            partition,
            task_manifest: false,
        };
        let lost = |why: String| TaskError::Lost(format!("{}: {why}", self.address));
        write_line(&mut self.writer, &request).map_err(|e| lost(e.to_string()))?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => return Err(lost("the connection closed".into())),
            Ok(_) => {}
            Err(e) => return Err(lost(e.to_string())),
        }
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Done(manifest)) => Ok(manifest),
            Ok(Reply::Failed(message)) => Err(TaskError::Failed(QuarryError::Execution(message))),
            Err(e) => Err(lost(format!("bad reply {line:?}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests;
