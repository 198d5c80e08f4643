//! Symbol routes: upload (`POST /api/v1/symbols`), lookup (`GET /api/v1/symbols?…`), download
//! of an original, cache status, and the Breakpad `.sym` answer of the symbol-server layout
//! (`src/api/symbol_server.rs` routes the rest of that layout).

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tokio_util::io::ReaderStream;

use crate::app::App;
use crate::auth::Scope;
use crate::http::bad_request;
use crate::http::read_upload;
use crate::http::Caller;
use crate::http::HttpError;
use crate::sourcemaps::ReleaseContext;
use crate::symbols::derive::CacheKind;
use crate::symbols::identify::{base_name, DebugFileMeta};
use crate::symbols::ids::{parse_code_id, parse_debug_id};
use crate::symbols::{FileStatus, SymbolQuery};
use crate::uploads::UploadOutcome;

/// `?name=` on a raw-body upload: the file's name (its path within a bundle, if any).
#[derive(Deserialize, Default)]
pub struct UploadParams {
    /// The file name of a raw-body upload.
    pub(crate) name: Option<String>,
    /// For JavaScript files without a debug ID: the project they belong to (default project
    /// when absent), the release and dist, and the URL prefix their names are joined to
    /// (`~/static/js`, as sentry-cli's `--url-prefix`).
    pub(crate) project: Option<String>,
    /// Release of JavaScript files without a debug ID.
    pub(crate) release: Option<String>,
    /// Distribution of those files.
    pub(crate) dist: Option<String>,
    /// URL prefix of those files.
    pub(crate) url_prefix: Option<String>,
}

/// Symbol downloads are public unless `auth.public_symbol_reads` is off (debuggers and stack
/// walkers cannot send a token); then they need `symbols:read`.
pub(super) fn require_symbol_read(state: &App, caller: &Caller) -> Result<(), HttpError> {
    if state.config.auth.public_symbol_reads {
        return Ok(());
    }
    caller.require(Scope::SymbolsRead).map(|_| ())
}

/// `POST /api/v1/symbols`: one debug file as the raw body (`?name=` names it), or several as
/// `multipart/form-data` parts; archives (zip, tar, tar.gz) are unpacked.
pub async fn upload(
    State(state): State<App>,
    caller: Caller,
    Query(params): Query<UploadParams>,
    request: Request,
) -> Result<Response, HttpError> {
    caller.require(Scope::SymbolsWrite)?;
    let release = match &params.release {
        Some(release) if !release.trim().is_empty() => {
            let project = crate::http::project_param(&state, params.project.as_deref()).await?;
            caller.require_in(Scope::SymbolsWrite, &project)?;
            ReleaseContext {
                project: Some(project.id),
                release: Some(release.trim().to_owned()),
                dist: params.dist.clone().filter(|d| !d.trim().is_empty()),
                url_prefix: params.url_prefix.clone(),
            }
        }
        _ => ReleaseContext::default(),
    };
    let (status, response) = receive(&state, params, &release, request).await?;
    Ok((status, Json(response)).into_response())
}

