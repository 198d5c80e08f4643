//! Processing workers: a claimer keeps a fixed number of queued crashes in flight, each on its
//! own task, within a memory budget for their dumps: run through the pipeline, recorded (the
//! index writes concurrent crashes in one transaction), then marked done by a finisher that
//! hands everything finished meanwhile to the index's group commit — or marked failed, with
//! the reason, when its dump cannot be processed. A crash whose files cannot be read right now
//! (storage unreachable) goes back in the queue. A lease keeper renews this node's claims and
//! requeues claims whose node died.

use std::sync::Arc;
use std::time::Duration;

use minidump::Module;
use symbolic::common::DebugId;
use tokio::sync::{mpsc, Notify, Semaphore};

use super::queue::{IngestQueue, QueueEntry};
use super::{load_raw, RawCrash, Recorder, MAIN_DUMP};
use crate::auth::Registry;
use crate::cluster::ClusterEvents;
use crate::config::{ProcessingConfig, VariablesScope};
use crate::group::index::{CrashIndex, FinishedCrash, IndexError, MissingModule};
use crate::pipeline::Pipeline;
use crate::process::modules::SymbolStatus;
use crate::process::ModuleReport;
use crate::store::{ObjectKey, ObjectStore};
use crate::symbols::SymbolStore;

/// Largest dump a worker reads back.
const MAX_DUMP: u64 = 2 << 30;
/// Attempts before a crash whose files cannot be read is marked failed.
const MAX_ATTEMPTS: i64 = 5;
/// Crashes each worker keeps in flight: enough to keep the processing pool and the index's
/// group commit fed while others wait for storage or the database (measured: 64 drained a
/// backlog at 1,900–2,200 crashes/s, 256 at 2,400–2,750; memory is bounded separately).
const SLOTS_PER_WORKER: usize = 256;
/// Dumps read from storage at once (S3 reads take tens of milliseconds, so not too few); each
/// reader then waits for room in [`DUMP_KIB_IN_FLIGHT`].
const READERS: usize = 32;
/// KiB of dumps crashes in flight may hold in memory: with many slots, a backlog of large
/// dumps must wait for room instead of exhausting memory (a dump larger than this runs alone).
const DUMP_KIB_IN_FLIGHT: usize = 512 << 10;

/// How many dumps are being read, and how many KiB of dumps are in memory.
struct MemoryBudget {
    readers: Semaphore,
    dump_kib: Semaphore,
}

/// Fewest crashes claimed in one statement (unless fewer slots exist).
const CLAIM_BATCH: usize = 16;
/// Most crashes claimed in one statement.
const MAX_CLAIM: usize = 512;

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
    /// Other nodes' changes, applied before each claim (so a symbol file uploaded through
    /// another node is used by this node's very next crash).
    pub cluster: Arc<ClusterEvents>,
    /// Source maps and minified files, for events' JavaScript frames.
    pub symbols: Arc<SymbolStore>,
    /// Largest stored file (source map, minified file) an event's frames read.
    pub max_file_bytes: u64,
    /// What processing reads beyond stack traces, per project.
    pub processing: ProcessingConfig,
    /// Projects, to find a crash's project's slug in `processing`'s overrides.
    pub projects: Registry,
}

/// Starts processing with `count` workers (after requeueing what this node held before it
/// stopped), and the lease keeper.
pub async fn start(context: WorkerContext, count: usize) {
    match context.queue.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            crashes = n,
            "requeued crashes this node (or a node whose lease ran out) left in processing"
        ),
        Err(e) => tracing::error!(error = %e, "could not requeue interrupted crashes"),
    }
    tokio::spawn(keep_leases(
        Arc::clone(&context.queue),
        Arc::clone(&context.wake),
    ));
    let (done, finished) = mpsc::unbounded_channel();
    tokio::spawn(finish(context.clone(), finished));
    let budget = Arc::new(MemoryBudget {
        readers: Semaphore::new(READERS),
        dump_kib: Semaphore::new(DUMP_KIB_IN_FLIGHT),
    });
    tokio::spawn(claim(
        context,
        count.max(1) * SLOTS_PER_WORKER,
        budget,
        done,
    ));
}

/// Renews this node's leases every third of the lease, and requeues other nodes' expired ones
/// (waking the workers when there are some).
async fn keep_leases(queue: Arc<IngestQueue>, wake: Arc<Notify>) {
    let period = queue.lease() / 3;
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = queue.renew().await {
            tracing::warn!(error = %e, "could not renew this node's queue leases");
        }
        match queue.requeue_expired().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    crashes = n,
                    "requeued crashes whose node stopped renewing its lease"
                );
                wake.notify_waiters();
            }
            Err(e) => tracing::warn!(error = %e, "could not requeue expired leases"),
        }
    }
}

