//! The modules table of a crash's page: each module with where its symbols came from
//! (uploaded, or the upstream source that had them), every location the sources were asked
//! for them with what each gave, and for a module no source has, the command that uploads it.

use crate::process::view::ModuleView;

/// One location asked for a module's files.
pub struct CandidateRow {
    pub source: String,
    pub location: String,
    pub outcome: String,
    pub detail: String,
}

/// A module row; `upload` says what to upload when its symbols are missing.
pub struct ModuleRow {
    pub name: String,
    pub version: String,
    pub debug_file: String,
    pub debug_id: String,
    pub code_id: String,
    pub base: String,
    pub status: String,
    /// `uploaded`, or the source the symbols came from; empty when none.
    pub origin: String,
    pub missing: bool,
    pub upload: String,
    pub candidates: Vec<CandidateRow>,
}

/// The shell command that uploads a module's debug file to `server`.
fn upload_command(server: &str, debug_file: &str) -> String {
    let file = if debug_file.is_empty() {
        "<debug file>"
    } else {
        debug_file
    };
    format!("faultline upload --server {server} --token $FAULTLINE_TOKEN {file}")
}

/// The module table, with where symbols came from, the locations asked, and what to upload
/// for each module whose symbols are missing.
pub fn module_rows(modules: &[ModuleView<'_>], origin: &str) -> Vec<ModuleRow> {
    modules
        .iter()
        .map(|m| ModuleRow {
            name: m.filename.to_string(),
            version: m.version.as_deref().unwrap_or_default().to_owned(),
            debug_file: m.debug_file.to_string(),
            debug_id: m.debug_id.clone(),
            code_id: m.code_id.clone(),
            base: m.base_addr.to_string(),
            status: m
                .symbols
                .as_ref()
                .map(|s| s.symbol_status.as_str().to_owned())
                .unwrap_or_default(),
            origin: m
                .symbols
                .as_ref()
                .and_then(|s| s.symbols_origin.as_deref())
                .unwrap_or_default()
                .to_owned(),
            missing: m.missing_symbols,
            upload: if m.missing_symbols {
                upload_command(origin, &m.debug_file)
            } else {
                String::new()
            },
            candidates: m
                .symbols
                .iter()
                .flat_map(|s| s.symbol_candidates.iter())
                .map(|c| CandidateRow {
                    source: c.source.clone(),
                    location: c.location.clone(),
                    outcome: c.outcome.replace('_', " "),
                    detail: match (&c.detail, c.age_secs) {
                        (Some(detail), Some(age)) => format!("{detail} ({age} s ago)"),
                        (Some(detail), None) => detail.clone(),
                        (None, _) => String::new(),
                    },
                })
                .collect(),
        })
        .collect()
}
