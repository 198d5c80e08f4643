//! sentry-cli's debug-file upload (`sentry-cli --url http://faultline … debug-files upload`):
//! the chunk-upload options, chunk uploads (parts named by their SHA-1, gzip or plain), and
//! `difs/assemble`, which answers which chunks are missing, or puts the file together and
//! ingests it like every other upload (same identification, dedupe, caches and reasons).
//!
//! Sentry's paths name an organization; faultline has none, so any name is accepted. The
//! project must exist, and every route needs `symbols:write` (`Authorization: Bearer`, as
//! sentry-cli sends its auth token). Assembly happens within the request, so the first answer
//! with all chunks present is already `ok` or `error`.

use std::collections::BTreeMap;
use std::io::Read;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::app::App;
use crate::auth::Scope;
use crate::http::bad_request;
use crate::http::Caller;
use crate::http::{next_part, read_limited, BodyLimit, UploadBody};
use crate::http::{scratch_failed, HttpError};
use crate::sourcemaps::ReleaseContext;
use crate::symbols::chunks::{ChunkDigest, CHUNK_SIZE};
use crate::symbols::identify::DebugFileMeta;
use crate::symbols::{FileReport, FileStatus};

/// Chunks sentry-cli may send in one request.
const CHUNKS_PER_REQUEST: u64 = 64;
/// Bytes of chunks in one request (before compression).
const MAX_REQUEST_BYTES: u64 = 32 << 20;
/// The largest assemble request body (file names and chunk lists).
const MAX_ASSEMBLE_BODY: u64 = 4 << 20;
/// Files one assemble request may name.
const MAX_ASSEMBLE_FILES: usize = 1000;

/// `GET /api/0/organizations/{org}/chunk-upload/`: how to send chunks. The URL is relative,
/// which sentry-cli (since 1.70.1) resolves against the `--url` it was given, so the answer
/// holds behind any proxy.
pub async fn options(
    State(state): State<App>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::SymbolsWrite)?;
    Ok(Json(json!({
        "url": format!("organizations/{}/chunk-upload/", crate::http::segment(&org)),
        "chunkSize": CHUNK_SIZE,
        "chunksPerRequest": CHUNKS_PER_REQUEST,
        "maxFileSize": state.config.limits.max_upload_bytes,
        "maxRequestSize": MAX_REQUEST_BYTES,
        "concurrency": 4,
        "hashAlgorithm": "sha1",
        "compression": ["gzip"],
        "accept": ["debug_files", "pdbs", "portablepdbs", "sources", "bcsymbolmaps", "artifact_bundles", "artifact_bundles_v2"],
    })))
}

/// `POST /api/0/organizations/{org}/chunk-upload/`: multipart parts named `file` (plain) or
/// `file_gzip`, each with its SHA-1 as the file name; every chunk is checked against its name
/// before it is kept.
pub async fn upload_chunks(
    State(state): State<App>,
    caller: Caller,
    request: Request,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::SymbolsWrite)?;
    let mut limit = BodyLimit::new(
        MAX_REQUEST_BYTES,
        "the chunk-upload options' maxRequestSize",
    );
    let UploadBody::Multipart(mut multipart) =
        UploadBody::from_request(request, &state, &limit).await?
    else {
        return Err(bad_request("chunks must be sent as multipart/form-data")
            .with_detail("one part per chunk, named file or file_gzip, its SHA-1 as file name"));
    };
    let mut stored = 0u64;
    while let Some(field) = next_part(&mut multipart).await? {
        let gzip = match field.name() {
            Some("file") => false,
            Some("file_gzip") => true,
            other => {
                return Err(bad_request(format!(
                    "unexpected part {:?}: chunks are parts named file or file_gzip",
                    other.unwrap_or_default()
                )))
            }
        };
        let name = field.file_name().unwrap_or_default().to_owned();
        let Some(digest) = ChunkDigest::parse(&name) else {
            return Err(bad_request(format!(
                "chunk file name {name:?} is not a SHA-1 (40 hex digits)"
            )));
        };
        stored += 1;
        if stored > CHUNKS_PER_REQUEST {
            return Err(bad_request(format!(
                "more than {CHUNKS_PER_REQUEST} chunks in one request"
            )));
        }
        let sent = read_limited(field, &mut limit).await?;
        let data = if gzip { gunzip(&sent)? } else { sent };
        if data.len() as u64 > CHUNK_SIZE {
            return Err(bad_request(format!(
                "chunk {digest} is {} bytes, more than the {CHUNK_SIZE}-byte chunk size",
                data.len()
            )));
        }
        let actual = ChunkDigest::of(&data);
        if actual != digest {
            return Err(bad_request(format!(
                "chunk named {digest} has SHA-1 {actual}: it was damaged on the way, or named wrongly"
            )));
        }
        state.symbols.put_chunk(&digest, data).await?;
    }
    Ok(Json(json!({ "stored": stored })))
}

