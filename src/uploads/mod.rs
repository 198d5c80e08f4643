//! The upload service: what happens to debug files and JavaScript artifacts once a front end
//! has them on disk, whichever protocol brought them (faultline's own upload, Tecken,
//! sentry-cli, Breakpad's symupload, Backtrace, the web UI's form). Each file is identified and
//! stored; then what was stored is announced — this node's and every other node's module
//! caches forget the debug IDs, the crashes and events that lacked them are queued again, and
//! caches are built when configured. Deleting files announces the same way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use symbolic::common::DebugId;
use tokio::sync::Notify;

use crate::cluster::{Change, ClusterEvents};
use crate::ingest::queue::IngestQueue;
use crate::process::modules::ModuleCache;
use crate::sourcemaps::ReleaseContext;
use crate::symbols::identify::{DebugFileMeta, BCSYMBOLMAP_FORMAT};
use crate::symbols::ids::parse_debug_id;
use crate::symbols::{FileReport, FileStatus, SymbolError, SymbolStore};

/// A file a front end received and spooled to scratch space.
pub struct ReceivedFile {
    /// The name it was sent under (a multipart part's file name, `?name=`).
    pub name: String,
    /// Where its bytes are now.
    pub path: PathBuf,
}

/// One upload as a front end read it: the files, and the names of form fields that came
/// without a file (Breakpad's symupload sends `code_file`, `debug_file`, `os`… beside
/// `symbol_file`; the file's own MODULE line says the same, and is what counts).
#[derive(Default)]
pub struct Upload {
    /// The files, in the order received.
    pub files: Vec<ReceivedFile>,
    /// Form fields without a file name.
    pub form_fields: Vec<String>,
}

/// What became of an upload: one report per file, and the totals.
#[derive(Debug, Serialize)]
pub struct UploadOutcome {
    /// Why nothing was kept, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Files stored now.
    pub stored: usize,
    /// Files that were stored before.
    pub already_present: usize,
    /// Files refused (not a debug file, broken, over a limit).
    pub rejected: usize,
    /// Parts that were not files, or files left out on purpose.
    pub skipped: usize,
    /// Every file's report.
    pub files: Vec<FileReport>,
    /// The names the upload's files were sent under (a Tecken answer names the archive).
    #[serde(skip)]
    pub received: Vec<String>,
}

impl UploadOutcome {
    /// Whether anything was stored or already there.
    pub fn kept_any(&self) -> bool {
        self.stored + self.already_present > 0
    }
}

/// Stores uploaded files and announces what they unblock.
pub struct Uploads {
    symbols: Arc<SymbolStore>,
    modules: ModuleCache,
    cluster: Arc<ClusterEvents>,
    queue: Arc<IngestQueue>,
    wake: Arc<Notify>,
    settings: UploadSettings,
}

/// What the configuration says about uploads.
#[derive(Debug, Clone, Copy)]
pub struct UploadSettings {
    /// Queue again the crashes that lacked a file just stored (`ingest.reprocess_on_upload`).
    pub reprocess_on_upload: bool,
    /// Build a module's caches right after its file is stored (`caches.build_on_upload`).
    pub build_caches_on_upload: bool,
}

impl Uploads {
    /// The service over the application's stores; `wake` rouses the processing workers.
    pub fn new(
        symbols: Arc<SymbolStore>,
        modules: ModuleCache,
        cluster: Arc<ClusterEvents>,
        queue: Arc<IngestQueue>,
        wake: Arc<Notify>,
        settings: UploadSettings,
    ) -> Uploads {
        Uploads {
            symbols,
            modules,
            cluster,
            queue,
            wake,
            settings,
        }
    }

    /// Identifies and stores every file of `upload` (unpacking archives under `scratch`),
    /// announces what was stored, and totals the reports. `release` places JavaScript files
    /// that carry no debug ID.
    pub async fn store(
        &self,
        upload: Upload,
        scratch: &Path,
        release: &ReleaseContext,
    ) -> Result<UploadOutcome, SymbolError> {
        let mut files: Vec<FileReport> = upload
            .form_fields
            .into_iter()
            .map(|name| FileReport {
                name,
                status: FileStatus::Skipped,
                reason: Some("a form field, not a file (no filename)".to_owned()),
                file: None,
                artifact: None,
            })
            .collect();
        for received in &upload.files {
            let unpacked = tempfile::tempdir_in(scratch)?;
            let reports = self
                .symbols
                .ingest(&received.path, &received.name, unpacked.path(), release)
                .await;
            files.extend(reports);
        }
        // Announced once, after every file is stored: a crash that lacked a minified file
        // and its map is reprocessed when it can find both.
        self.announce_stored(&files).await;
        let received = upload.files.into_iter().map(|f| f.name).collect();
        Ok(totals(files, received))
    }

    /// Identifies and stores one file (an archive's members, a universal Mach-O's
    /// architectures), then announces what was stored.
    pub async fn store_file(
        &self,
        path: &Path,
        name: &str,
        scratch: &Path,
        release: &ReleaseContext,
    ) -> Vec<FileReport> {
        let reports = self.symbols.ingest(path, name, scratch, release).await;
        self.announce_stored(&reports).await;
        reports
    }

