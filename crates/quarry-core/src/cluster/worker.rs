//! A worker: runs tasks of task graphs that a driver left in an exchange
//! directory. `quarry worker run` runs one task and exits;
//! `quarry worker serve` stays up and runs the tasks that drivers send it
//! over TCP, one at a time per connection, all under one memory budget.
//!
//! The protocol is JSON, one object per line. On connecting, the worker
//! says `{"quarry_worker":1,"threads":…,"memory_limit":…}`; then each
//! request `{"exchange":"/dir","stage":3,"partition":1}` gets a reply
//! `{"done":{manifest}}` or `{"failed":"message"}`. A driver that closes
//! the connection cancels the task running for it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::exchange::{ExchangeDir, TaskEnv, TaskFiles, TaskManifest};
use super::shared::SharedBuilds;
use crate::catalog::ObjectStores;
use crate::error::{QuarryError, Result};
use crate::graph::{wire, TaskGraph};
use crate::runtime::memory::MemoryPool;
use crate::runtime::ready::TaskId;
use crate::runtime::{run_task, WORKER_STACK_BYTES};

/// The version of the protocol below; a driver refuses other ones.
pub const PROTOCOL: u32 = 1;

/// What a worker says when a driver connects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub quarry_worker: u32,
    /// Tasks the worker runs at once well (its cores).
    pub threads: usize,
    pub memory_limit: usize,
}

/// One task to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub exchange: PathBuf,
    pub stage: usize,
    pub partition: usize,
    /// Put the task's manifest in the exchange (`s<stage>/t<task>.json`).
    /// quarry's own driver says no: it has the manifest in the reply and
    /// writes one file per stage (see `exchange`); Dask and `worker run`
    /// leave it out, which means yes.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub task_manifest: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Done(TaskManifest),
    Failed(String),
}

/// How a worker runs its tasks.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub threads: usize,
    pub memory_limit: usize,
    pub temp_dir: PathBuf,
    /// Print a line to stderr as each task starts and ends.
    pub verbose: bool,
}

/// A worker's state across tasks: its memory budget, its object stores,
/// and the graphs it has read.
pub struct Worker {
    config: WorkerConfig,
    pool: Arc<MemoryPool>,
    stores: Arc<ObjectStores>,
    graphs: Mutex<HashMap<PathBuf, Arc<TaskGraph>>>,
    shared: SharedBuilds,
}

/// Graphs a worker keeps decoded; past that it starts over (a graph is
/// read again from the exchange when needed).
const MAX_CACHED_GRAPHS: usize = 16;

impl Worker {
    pub fn new(config: WorkerConfig) -> Self {
        Worker {
            pool: MemoryPool::new(config.memory_limit),
            config,
            stores: Arc::new(ObjectStores::default()),
            graphs: Mutex::new(HashMap::new()),
            shared: SharedBuilds::default(),
        }
    }

    fn graph(&self, exchange: &ExchangeDir) -> Result<Arc<TaskGraph>> {
        let path = exchange.root().to_path_buf();
        if let Some(g) = self.graphs.lock().ok().and_then(|m| m.get(&path).cloned()) {
            return Ok(g);
        }
        let bytes = exchange.graph()?;
        let started = Instant::now();
        let graph = Arc::new(wire::decode(&bytes, &self.stores)?);
        if self.config.verbose {
            eprintln!(
                "quarry worker: read the graph {} ({} bytes) in {:.1?}",
                path.display(),
                bytes.len(),
                started.elapsed()
            );
        }
        if let Ok(mut graphs) = self.graphs.lock() {
            if graphs.len() >= MAX_CACHED_GRAPHS {
                graphs.clear();
            }
            graphs.insert(path, graph.clone());
        }
        Ok(graph)
    }

    /// Runs one task of the graph in `request.exchange` and leaves its
    /// output and manifest there.
    pub fn run(&self, request: &Request, cancel: Arc<AtomicBool>) -> Result<TaskManifest> {
        let task = format!(
            "task {}.{} of {}",
            request.stage,
            request.partition,
            request.exchange.display()
        );
        if self.config.verbose {
            eprintln!("quarry worker: {task} started");
        }
        let result = self.run_quietly(request, cancel);
        if self.config.verbose {
            match &result {
                Ok(m) => eprintln!(
                    "quarry worker: {task} done in {} ms, {} rows in",
                    m.micros / 1000,
                    m.rows_in
                ),
                Err(e) => eprintln!("quarry worker: {task} failed: {e}"),
            }
        }
        result
    }

