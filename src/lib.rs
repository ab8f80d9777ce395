//! quarry: a SQL query engine over Parquet and CSV that runs a partitioned
//! task graph on all local cores. See docs/ARCHITECTURE.md for the flow of a query.

pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod exec;
pub mod graph;
pub mod optimizer;
pub mod plan;
pub mod runtime;
pub mod session;
pub mod sql;
pub mod tpch;

pub use error::{QuarryError, Result};
pub use session::{QueryResult, Session, SessionConfig};
