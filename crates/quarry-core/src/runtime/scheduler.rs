//! The scheduler: worker threads pull ready tasks from a shared queue. When a
//! stage's last task ends, the stages that read it become ready. A failed or
//! panicking task fails the query; the other workers stop picking up work.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;

use super::memory::MemoryPool;
use super::ready::ReadyTasks;
use super::task::{run_task, OpMetrics, PartitionStore};
use crate::error::{QuarryError, Result};
use crate::graph::TaskGraph;

/// One task as it ran, for profiles: times are since the query started.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub stage: usize,
    pub partition: usize,
    pub worker: usize,
    pub start: Duration,
    pub end: Duration,
    pub rows_in: usize,
}

/// How far a running query is, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub tasks_done: usize,
    pub tasks_total: usize,
    pub rows_read: usize,
    /// Bytes read from files and object stores so far.
    pub bytes_fetched: u64,
    pub elapsed: Duration,
}

/// Called after each finished task.
pub type ProgressFn = dyn Fn(&Progress) + Send + Sync;

/// Expressions up to the binder's depth limit recurse deeper than a
/// default 2 MiB thread stack allows in debug builds.
pub(crate) const WORKER_STACK_BYTES: usize = 32 << 20;

/// Figures of one run, for EXPLAIN ANALYZE, profiles and tests.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub tasks: usize,
    /// Rows that tasks read from their sources (scans and exchanges).
    pub rows_read: usize,
    /// Bytes that scans read from files and object stores.
    pub bytes_fetched: u64,
    /// Busy time of each worker thread.
    pub busy: Vec<Duration>,
    pub elapsed: Duration,
    /// Every task, in the order they finished.
    pub task_records: Vec<TaskRecord>,
    /// Per stage, per operator: the sum over the stage's tasks.
    pub op_metrics: Vec<Vec<OpMetrics>>,
    /// Per stage, per operator: its name, as EXPLAIN shows it.
    pub op_names: Vec<Vec<String>>,
    /// Per stage: rows its tasks read from their source.
    pub stage_rows_in: Vec<usize>,
    /// Bytes and files spilled: by the partition store and by operators.
    pub spilled_bytes: u64,
    pub spill_files: usize,
    /// The most memory reserved at once.
    pub peak_memory: usize,
    /// Times a worker held back a ready task because memory use was past
    /// the pause threshold.
    pub pauses: usize,
    /// Tasks run again because the cluster worker running them was lost.
    pub retries: usize,
    /// Of a run on a cluster: what the distribution cost.
    pub cluster: Option<ClusterFigures>,
}

/// What running on a cluster added to a run.
#[derive(Debug, Clone, Default)]
pub struct ClusterFigures {
    /// Per task, the driver's time from sending it to having the reply,
    /// beyond the task's own time on the worker (the round trip, reading
    /// the graph, waiting for a worker's shared build side).
    pub overhead: Duration,
    /// The files tasks wrote to the exchange, and their bytes.
    pub exchange_files: usize,
    pub exchange_bytes: u64,
}

struct State {
    tasks: ReadyTasks,
    rows_read: usize,
    bytes_fetched: u64,
    tasks_done: usize,
    records: Vec<TaskRecord>,
    op_metrics: Vec<Vec<OpMetrics>>,
    stage_rows_in: Vec<usize>,
    error: Option<QuarryError>,
    /// Tasks being run now.
    running: usize,
    /// Times a worker waited for memory before starting a task.
    pauses: usize,
}

/// Runs every task of `graph` on `threads` workers and returns the output.
/// How to run a graph.
pub struct RunOptions<'a> {
    pub threads: usize,
    pub cancel: Arc<AtomicBool>,
    pub progress: Option<&'a ProgressFn>,
    pub memory: Arc<MemoryPool>,
    pub temp_dir: PathBuf,
    /// The share of the memory limit in use above which no new task starts
    /// while another one runs.
    pub memory_pause: f64,
}

/// Runs every task of `graph` and returns the output and the run's figures.
pub fn run_graph(
    graph: &TaskGraph,
    options: RunOptions<'_>,
) -> Result<(Vec<RecordBatch>, RunStats)> {
    let mut output = Vec::new();
    let stats = run_graph_each(graph, options, &mut |b| {
        output.push(b);
        Ok(())
    })?;
    Ok((output, stats))
}

