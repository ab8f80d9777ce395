//! The async side of the engine: object_store and the async Parquet reader
//! need a tokio runtime. Worker threads block on it for each read; the
//! compute itself never runs on tokio.

use std::future::Future;
use std::sync::OnceLock;

use crate::error::{QuarryError, Result};

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quarry-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    rt.as_ref()
        .map_err(|e| QuarryError::Io(format!("cannot start the I/O runtime: {e}")))
}

/// Runs `fut` to completion on the shared I/O runtime.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(fut))
}

/// Starts `fut` on the I/O runtime's own threads, while the caller goes on
/// (a read ahead of the compute that will need it).
pub fn spawn<F>(fut: F) -> Result<tokio::task::JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(runtime()?.spawn(fut))
}
