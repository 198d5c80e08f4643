//! Processing workers: claim queued crashes, run them through the pipeline, record them, and
//! mark them done — or failed, with the reason, when the dump cannot be processed. A crash whose
//! files cannot be read right now (storage unreachable) goes back in the queue.

use std::sync::Arc;
use std::time::Duration;

use minidump::Module;
use tokio::sync::Notify;

use super::queue::{IngestQueue, QueueEntry};
use super::{load_raw, Recorder, MAIN_DUMP};
use crate::group::index::CrashIndex;
use crate::pipeline::Pipeline;
use crate::process::modules::SymbolStatus;
use crate::store::{self, ObjectKey, ObjectStore};

/// Largest dump a worker reads back.
const MAX_DUMP: u64 = 2 << 30;
/// Attempts before a crash whose files cannot be read is marked failed.
const MAX_ATTEMPTS: i64 = 5;

/// What the workers need.
#[derive(Clone)]
pub struct WorkerContext {
    /// Processing, classification, grouping.
    pub pipeline: Arc<Pipeline>,
    /// The crash index.
    pub index: Arc<CrashIndex>,
    /// The queue.
    pub queue: Arc<IngestQueue>,
    /// Raw crashes and payloads.
    pub objects: Arc<dyn ObjectStore>,
    /// Annotations naming the user.
    pub user_annotations: Arc<Vec<String>>,
    /// Woken when a crash is enqueued.
    pub wake: Arc<Notify>,
}

/// Starts `count` workers (after requeueing what a previous run left half-done).
pub async fn start(context: WorkerContext, count: usize) {
    match context.queue.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            crashes = n,
            "requeued crashes left in processing by the previous run"
        ),
        Err(e) => tracing::error!(error = %e, "could not requeue interrupted crashes"),
    }
    for _ in 0..count.max(1) {
        let context = context.clone();
        tokio::spawn(async move { run(context).await });
    }
}

async fn run(context: WorkerContext) {
    loop {
        match context.queue.claim().await {
            Ok(Some(entry)) => process(&context, entry).await,
            Ok(None) => {
                tokio::select! {
                    _ = context.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not claim from the ingest queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn outcome(outcome: &'static str) {
    metrics::counter!("faultline_ingest_processed_total", "outcome" => outcome).increment(1);
}

async fn process(context: &WorkerContext, entry: QueueEntry) {
    let id = entry.crash_id.clone();
    let transient = |error: String| async move {
        if entry.attempts >= MAX_ATTEMPTS {
            outcome("failed");
            let _ = context
                .queue
                .fail(
                    &entry.crash_id,
                    &format!("gave up after {} attempts: {error}", entry.attempts),
                )
                .await;
        } else {
            tracing::warn!(crash_id = %entry.crash_id, %error, "will retry");
            let _ = context.queue.retry_later(&entry.crash_id, &error).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let raw = match load_raw(&*context.objects, &entry.raw_key).await {
        Ok(Some(raw)) => raw,
        Ok(None) => {
            outcome("failed");
            let _ = context
                .queue
                .fail(&id, "the stored crash is missing its raw.json")
                .await;
            return;
        }
        Err(e) => return transient(e).await,
    };
    let Some(dump_key) = raw
        .dumps
        .get(MAIN_DUMP)
        .or_else(|| raw.dumps.values().next())
    else {
        outcome("failed");
        let _ = context.queue.fail(&id, "the crash has no minidump").await;
        return;
    };
    let dump = match ObjectKey::new(dump_key.clone()) {
        Ok(key) => store::get_bytes(&*context.objects, &key, MAX_DUMP).await,
        Err(e) => Err(e),
    };
    let dump = match dump {
        Ok(Some(dump)) => dump,
        Ok(None) => {
            outcome("failed");
            let _ = context
                .queue
                .fail(&id, "the stored minidump is missing")
                .await;
            return;
        }
        Err(e) => return transient(e.to_string()).await,
    };
    let report = match context.pipeline.run(dump, &raw.annotations).await {
        Ok(report) => report,
        Err(e) => {
            outcome("failed");
            let _ = context.queue.fail(&id, &e.to_string()).await;
            return;
        }
    };
    let recorder = Recorder {
        index: &context.index,
        objects: &*context.objects,
        user_annotations: &context.user_annotations,
    };
    if let Err(e) = recorder
        .record(
            &id,
            raw.project_id,
            raw.received_at,
            &raw.annotations,
            &report,
        )
        .await
    {
        return transient(e.to_string()).await;
    }
    let missing: Vec<String> = report
        .processed
        .state
        .modules
        .iter()
        .zip(&report.processed.modules)
        .filter(|(_, r)| r.status == SymbolStatus::Missing)
        .filter_map(|(m, _)| m.debug_identifier().map(|id| id.to_string()))
        .collect();
    match context.queue.finish(&id, &missing).await {
        Ok(()) => outcome("processed"),
        Err(e) => {
            tracing::error!(crash_id = %id, error = %e, "could not mark processed; it will be reprocessed and deduplicated")
        }
    }
}
