//! Where blocking work runs. In the server, CPU-bound work (parsing debug files, building caches,
//! walking stacks) runs on the rayon pool and blocking file I/O on tokio's blocking threads, so
//! neither stalls a tokio worker; a panic inside a job (a parser bug on hostile input) becomes
//! an error instead of taking the server down.
//!
//! A one-shot command (`faultline process`) has nothing to run alongside its jobs, and handing
//! each one to another thread and back costs a wake-up on both sides (tens to hundreds of
//! microseconds each in a virtual machine, a dozen times per dump): its thread runs them itself
//! after [`run_jobs_on_this_thread`].

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A CPU job panicked; the message is the panic's.
#[derive(Debug, thiserror::Error)]
#[error("internal error while processing: {0} (please report this with the input that caused it)")]
pub struct JobPanicked(pub String);

thread_local! {
    /// Whether jobs asked for on this thread run on it (see [`run_jobs_on_this_thread`]).
    static ON_THIS_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// From now on, jobs that futures polled on this thread ask for ([`run`], [`blocking_io`]) run
/// on this thread, in the call. For a one-shot command on a current-thread runtime, where this
/// thread polls every future; the server never calls it.
pub fn run_jobs_on_this_thread() {
    ON_THIS_THREAD.with(|here| here.set(true));
}

fn on_this_thread() -> bool {
    ON_THIS_THREAD.with(Cell::get)
}

/// Starts the server's processing pool: one thread per core, named `faultline-cpu-N` (a
/// profile tells them from tokio's workers; unnamed, they took the name of the thread that
/// first used the pool).
pub fn start_server_pool() {
    let built = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("faultline-cpu-{i}"))
        .build_global();
    if let Err(e) = built {
        tracing::warn!(error = %e, "the processing pool was already started");
    }
}

/// Runs `job` and turns a panic into [`JobPanicked`].
fn catching<T>(job: impl FnOnce() -> T) -> Result<T, JobPanicked> {
    catch_unwind(AssertUnwindSafe(job)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        JobPanicked(message)
    })
}

/// Runs the CPU-bound `job` on the rayon pool and waits for its result without blocking the
/// tokio runtime (or on this thread, see [`run_jobs_on_this_thread`]).
pub async fn run<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobPanicked> {
    if on_this_thread() {
        return catching(job);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(catching(job));
    });
    rx.await
        .unwrap_or_else(|_| Err(JobPanicked("the worker pool dropped the job".to_owned())))
}

/// Runs the blocking file operation `job` on tokio's blocking threads (or on this thread, see
/// [`run_jobs_on_this_thread`]); a panic becomes an I/O error.
pub async fn blocking_io<T: Send + 'static>(
    job: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    if on_this_thread() {
        return catching(job).unwrap_or_else(|e| Err(std::io::Error::other(e)));
    }
    tokio::task::spawn_blocking(job)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_pool_unless_this_thread_takes_them() {
        // On a thread of its own: the setting stays with the thread.
        std::thread::spawn(jobs_on_a_fresh_thread).join().unwrap();
    }

    fn jobs_on_a_fresh_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let here = std::thread::current().id();
        let id = || std::thread::current().id();
        let pooled = runtime.block_on(run(id)).unwrap();
        let io = runtime.block_on(blocking_io(move || Ok(id()))).unwrap();
        assert_ne!(pooled, here);
        assert_ne!(io, here);

        run_jobs_on_this_thread();
        assert_eq!(runtime.block_on(run(id)).unwrap(), here);
        assert_eq!(
            runtime.block_on(blocking_io(move || Ok(id()))).unwrap(),
            here
        );
        let panicked = runtime.block_on(run(|| -> u8 { panic!("bad dump") }));
        assert_eq!(panicked.unwrap_err().0, "bad dump");
        let failed = runtime.block_on(blocking_io(|| -> std::io::Result<u8> {
            panic!("bad file")
        }));
        assert!(failed.unwrap_err().to_string().contains("bad file"));
    }
}
