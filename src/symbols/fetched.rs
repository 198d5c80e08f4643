//! Files an upstream symbol source sent (see `src/upstream/`): kept like uploads, marked with
//! the source they came from, and only when they really are the module's file: a server that
//! answers a module's path with another module's file is refused.

use std::path::Path;

use symbolic::common::DebugId;

use super::identify::DebugFileMeta;
use super::{identify_file, FileStatus, SymbolError, SymbolStore};

/// Why a fetched file was not kept.
#[derive(Debug, thiserror::Error)]
pub enum FetchedFileError {
    /// It is not a debug file of the module it was fetched for.
    #[error("{0}")]
    Malformed(String),
    /// Keeping it failed on our side.
    #[error(transparent)]
    Store(#[from] SymbolError),
}

impl SymbolStore {
    /// Stores the file at `path`, sent by source `origin` for module `wanted` under the name
    /// `name`: every object in it that belongs to `wanted` is kept (as an upload would be,
    /// caches derived the same way); anything else makes the file malformed.
    pub async fn store_fetched(
        &self,
        path: &Path,
        name: &str,
        origin: &str,
        wanted: &DebugId,
    ) -> Result<Vec<DebugFileMeta>, FetchedFileError> {
        let identified = identify_file(path, name)
            .await
            .map_err(SymbolError::from)?
            .map_err(SymbolError::from)?;
        let (view, objects) = identified;
        let objects = objects.map_err(|e| FetchedFileError::Malformed(e.to_string()))?;
        let (matching, others): (Vec<_>, Vec<_>) = objects
            .into_iter()
            .partition(|o| o.meta.debug_id.parse::<DebugId>().ok().as_ref() == Some(wanted));
        if matching.is_empty() {
            let found: Vec<String> = others
                .iter()
                .map(|o| format!("{} {}", o.meta.format, o.meta.debug_id))
                .collect();
            return Err(FetchedFileError::Malformed(format!(
                "not a debug file of {wanted}: it is {}",
                if found.is_empty() {
                    "empty".to_owned()
                } else {
                    found.join(", ")
                }
            )));
        }
        let mut kept = Vec::new();
        for mut object in matching {
            object.meta.origin = Some(origin.to_owned());
            let report = self.store_object(&view, object).await?;
            if matches!(
                report.status,
                FileStatus::Stored | FileStatus::AlreadyPresent
            ) {
                metrics::counter!("faultline_symbol_files_total", "status" => "fetched")
                    .increment(1);
                kept.extend(report.file);
            }
        }
        Ok(kept)
    }
}