/// Runs every task of `graph`, then hands the output to `on_batch` a batch
/// at a time, in order, and returns the run's figures. The output waits in
/// the partition store, which spills it under memory pressure, so a result
/// larger than memory passes through (COPY … TO writes it so).
pub fn run_graph_each(
    graph: &TaskGraph,
    options: RunOptions<'_>,
    on_batch: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<RunStats> {
    let RunOptions {
        threads,
        cancel,
        progress,
        memory,
        temp_dir,
        memory_pause,
    } = options;
    let pause_bytes = (memory.limit() as f64 * memory_pause) as usize;
    let n = graph.stages.len();
    let store = PartitionStore::new(&graph.stages, memory, temp_dir, cancel.clone());
    let cancel: &AtomicBool = &cancel;
    let state = Mutex::new(State {
        tasks: ReadyTasks::new(graph),
        rows_read: 0,
        bytes_fetched: 0,
        tasks_done: 0,
        records: Vec::new(),
        op_metrics: graph
            .stages
            .iter()
            .map(|s| vec![OpMetrics::default(); s.ops.len()])
            .collect(),
        stage_rows_in: vec![0; n],
        error: None,
        running: 0,
        pauses: 0,
    });
    let wake = Condvar::new();
    let started = Instant::now();
    let workers = threads.max(1);
    let busy: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|id| {
                let ctx = WorkerContext {
                    id,
                    graph,
                    store: &store,
                    state: &state,
                    wake: &wake,
                    cancel,
                    progress,
                    started,
                    pause_bytes,
                };
                // Expressions up to the binder's depth limit recurse deeper
                // than a default 2 MiB thread stack allows in debug builds.
                let builder = std::thread::Builder::new()
                    .name(format!("quarry-worker-{id}"))
                    .stack_size(WORKER_STACK_BYTES);
                match builder.spawn_scoped(scope, move || worker(ctx)) {
                    Ok(handle) => handle,
                    Err(_) => scope.spawn(move || worker(ctx)),
                }
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut st = lock(&state)?;
    if let Some(e) = st.error.take() {
        return Err(e);
    }
    if !st.tasks.all_done() {
        return Err(QuarryError::exec(
            "internal error: the task graph did not finish",
        ));
    }
    let stats = RunStats {
        tasks: graph.stages.iter().map(|s| s.partitions).sum(),
        rows_read: st.rows_read,
        bytes_fetched: st.bytes_fetched,
        task_records: std::mem::take(&mut st.records),
        op_metrics: std::mem::take(&mut st.op_metrics),
        op_names: graph
            .stages
            .iter()
            .map(|s| s.ops.iter().map(|o| o.name()).collect())
            .collect(),
        stage_rows_in: std::mem::take(&mut st.stage_rows_in),
        pauses: st.pauses,
        busy,
        elapsed: started.elapsed(),
        ..RunStats::default()
    };
    store.take_each(n - 1, on_batch)?;
    let (mut spilled_bytes, mut spill_files) = store.spilled();
    for m in stats.op_metrics.iter().flatten() {
        spilled_bytes += m.spilled.bytes;
        spill_files += m.spilled.files;
    }
    let stats = RunStats {
        spilled_bytes,
        spill_files,
        peak_memory: store.memory_pool().peak(),
        ..stats
    };
    Ok(stats)
}

fn lock(state: &Mutex<State>) -> Result<std::sync::MutexGuard<'_, State>> {
    state
        .lock()
        .map_err(|_| QuarryError::exec("internal error: scheduler state poisoned"))
}

/// What a worker thread needs.
#[derive(Clone, Copy)]
struct WorkerContext<'a> {
    id: usize,
    graph: &'a TaskGraph,
    store: &'a PartitionStore,
    state: &'a Mutex<State>,
    wake: &'a Condvar,
    cancel: &'a AtomicBool,
    progress: Option<&'a ProgressFn>,
    started: Instant,
    pause_bytes: usize,
}

fn worker(ctx: WorkerContext<'_>) -> Duration {
    let WorkerContext {
        id,
        graph,
        store,
        state,
        wake,
        cancel,
        progress,
        started,
        pause_bytes,
    } = ctx;
    let mut busy = Duration::ZERO;
    loop {
        let (s, p) = {
            let Ok(mut st) = state.lock() else {
                return busy;
            };
            loop {
                if st.error.is_some() || st.tasks.all_done() {
                    return busy;
                }
                // Under memory pressure, let running tasks finish (and free)
                // before starting more; one task always runs.
                let paused = st.running > 0 && store.memory_pool().used() > pause_bytes;
                if !paused {
                    if let Some(t) = st.tasks.pop() {
                        st.running += 1;
                        break t;
                    }
                } else if st.tasks.has_ready() {
                    st.pauses += 1;
                }
                // (memory is also freed outside the scheduler's sight: look again soon)
                st = match wake.wait_timeout(st, Duration::from_millis(20)) {
                    Ok((g, _)) => g,
                    Err(_) => return busy,
                };
            }
        };
        let t0 = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_task(&graph.stages[s], p, store, cancel)
        }));
        busy += t0.elapsed();
        let Ok(mut st) = state.lock() else {
            return busy;
        };
        st.running -= 1;
        let mut report = None;
        match result {
            Ok(Ok(output)) => {
                st.rows_read += output.rows_in;
                st.bytes_fetched += output.bytes_fetched;
                st.tasks_done += 1;
                st.stage_rows_in[s] += output.rows_in;
                for (total, m) in st.op_metrics[s].iter_mut().zip(&output.metrics) {
                    total.rows_out += m.rows_out;
                    total.time += m.time;
                    total.spilled += m.spilled;
                }
                st.records.push(TaskRecord {
                    stage: s,
                    partition: p,
                    worker: id,
                    start: t0.duration_since(started),
                    end: started.elapsed(),
                    rows_in: output.rows_in,
                });
                report = Some(Progress {
                    tasks_done: st.tasks_done,
                    tasks_total: graph.stages.iter().map(|s| s.partitions).sum(),
                    rows_read: st.rows_read,
                    bytes_fetched: st.bytes_fetched,
                    elapsed: started.elapsed(),
                });
                st.tasks.finished(s);
            }
            Ok(Err(e)) => {
                st.error.get_or_insert(e);
                cancel.store(true, Ordering::Relaxed);
            }
            Err(panic) => {
                let msg = crate::error::panic_message(panic.as_ref());
                st.error.get_or_insert(QuarryError::exec(format!(
                    "internal error: a task panicked: {msg}"
                )));
                cancel.store(true, Ordering::Relaxed);
            }
        }
        wake.notify_all();
        drop(st);
        if let (Some(f), Some(r)) = (progress, report) {
            f(&r);
        }
    }
}