/// Keeps up to `slots` crashes in flight, each on its own task, so processing never waits for
/// a batch's slowest crash: whenever at least [`CLAIM_BATCH`] slots are free, claims for all
/// free slots (up to [`MAX_CLAIM`]) in one statement (claiming a few at a time would queue a
/// claim behind every database write).
async fn claim(
    context: WorkerContext,
    slots: usize,
    budget: Arc<MemoryBudget>,
    done: mpsc::UnboundedSender<Finished>,
) {
    let batch = CLAIM_BATCH.min(slots);
    let slots = Arc::new(Semaphore::new(slots));
    loop {
        let Ok(mut permits) = Arc::clone(&slots).acquire_many_owned(batch as u32).await else {
            return;
        };
        // Every slot free by now is filled by the same claim: under load a claim waits for
        // the database behind other writes, and a claim per few crashes would bound the rate.
        let more = slots.available_permits().min(MAX_CLAIM - batch) as u32;
        if let Ok(extra) = Arc::clone(&slots).try_acquire_many_owned(more) {
            permits.merge(extra);
        }
        context.cluster.catch_up_before_work().await;
        let claiming = std::time::Instant::now();
        let claimed = context.queue.claim_many(permits.num_permits()).await;
        metrics::histogram!("faultline_ingest_claim_seconds")
            .record(claiming.elapsed().as_secs_f64());
        match claimed {
            Ok(entries) if !entries.is_empty() => {
                for entry in entries {
                    let permit = permits.split(1).expect("one permit per claimed crash");
                    let (context, done) = (context.clone(), done.clone());
                    let budget = Arc::clone(&budget);
                    tokio::spawn(async move {
                        if let Some(finished) = process(&context, &budget, entry).await {
                            let _ = done.send(finished);
                        }
                        drop(permit);
                    });
                }
            }
            Ok(_) => {
                drop(permits);
                tokio::select! {
                    _ = context.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                drop(permits);
                tracing::error!(error = %e, "could not claim from the ingest queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A recorded crash, and when it was acknowledged (Unix milliseconds, for the end-to-end
/// latency).
/// A crash done: what the index records, when it was acknowledged (ms), and the modules whose
/// files were still downloading from an upstream source when it was processed.
type Finished = (FinishedCrash, Option<i64>, Vec<DebugId>);

/// Marks recorded crashes processed, everything that finished since the last time at once
/// (with the index's next batch, or alone when the index is idle).
async fn finish(context: WorkerContext, mut finished: mpsc::UnboundedReceiver<Finished>) {
    let index = Arc::clone(&context.index);
    while let Some(first) = finished.recv().await {
        let mut done = vec![first];
        while done.len() < 500 {
            match finished.try_recv() {
                Ok(more) => done.push(more),
                Err(_) => break,
            }
        }
        let mut rows = Vec::with_capacity(done.len());
        let mut acknowledged = Vec::with_capacity(done.len());
        let mut waiting = Vec::new();
        for (row, at, fetching) in done {
            if !fetching.is_empty() {
                waiting.push((row.crash_id.clone(), fetching));
            }
            rows.push(row);
            acknowledged.push(at);
        }
        let count = rows.len();
        match index.finish(rows).await {
            Ok(()) => {
                for (crash_id, fetching) in waiting {
                    tokio::spawn(reprocess_when_fetched(context.clone(), crash_id, fetching));
                }
                metrics::counter!("faultline_ingest_processed_total", "outcome" => "processed")
                    .increment(count as u64);
                let now = crate::clock::now_ms();
                for at in acknowledged.into_iter().flatten() {
                    metrics::histogram!("faultline_ingest_end_to_end_seconds")
                        .record((now - at).max(0) as f64 / 1000.0);
                }
            }
            Err(e) => tracing::error!(
                crashes = count,
                error = %e,
                "could not mark processed; they will be reprocessed and deduplicated"
            ),
        }
    }
}

/// Queues `crash_id` again once the files of one of `fetching` (modules it was processed
/// without, their downloads still running then) are stored. Waiting on the download itself
/// leaves no gap between the crash being recorded and the file arriving.
async fn reprocess_when_fetched(context: WorkerContext, crash_id: String, fetching: Vec<DebugId>) {
    let modules = context.pipeline.processor.modules();
    for debug_id in fetching {
        if modules.once_fetched(debug_id).await {
            match context.queue.reprocess(&crash_id).await {
                Ok(_) => context.wake.notify_waiters(),
                Err(e) => tracing::warn!(%crash_id, error = %e, "could not requeue the crash"),
            }
            return;
        }
    }
}

impl WorkerContext {
    /// Whose frames get variables in the crashes of project `project_id` (a lookup only when
    /// some project overrides the default; an unknown project gets the default).
    async fn variables_for(&self, project_id: i64) -> Result<VariablesScope, IndexError> {
        if self.processing.project_variables.is_empty() {
            return Ok(self.processing.variables);
        }
        Ok(match self.projects.project_by_id(project_id).await? {
            Some(project) => self.processing.variables_for(&project.slug),
            None => self.processing.variables,
        })
    }

    /// Where the crash of `entry` is recorded once processed.
    fn recorder(&self, entry: &QueueEntry) -> Recorder<'_> {
        Recorder {
            index: &self.index,
            objects: &*self.objects,
            user_annotations: &self.user_annotations,
            replaces_earlier: entry.reprocess,
        }
    }
}

/// A crash that could not be finished for a reason that may pass (storage or the database
/// unreachable): queued again, or marked failed after [`MAX_ATTEMPTS`].
async fn retry_later(context: &WorkerContext, entry: &QueueEntry, error: String) {
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
}

fn outcome(outcome: &'static str) {
    metrics::counter!("faultline_ingest_processed_total", "outcome" => outcome).increment(1);
}

/// Processes and records one claimed crash; what to mark processed when that worked (failures
/// and retries are marked here).
async fn process(
    context: &WorkerContext,
    budget: &MemoryBudget,
    entry: QueueEntry,
) -> Option<Finished> {
    let entry = &entry;
    let reading = budget.readers.acquire().await.expect("never closed");
    let raw = load_stored_raw(context, entry).await?;
    if let (Some(event_key), true) = (&raw.event, raw.dumps.is_empty()) {
        drop(reading);
        return process_event(context, entry, &raw, event_key).await;
    }
    let dump = load_main_dump(context, entry, &raw).await?;
    let kib = (dump.len().div_ceil(1024)).clamp(1, DUMP_KIB_IN_FLIGHT) as u32;
    let _held = budget
        .dump_kib
        .acquire_many(kib)
        .await
        .expect("never closed");
    drop(reading);
    let variables = match context.variables_for(raw.project_id).await {
        Ok(variables) => variables,
        Err(e) => {
            retry_later(context, entry, e.to_string()).await;
            return None;
        }
    };
    let report = match context
        .pipeline
        .run(dump, &raw.annotations, variables)
        .await
    {
        Ok(report) => report,
        Err(e) => {
            outcome("failed");
            let _ = context.queue.fail(&entry.crash_id, &e.to_string()).await;
            return None;
        }
    };
    let recorded = context
        .recorder(entry)
        .record(
            &entry.crash_id,
            raw.project_id,
            raw.received_at,
            &raw.annotations,
            &report,
        )
        .await;
    if let Err(e) = recorded {
        retry_later(context, entry, e.to_string()).await;
        return None;
    }
    let fetching = still_fetching(&report);
    Some((
        finished_crash(&entry.crash_id, &report),
        entry.enqueued_ms,
        fetching,
    ))
}

/// The crash's `raw.json`; a missing one fails the crash, an unreadable one retries it.
async fn load_stored_raw(context: &WorkerContext, entry: &QueueEntry) -> Option<RawCrash> {
    match load_raw(&*context.objects, &entry.raw_key).await {
        Ok(Some(raw)) => Some(raw),
        Ok(None) => {
            outcome("failed");
            let _ = context
                .queue
                .fail(&entry.crash_id, "the stored crash is missing its raw.json")
                .await;
            None
        }
        Err(e) => {
            retry_later(context, entry, e).await;
            None
        }
    }
}

/// The crash's main minidump (or its only one); a missing one fails the crash, an unreadable
/// one retries it.
async fn load_main_dump(
    context: &WorkerContext,
    entry: &QueueEntry,
    raw: &RawCrash,
) -> Option<bytes::Bytes> {
    let fail = |why: &'static str| async move {
        outcome("failed");
        let _ = context.queue.fail(&entry.crash_id, why).await;
    };
    let Some(dump_key) = raw
        .dumps
        .get(MAIN_DUMP)
        .or_else(|| raw.dumps.values().next())
    else {
        fail("the crash has no minidump").await;
        return None;
    };
    let dump = match ObjectKey::new(dump_key.clone()) {
        Ok(key) => context.objects.read_all(&key, MAX_DUMP).await,
        Err(e) => Err(e),
    };
    match dump {
        Ok(Some(dump)) => Some(dump),
        Ok(None) => {
            fail("the stored minidump is missing").await;
            None
        }
        Err(e) => {
            retry_later(context, entry, e.to_string()).await;
            None
        }
    }
}

/// What marking the crash processed records about its modules: those whose symbols were
/// missing (the missing-symbols report, reprocessing on upload) and those used (retention).
fn finished_crash(id: &str, report: &crate::pipeline::CrashReport) -> FinishedCrash {
    let modules_with = |status: SymbolStatus| modules_where(report, move |r| r.status == status);
    let missing_modules: Vec<MissingModule> = modules_with(SymbolStatus::Missing)
        .filter_map(|m| {
            let base = |name: &str| crate::symbols::identify::base_name(name).to_owned();
            Some(MissingModule {
                debug_id: m.debug_identifier()?.to_string(),
                debug_file: m.debug_file().map(|f| base(&f)).filter(|f| !f.is_empty()),
                code_file: Some(base(&m.code_file())).filter(|f| !f.is_empty()),
                code_id: m
                    .code_identifier()
                    .map(|id| id.as_str().to_ascii_lowercase())
                    .filter(|id| !id.is_empty()),
            })
        })
        .collect();
    // A Unity game's code without its IL2CPP line mapping: frames in C++, not C#.
    let mappings = modules_where(report, |r| r.lacks_il2cpp_mapping).filter_map(|m| {
        Some(MissingModule {
            debug_id: m.debug_identifier()?.to_string(),
            debug_file: Some(crate::symbols::identify::IL2CPP_MAPPING.to_owned()),
            code_file: Some(crate::symbols::identify::base_name(&m.code_file()).to_owned()),
            code_id: None,
        })
    });
    let missing_modules = missing_modules.into_iter().chain(mappings).collect();
    let used_modules = modules_with(SymbolStatus::Found)
        .filter_map(|m| Some(m.debug_identifier()?.to_string()))
        .collect();
    FinishedCrash {
        crash_id: id.to_owned(),
        missing_modules,
        used_modules,
    }
}

/// The modules whose files were still downloading from an upstream source when the crash was
/// processed.
fn still_fetching(report: &crate::pipeline::CrashReport) -> Vec<DebugId> {
    let downloading = crate::upstream::CandidateOutcome::Downloading.as_str();
    modules_where(report, |r| {
        r.candidates.iter().any(|c| c.outcome == downloading)
    })
    .filter_map(|m| m.debug_identifier())
    .collect()
}

/// The crash's modules whose symbol report passes `keep`.
fn modules_where<'a>(
    report: &'a crate::pipeline::CrashReport,
    keep: impl Fn(&ModuleReport) -> bool + 'a,
) -> impl Iterator<Item = &'a minidump::MinidumpModule> + 'a {
    let processed = &report.processed;
    processed
        .state
        .modules
        .iter()
        .zip(&processed.modules)
        .filter(move |(_, r)| keep(r))
        .map(|(m, _)| m)
}

/// Processes and records one claimed error event (no minidump); like [`process`] otherwise.
async fn process_event(
    context: &WorkerContext,
    entry: &QueueEntry,
    raw: &RawCrash,
    event_key: &str,
) -> Option<Finished> {
    let id = &entry.crash_id;
    let fail = |reason: String| async move {
        outcome("failed");
        let _ = context.queue.fail(id, &reason).await;
    };
    let retry = |error: String| retry_later(context, entry, error);
    let json = match ObjectKey::new(event_key.to_owned()) {
        Ok(key) => {
            let limit = crate::events::MAX_EVENT_BYTES as u64;
            context.objects.read_all(&key, limit).await
        }
        Err(e) => Err(e),
    };
    let json = match json {
        Ok(Some(json)) => json,
        Ok(None) => {
            fail("the stored event is missing".to_owned()).await;
            return None;
        }
        Err(e) => {
            retry(e.to_string()).await;
            return None;
        }
    };
    let event = match crate::events::Event::from_slice(&json) {
        Ok(event) => event,
        Err(e) => {
            fail(e.to_string()).await;
            return None;
        }
    };
    let processor = crate::events::process::EventProcessor {
        modules: context.pipeline.processor.modules(),
        symbols_wait: context.pipeline.processor.symbols_wait(),
        sourcemaps: Some(context.symbols.sourcemaps()),
        rules: &context.pipeline.signatures,
        max_file_bytes: context.max_file_bytes,
    };
    let report = match processor.process(event, raw.project_id).await {
        Ok(report) => report,
        Err(e) => {
            retry(e.to_string()).await;
            return None;
        }
    };
    let recorder = context.recorder(entry);
    if let Err(e) = recorder
        .record(
            id,
            raw.project_id,
            raw.received_at,
            &raw.annotations,
            &report,
        )
        .await
    {
        retry(e.to_string()).await;
        return None;
    }
    Some((
        FinishedCrash {
            crash_id: id.clone(),
            missing_modules: report.missing_modules,
            used_modules: report.used_modules,
        },
        entry.enqueued_ms,
        Vec::new(),
    ))
}
