//! Upstream symbol sources: debug files nobody uploaded (system libraries, GPU drivers, the C
//! runtime), fetched by debug ID and code ID from the symbol servers that have them —
//! Microsoft's, Mozilla's, the distributions' debuginfod servers, a company's S3 bucket or
//! HTTP store — and kept in faultline's own store, so every node and every later crash uses
//! them without asking again.
//!
//! A module is fetched once at a time per node ([`Upstream::fetch`] shares one download among
//! every crash that needs it), each source has a cap on concurrent downloads, what a location
//! did not have is remembered ([`health`]'s negative cache), and a source that keeps failing is
//! skipped for a while. Every location asked is reported as a [`Candidate`], as symbolicator
//! does. A file stored here is announced on [`Upstream::subscribe`], so the crashes processed
//! without it are processed again.

mod decompress;
pub mod health;
pub mod layout;
pub mod presets;
mod source;
mod transport;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use serde::Serialize;
use symbolic::common::DebugId;

use crate::config::{SourceConfig, SourceFileType, SourceKind, SourceLayout};
use crate::cpu;
use crate::symbols::fetched::FetchedFileError;
use crate::symbols::identify::DebugFileMeta;
use crate::symbols::SymbolStore;
use health::{miss_cache, HealthView, Miss, MissKey};
pub use layout::{safe_base_name, ModulePlatform, ModuleRef};
use source::Source;
use transport::DownloadError;

/// What asking one location gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateOutcome {
    /// The file was there, belonged to the module, and is now stored.
    Found,
    /// The source has no such file.
    NotFound,
    /// The source failed (server error, timeout, refused connection, too large).
    Error,
    /// The source sent something that is not the module's debug file.
    Malformed,
    /// Not asked: a filter excludes the module, or the source is failing and skipped.
    Skipped,
    /// Not asked again: what it had last time is remembered (`detail` says what, `age_secs`
    /// how long ago).
    Cached,
    /// Still downloading when the crash's time budget ran out (it is processed again when the
    /// file arrives).
    Downloading,
}

impl CandidateOutcome {
    /// The outcome as JSON and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateOutcome::Found => "found",
            CandidateOutcome::NotFound => "not_found",
            CandidateOutcome::Error => "error",
            CandidateOutcome::Malformed => "malformed",
            CandidateOutcome::Skipped => "skipped",
            CandidateOutcome::Cached => "cached",
            CandidateOutcome::Downloading => "downloading",
        }
    }
}

/// One location asked for a module's file, and what it gave.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Candidate {
    /// The source's ID.
    pub source: String,
    /// The URL, `s3://` key or path asked (the source's base when nothing was asked).
    pub location: String,
    /// The kind of file asked for (`pdb`, `elf_debug`…).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub file_type: Option<String>,
    /// What it gave.
    pub outcome: String,
    /// Why: the error, the filter, what a cached result was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// For a cached result: how long ago it was learned, in seconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub age_secs: Option<u64>,
}

/// Everything asking the sources for one module gave.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    /// The source whose file is now stored, if one had it.
    pub origin: Option<String>,
    /// Every location asked (or skipped), in order.
    pub candidates: Vec<Candidate>,
}

/// Which sources a fetch may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Symbols for a crash: every source.
    Crash,
    /// A debugger's request to the symbol-server routes: sources with `serve = true`.
    Serve,
}

/// A source as `GET /api/v1/symbols/sources` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    /// Its ID.
    pub id: String,
    /// `http`, `s3`, `debuginfod` or `filesystem`.
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// Where it is (base URL, bucket or folder).
    pub location: String,
    /// How files are arranged.
    pub layout: SourceLayout,
    /// Whether the symbol-server routes may fetch from it.
    pub serve: bool,
    /// Downloads running now.
    pub downloads_in_flight: usize,
    /// Counters and state.
    pub health: HealthView,
}

type SharedFetch = Shared<BoxFuture<'static, Arc<FetchReport>>>;

/// The configured upstream sources, shared by the processor and the symbol-server routes.
pub struct Upstream {
    sources: Vec<Source>,
    symbols: Arc<SymbolStore>,
    scratch: PathBuf,
    misses: moka::sync::Cache<MissKey, Miss>,
    /// The last report per module, for the missing-symbols page.
    reports: moka::sync::Cache<DebugId, Arc<FetchReport>>,
    in_flight: Mutex<HashMap<(DebugId, Purpose), SharedFetch>>,
    fetched: tokio::sync::broadcast::Sender<DebugId>,
}

