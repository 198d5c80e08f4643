//! Source files stored with a module: in a source bundle (`sentry-cli difutil bundle-sources`,
//! `--include-sources`) or embedded in the debug file itself (portable PDB). Read by path, as
//! debuggers ask for them (debuginfod's `/buildid/{id}/source/{path}`).

use symbolic::common::{ByteView, DebugId};
use symbolic::debuginfo::Object;

use super::{SymbolError, SymbolStore};
use crate::cpu;

/// The largest source file answered (a bigger one is refused, not truncated).
pub const MAX_SOURCE_BYTES: usize = 64 << 20;

impl SymbolStore {
    /// The text of the source file at `path` (as the debug information names it) from the
    /// module's stored sources; `None` when none of its files holds it.
    pub async fn source_file(
        &self,
        debug_id: &DebugId,
        path: &str,
    ) -> Result<Option<String>, SymbolError> {
        let files = self.files_for(debug_id).await?;
        for meta in files.iter().filter(|f| f.features.sources) {
            let local = self.materialize(meta).await?;
            let wanted = path.to_owned();
            let found = cpu::run(move || -> Result<Option<String>, String> {
                let view = ByteView::open(local.path()).map_err(|e| e.to_string())?;
                let object = Object::parse(&view).map_err(|e| e.to_string())?;
                let session = object.debug_session().map_err(|e| e.to_string())?;
                let source = session.source_by_path(&wanted).map_err(|e| e.to_string())?;
                Ok(source
                    .and_then(|s| s.contents().map(str::to_owned))
                    .filter(|text| text.len() <= MAX_SOURCE_BYTES))
            })
            .await?;
            match found {
                Ok(Some(text)) => return Ok(Some(text)),
                Ok(None) => continue,
                Err(detail) => {
                    tracing::warn!(file = %meta.uploaded_name, error = %detail, "stored sources unreadable");
                }
            }
        }
        Ok(None)
    }
}
