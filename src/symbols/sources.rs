//! Source files stored with a module: in a source bundle (`sentry-cli difutil bundle-sources`,
//! `--include-sources`) or embedded in the debug file itself (portable PDB), and where a .NET
//! PDB's Source Link says each file lives (`https://raw.githubusercontent.com/…/{commit}/…`).
//! Read by path, as debuggers ask for them (debuginfod's `/buildid/{id}/source/{path}`).

use symbolic::common::{ByteView, DebugId};
use symbolic::debuginfo::Object;

use super::{SymbolError, SymbolStore};
use crate::cpu;

/// The largest source file answered (a bigger one is refused, not truncated).
pub const MAX_SOURCE_BYTES: usize = 64 << 20;

/// What a module's stored files know of one source file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSource {
    /// Its text, when a file carries it.
    pub text: Option<String>,
    /// Where it can be read, when a PDB's Source Link names it (http or https only).
    pub url: Option<String>,
}

impl SymbolStore {
    /// What the module's stored files hold of the source file at `path` (as the debug
    /// information names it): its text, its Source Link URL, or both; `None` when no file
    /// knows it.
    pub async fn source_file(
        &self,
        debug_id: &DebugId,
        path: &str,
    ) -> Result<Option<StoredSource>, SymbolError> {
        let files = self.files_for(debug_id).await?;
        let mut found = StoredSource::default();
        for meta in files.iter().filter(|f| f.features.sources) {
            let local = self.materialize(meta).await?;
            let wanted = path.to_owned();
            let read = cpu::run(move || -> Result<StoredSource, String> {
                let view = ByteView::open(local.path()).map_err(|e| e.to_string())?;
                let object = Object::parse(&view).map_err(|e| e.to_string())?;
                read_source(&object, &wanted)
            })
            .await?;
            match read {
                Ok(source) => {
                    found.url = found.url.or(source.url);
                    found.text = found.text.or(source.text);
                    if found.text.is_some() && found.url.is_some() {
                        break;
                    }
                }
                Err(detail) => {
                    tracing::warn!(file = %meta.uploaded_name, error = %detail, "stored sources unreadable");
                }
            }
        }
        Ok((found != StoredSource::default()).then_some(found))
    }
}

/// The source file at `path` in one debug file: its text (a bundle's or an embedded one) and
/// its Source Link URL (a portable PDB's, which may embed the text as well).
fn read_source(object: &Object<'_>, path: &str) -> Result<StoredSource, String> {
    let session = object.debug_session().map_err(|e| e.to_string())?;
    let source = session.source_by_path(path).map_err(|e| e.to_string())?;
    let text = source
        .as_ref()
        .and_then(|s| s.contents().map(str::to_owned))
        .filter(|text| text.len() <= MAX_SOURCE_BYTES);
    let url = source
        .as_ref()
        .and_then(|s| s.url().map(str::to_owned))
        .or_else(|| source_link(object, path));
    Ok(StoredSource {
        text,
        url: url.filter(|u| u.starts_with("https://") || u.starts_with("http://")),
    })
}

/// The Source Link URL a portable PDB gives the document at `path` (asked separately: a
/// document whose text is embedded is not also given its link by the debug session).
fn source_link(object: &Object<'_>, path: &str) -> Option<String> {
    let Object::PortablePdb(pdb) = object else {
        return None;
    };
    let pdb = pdb.portable_pdb();
    if !pdb.has_source_links().unwrap_or(false) {
        return None;
    }
    let count = pdb.get_documents_count().ok()?;
    (1..=count)
        .filter_map(|i| pdb.get_document(i).ok())
        .find(|doc| doc.name == path)
        .and_then(|doc| pdb.get_source_link(&doc).map(|url| url.into_owned()))
}