    /// Deletes a module's stored files (or the one with `sha256`) with their caches, and
    /// announces it: dumps processed from now on, here and on every other node, no longer see
    /// them. Returns what was deleted (empty: nothing matched).
    pub async fn delete(
        &self,
        id: &DebugId,
        sha256: Option<&str>,
    ) -> Result<Vec<DebugFileMeta>, SymbolError> {
        let deleted = self.symbols.delete(id, sha256).await?;
        if !deleted.is_empty() {
            self.forget_everywhere(id, "deletion").await;
            tracing::info!(debug_id = %id, files = deleted.len(), "deleted debug files");
        }
        Ok(deleted)
    }

    /// After an upstream source's file for `id` was stored: as after an upload, caches forget
    /// the module here and on every node, and the crashes recorded without it are queued again
    /// (a crash processed while the file was downloading is queued by its worker, which waits
    /// for that download).
    pub async fn announce_fetched(&self, id: DebugId) {
        self.forget_everywhere(&id, "fetched file").await;
        if self.settings.reprocess_on_upload {
            self.reprocess_missing(&id.to_string()).await;
        }
    }

    /// After files were stored: caches forget their debug IDs here and on every node, the
    /// crashes and events that lacked them are queued again, caches are built when configured.
    async fn announce_stored(&self, files: &[FileReport]) {
        let stored = || files.iter().filter(|f| f.status == FileStatus::Stored);
        let mut fresh: BTreeSet<DebugId> = stored()
            .filter_map(|f| parse_debug_id(&f.file.as_ref()?.debug_id).ok())
            .collect();
        // A BCSymbolMap stored under an original build's UUID un-hides the names of the dSYMs
        // whose UUID mappings point to it: their functions are read again too.
        let symbol_maps: Vec<DebugId> = stored()
            .filter_map(|f| f.file.as_ref())
            .filter(|meta| meta.format == BCSYMBOLMAP_FORMAT)
            .filter_map(|meta| parse_debug_id(&meta.debug_id).ok())
            .collect();
        for original in symbol_maps {
            match self.symbols.dsyms_mapped_to(&original).await {
                Ok(dsyms) => fresh.extend(dsyms),
                Err(e) => {
                    tracing::warn!(debug_id = %original, error = %e, "could not read the UUID mappings of a symbol map's build");
                }
            }
        }
        // Events whose JavaScript frames lacked one of these files are processed again.
        let artifacts: BTreeSet<&str> = stored()
            .filter_map(|f| Some(f.artifact.as_ref()?.store_id.as_str()))
            .filter(|id| !id.is_empty())
            .collect();
        if self.settings.reprocess_on_upload {
            for id in artifacts {
                self.reprocess_missing(id).await;
            }
        }
        for id in fresh {
            self.forget_everywhere(&id, "upload").await;
            if self.settings.reprocess_on_upload {
                self.reprocess_missing(&id.to_string()).await;
            }
            if self.settings.build_caches_on_upload {
                let (symbols, modules) = (Arc::clone(&self.symbols), self.modules.clone());
                tokio::spawn(async move {
                    if let Err(e) = symbols.refresh_caches(&id).await {
                        tracing::warn!(debug_id = %id, error = %e, "background cache build failed");
                    }
                    modules.invalidate(&id).await;
                });
            }
        }
    }

    /// Dumps processed from now on see the module's files as they are now, here and (through
    /// the cluster's change log) on every other node.
    async fn forget_everywhere(&self, id: &DebugId, what: &str) {
        self.modules.invalidate(id).await;
        if let Err(e) = self.cluster.publish(&Change::Symbols(id.to_string())).await {
            tracing::warn!(debug_id = %id, error = %e, "could not announce the {what} to other nodes");
        }
    }

    /// Queues again the stored crashes that lacked symbols for `debug_id` (at most 1000,
    /// newest first; a JavaScript artifact's store ID for events).
    async fn reprocess_missing(&self, debug_id: &str) {
        let crashes = match self.queue.missing(debug_id, 1000).await {
            Ok(crashes) => crashes,
            Err(e) => {
                return tracing::warn!(%debug_id, error = %e, "could not find crashes to reprocess")
            }
        };
        for crash in &crashes {
            if let Err(e) = self.queue.reprocess(crash).await {
                tracing::warn!(crash_id = %crash, error = %e, "could not requeue crash");
            }
        }
        if !crashes.is_empty() {
            tracing::info!(%debug_id, crashes = crashes.len(), "reprocessing crashes that lacked these symbols");
            metrics::counter!("faultline_reprocessed_on_upload_total")
                .increment(crashes.len() as u64);
            self.wake.notify_waiters();
            self.wake.notify_one();
        }
    }
}

/// The totals of an upload's reports, and the reason it failed when nothing was kept.
fn totals(files: Vec<FileReport>, received: Vec<String>) -> UploadOutcome {
    let count = |status| files.iter().filter(|f| f.status == status).count();
    let mut outcome = UploadOutcome {
        error: None,
        stored: count(FileStatus::Stored),
        already_present: count(FileStatus::AlreadyPresent),
        rejected: count(FileStatus::Rejected),
        skipped: count(FileStatus::Skipped),
        files,
        received,
    };
    if !outcome.kept_any() {
        outcome.error = Some(match outcome.files.as_slice() {
            [only] => only
                .reason
                .clone()
                .unwrap_or_else(|| "no debug file in the upload".into()),
            _ => {
                "no debug file in the upload: every file was rejected or skipped (see files)".into()
            }
        });
    }
    outcome
}
