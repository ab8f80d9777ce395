//! The one error type of the engine. Every user-facing failure is a value of
//! this type: the CLI prints it, the session goes on.

use std::fmt;

/// A place in the SQL text (1-based), when the error can point at one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuarryError {
    /// The SQL text does not parse.
    #[error("syntax error: {message}")]
    Syntax {
        message: String,
        location: Option<Location>,
    },
    /// The SQL parses but cannot be planned: unknown names, type mismatches, unsupported features.
    #[error("{message}{}", location.map(|l| format!(" (at {l})")).unwrap_or_default())]
    Plan {
        message: String,
        location: Option<Location>,
    },
    /// A file or table could not be read.
    #[error("{0}")]
    Io(String),
    /// Something went wrong while the query ran.
    #[error("{0}")]
    Execution(String),
    /// A setting or command-line value is not valid.
    #[error("{0}")]
    Config(String),
    /// The query was cancelled.
    #[error("query cancelled")]
    Cancelled,
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

impl QuarryError {
    pub fn plan(message: impl Into<String>) -> Self {
        QuarryError::Plan {
            message: message.into(),
            location: None,
        }
    }

    pub fn plan_at(message: impl Into<String>, location: Option<Location>) -> Self {
        QuarryError::Plan {
            message: message.into(),
            location,
        }
    }

    pub fn exec(message: impl Into<String>) -> Self {
        QuarryError::Execution(message.into())
    }

    /// Where in the SQL text the error is, if known.
    pub fn location(&self) -> Option<Location> {
        match self {
            QuarryError::Syntax { location, .. } | QuarryError::Plan { location, .. } => *location,
            _ => None,
        }
    }
}

impl From<datafusion_common::DataFusionError> for QuarryError {
    fn from(e: datafusion_common::DataFusionError) -> Self {
        QuarryError::Execution(e.to_string())
    }
}

pub type Result<T, E = QuarryError> = std::result::Result<T, E>;

/// Shorthand for returning a planning error.
#[macro_export]
macro_rules! plan_err {
    ($($arg:tt)*) => { Err($crate::error::QuarryError::plan(format!($($arg)*))) };
}

/// Shorthand for returning an execution error.
#[macro_export]
macro_rules! exec_err {
    ($($arg:tt)*) => { Err($crate::error::QuarryError::exec(format!($($arg)*))) };
}