/// `POST /upload/` (Tecken, Mozilla's symbol server): a multipart body whose file is a zip
/// of a Breakpad tree, with `Auth-Token`; answered `201` with Tecken's `upload` object, so
/// Mozilla's upload scripts work unchanged. Files go through the same identification, dedupe
/// and cache building as every upload; files already stored are Tecken's `skipped_keys`, and
/// the per-file reports are added as `files`. Tecken's upload-by-URL (`url=`) is refused: the
/// server does not fetch from addresses a client names.
pub async fn tecken_upload(
    State(state): State<App>,
    caller: Caller,
    request: Request,
) -> Result<Response, HttpError> {
    caller.require(Scope::SymbolsWrite)?;
    let size = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "Must be multipart form data with at least one file",
        )
        .with_detail("upload by URL is not supported: send the archive itself"));
    }
    let (status, response) = receive(
        &state,
        UploadParams::default(),
        &ReleaseContext::default(),
        request,
    )
    .await?;
    if status != StatusCode::OK {
        return Ok((status, Json(response)).into_response());
    }
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let skipped: Vec<&str> = response
        .files
        .iter()
        .filter(|f| f.status == FileStatus::AlreadyPresent)
        .map(|f| f.name.as_str())
        .collect();
    let upload = json!({
        "id": now.unix_timestamp_nanos() / 1_000_000,
        "size": size,
        "filename": response.received.first(),
        "bucket": "faultline",
        "region": null,
        "download_url": null,
        "try_symbols": false,
        "redirect_urls": [],
        "completed_at": stamp,
        "created_at": stamp,
        "user": caller.0.as_ref().map(|t| t.name.clone()),
        "skipped_keys": skipped,
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({ "upload": upload, "files": response.files })),
    )
        .into_response())
}

/// `POST /post?format=symbols&token=…` (Backtrace's symbol upload): the body is one debug
/// file or an archive of them, `token` an API token with `symbols:write` (`name=` may name
/// the file). Answered like `POST /api/v1/symbols`, with `"response": "ok"` on success.
pub(super) async fn backtrace_upload(
    state: App,
    query: std::collections::HashMap<String, String>,
    request: Request,
) -> Result<Response, HttpError> {
    let caller = Caller::from_secret(&state, query.get("token").map(String::as_str)).await?;
    caller.require(Scope::SymbolsWrite)?;
    let params = UploadParams {
        name: query.get("name").cloned(),
        ..UploadParams::default()
    };
    let (status, response) = receive(&state, params, &ReleaseContext::default(), request).await?;
    let mut body = serde_json::to_value(&response).unwrap_or_default();
    if status == StatusCode::OK {
        body["response"] = "ok".into();
    }
    Ok((status, Json(body)).into_response())
}

/// Reads an upload (raw or multipart) into scratch space and hands it to the upload service,
/// which stores and announces every file. `200` when anything was stored or already there,
/// else `400` with the reason.
async fn receive(
    state: &App,
    params: UploadParams,
    release: &ReleaseContext,
    request: Request,
) -> Result<(StatusCode, UploadOutcome), HttpError> {
    let raw_name = params
        .name
        .unwrap_or_else(|| crate::symbols::identify::UNNAMED_UPLOAD.to_owned());
    let (scratch, upload) = read_upload(state, request, &raw_name).await?;
    let outcome = state.uploads.store(upload, scratch.path(), release).await?;
    let status = if outcome.kept_any() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, outcome))
}

/// `?debug_id=` | `?code_id=` | `?name=`: exactly one.
#[derive(Deserialize)]
pub struct ListParams {
    debug_id: Option<String>,
    code_id: Option<String>,
    name: Option<String>,
}

/// `GET /api/v1/symbols`: the stored files for one debug ID, code ID or file name.
pub async fn list(
    State(state): State<App>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<serde_json::Value>, HttpError> {
    caller.require(Scope::SymbolsRead)?;
    let query = match (params.debug_id, params.code_id, params.name) {
        (Some(id), None, None) => SymbolQuery::DebugId(parse_debug_id(&id).map_err(bad_request)?),
        (None, Some(id), None) => SymbolQuery::CodeId(parse_code_id(&id).map_err(bad_request)?),
        (None, None, Some(name)) if !name.trim().is_empty() => {
            SymbolQuery::Name(name.trim().to_owned())
        }
        _ => {
            return Err(bad_request("give exactly one of debug_id, code_id or name")
                .with_detail("e.g. /api/v1/symbols?debug_id=C0BCC3F19827FE653058404B2831D9E60"))
        }
    };
    let files = state.symbols.find(&query).await?;
    Ok(Json(json!({ "files": files })))
}

async fn stored_file(
    state: &App,
    debug_id: &str,
    sha256: &str,
) -> Result<DebugFileMeta, HttpError> {
    let id = parse_debug_id(debug_id).map_err(bad_request)?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_request(format!(
            "{sha256:?} is not a SHA-256 (64 hex digits)"
        )));
    }
    let sha256 = sha256.to_ascii_lowercase();
    state
        .symbols
        .files_for(&id)
        .await?
        .into_iter()
        .find(|meta| meta.sha256 == sha256)
        .ok_or_else(|| {
            HttpError::new(StatusCode::NOT_FOUND, "no such stored file")
                .with_detail("list the module's files with GET /api/v1/symbols?debug_id=…")
        })
}

