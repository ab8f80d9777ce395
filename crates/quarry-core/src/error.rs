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

thread_local! {
    /// Set while `catch_panic` runs: its panics become errors, so the panic
    /// hook need not print them.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic inside it into the error `describe` makes of the
/// panic's message. For third-party code that panics on corrupt input where
/// it should fail (the Parquet and Arrow IPC decoders): the caller knows what
/// was being read and can say so.
pub fn catch_panic<T>(
    f: impl FnOnce() -> Result<T>,
    describe: impl FnOnce(&str) -> QuarryError,
) -> Result<T> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
    let was = CATCHING.with(|c| c.replace(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    outcome.unwrap_or_else(|panic| Err(describe(&panic_message(panic.as_ref()))))
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
