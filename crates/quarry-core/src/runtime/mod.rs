//! Running a task graph: a pool of worker threads takes ready tasks; a task
//! is ready when every stage it reads has finished.

mod early_filter;
pub mod io;
pub mod memory;
pub mod ready;
mod scheduler;
pub mod spill;
mod task;

pub(crate) use scheduler::WORKER_STACK_BYTES;
pub use scheduler::{
    run_graph, run_graph_each, ClusterFigures, Progress, ProgressFn, RunOptions, RunStats,
    TaskRecord,
};
pub(crate) use task::key_set_of;
pub use task::{run_task, Batches, OpMetrics, StageIo, TaskOutput};
