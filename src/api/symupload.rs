//! Breakpad symupload's protocol v2 (`symupload -p sym-upload-v2 -k TOKEN FILE
//! https://faultline`): `GET /v1/symbols/{debug_file}/{DEBUG_ID}:checkStatus`, `POST
//! /v1/uploads:create`, a `PUT` of the file to the URL that answers, then `POST
//! /v1/uploads/{key}:complete`, which ingests the file like every other upload.
//!
//! The token is symupload's `?key=` and needs `symbols:write`. The `PUT` carries no token: as
//! with the signed storage URL Google's service hands out, holding the upload key (160 random
//! bits, valid for an hour, stored only as its SHA-256) is what allows it. symupload reads the
//! answers with regular expressions that expect `"name": "value"` with one space, so answers
//! are written that way; its `:complete` body is not strict JSON (names are not quoted), so its
//! values are read leniently. The file's own debug ID is what counts, as on every upload.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use regex::Regex;
use serde_json::{json, Value};

use super::ingest::{closing, drain};
use crate::app::App;
use crate::auth::{digest, new_secret, Scope};
use crate::clock::now_unsigned;
use crate::http::Caller;
use crate::http::{read_limited, spool, BodyLimit};
use crate::http::{scratch_failed, HttpError};
use crate::sourcemaps::ReleaseContext;
use crate::symbols::ids::parse_debug_id;
use crate::symbols::pending::{PendingState, PendingUploadId};
use crate::symbols::FileStatus;

/// An answer as symupload's regular expressions read it: pretty JSON (`"name": "value"`).
fn answer(status: StatusCode, value: Value) -> Response {
    let body = serde_json::to_string_pretty(&value).expect("JSON values serialize");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The caller named by `?key=`, holding `symbols:write`.
async fn writer(state: &App, query: &HashMap<String, String>) -> Result<(), HttpError> {
    let caller = Caller::from_secret(state, query.get("key").map(String::as_str)).await?;
    caller.require(Scope::SymbolsWrite)?;
    Ok(())
}

/// The path segment `{value}:{action}`, or 404 for any other action.
fn split_action<'a>(segment: &'a str, action: &str) -> Result<&'a str, HttpError> {
    segment
        .strip_suffix(action)
        .and_then(|rest| rest.strip_suffix(':'))
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                format!("unknown symupload action in {segment:?} (expected …:{action})"),
            )
        })
}

/// `GET /v1/symbols/{debug_file}/{DEBUG_ID}:checkStatus`: `FOUND` when a stored file for the
/// module has debug information (a file that only has a symbol table does not stop an upload
/// of better symbols), else `MISSING`.
pub async fn check_status(
    State(state): State<App>,
    Path((_debug_file, id_action)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    writer(&state, &query).await?;
    let id = split_action(&id_action, "checkStatus")?;
    let debug_id =
        parse_debug_id(id).map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let files = state.symbols.files_for(&debug_id).await?;
    let found = files.iter().any(|f| f.features.debug);
    let status = if found { "FOUND" } else { "MISSING" };
    Ok(answer(StatusCode::OK, json!({ "status": status })))
}

/// The base URL clients reach this server at: `server.public_url`, else the request's `Host`.
fn base_url(state: &App, headers: &HeaderMap) -> Result<String, HttpError> {
    let configured = state.config.server.public_url.trim().trim_end_matches('/');
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "the request has no usable Host header",
            )
            .with_detail("send one, or set server.public_url")
        })?;
    Ok(format!("http://{host}"))
}

/// `POST /v1/uploads:create`: opens an upload; answers its key and the URL to `PUT` the file to.
pub async fn create(
    State(state): State<App>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    writer(&state, &query).await?;
    let base = base_url(&state, &headers)?;
    let key = new_secret("");
    let id = PendingUploadId::from_digest(&digest(&key)).expect("a SHA-256 in hex");
    state.symbols.open_pending(&id, now_unsigned()).await?;
    Ok(answer(
        StatusCode::OK,
        json!({ "uploadUrl": format!("{base}/v1/uploads/{key}"), "uploadKey": key }),
    ))
}

/// The pending upload an upload key names, if it is open; 404 otherwise (410 once expired).
async fn pending(state: &App, key: &str) -> Result<(PendingUploadId, PendingState), HttpError> {
    let not_found = || {
        HttpError::new(StatusCode::NOT_FOUND, "no such upload")
            .with_detail("open one with POST /v1/uploads:create")
    };
    if key.len() != 40 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let id = PendingUploadId::from_digest(&digest(key)).expect("a SHA-256 in hex");
    match state.symbols.pending_state(&id, now_unsigned()).await? {
        PendingState::Unknown => Err(not_found()),
        PendingState::Expired => {
            // Nothing more will come of it.
            state.symbols.close_pending(&id).await?;
            Err(HttpError::new(StatusCode::GONE, "this upload expired")
                .with_detail("an upload must be sent and completed within an hour of its creation"))
        }
        open => Ok((id, open)),
    }
}

