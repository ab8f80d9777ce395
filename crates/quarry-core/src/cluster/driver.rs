//! The driver of a run on quarry's own workers: it hands ready tasks to
//! workers' free slots (one connection each), runs a task again on another
//! worker when its worker is lost, and fails the query when a task fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::exchange::{ExchangeDir, TaskManifest};
use crate::error::{QuarryError, Result};
use crate::graph::TaskGraph;
use crate::runtime::ready::{ReadyTasks, TaskId};
use crate::runtime::{ClusterFigures, OpMetrics, Progress, ProgressFn, RunStats, TaskRecord};

/// Why a task did not finish.
#[derive(Debug)]
pub enum TaskError {
    /// The worker is gone (its process died or the connection broke): the
    /// task runs again elsewhere.
    Lost(String),
    /// The task itself failed: so does the query.
    Failed(QuarryError),
}

/// A place to run one task at a time: a connection to a worker.
pub trait Slot: Send {
    /// Which worker the slot is on (a lost worker's other slots are lost too).
    fn worker(&self) -> usize;
    fn run(
        &mut self,
        exchange: &ExchangeDir,
        task: TaskId,
    ) -> std::result::Result<TaskManifest, TaskError>;
    /// What stops the task running now from another thread (on cancel):
    /// for a connection, closing it, which the worker takes as a cancel.
    fn interrupter(&self) -> Box<dyn Fn() + Send + Sync>;
}

/// Runs of a task at most, counting the first: a task whose workers keep
/// dying is likely what kills them.
const MAX_ATTEMPTS: usize = 4;

/// What a run on a cluster did.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Every finished task's manifest, in the order they finished.
    pub manifests: Vec<TaskManifest>,
    /// Per finished task (same order): its worker, and when the driver
    /// sent it and had the reply, since the run started.
    pub runs: Vec<(usize, Duration, Duration)>,
    /// Tasks run again because their worker was lost.
    pub retries: usize,
    pub elapsed: Duration,
}

impl ClusterStats {
    /// The figures of a local run, from the manifests and the driver's
    /// clock; `workers` as the cluster counts them.
    pub fn run_stats(&self, graph: &TaskGraph, workers: usize) -> RunStats {
        let m = &self.manifests;
        let mut op_metrics: Vec<Vec<OpMetrics>> = graph
            .stages
            .iter()
            .map(|s| vec![OpMetrics::default(); s.ops.len()])
            .collect();
        let mut stage_rows_in = vec![0; graph.stages.len()];
        let mut busy = vec![Duration::ZERO; workers];
        let mut task_records = Vec::new();
        let mut task_time = Duration::ZERO;
        let mut round_trips = Duration::ZERO;
        for (t, &(worker, start, end)) in m.iter().zip(&self.runs) {
            let time = Duration::from_micros(t.micros);
            if let Some(ops) = op_metrics.get_mut(t.stage) {
                for (total, f) in ops.iter_mut().zip(&t.ops) {
                    let f = OpMetrics::from(f);
                    total.rows_out += f.rows_out;
                    total.time += f.time;
                    total.spilled += f.spilled;
                }
            }
            if let Some(rows) = stage_rows_in.get_mut(t.stage) {
                *rows += t.rows_in;
            }
            if let Some(b) = busy.get_mut(worker) {
                *b += time;
            }
            task_time += time;
            round_trips += end.saturating_sub(start);
            task_records.push(TaskRecord {
                stage: t.stage,
                partition: t.partition,
                worker,
                start,
                end,
                rows_in: t.rows_in,
            });
        }
        RunStats {
            tasks: m.len(),
            rows_read: m.iter().map(|t| t.rows_in).sum(),
            bytes_fetched: m.iter().map(|t| t.bytes_fetched).sum(),
            spilled_bytes: m.iter().map(|t| t.spilled_bytes).sum(),
            spill_files: op_metrics.iter().flatten().map(|o| o.spilled.files).sum(),
            elapsed: self.elapsed,
            retries: self.retries,
            op_names: graph
                .stages
                .iter()
                .map(|s| s.ops.iter().map(|o| o.name()).collect())
                .collect(),
            op_metrics,
            stage_rows_in,
            busy,
            task_records,
            cluster: Some(ClusterFigures {
                overhead: round_trips.saturating_sub(task_time) / (m.len().max(1) as u32),
                exchange_files: m.iter().filter(|t| t.file.is_some()).count(),
                exchange_bytes: m.iter().flat_map(|t| &t.outputs).map(|o| o.bytes).sum(),
            }),
            ..Default::default()
        }
    }
}

struct State {
    tasks: ReadyTasks,
    /// Per stage, the manifests of its finished tasks.
    done: Vec<Vec<Option<TaskManifest>>>,
    attempts: std::collections::HashMap<TaskId, usize>,
    stats: ClusterStats,
    error: Option<QuarryError>,
    /// Slots still working.
    live: usize,
}