pub(super) async fn stream_original(
    state: &App,
    meta: &DebugFileMeta,
    content_type: &str,
) -> Result<Response, HttpError> {
    let reader = state.symbols.open_original(meta).await?.ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "the file's metadata exists but its bytes are missing",
        )
    })?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        base_name(&meta.uploaded_name).replace(['"', '\\'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, meta.size.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(ReaderStream::new(reader.body)),
    )
        .into_response())
}

/// `GET /api/v1/symbols/{debug_id}/{sha256}`: the original bytes of one stored file.
pub async fn download(
    State(state): State<App>,
    caller: Caller,
    axum::extract::Path((debug_id, sha256)): axum::extract::Path<(String, String)>,
) -> Result<Response, HttpError> {
    require_symbol_read(&state, &caller)?;
    let meta = stored_file(&state, &debug_id, &sha256).await?;
    stream_original(&state, &meta, "application/octet-stream").await
}

/// `DELETE /api/v1/symbols/{debug_id}` (`admin`): every stored file of a module, with its
/// caches. Crashes already processed keep their frames; new ones will miss these symbols.
pub async fn delete_module(
    State(state): State<App>,
    caller: Caller,
    axum::extract::Path(debug_id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, HttpError> {
    delete_symbols(&state, &caller, &debug_id, None).await
}

/// `DELETE /api/v1/symbols/{debug_id}/{sha256}` (`admin`): one stored file; the module's
/// caches are rebuilt from the files that remain.
pub async fn delete_file(
    State(state): State<App>,
    caller: Caller,
    axum::extract::Path((debug_id, sha256)): axum::extract::Path<(String, String)>,
) -> Result<Json<serde_json::Value>, HttpError> {
    delete_symbols(&state, &caller, &debug_id, Some(&sha256)).await
}

async fn delete_symbols(
    state: &App,
    caller: &Caller,
    debug_id: &str,
    sha256: Option<&str>,
) -> Result<Json<serde_json::Value>, HttpError> {
    caller.require(Scope::Admin)?;
    let id = parse_debug_id(debug_id).map_err(bad_request)?;
    let sha256 = match sha256 {
        Some(sha) if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Err(bad_request(format!(
                "{sha:?} is not a SHA-256 (64 hex digits)"
            )))
        }
        Some(sha) => Some(sha.to_ascii_lowercase()),
        None => None,
    };
    let deleted = state.uploads.delete(&id, sha256.as_deref()).await?;
    if deleted.is_empty() {
        return Err(HttpError::new(StatusCode::NOT_FOUND, "no such stored file")
            .with_detail("list the module's files with GET /api/v1/symbols?debug_id=…"));
    }
    Ok(Json(
        json!({ "debug_id": id.to_string(), "deleted": deleted }),
    ))
}

/// `GET /api/v1/symbols/sources`: each upstream symbol source with its health (requests, hits,
/// misses, errors, the last error, whether it is skipped after failing and until when).
pub async fn sources(
    State(state): State<App>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, HttpError> {
    caller.require(Scope::SymbolsRead)?;
    let sources = state
        .upstream
        .as_ref()
        .map(|upstream| upstream.sources())
        .unwrap_or_default();
    Ok(Json(json!({ "sources": sources })))
}

/// `GET /api/v1/symbols/{debug_id}/caches`: the module's SymCache and CFI, built now if
/// missing or stale, and which stored file each came from.
pub async fn caches(
    State(state): State<App>,
    caller: Caller,
    axum::extract::Path(debug_id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, HttpError> {
    caller.require(Scope::SymbolsRead)?;
    let id = parse_debug_id(&debug_id).map_err(bad_request)?;
    state.symbols.refresh_caches(&id).await?;
    let files = state.symbols.files_for(&id).await?;
    let mut caches = Vec::new();
    for kind in CacheKind::ALL {
        let cache = state.symbols.cache(&id, kind, &files).await?;
        caches.push(json!({
            "kind": kind,
            "version": cache.header.version,
            "source": cache.header.source,
            "built_at": cache.header.built_at,
            "size": cache.payload.len(),
        }));
    }
    Ok(Json(
        json!({ "debug_id": id.to_string(), "caches": caches }),
    ))
}

/// `files` when they are all one module's (one debug ID), else none: a lookup by ID accepts a
/// module's files whatever name they were uploaded under (a raw upload without a name, a
/// renamed file) when no file answers to the name asked for.
pub(super) fn one_module<'a, 'b>(files: &'b [&'a DebugFileMeta]) -> &'b [&'a DebugFileMeta] {
    match files.first() {
        Some(first) if files.iter().all(|f| f.debug_id == first.debug_id) => files,
        _ => &[],
    }
}

/// Whether a stored file answers to the name a Breakpad client asked for: the same debug or
/// code file name, compared without case and without extension (`crash.debug` ~ `crash`).
pub(super) fn answers_to(meta: &DebugFileMeta, requested: &str) -> bool {
    fn stem(name: &str) -> String {
        let base = base_name(name);
        base.rsplit_once('.')
            .map_or(base, |(stem, _)| stem)
            .to_lowercase()
    }
    let wanted = stem(requested);
    [&meta.debug_file, &meta.code_file]
        .into_iter()
        .flatten()
        .any(|name| stem(name) == wanted)
}

/// `GET /symbols/{debug_file}/{DEBUG_ID}/{file}.sym`: a stored Breakpad symbol file, in the
/// layout Breakpad and rust-minidump symbol clients request (the caller is checked by
/// [`super::symbol_server::symbols`]).
pub(super) async fn breakpad(
    state: &App,
    debug_file: &str,
    debug_id: &str,
) -> Result<Response, HttpError> {
    let id = parse_debug_id(debug_id).map_err(bad_request)?;
    let files = state.symbols.files_for(&id).await?;
    let syms: Vec<&DebugFileMeta> = files.iter().filter(|m| m.format == "breakpad").collect();
    let sym = syms
        .iter()
        .filter(|meta| answers_to(meta, debug_file))
        .max_by_key(|meta| meta.size)
        .or(one_module(&syms).iter().max_by_key(|meta| meta.size));
    if let Some(meta) = sym {
        return stream_original(state, meta, "text/plain; charset=utf-8").await;
    }
    // No uploaded `.sym`: one generated from the module's native files (the debug ID names
    // the module; its files may have been uploaded under any name).
    if !files.is_empty() {
        if let Some(reader) = state.symbols.generated_sym(&id).await? {
            return Ok((
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
                    (header::CONTENT_LENGTH, reader.size.to_string()),
                ],
                Body::from_stream(ReaderStream::new(reader.body)),
            )
                .into_response());
        }
    }
    if files.is_empty() {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no debug files stored for {debug_file} {}", id.breakpad()),
        )
        .with_detail("upload them with POST /api/v1/symbols or `faultline upload`"));
    }
    Err(HttpError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no Breakpad .sym stored or generated for {debug_file} {}",
            id.breakpad()
        ),
    )
    .with_detail(format!(
        "stored for this debug ID: {}",
        files
            .iter()
            .map(|f| format!("{} ({})", f.uploaded_name, f.format))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