impl Upstream {
    /// The sources `configs` describe (presets filled in), storing what they find in
    /// `symbols`; `None` when no source is configured. A source that cannot be set up is an
    /// error naming it.
    pub async fn open(
        configs: &[SourceConfig],
        symbols: Arc<SymbolStore>,
    ) -> Result<Option<Arc<Upstream>>, String> {
        if configs.is_empty() {
            return Ok(None);
        }
        let mut sources = Vec::new();
        for config in configs {
            if sources.iter().any(|s: &Source| s.id == config.id) || config.id.is_empty() {
                return Err(format!(
                    "symbols source {:?}: every source needs its own non-empty id",
                    config.id
                ));
            }
            sources.push(Source::open(&presets::resolve(config)?).await?);
        }
        let scratch = symbols.scratch_root().join("upstream");
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        Ok(Some(Arc::new(Upstream {
            sources,
            symbols,
            scratch,
            misses: miss_cache(),
            reports: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            in_flight: Mutex::default(),
            fetched: tokio::sync::broadcast::channel(1024).0,
        })))
    }

    /// Announces the modules whose files a source sent and this node stored.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<DebugId> {
        self.fetched.subscribe()
    }

    /// Whether any source may serve the symbol-server routes.
    pub fn serves(&self) -> bool {
        self.sources.iter().any(|s| s.serve)
    }

    /// Every source with its health.
    pub fn sources(&self) -> Vec<SourceView> {
        self.sources
            .iter()
            .map(|s| SourceView {
                id: s.id.clone(),
                kind: s.kind,
                location: s.transport.location(""),
                layout: s.layout,
                serve: s.serve,
                downloads_in_flight: s.downloads_in_flight(),
                health: s.health.view(),
            })
            .collect()
    }

    /// What the sources said the last time `debug_id` was asked for (this node, last day).
    pub fn last_report(&self, debug_id: &DebugId) -> Option<Arc<FetchReport>> {
        self.reports.get(debug_id)
    }

    /// Why the sources have no file for `debug_id`, as the missing-symbols list says it: "no
    /// source has it (asked microsoft, nvidia)", with the sources that failed instead of
    /// answering, or that it was not asked for yet on this node.
    pub fn why_missing(&self, debug_id: &DebugId) -> String {
        let Some(report) = self.last_report(debug_id) else {
            return "not asked for yet on this node".to_owned();
        };
        let mut lacking: Vec<&str> = Vec::new();
        let mut failing: Vec<String> = Vec::new();
        for candidate in &report.candidates {
            let failed = candidate.outcome == CandidateOutcome::Error.as_str()
                || candidate
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("error"));
            if failed {
                if !failing.iter().any(|f| f.starts_with(&candidate.source)) {
                    let detail = candidate.detail.as_deref().unwrap_or("failed");
                    failing.push(format!("{} failed: {detail}", candidate.source));
                }
            } else if candidate.outcome != CandidateOutcome::Skipped.as_str()
                && !lacking.contains(&candidate.source.as_str())
            {
                lacking.push(&candidate.source);
            }
        }
        let mut parts = Vec::new();
        if !lacking.is_empty() {
            parts.push(format!("no source has it (asked {})", lacking.join(", ")));
        }
        parts.extend(failing);
        if parts.is_empty() {
            "no source was asked (filters or failing sources)".to_owned()
        } else {
            parts.join("; ")
        }
    }

    /// The candidate shown for a module whose download was still running when a crash's time
    /// budget for symbols ran out.
    pub fn downloading(module: &ModuleRef) -> Candidate {
        Candidate {
            source: "upstream".to_owned(),
            location: module.display_name(),
            file_type: None,
            outcome: CandidateOutcome::Downloading.as_str().to_owned(),
            detail: Some(
                "still downloading when the crash's time budget ran out; the crash is processed again when the file is stored".to_owned(),
            ),
            age_secs: None,
        }
    }

    /// Waits for the fetch of `debug_id`'s files running now for crashes, if one is.
    pub async fn running(&self, debug_id: DebugId) {
        let running = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(debug_id, Purpose::Crash))
            .cloned();
        if let Some(running) = running {
            running.await;
        }
    }

    /// Asks the sources for `module`'s files, storing what they have. Every crash (and
    /// request) needing the same module while a fetch runs waits for that one fetch; the fetch
    /// itself runs on its own task, so a caller that stops waiting does not stop it.
    pub async fn fetch(self: &Arc<Self>, module: &ModuleRef, purpose: Purpose) -> Arc<FetchReport> {
        let key = (module.debug_id, purpose);
        let shared = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            match in_flight.get(&key) {
                Some(running) => running.clone(),
                None => {
                    let (this, module) = (Arc::clone(self), module.clone());
                    let task = tokio::spawn(async move {
                        let report = Arc::new(this.fetch_now(&module, purpose).await);
                        this.reports.insert(module.debug_id, Arc::clone(&report));
                        this.in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&(module.debug_id, purpose));
                        if report.origin.is_some() {
                            let _ = this.fetched.send(module.debug_id);
                        }
                        report
                    });
                    let shared = async move {
                        task.await.unwrap_or_else(|e| {
                            tracing::error!(error = %e, "symbol fetch task failed");
                            Arc::new(FetchReport::default())
                        })
                    }
                    .boxed()
                    .shared();
                    in_flight.insert(key, shared.clone());
                    shared
                }
            }
        };
        shared.await
    }

    /// Asks each source in order for the kinds of file the module still needs, until one file
    /// gives functions and one gives unwind rules.
    async fn fetch_now(&self, module: &ModuleRef, purpose: Purpose) -> FetchReport {
        let mut report = FetchReport::default();
        let mut needs = Needs::default();
        for (index, source) in self.sources.iter().enumerate() {
            if purpose == Purpose::Serve && !source.serve {
                continue;
            }
            if needs.satisfied() {
                break;
            }
            if let Some(skipped) = source.skip_reason(module) {
                report.candidates.push(source.skipped(skipped));
                continue;
            }
            for file_type in source.order(module.file_types().filter(|t| source.asks_for(*t))) {
                for path in layout::paths(source.layout, file_type, module) {
                    if !needs.wants(file_type) {
                        break;
                    }
                    let (candidate, stored) = self.ask(index, module, file_type, &path).await;
                    report.candidates.push(candidate);
                    if let Some(files) = stored {
                        needs.found(&files);
                        report.origin.get_or_insert_with(|| source.id.clone());
                    }
                }
            }
        }
        report
    }

    /// Asks one location (unless its last answer is remembered), stores what it gives, and
    /// records the outcome in the source's health, the metrics and the negative cache.
    async fn ask(
        &self,
        index: usize,
        module: &ModuleRef,
        file_type: SourceFileType,
        path: &str,
    ) -> (Candidate, Option<Vec<DebugFileMeta>>) {
        let source = &self.sources[index];
        let location = source.transport.location(path);
        let mut candidate = Candidate {
            source: source.id.clone(),
            location: location.clone(),
            file_type: Some(file_type.name().to_owned()),
            outcome: String::new(),
            detail: None,
            age_secs: None,
        };
        let miss_key: MissKey = (index, module.debug_id, location);
        if let Some(miss) = self.misses.get(&miss_key) {
            candidate.outcome = CandidateOutcome::Cached.as_str().to_owned();
            candidate.detail = Some(match &miss.detail {
                Some(detail) => format!("{}: {detail}", miss.outcome.as_str()),
                None => miss.outcome.as_str().to_owned(),
            });
            candidate.age_secs = Some(miss.at.elapsed().as_secs());
            count(&source.id, CandidateOutcome::Cached);
            return (candidate, None);
        }
        let (outcome, detail, stored) = self.download_and_store(source, module, path).await;
        match outcome {
            CandidateOutcome::Found => source.health.hit(),
            CandidateOutcome::NotFound => source.health.miss(),
            _ => source.health.failed(detail.as_deref().unwrap_or("failed")),
        }
        let ttl = match outcome {
            CandidateOutcome::NotFound | CandidateOutcome::Malformed => Some(source.not_found_ttl),
            CandidateOutcome::Error => Some(source.error_ttl),
            _ => None,
        };
        if let Some(ttl) = ttl.filter(|ttl| !ttl.is_zero()) {
            let at = Instant::now();
            let miss = Miss {
                outcome,
                detail: detail.clone(),
                at,
                ttl,
            };
            self.misses.insert(miss_key, miss);
        }
        count(&source.id, outcome);
        candidate.outcome = outcome.as_str().to_owned();
        if outcome == CandidateOutcome::Found {
            if let Some(via) = detail {
                candidate.location = via;
            }
        } else {
            candidate.detail = detail;
        }
        (candidate, stored)
    }

    /// Downloads `path` (for symstore layouts also its compressed `_` form and `file.ptr`),
    /// unpacks it and stores it: the outcome, its detail (for a file found, the location that
    /// answered) and the stored files.
    async fn download_and_store(
        &self,
        source: &Source,
        module: &ModuleRef,
        path: &str,
    ) -> (CandidateOutcome, Option<String>, Option<Vec<DebugFileMeta>>) {
        let _permit = match source.downloads.acquire().await {
            Ok(permit) => permit,
            Err(_) => return (CandidateOutcome::Error, Some("shutting down".into()), None),
        };
        source.health.asked();
        let gauge =
            metrics::gauge!("faultline_symbol_source_downloads", "source" => source.id.clone());
        gauge.increment(1.0);
        let downloaded = source.download_any(path, &self.scratch).await;
        gauge.decrement(1.0);
        let (file, answered) = match downloaded {
            Ok(found) => found,
            Err(DownloadError::NotFound) => return (CandidateOutcome::NotFound, None, None),
            Err(DownloadError::Unaddressable) => {
                let detail = "the module's name cannot be asked of this source".to_owned();
                return (CandidateOutcome::Skipped, Some(detail), None);
            }
            Err(DownloadError::TooLarge(size)) => {
                let detail = format!(
                    "the answer is {size} bytes or more, over max_download_bytes ({})",
                    source.limits.max_bytes
                );
                return (CandidateOutcome::Error, Some(detail), None);
            }
            Err(DownloadError::Failed(e)) => return (CandidateOutcome::Error, Some(e), None),
        };
        let (scratch, max) = (self.scratch.clone(), source.limits.max_bytes);
        let unpacked = match cpu::run(move || decompress::unwrap(file, &scratch, max)).await {
            Ok(Ok(unpacked)) => unpacked,
            Ok(Err(e)) => return (CandidateOutcome::Malformed, Some(e), None),
            Err(e) => return (CandidateOutcome::Error, Some(e.to_string()), None),
        };
        match self
            .symbols
            .store_fetched(unpacked.path(), path, &source.id, &module.debug_id)
            .await
        {
            Ok(files) => {
                tracing::info!(source = %source.id, module = %module.display_name(), debug_id = %module.debug_id, "fetched debug file");
                (CandidateOutcome::Found, Some(answered), Some(files))
            }
            Err(FetchedFileError::Malformed(e)) => (CandidateOutcome::Malformed, Some(e), None),
            Err(FetchedFileError::Store(e)) => {
                tracing::warn!(source = %source.id, error = %e, "could not store a fetched file");
                (
                    CandidateOutcome::Error,
                    Some("could not store the file".into()),
                    None,
                )
            }
        }
    }
}

fn count(source: &str, outcome: CandidateOutcome) {
    metrics::counter!("faultline_symbol_source_requests_total", "source" => source.to_owned(), "outcome" => outcome.as_str())
        .increment(1);
}

/// What a module still lacks while its files are fetched.
struct Needs {
    functions: bool,
    unwind: bool,
}

impl Default for Needs {
    fn default() -> Needs {
        Needs {
            functions: true,
            unwind: true,
        }
    }
}

impl Needs {
    fn satisfied(&self) -> bool {
        !self.functions && !self.unwind
    }

    /// Debug files and Breakpad files give functions; executables give unwind tables (and a
    /// symbol table); source bundles only when functions were found.
    fn wants(&self, file_type: SourceFileType) -> bool {
        use SourceFileType::*;
        match file_type {
            Pdb | Portablepdb | ElfDebug | MachoDebug | Breakpad => self.functions,
            Pe | ElfCode | MachoCode => self.unwind || self.functions,
            Sourcebundle => !self.functions,
        }
    }

    fn found(&mut self, files: &[DebugFileMeta]) {
        for file in files {
            if file.features.debug || file.features.symtab {
                self.functions = false;
            }
            if file.features.unwind {
                self.unwind = false;
            }
        }
    }
}
