//! Running a task graph: a pool of worker threads takes ready tasks; a task
//! is ready when every stage it reads has finished.

mod early_filter;
pub mod io;
pub mod memory;
mod scheduler;
pub mod spill;
mod task;

pub use scheduler::{
    run_graph, run_graph_each, Progress, ProgressFn, RunOptions, RunStats, TaskRecord,
};
pub use task::OpMetrics;
