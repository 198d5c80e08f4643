//! Retention: what may be deleted for age, and deleting it. Debug files — and JavaScript
//! minified files and source maps — no crash has used for `retention.symbols_unused_days`
//! (counted from their upload when none ever did), crash
//! payloads received more than `retention.payload_days` ago (the crash's row, counts and group
//! stay), and, always, what uploads that never finished left behind (sentry-cli chunks unused
//! for a day, symupload uploads past their hour) and the states of sessions no update can be
//! counted for any more (release health's hourly counts stay). `faultline retention` and the server's
//! periodic job both call [`run`]; a dry run reports the same without deleting anything.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use symbolic::common::DebugId;

use crate::cluster::{Change, ClusterEvents};
use crate::group::index::{CrashIndex, IndexError};
use crate::ingest::crash_folder;
use crate::store::{ObjectStore, StoreError};
use crate::symbols::identify::{uuid_in_name, DebugFileMeta, UUIDMAP_FORMAT};
use crate::symbols::pending::PENDING_UPLOAD_SECS;
use crate::symbols::{SymbolError, SymbolStore};

const DAY: u64 = 86_400;
/// How long a chunk waits for the assemble request that uses it.
const CHUNK_LIFETIME_SECS: u64 = DAY;
/// Crashes whose payloads are deleted per index transaction.
const PAYLOAD_BATCH: i64 = 500;

/// What to delete for age; `None` keeps that kind forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Debug files no crash has used for this many days.
    pub symbols_unused_days: Option<u64>,
    /// Crash payloads received more than this many days ago.
    pub payload_days: Option<u64>,
}

impl RetentionPolicy {
    /// The configured policy (0 days means off).
    pub fn from_config(config: &crate::config::RetentionConfig) -> RetentionPolicy {
        let days = |d: u64| (d > 0).then_some(d);
        RetentionPolicy {
            symbols_unused_days: days(config.symbols_unused_days),
            payload_days: days(config.payload_days),
        }
    }
}

/// A debug file (or a JavaScript minified file or source map) past its retention.
#[derive(Debug, Clone, Serialize)]
pub struct AgedSymbolFile {
    /// Its module (for a JavaScript file, the ID it is stored under: its debug ID, or `url-…`
    /// for a file kept by release and URL).
    pub debug_id: String,
    /// Which of the module's files.
    pub sha256: String,
    /// The debug (or uploaded) file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded, seconds since the Unix epoch.
    pub uploaded_at: u64,
    /// When its module last symbolicated a crash, if ever.
    pub last_used_at: Option<u64>,
}

/// A crash payload past its retention.
#[derive(Debug, Clone, Serialize)]
pub struct AgedCrashPayload {
    /// The crash.
    pub crash_id: String,
    /// When it was received, seconds since the Unix epoch.
    pub received_at: i64,
    /// Files in its folder (dumps, attachments, raw record, processed result).
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
}

/// What a retention run deleted (or, dry, would delete).
#[derive(Debug, Clone, Serialize)]
pub struct RetentionReport {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// The run's clock, seconds since the Unix epoch.
    pub now: u64,
    /// The policy applied.
    pub symbols_unused_days: Option<u64>,
    /// The policy applied.
    pub payload_days: Option<u64>,
    /// How many debug files no crash used within the period.
    pub symbol_file_count: usize,
    /// The first [`LISTED`] of them.
    pub symbol_files: Vec<AgedSymbolFile>,
    /// How many crash payloads are older than the period.
    pub payload_count: usize,
    /// The first [`LISTED`] of them.
    pub payloads: Vec<AgedCrashPayload>,
    /// How many objects uploads that never finished left (chunks, pending symupload uploads).
    pub leftover_count: usize,
    /// The first [`LISTED`] of their keys.
    pub leftovers: Vec<String>,
    /// How many session states are past the age after which updates are dropped.
    pub session_state_count: u64,
    /// Bytes freed (or to be freed).
    pub bytes: u64,
    #[serde(skip)]
    modules: BTreeSet<String>,
}

/// Entries a report lists of each kind (its counts cover all).
pub const LISTED: usize = 1000;

impl RetentionReport {
    /// The debug IDs whose files this run deleted (their module caches must forget them).
    pub fn modules(&self) -> &BTreeSet<String> {
        &self.modules
    }
}