/// Runs every task of `graph` on `slots`; each task's output is in
/// `exchange` when this returns.
pub fn run_tasks(
    graph: &TaskGraph,
    exchange: &ExchangeDir,
    slots: Vec<Box<dyn Slot>>,
    cancel: &AtomicBool,
    progress: Option<&ProgressFn>,
) -> Result<ClusterStats> {
    if slots.is_empty() {
        return Err(QuarryError::Config("the cluster has no workers".into()));
    }
    let started = Instant::now();
    let state = Mutex::new(State {
        tasks: ReadyTasks::new(graph),
        done: graph
            .stages
            .iter()
            .map(|s| vec![None; s.partitions])
            .collect(),
        attempts: Default::default(),
        stats: ClusterStats::default(),
        error: None,
        live: slots.len(),
    });
    let wake = Condvar::new();
    let interrupters: Vec<_> = slots.iter().map(|s| s.interrupter()).collect();
    // Dropped when the slots are done: the watcher below returns at once
    // (a sleep there would add to every query).
    let (finished, done) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let drivers: Vec<_> = slots
            .into_iter()
            .map(|slot| {
                let (state, wake) = (&state, &wake);
                scope.spawn(move || drive(slot, exchange, state, wake, cancel, progress, started))
            })
            .collect();
        // The slots wait on their workers: on cancel, cut them off.
        scope.spawn(move || loop {
            if cancel.load(Ordering::Relaxed) {
                interrupters.iter().for_each(|stop| stop());
                return;
            }
            if done.recv_timeout(Duration::from_millis(20)) != Err(RecvTimeoutError::Timeout) {
                return;
            }
        });
        for d in drivers {
            let _ = d.join();
        }
        drop(finished);
    });
    let mut st = state
        .into_inner()
        .map_err(|_| QuarryError::exec("internal error: driver state poisoned"))?;
    if let Some(e) = st.error.take() {
        return Err(e);
    }
    if !st.tasks.all_done() {
        return Err(QuarryError::exec(
            "internal error: the task graph did not finish",
        ));
    }
    st.stats.elapsed = started.elapsed();
    Ok(st.stats)
}

/// Records a finished task's manifest; the stage's last one puts them all
/// in the exchange, before the stages that read it get ready.
fn stage_done(
    st: &mut State,
    exchange: &ExchangeDir,
    (stage, partition): TaskId,
    manifest: &TaskManifest,
) -> Result<()> {
    let done = &mut st.done[stage];
    done[partition] = Some(manifest.clone());
    if done.iter().all(Option::is_some) {
        let manifests: Vec<TaskManifest> = done.iter_mut().filter_map(Option::take).collect();
        exchange.write_stage_manifests(stage, &manifests)?;
    }
    Ok(())
}

/// One slot's loop: take a ready task, run it, record what came of it.
fn drive(
    mut slot: Box<dyn Slot>,
    exchange: &ExchangeDir,
    state: &Mutex<State>,
    wake: &Condvar,
    cancel: &AtomicBool,
    progress: Option<&ProgressFn>,
    started: Instant,
) {
    loop {
        let task = {
            let Ok(mut st) = state.lock() else { return };
            loop {
                if st.error.is_some() || st.tasks.all_done() {
                    return;
                }
                if cancel.load(Ordering::Relaxed) {
                    st.error.get_or_insert(QuarryError::Cancelled);
                    wake.notify_all();
                    return;
                }
                if let Some(t) = st.tasks.pop() {
                    *st.attempts.entry(t).or_default() += 1;
                    break t;
                }
                st = match wake.wait_timeout(st, Duration::from_millis(20)) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
        };
        let sent = started.elapsed();
        let result = slot.run(exchange, task);
        let replied = started.elapsed();
        let Ok(mut st) = state.lock() else { return };
        let mut report = None;
        let mut lost = false;
        match result {
            Ok(manifest) => {
                if let Err(e) = stage_done(&mut st, exchange, task, &manifest) {
                    st.error.get_or_insert(e);
                }
                st.tasks.finished(task.0);
                st.stats.manifests.push(manifest);
                st.stats.runs.push((slot.worker(), sent, replied));
                report = Some(Progress {
                    tasks_done: st.stats.manifests.len(),
                    tasks_total: st.tasks.total(),
                    rows_read: st.stats.manifests.iter().map(|m| m.rows_in).sum(),
                    bytes_fetched: st.stats.manifests.iter().map(|m| m.bytes_fetched).sum(),
                    elapsed: started.elapsed(),
                });
            }
            Err(_) if cancel.load(Ordering::Relaxed) => {
                st.error.get_or_insert(QuarryError::Cancelled);
            }
            Err(TaskError::Failed(e)) => {
                st.error.get_or_insert(e);
            }
            Err(TaskError::Lost(why)) => {
                lost = true;
                st.live -= 1;
                let attempts = st.attempts.get(&task).copied().unwrap_or(0);
                if attempts >= MAX_ATTEMPTS {
                    st.error.get_or_insert(QuarryError::exec(format!(
                        "task {} of stage {} was lost {attempts} times, the last: {why}",
                        task.1, task.0
                    )));
                } else if st.live == 0 {
                    st.error.get_or_insert(QuarryError::exec(format!(
                        "every worker of the cluster was lost (the last: {why})"
                    )));
                } else {
                    eprintln!(
                        "quarry: worker {} lost ({why}); task {} of stage {} runs again",
                        slot.worker(),
                        task.1,
                        task.0
                    );
                    st.stats.retries += 1;
                    st.tasks.retry(task);
                }
            }
        }
        wake.notify_all();
        drop(st);
        if let (Some(f), Some(r)) = (progress, report) {
            f(&r);
        }
        if lost {
            return;
        }
    }
}