/// A gzip part, inflated to at most one chunk and a byte (more is refused by the caller).
fn gunzip(sent: &[u8]) -> Result<bytes::Bytes, HttpError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(sent)
        .take(CHUNK_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad_request(format!("a file_gzip chunk is not valid gzip: {e}")))?;
    Ok(out.into())
}

/// One file of an assemble request: its name, and its chunks in order.
#[derive(Deserialize)]
struct AssembleFile {
    name: String,
    /// The module's debug ID, when sentry-cli knows it (PDBs); the file's own ID is what counts.
    #[serde(default)]
    #[allow(dead_code)]
    debug_id: Option<String>,
    chunks: Vec<String>,
}

/// The answer for one file of an assemble request: Sentry's `ChunkedFileState` (`ok`,
/// `error`, `not_found`), the chunks still to send, and once stored, the file.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssembleState {
    state: &'static str,
    missing_chunks: Vec<String>,
    detail: Option<String>,
    dif: Option<Value>,
}

impl AssembleState {
    fn error(detail: impl Into<String>) -> AssembleState {
        AssembleState {
            state: "error",
            missing_chunks: Vec::new(),
            detail: Some(detail.into()),
            dif: None,
        }
    }
}

/// `POST /api/0/projects/{org}/{project}/files/difs/assemble/`: for each file (keyed by its
/// SHA-1), `not_found` with the chunks still to send, or, once all are here, `ok` with the
/// stored file or `error` with the reason it was refused.
pub async fn assemble(
    State(state): State<App>,
    caller: Caller,
    Path((_org, project)): Path<(String, String)>,
    request: Request,
) -> Result<Json<BTreeMap<String, AssembleState>>, HttpError> {
    caller.require(Scope::SymbolsWrite)?;
    let project = state.registry.project(&project).await?.ok_or_else(|| {
        HttpError::new(StatusCode::NOT_FOUND, format!("no project {project:?}"))
            .with_detail("create it with `faultline project create`, or pass the right --project")
    })?;
    caller.require_in(Scope::SymbolsWrite, &project)?;
    let mut limit = BodyLimit::new(MAX_ASSEMBLE_BODY, "nothing: send fewer files per request");
    let body = read_limited(request.into_body().into_data_stream(), &mut limit).await?;
    let files: BTreeMap<String, AssembleFile> = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!("invalid assemble request: {e}"))
            .with_detail(r#"send {"<sha1>": {"name": "…", "chunks": ["<sha1>", …]}}"#)
    })?;
    if files.len() > MAX_ASSEMBLE_FILES {
        return Err(bad_request(format!(
            "more than {MAX_ASSEMBLE_FILES} files in one assemble request"
        )));
    }
    let mut answer = BTreeMap::new();
    for (checksum, file) in files {
        let state_of = assemble_one(&state, &checksum, &file, &ReleaseContext::default()).await?;
        answer.insert(checksum, state_of);
    }
    Ok(Json(answer))
}

/// The file's checksum and chunk digests, or the `error` state saying which is not a SHA-1 or
/// that there are too many chunks for `limits.max_upload_bytes`.
fn requested_chunks(
    state: &App,
    checksum: &str,
    file: &AssembleFile,
) -> Result<(ChunkDigest, Vec<ChunkDigest>), AssembleState> {
    let Some(checksum) = ChunkDigest::parse(checksum) else {
        return Err(AssembleState::error(format!(
            "{checksum:?} is not a SHA-1 (40 hex digits)"
        )));
    };
    let mut chunks = Vec::with_capacity(file.chunks.len());
    for chunk in &file.chunks {
        match ChunkDigest::parse(chunk) {
            Some(digest) => chunks.push(digest),
            None => {
                return Err(AssembleState::error(format!(
                    "chunk {chunk:?} is not a SHA-1 (40 hex digits)"
                )))
            }
        }
    }
    let max_chunks = state
        .config
        .limits
        .max_upload_bytes
        .div_ceil(CHUNK_SIZE)
        .max(1);
    if chunks.is_empty() || chunks.len() as u64 > max_chunks {
        return Err(AssembleState::error(format!(
            "a file needs 1 to {max_chunks} chunks (limits.max_upload_bytes); {} given",
            chunks.len()
        )));
    }
    Ok((checksum, chunks))
}

