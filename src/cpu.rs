//! The bridge from async code to the rayon pool: CPU-bound work (parsing debug files, building
//! caches, walking stacks) runs on rayon so it never blocks a tokio worker, and a panic inside it
//! (a parser bug on hostile input) becomes an error instead of taking the server down.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// A CPU job panicked; the message is the panic's.
#[derive(Debug, thiserror::Error)]
#[error("internal error while processing: {0} (please report this with the input that caused it)")]
pub struct JobPanicked(pub String);

/// Runs `job` on the rayon pool and waits for its result without blocking the tokio runtime.
pub async fn run<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobPanicked> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(job)).map_err(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            JobPanicked(message)
        });
        let _ = tx.send(result);
    });
    rx.await
        .unwrap_or_else(|_| Err(JobPanicked("the worker pool dropped the job".to_owned())))
}
