//! Running a task graph: a pool of worker threads takes ready tasks; a task
//! is ready when every stage it reads has finished.

pub mod io;
mod scheduler;
mod task;

pub use scheduler::{run_graph, Progress, ProgressFn, RunStats, TaskRecord};
pub use task::OpMetrics;
