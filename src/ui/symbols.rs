//! The symbol pages: missing symbols (the debug files whose absence hurt the most crashes, each
//! with the exact command that uploads it; an upload reprocesses the crashes that lacked it),
//! and a debug file's lookup by debug ID, code ID or name with the caches built from it.

use askama::Template;
use axum::extract::Request;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::groups::{project_choices, readable_projects};
use super::page::{ago, render, when, Chrome, UiError};
use super::session::Viewer;
use crate::app::App;
use crate::auth::Scope;
use crate::clock::now;
use crate::http::server_origin;
use crate::http::HttpError;
use crate::sourcemaps::ReleaseContext;
use crate::symbols::derive::CacheKind;
use crate::symbols::identify::DebugFileMeta;
use crate::symbols::ids::{parse_code_id, parse_debug_id};
use crate::symbols::SymbolQuery;

/// Rows on the page.
const ROWS: i64 = 200;

/// One debug file to upload.
pub struct MissingRow {
    pub module: String,
    pub debug_file: String,
    pub debug_id: String,
    pub crashes: i64,
    pub last_seen: String,
    pub last_seen_ago: String,
    pub upload: String,
    pub curl: String,
    /// What the upstream sources said about it (empty without sources).
    pub sources: String,
}

#[derive(Template)]
#[template(path = "missing_symbols.html")]
struct MissingPage {
    chrome: Chrome,
    projects: Vec<super::groups::Choice>,
    rows: Vec<MissingRow>,
    can_upload: bool,
    /// Whether upstream sources are configured (the table then says what they answered).
    has_sources: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct MissingParams {
    project: Option<String>,
}

/// What `faultline upload` needs after its server and token: the debug file; for a JavaScript
/// file, the minified file and its map — and, for files kept by release and URL, the release
/// and the URL's folder.
fn upload_arguments(module: &crate::group::index::MissingModule, file: &str) -> String {
    let Some(map) = file
        .strip_suffix(".map")
        .filter(|_| file.ends_with(".js.map"))
    else {
        return file.to_owned();
    };
    let pair = format!("{map} {file}");
    if !module.debug_id.starts_with("url-") {
        return pair;
    }
    let url = module.code_file.as_deref().unwrap_or_default();
    let path = url
        .split_once("://")
        .map_or(url.trim_start_matches('~'), |(_, rest)| {
            rest.find('/').map_or("/", |i| &rest[i..])
        });
    let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
    format!("--release <release> --url-prefix '~{folder}' {pair}")
}

/// `GET /ui/symbols/missing?project=`.
pub async fn missing(
    State(state): State<App>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Result<Query<MissingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(params) = params.map_err(|e| UiError::bad_request(e.body_text()))?;
    let projects = readable_projects(&state, &viewer).await?;
    let project = super::groups::chosen_project(&projects, params.project.as_deref())?;
    let origin = server_origin(&headers, &state);
    let t = now();
    let rows = state
        .index
        .missing_symbols(project.id, ROWS)
        .await?
        .into_iter()
        .map(|m| {
            let file = m
                .module
                .debug_file
                .clone()
                .or(m.module.code_file.clone())
                .unwrap_or_else(|| "<debug file>".to_owned());
            MissingRow {
                module: m.module.code_file.clone().unwrap_or_default(),
                upload: format!(
                    "faultline upload --server {origin} --token $FAULTLINE_TOKEN {}",
                    upload_arguments(&m.module, &file)
                ),
                curl: format!(
                    "curl -H \"Authorization: Bearer $FAULTLINE_TOKEN\" --data-binary @{file} \
                     '{origin}/api/v1/symbols?name={}'",
                    super::page::segment(&file)
                ),
                sources: match (&state.upstream, m.module.debug_id.parse()) {
                    (Some(upstream), Ok(id)) => upstream.why_missing(&id),
                    _ => String::new(),
                },
                debug_file: file,
                // As symbol tools and Breakpad file names spell it (and the crash page shows it).
                debug_id: m
                    .module
                    .debug_id
                    .parse::<symbolic::common::DebugId>()
                    .map_or(m.module.debug_id.clone(), |id| id.breakpad().to_string()),
                crashes: m.crashes,
                last_seen: when(m.last_seen),
                last_seen_ago: ago(m.last_seen, t),
            }
        })
        .collect();
    let page = MissingPage {
        chrome: viewer.chrome(),
        projects: project_choices(&projects, project.id),
        rows,
        can_upload: viewer.caller.may(Scope::SymbolsWrite, project.id),
        has_sources: state.upstream.is_some(),
    };
    Ok(render(&page))
}

/// A stored debug file as a row.
pub struct StoredRow {
    pub debug_id: String,
    pub uploaded_name: String,
    pub format: String,
    pub role: String,
    pub arch: String,
    pub debug_file: String,
    pub code_file: String,
    pub code_id: String,
    pub features: String,
    pub size: String,
    pub uploaded: String,
    pub sha256: String,
    /// The upstream source it was fetched from; empty for uploads.
    pub origin: String,
}

/// An upstream symbol source and its health.
pub struct SourceRow {
    pub id: String,
    pub location: String,
    pub layout: String,
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    /// `healthy`, or until when it is skipped.
    pub state: String,
    pub last_error: String,
}

/// A derived cache of a module: which file it was built from.
pub struct CacheRow {
    pub debug_id: String,
    pub kind: &'static str,
    pub version: String,
    pub source: String,
    pub built: String,
    pub size: String,
}

#[derive(Template)]
#[template(path = "symbols.html")]
struct SymbolsPage {
    chrome: Chrome,
    q: String,
    searched_by: &'static str,
    files: Vec<StoredRow>,
    caches: Vec<CacheRow>,
    sources: Vec<SourceRow>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SymbolsParams {
    q: Option<String>,
}

/// Longest lookup text.
const MAX_QUERY: usize = 256;

fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// `GET /ui/symbols?q=<debug ID | code ID | file name>`: what is stored, and the caches built
/// from it (needs `symbols:read`).
pub async fn find(
    State(state): State<App>,
    viewer: Viewer,
    params: Result<Query<SymbolsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(params) = params.map_err(|e| UiError::bad_request(e.body_text()))?;
    viewer.caller.require(Scope::SymbolsRead)?;
    let q = params.q.unwrap_or_default().trim().to_owned();
    if q.len() > MAX_QUERY {
        return Err(UiError::bad_request(format!(
            "search for at most {MAX_QUERY} characters"
        )));
    }
    let (found, searched_by) = search(&state, &q).await?;
    let caches = cache_rows(&state, &found).await;
    let files = found
        .into_iter()
        .map(|m| StoredRow {
            debug_id: parse_debug_id(&m.debug_id)
                .map_or(m.debug_id.clone(), |id| id.breakpad().to_string()),
            uploaded_name: m.uploaded_name,
            format: m.format,
            role: m.role,
            arch: m.arch,
            debug_file: m.debug_file.unwrap_or_default(),
            code_file: m.code_file.unwrap_or_default(),
            code_id: m.code_id.unwrap_or_default(),
            features: m.features.names().join(", "),
            size: size(m.size),
            uploaded: when(m.uploaded_at as i64),
            sha256: m.sha256,
            origin: m.origin.unwrap_or_default(),
        })
        .collect();
    let sources = state
        .upstream
        .iter()
        .flat_map(|upstream| upstream.sources())
        .map(|s| SourceRow {
            id: s.id,
            location: s.location,
            layout: s.layout.name().to_owned(),
            requests: s.health.requests,
            hits: s.health.hits,
            misses: s.health.misses,
            errors: s.health.errors,
            state: match s.health.skipped_until {
                Some(until) => format!("failing: skipped until {}", when(until as i64)),
                None => "healthy".to_owned(),
            },
            last_error: s.health.last_error.unwrap_or_default(),
        })
        .collect();
    Ok(render(&SymbolsPage {
        chrome: viewer.chrome(),
        q,
        searched_by,
        files,
        caches,
        sources,
    }))
}

/// The text as a debug ID, then as a code ID, then as a name: the first that finds files wins
/// (hex text can be either ID: an ELF build ID also reads as a debug ID). Returns the files and
/// what the text was searched as.
async fn search(state: &App, q: &str) -> Result<(Vec<DebugFileMeta>, &'static str), UiError> {
    let mut candidates = Vec::new();
    if !q.is_empty() {
        if let Ok(id) = parse_debug_id(q) {
            candidates.push((SymbolQuery::DebugId(id), "debug ID"));
        }
        if let Ok(id) = parse_code_id(q) {
            candidates.push((SymbolQuery::CodeId(id), "code ID"));
        }
        candidates.push((SymbolQuery::Name(q.to_owned()), "name"));
    }
    let mut found = Vec::new();
    let mut searched_by = "";
    for (query, by) in &candidates {
        searched_by = by;
        found = state.symbols.find(query).await.map_err(HttpError::from)?;
        if !found.is_empty() {
            break;
        }
    }
    if found.is_empty() && candidates.len() > 1 {
        searched_by = "debug ID, code ID or name";
    }
    Ok((found, searched_by))
}

/// The caches of every module the files belong to: built (version, source, when, size), not
/// built yet, or unreadable.
async fn cache_rows(state: &App, found: &[DebugFileMeta]) -> Vec<CacheRow> {
    let mut caches = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for meta in found {
        if !seen.insert(meta.debug_id.clone()) {
            continue;
        }
        let Ok(id) = parse_debug_id(&meta.debug_id) else {
            continue;
        };
        for kind in CacheKind::ALL {
            let debug_id = id.breakpad().to_string();
            caches.push(match state.symbols.stored_cache(&id, kind).await {
                Ok(Some(cache)) => CacheRow {
                    debug_id,
                    kind: kind.name(),
                    version: format!("v{}", cache.header.version),
                    source: cache.header.source.as_ref().map_or_else(
                        || "no file: built empty".to_owned(),
                        |s| {
                            let short = &s.sha256[..12.min(s.sha256.len())];
                            format!("{} ({}, sha256 {short}…)", s.uploaded_name, s.format)
                        },
                    ),
                    built: when(cache.header.built_at as i64),
                    size: size(cache.payload.len() as u64),
                },
                Ok(None) => CacheRow {
                    debug_id,
                    kind: kind.name(),
                    version: format!("v{}", kind.version()),
                    source: "not built yet (built on first use)".to_owned(),
                    built: String::new(),
                    size: String::new(),
                },
                Err(e) => CacheRow {
                    debug_id,
                    kind: kind.name(),
                    version: format!("v{}", kind.version()),
                    source: format!("unreadable ({e}); it is rebuilt on next use"),
                    built: String::new(),
                    size: String::new(),
                },
            });
        }
    }
    caches
}

/// One uploaded file's outcome.
pub struct UploadedRow {
    pub name: String,
    pub status: String,
    pub debug_id: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "upload_result.html")]
struct UploadPage {
    chrome: Chrome,
    error: String,
    stored: usize,
    already_present: usize,
    rejected: usize,
    skipped: usize,
    files: Vec<UploadedRow>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UploadQuery {
    /// The anti-forgery token (in the action's query: the body is the files).
    csrf: Option<String>,
}

/// `POST /ui/symbols/upload?csrf=`: the missing-symbols page's upload form (files chosen or
/// dropped on it), read as the API's upload routes read theirs and stored by the same upload
/// service (same limits, unpacking, reprocessing of the crashes that lacked them), its outcome
/// shown as a page.
pub async fn upload(
    State(state): State<App>,
    viewer: Viewer,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, UiError> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    viewer.check_csrf(query.csrf.as_deref().unwrap_or_default())?;
    viewer.caller.require(Scope::SymbolsWrite)?;
    let (scratch, upload) = crate::http::read_upload(&state, request, "upload").await?;
    let outcome = state
        .uploads
        .store(upload, scratch.path(), &ReleaseContext::default())
        .await
        .map_err(crate::http::HttpError::from)?;
    let files = outcome
        .files
        .iter()
        .map(|f| UploadedRow {
            name: f.name.clone(),
            status: f.status.to_string(),
            debug_id: f
                .file
                .as_ref()
                .and_then(|meta| parse_debug_id(&meta.debug_id).ok())
                .map(|id| id.breakpad().to_string())
                .unwrap_or_default(),
            detail: f.reason.clone().unwrap_or_default(),
        })
        .collect();
    Ok(render(&UploadPage {
        chrome: viewer.chrome(),
        error: outcome.error.clone().unwrap_or_default(),
        stored: outcome.stored,
        already_present: outcome.already_present,
        rejected: outcome.rejected,
        skipped: outcome.skipped,
        files,
    }))
}

#[cfg(test)]
mod tests {
    use super::upload_arguments;
    use crate::group::index::MissingModule;

    fn module(debug_id: &str, code_file: &str) -> MissingModule {
        MissingModule {
            debug_id: debug_id.to_owned(),
            debug_file: None,
            code_file: Some(code_file.to_owned()),
            code_id: None,
        }
    }

    #[test]
    fn javascript_files_are_uploaded_as_pairs_with_their_release_folder() {
        assert_eq!(
            upload_arguments(
                &module("3249d99d-0c40-4931-8610-f4e4fb0b6936-1", "crash.exe"),
                "crash.pdb"
            ),
            "crash.pdb"
        );
        assert_eq!(
            upload_arguments(
                &module(
                    "2f259f80-58b7-44cb-d7cd-ed1e3d26f28a",
                    "http://x/static/bundle.js"
                ),
                "bundle.js.map"
            ),
            "bundle.js bundle.js.map"
        );
        assert_eq!(
            upload_arguments(
                &module("url-0123", "https://game.example/static/js/app.js"),
                "app.js.map"
            ),
            "--release <release> --url-prefix '~/static/js' app.js app.js.map"
        );
        assert_eq!(
            upload_arguments(&module("url-0123", "~/app.js.map"), "app.js.map"),
            "--release <release> --url-prefix '~' app.js app.js.map"
        );
    }
}