/// Why a retention run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The crash index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The symbol store failed.
    #[error(transparent)]
    Symbols(#[from] SymbolError),
    /// The source map store failed.
    #[error(transparent)]
    SourceMaps(#[from] crate::sourcemaps::SourceMapError),
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The stores a retention run works on.
pub struct RetentionStores<'a> {
    /// Debug files.
    pub symbols: &'a SymbolStore,
    /// The object store itself (crash folders, upload leftovers).
    pub objects: &'a dyn ObjectStore,
    /// The crash index (last uses, crashes' ages).
    pub index: &'a CrashIndex,
    /// Where other nodes hear that debug files are gone.
    pub cluster: &'a ClusterEvents,
}

/// Applies `policy` at `now` (seconds since the Unix epoch); with `dry_run`, only reports.
/// Deleted debug files are announced to every node; the caller drops its own module cache
/// entries for [`RetentionReport::symbol_files`].
pub async fn run(
    stores: &RetentionStores<'_>,
    policy: RetentionPolicy,
    now: u64,
    dry_run: bool,
) -> Result<RetentionReport, RetentionError> {
    let mut report = RetentionReport {
        dry_run,
        now,
        symbols_unused_days: policy.symbols_unused_days,
        payload_days: policy.payload_days,
        symbol_file_count: 0,
        symbol_files: Vec::new(),
        payload_count: 0,
        payloads: Vec::new(),
        leftover_count: 0,
        leftovers: Vec::new(),
        session_state_count: 0,
        bytes: 0,
        modules: BTreeSet::new(),
    };
    if let Some(days) = policy.symbols_unused_days {
        symbol_files(stores, now.saturating_sub(days * DAY), dry_run, &mut report).await?;
    }
    if let Some(days) = policy.payload_days {
        payloads(
            stores,
            now.saturating_sub(days * DAY),
            now,
            dry_run,
            &mut report,
        )
        .await?;
    }
    leftovers(stores, now, dry_run, &mut report).await?;
    report.session_state_count = stores
        .index
        .prune_session_states(i64::try_from(now).unwrap_or(i64::MAX), dry_run)
        .await?;
    if !dry_run {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        stores.index.sweep_missing_symbol_sets(now).await?;
    }
    Ok(report)
}

/// Last uses by debug ID, an original build's (a bitcode build's UUID, which no crash names)
/// taking the latest use of the dSYMs whose UUID mappings point to it: its BCSymbolMap lives as
/// long as they are used.
fn through_uuid_mappings(
    mut last_used: HashMap<String, i64>,
    files: &[DebugFileMeta],
) -> HashMap<String, i64> {
    for meta in files.iter().filter(|f| f.format == UUIDMAP_FORMAT) {
        let Some(dsym) = uuid_in_name(&meta.uploaded_name, ".plist").map(|d| d.to_string()) else {
            continue;
        };
        if dsym == meta.debug_id {
            continue;
        }
        if let Some(&used) = last_used.get(&dsym) {
            let original = last_used.entry(meta.debug_id.clone()).or_default();
            *original = (*original).max(used);
        }
    }
    last_used
}

/// A stored file retention may delete, and how it is named to delete it.
enum StoredFile {
    /// A debug file: its module (when its ID reads) and content.
    Debug(Option<DebugId>, String),
    /// A JavaScript minified file or map: its store ID and which.
    JavaScript(String, crate::sourcemaps::ArtifactKind),
}

/// Debug files whose module no crash used since `cutoff` (nor was uploaded since), and
/// JavaScript files no event used since then.
async fn symbol_files(
    stores: &RetentionStores<'_>,
    cutoff: u64,
    dry_run: bool,
    report: &mut RetentionReport,
) -> Result<(), RetentionError> {
    let debug_files = stores.symbols.all_files().await?;
    let last_used = through_uuid_mappings(stores.index.symbol_last_used().await?, &debug_files);
    let used = |id: &str| last_used.get(id).and_then(|&t| u64::try_from(t).ok());
    let mut files: Vec<(AgedSymbolFile, StoredFile)> = Vec::new();
    for meta in debug_files {
        let file = StoredFile::Debug(meta.debug_id.parse().ok(), meta.sha256.clone());
        let aged = AgedSymbolFile {
            name: meta.debug_file.unwrap_or(meta.uploaded_name),
            last_used_at: used(&meta.debug_id),
            debug_id: meta.debug_id,
            sha256: meta.sha256,
            size: meta.size,
            uploaded_at: meta.uploaded_at,
        };
        files.push((aged, file));
    }
    // JavaScript files, by the ID events record when their frames are resolved with them.
    let sourcemaps = stores.symbols.sourcemaps();
    for (id, meta) in sourcemaps.all_artifacts().await? {
        let aged = AgedSymbolFile {
            last_used_at: used(&id),
            debug_id: id.clone(),
            sha256: meta.sha256,
            name: meta.name,
            size: meta.size,
            uploaded_at: meta.uploaded_at,
        };
        files.push((aged, StoredFile::JavaScript(id, meta.kind)));
    }
    for (aged, file) in files {
        if aged.uploaded_at.max(aged.last_used_at.unwrap_or(0)) >= cutoff {
            continue;
        }
        report.bytes += aged.size;
        report.symbol_file_count += 1;
        if report.symbol_files.len() < LISTED {
            report.symbol_files.push(aged.clone());
        }
        if dry_run {
            continue;
        }
        match file {
            StoredFile::Debug(Some(id), sha256) => {
                stores.symbols.delete(&id, Some(&sha256)).await?;
                report.modules.insert(aged.debug_id);
            }
            StoredFile::Debug(None, _) => {}
            StoredFile::JavaScript(id, kind) => sourcemaps.delete(&id, kind).await?,
        }
    }
    for module in &report.modules {
        if let Err(e) = stores
            .cluster
            .publish(&Change::Symbols(module.clone()))
            .await
        {
            tracing::warn!(debug_id = %module, error = %e, "could not announce a deletion to other nodes");
        }
    }
    Ok(())
}

/// Crash payloads received before `cutoff`: each batch is marked in the index first, then
/// its files go (a crash is never listed with files that are gone; an interrupted run leaves
/// files, not dangling references).
async fn payloads(
    stores: &RetentionStores<'_>,
    cutoff: u64,
    now: u64,
    dry_run: bool,
    report: &mut RetentionReport,
) -> Result<(), RetentionError> {
    let cutoff = i64::try_from(cutoff).unwrap_or(i64::MAX);
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let mut after = None;
    loop {
        let aged = stores
            .index
            .payloads_received_before(cutoff, after.as_ref(), PAYLOAD_BATCH)
            .await?;
        let Some(last) = aged.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        let mut folders = Vec::with_capacity(aged.len());
        for crash in &aged {
            let folder = format!("{}/", crash_folder(crash.received_at, &crash.crash_id));
            let files = stores.objects.list(&folder).await?;
            let bytes = files.iter().map(|f| f.size).sum();
            report.bytes += bytes;
            report.payload_count += 1;
            if report.payloads.len() < LISTED {
                report.payloads.push(AgedCrashPayload {
                    crash_id: crash.crash_id.clone(),
                    received_at: crash.received_at,
                    files: files.len(),
                    bytes,
                });
            }
            folders.push(files);
        }
        if dry_run {
            continue;
        }
        let ids: Vec<String> = aged.iter().map(|a| a.crash_id.clone()).collect();
        stores.index.expire_payloads(&ids, now).await?;
        for file in folders.iter().flatten() {
            stores.objects.delete(&file.key).await?;
        }
    }
}

/// Objects left by uploads that never finished.
async fn leftovers(
    stores: &RetentionStores<'_>,
    now: u64,
    dry_run: bool,
    report: &mut RetentionReport,
) -> Result<(), RetentionError> {
    let mut objects = stores
        .symbols
        .abandoned_chunks(now.saturating_sub(CHUNK_LIFETIME_SECS))
        .await?;
    objects.extend(
        stores
            .symbols
            .abandoned_uploads(now.saturating_sub(PENDING_UPLOAD_SECS))
            .await?,
    );
    for object in objects {
        report.bytes += object.size;
        report.leftover_count += 1;
        if !dry_run {
            stores.objects.delete(&object.key).await?;
        }
        if report.leftovers.len() < LISTED {
            report.leftovers.push(object.key.as_str().to_owned());
        }
    }
    Ok(())
}

/// Counts a finished (not dry) run in `/metrics`.
pub fn record_metrics(report: &RetentionReport) {
    for (kind, count) in [
        ("symbol_files", report.symbol_file_count),
        ("payloads", report.payload_count),
        ("leftovers", report.leftover_count),
        ("session_states", report.session_state_count as usize),
    ] {
        metrics::counter!("faultline_retention_deleted_total", "kind" => kind)
            .increment(count as u64);
    }
    metrics::counter!("faultline_retention_freed_bytes_total").increment(report.bytes);
    metrics::gauge!("faultline_retention_last_run_timestamp_seconds").set(report.now as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_original_builds_files_live_as_long_as_the_dsyms_mapped_to_it() {
        let dsym = "67e9247c-814e-392b-a027-dbde6748fcbf";
        let original = "3b7e1c0a-5d2f-4e6b-9a81-c4d2e3f4a5b6";
        let plist = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
             <key>DBGOriginalUUID</key><string>{original}</string></dict></plist>\n"
        );
        let name = format!("{}.plist", dsym.to_ascii_uppercase());
        let files: Vec<DebugFileMeta> = crate::symbols::identify::identify(plist.as_bytes(), &name)
            .unwrap()
            .into_iter()
            .map(|object| object.meta)
            .collect();
        assert_eq!(files.len(), 2, "stored under both UUIDs");
        let used = HashMap::from([(dsym.to_owned(), 1_000), ("other".to_owned(), 5)]);
        let through = through_uuid_mappings(used, &files);
        assert_eq!(through.get(original), Some(&1_000));
        assert_eq!(through.get(dsym), Some(&1_000));
        // Unused dSYM: its original build is unused too.
        let through = through_uuid_mappings(HashMap::new(), &files);
        assert_eq!(through.get(original), None);
    }
}
