//! quarry's engine: a SQL query engine over Parquet, CSV and JSON files
//! (local, globs or object stores) that runs a partitioned task graph on all
//! local cores, within a memory budget, spilling to disk past it — or on a
//! cluster of `quarry worker` processes.
//!
//! The one entry point is a [`Session`]: it owns the catalog and the
//! settings, and [`Session::sql`] runs SQL text and returns the last
//! statement's [`QueryResult`], a schema and Arrow `RecordBatch`es
//! ([`Session::sql_each`] hands over each statement's result in turn).
//! Errors are [`QuarryError`] values, never panics.
//!
//! ```
//! use quarry_core::{Session, SessionConfig};
//!
//! let session = Session::new(SessionConfig::default().with_threads(2))?;
//! session.sql("CREATE TABLE t AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'a')) v(n, s)")?;
//! let result = session.sql("SELECT s, sum(n) AS total FROM t GROUP BY s ORDER BY s")?;
//! assert_eq!(result.num_rows(), 2);
//! let batch = &result.batches[0];
//! assert_eq!(result.schema.field(1).name(), "total");
//! assert_eq!(batch.num_columns(), 2);
//! # Ok::<(), quarry_core::QuarryError>(())
//! ```
//!
//! `examples/embed.rs` queries a CSV file. The modules follow a query's path:
//! [`sql`] (parse and bind) → [`plan`] → [`optimizer`] → [`graph`] (stages
//! and tasks) → [`runtime`] (scheduler, memory, spill) → [`exec`] (the
//! operators), with [`catalog`] for tables and [`cluster`] for running a
//! graph on other processes; docs/ARCHITECTURE.md in the repository
//! describes them.

pub mod catalog;
pub mod cluster;
pub mod error;
pub mod exec;
pub mod graph;
pub mod optimizer;
pub mod plan;
pub mod runtime;
pub mod session;
pub mod sql;

pub use error::{QuarryError, Result};
pub use session::{QueryResult, Session, SessionConfig};