/// `PUT /v1/uploads/{key}`: the file of an open upload (at most `limits.max_upload_bytes`).
pub async fn put_file(
    State(state): State<App>,
    Path(key): Path<String>,
    request: Request,
) -> Result<Response, HttpError> {
    let id = match pending(&state, &key).await {
        Ok((id, _)) => id,
        Err(refused) => {
            // Refused before its body was read: a small rest is read and dropped so the
            // connection stays usable; a large one closes it.
            let response = refused.into_response();
            return Ok(if drain(request.into_body()).await {
                response
            } else {
                closing(response)
            });
        }
    };
    let mut limit = BodyLimit::new(
        state.config.limits.max_upload_bytes,
        "limits.max_upload_bytes (FAULTLINE_LIMITS_MAX_UPLOAD_BYTES)",
    );
    let scratch = state.symbols.scratch_dir().map_err(scratch_failed)?;
    let path = scratch.path().join("body");
    spool(request.into_body().into_data_stream(), &path, &mut limit).await?;
    state.symbols.receive_pending(&id, &path).await?;
    Ok(StatusCode::OK.into_response())
}

/// `name: "value"` or `"name": "value"` in symupload's not-quite-JSON.
fn lenient_field(body: &str, name: &str) -> Option<String> {
    static FIELD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#""?([A-Za-z_]+)"?\s*:\s*"([^"\\]*)""#).expect("a valid pattern")
    });
    FIELD
        .captures_iter(body)
        .find(|c| &c[1] == name)
        .map(|c| c[2].to_owned())
}

/// `POST /v1/uploads/{key}:complete`: ingests the file sent for the upload. `OK` when it was
/// stored, `DUPLICATE_DATA` when the same bytes were stored before; a file that is refused is a
/// `400` with the reason.
pub async fn complete(
    State(state): State<App>,
    Path(key_action): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Response, HttpError> {
    writer(&state, &query).await?;
    let key = split_action(&key_action, "complete")?;
    let (id, standing) = pending(&state, key).await?;
    if standing != PendingState::Received {
        return Err(
            HttpError::new(StatusCode::CONFLICT, "the upload's file was not sent")
                .with_detail("PUT the file to the uploadUrl first"),
        );
    }
    let mut limit = BodyLimit::new(64 << 10, "nothing: the completion names one file");
    let text = read_limited(body.into_data_stream(), &mut limit).await?;
    let text = String::from_utf8_lossy(&text);
    let name = lenient_field(&text, "debug_file")
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| crate::symbols::identify::UNNAMED_UPLOAD.to_owned());
    let scratch = state.symbols.scratch_dir().map_err(scratch_failed)?;
    let path = scratch.path().join("body");
    if !state
        .symbols
        .fetch_pending(&id, &path, state.config.limits.max_upload_bytes)
        .await?
    {
        return Err(
            HttpError::new(StatusCode::CONFLICT, "the upload's file was not sent")
                .with_detail("PUT the file to the uploadUrl first"),
        );
    }
    let unpacked = scratch.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).map_err(scratch_failed)?;
    let reports = state
        .uploads
        .store_file(&path, name.trim(), &unpacked, &ReleaseContext::default())
        .await;
    state.symbols.close_pending(&id).await?;
    let has = |status| reports.iter().any(|r| r.status == status);
    if has(FileStatus::Stored) {
        return Ok(answer(
            StatusCode::OK,
            json!({ "result": "OK", "files": reports }),
        ));
    }
    if has(FileStatus::AlreadyPresent) {
        return Ok(answer(
            StatusCode::OK,
            json!({ "result": "DUPLICATE_DATA", "files": reports }),
        ));
    }
    let reason = reports
        .iter()
        .find_map(|r| r.reason.clone())
        .unwrap_or_else(|| "no debug file in the upload".to_owned());
    Err(HttpError::new(StatusCode::BAD_REQUEST, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symupload_completion_bodies_are_read_leniently() {
        // As symupload writes it: names unquoted.
        let body = r#"{ symbol_id: {debug_file: "crash.pdb", debug_id: "3249D99D0C4049318610F4E4FB0B69361" }, symbol_upload_type: "BREAKPAD" }"#;
        assert_eq!(
            lenient_field(body, "debug_file").as_deref(),
            Some("crash.pdb")
        );
        assert_eq!(
            lenient_field(body, "debug_id").as_deref(),
            Some("3249D99D0C4049318610F4E4FB0B69361")
        );
        assert_eq!(
            lenient_field(body, "symbol_upload_type").as_deref(),
            Some("BREAKPAD")
        );
        // And as strict JSON.
        let strict = r#"{"symbol_id":{"debug_file":"a.so","debug_id":"X"}}"#;
        assert_eq!(lenient_field(strict, "debug_file").as_deref(), Some("a.so"));
        assert_eq!(lenient_field(strict, "missing"), None);
    }
}
