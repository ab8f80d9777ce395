//! The async side of the engine: object_store and the async Parquet reader
//! need a tokio runtime. Worker threads block on it for each read; the
//! compute itself never runs on tokio.

use std::future::Future;
use std::sync::OnceLock;

use crate::error::{QuarryError, Result};

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// Runs `fut` to completion on the shared I/O runtime.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quarry-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match rt {
        Ok(rt) => Ok(rt.block_on(fut)),
        Err(e) => Err(QuarryError::Io(format!(
            "cannot start the I/O runtime: {e}"
        ))),
    }
}