/// One file of an assemble request (see [`assemble`]).
async fn assemble_one(
    state: &App,
    checksum: &str,
    file: &AssembleFile,
    release: &ReleaseContext,
) -> Result<AssembleState, HttpError> {
    let (checksum, chunks) = match requested_chunks(state, checksum, file) {
        Ok(parsed) => parsed,
        Err(refusal) => return Ok(refusal),
    };
    if let Some(meta) = state.symbols.assembled(&checksum).await? {
        return Ok(ok(&meta, &checksum));
    }
    let missing = state.symbols.missing_chunks(&chunks).await?;
    if !missing.is_empty() {
        return Ok(AssembleState {
            state: "not_found",
            missing_chunks: missing.iter().map(ToString::to_string).collect(),
            detail: None,
            dif: None,
        });
    }
    let scratch = state.symbols.scratch_dir().map_err(scratch_failed)?;
    let path = scratch.path().join("assembled");
    let limit = state.config.limits.max_upload_bytes;
    if let Err(e) = state
        .symbols
        .assemble_chunks(&chunks, &checksum, &path, limit)
        .await?
    {
        return Ok(AssembleState::error(e.to_string()));
    }
    let unpacked = scratch.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).map_err(scratch_failed)?;
    let name = file.name.trim();
    let name = if name.is_empty() {
        crate::symbols::identify::UNNAMED_UPLOAD
    } else {
        name
    };
    let reports = state
        .uploads
        .store_file(&path, name, &unpacked, release)
        .await;
    let kept = reports.iter().find(|r| {
        matches!(r.status, FileStatus::Stored | FileStatus::AlreadyPresent) && r.file.is_some()
    });
    let answer = match kept.and_then(|r| r.file.as_ref()) {
        Some(meta) => {
            state.symbols.remember_assembled(&checksum, meta).await?;
            ok(meta, &checksum)
        }
        // JavaScript files (an artifact bundle) are stored, but are no debug file to describe.
        None if reports
            .iter()
            .any(|r| matches!(r.status, FileStatus::Stored | FileStatus::AlreadyPresent)) =>
        {
            AssembleState {
                state: "ok",
                missing_chunks: Vec::new(),
                detail: None,
                dif: None,
            }
        }
        None => refused(&reports),
    };
    state.symbols.drop_chunks(&chunks).await;
    Ok(answer)
}

/// `error`, with the reason each of the upload's files was refused.
fn refused(reports: &[FileReport]) -> AssembleState {
    let reasons: Vec<String> = reports
        .iter()
        .map(|r| match &r.reason {
            Some(reason) => format!("{}: {reason}", r.name),
            None => r.name.clone(),
        })
        .collect();
    AssembleState::error(if reasons.is_empty() {
        "no debug file in the upload".to_owned()
    } else {
        reasons.join("; ")
    })
}

/// `ok`, with the stored file as Sentry describes one (`DebugInformationFile`).
fn ok(meta: &DebugFileMeta, checksum: &ChunkDigest) -> AssembleState {
    let object_name = meta
        .debug_file
        .clone()
        .or_else(|| meta.code_file.clone())
        .unwrap_or_else(|| meta.uploaded_name.clone());
    AssembleState {
        state: "ok",
        missing_chunks: Vec::new(),
        detail: None,
        dif: Some(json!({
            "id": meta.sha256,
            "uuid": meta.debug_id,
            "debugId": meta.debug_id,
            "codeId": meta.code_id,
            "objectName": object_name,
            "cpuName": meta.arch,
            "sha1": checksum.to_string(),
            "size": meta.size,
            "symbolType": meta.format,
            "data": { "type": meta.role, "features": meta.features.names() },
        })),
    }
}

/// An artifact bundle assemble request (`sentry-cli sourcemaps upload`).
#[derive(Deserialize)]
struct AssembleBundle {
    checksum: String,
    chunks: Vec<String>,
    #[serde(default)]
    projects: Vec<String>,
    /// The release, for files without a debug ID.
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    dist: Option<String>,
}

/// `POST /api/0/organizations/{org}/artifactbundle/assemble/`: an artifact bundle (minified
/// files and source maps, with a manifest) from its chunks: `not_found` with the chunks still to
/// send, else `ok` once its files are stored (`error` with the reasons when none could be).
/// Files without a debug ID go under the request's `version` (release), `dist` and first
/// project.
pub async fn assemble_bundle(
    State(state): State<App>,
    caller: Caller,
    request: Request,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::SymbolsWrite)?;
    let mut limit = BodyLimit::new(MAX_ASSEMBLE_BODY, "nothing: send fewer chunks per request");
    let body = read_limited(request.into_body().into_data_stream(), &mut limit).await?;
    let bundle: AssembleBundle = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!("invalid assemble request: {e}")).with_detail(
            r#"send {"checksum": "<sha1>", "chunks": ["<sha1>", …], "projects": ["…"]}"#,
        )
    })?;
    let mut project_id = None;
    for slug in &bundle.projects {
        let project = state.registry.project(slug).await?.ok_or_else(|| {
            HttpError::new(StatusCode::NOT_FOUND, format!("no project {slug:?}")).with_detail(
                "create it with `faultline project create`, or pass the right --project",
            )
        })?;
        caller.require_in(Scope::SymbolsWrite, &project)?;
        project_id.get_or_insert(project.id);
    }
    let file = AssembleFile {
        name: "artifact-bundle.zip".to_owned(),
        debug_id: None,
        chunks: bundle.chunks,
    };
    let release = ReleaseContext {
        project: project_id,
        release: bundle.version.filter(|v| !v.trim().is_empty()),
        dist: bundle.dist.filter(|d| !d.trim().is_empty()),
        url_prefix: None,
    };
    let answer = assemble_one(&state, &bundle.checksum, &file, &release).await?;
    Ok(Json(json!({
        "state": answer.state,
        "missingChunks": answer.missing_chunks,
        "detail": answer.detail,
    })))
}