    fn run_quietly(&self, request: &Request, cancel: Arc<AtomicBool>) -> Result<TaskManifest> {
        // (not looked at first: for a store that is a request per task)
        let exchange = ExchangeDir::at(&request.exchange, &self.stores)?;
        self.shared.forget_ended(exchange.root(), &|root| {
            ExchangeDir::open(root, &self.stores).is_ok()
        });
        let graph = self.graph(&exchange)?;
        let env = TaskEnv {
            pool: self.pool.clone(),
            temp_dir: self.config.temp_dir.clone(),
            cancel,
            shared: &self.shared,
        };
        let task = (request.stage, request.partition);
        run_in(&graph, &exchange, task, env, request.task_manifest)
    }

    /// Accepts drivers on `listener` until the process ends; each
    /// connection gets a thread of its own.
    pub fn serve(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("quarry worker: cannot accept a connection: {e}");
                    continue;
                }
            };
            let worker = self.clone();
            let spawned = std::thread::Builder::new()
                .name("quarry-worker-conn".into())
                .stack_size(WORKER_STACK_BYTES)
                .spawn(move || {
                    if let Err(e) = worker.connection(stream) {
                        eprintln!("quarry worker: {e}");
                    }
                });
            if let Err(e) = spawned {
                eprintln!("quarry worker: cannot start a thread: {e}");
            }
        }
        Ok(())
    }

    /// Answers one driver's requests in turn. A thread of its own reads
    /// them, so that a closed connection cancels the task being run.
    fn connection(&self, stream: TcpStream) -> Result<()> {
        let io = |e: std::io::Error| QuarryError::Io(format!("connection to a driver: {e}"));
        // (small replies: Nagle's wait would add tens of ms per task)
        let _ = stream.set_nodelay(true);
        let mut out = stream.try_clone().map_err(io)?;
        let hello = Hello {
            quarry_worker: PROTOCOL,
            threads: self.config.threads,
            memory_limit: self.config.memory_limit,
        };
        write_line(&mut out, &hello)?;
        let current: Arc<Mutex<Option<Arc<AtomicBool>>>> = Arc::default();
        let (send, requests) = mpsc::channel::<String>();
        let watcher_current = current.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    return;
                }
            }
            // The driver is gone: whatever runs for it stops.
            if let Ok(Some(cancel)) = watcher_current.lock().map(|c| c.clone()) {
                cancel.store(true, Ordering::Relaxed);
            }
        });
        for line in requests {
            let reply = match serde_json::from_str::<Request>(&line) {
                Ok(request) => {
                    let cancel = Arc::new(AtomicBool::new(false));
                    if let Ok(mut c) = current.lock() {
                        *c = Some(cancel.clone());
                    }
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.run(&request, cancel)
                    }));
                    match result {
                        Ok(Ok(manifest)) => Reply::Done(manifest),
                        Ok(Err(e)) => Reply::Failed(e.to_string()),
                        Err(panic) => Reply::Failed(format!(
                            "internal error: a task panicked: {}",
                            crate::error::panic_message(panic.as_ref())
                        )),
                    }
                }
                Err(e) => Reply::Failed(format!("bad request: {e}")),
            };
            write_line(&mut out, &reply)?;
        }
        Ok(())
    }
}

/// Writes `value` as one line of JSON.
pub(crate) fn write_line(out: &mut impl Write, value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_vec(value)
        .map_err(|e| QuarryError::exec(format!("internal error: cannot encode: {e}")))?;
    text.push(b'\n');
    out.write_all(&text)
        .and_then(|()| out.flush())
        .map_err(|e| QuarryError::Io(format!("connection: {e}")))
}

/// Runs task (`stage`, `partition`) of `graph`, reading its inputs from
/// `exchange` and leaving its output there, and its manifest when
/// `task_manifest`.
pub fn run_in(
    graph: &TaskGraph,
    exchange: &ExchangeDir,
    (stage, partition): TaskId,
    env: TaskEnv<'_>,
    task_manifest: bool,
) -> Result<TaskManifest> {
    let Some(spec) = graph.stages.get(stage) else {
        return Err(QuarryError::exec(format!(
            "the task graph has no stage {stage} ({} stages)",
            graph.stages.len()
        )));
    };
    if partition >= spec.partitions {
        return Err(QuarryError::exec(format!(
            "stage {stage} has no task {partition} ({} tasks)",
            spec.partitions
        )));
    }
    let started = Instant::now();
    let cancel = env.cancel.clone();
    let files = TaskFiles::new(exchange, graph, (stage, partition), env);
    let output = run_task(spec, partition, &files, &cancel)?;
    files.finish(&output, started.elapsed().as_micros() as u64, task_manifest)
}
