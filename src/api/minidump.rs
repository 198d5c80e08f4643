//! Synchronous processing routes.
//!
//! - `POST /api/v1/minidump`: process one minidump now, record it in the crash index, and answer
//!   with the result JSON (minidump-stackwalk's schema plus faultline's fields; see
//!   docs/OUTPUT.md) with its `crash_id` and `group_id`. The dump comes as the multipart field
//!   `upload_file_minidump` (what Breakpad and Crashpad clients send), other text parts being
//!   annotations, or as the raw body.
//! - `POST /api/v1/symbolicate`: raw frames plus modules in symbolicator's request format.
//! - `POST /api/v1/symbolicate-jvm`: Java / Kotlin frames and ProGuard mappings, symbolicator's
//!   `/symbolicate-jvm` format.

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use std::collections::BTreeMap;

use crate::app::App;
use crate::auth::Scope;
use crate::http::HttpError;
use crate::http::{fast_json, project_param, Caller};
use crate::http::{next_part, read_limited, read_spilling, BodyLimit, UploadBody};
use crate::ingest::{processed_json, RecordError, Recorder};
use crate::jvm::{SymbolicateJvmRequest, SymbolicateJvmResponse};
use crate::process::symbolicate::SymbolicateRequest;

const SETTING: &str = "limits.max_dump_bytes (FAULTLINE_LIMITS_MAX_DUMP_BYTES)";

/// The multipart field crash reporters put the minidump in.
pub const DUMP_FIELD: &str = "upload_file_minidump";

/// Where `POST /api/v1/minidump` files the crash.
#[derive(serde::Deserialize)]
pub struct ProcessParams {
    /// Project slug; the default project when absent.
    project: Option<String>,
}

/// Handles `POST /api/v1/minidump?project=` (needs `ingest` on the project).
pub async fn process(
    State(state): State<App>,
    caller: Caller,
    Query(params): Query<ProcessParams>,
    request: Request,
) -> Result<axum::response::Response, HttpError> {
    let project = project_param(&state, params.project.as_deref()).await?;
    caller.require_in(Scope::Ingest, &project)?;
    let mut limit = BodyLimit::new(state.config.limits.max_dump_bytes, SETTING);
    let mut annotations = BTreeMap::new();
    // A large dump goes to scratch disk and is mapped: a request holds little memory of its own.
    let scratch = state.symbols.scratch_root();
    let dump = match UploadBody::from_request(request, &state, &limit).await? {
        UploadBody::Raw(body) => {
            read_spilling(body.into_data_stream(), &mut limit, scratch).await?
        }
        UploadBody::Multipart(mut multipart) => {
            let mut dump = None;
            while let Some(field) = next_part(&mut multipart).await? {
                let name = field.name().unwrap_or_default().to_owned();
                if name == DUMP_FIELD && dump.is_none() {
                    dump = Some(read_spilling(field, &mut limit, scratch).await?);
                } else if field.file_name().is_none() && !name.is_empty() {
                    // Text parts are annotations (product, version, user…).
                    let mut field_limit = BodyLimit::new(
                        state.config.ingest.max_field_bytes,
                        "ingest.max_field_bytes (FAULTLINE_INGEST_MAX_FIELD_BYTES)",
                    );
                    let value = read_limited(field, &mut field_limit).await?;
                    limit.take(value.len())?;
                    annotations.insert(name, String::from_utf8_lossy(&value).into_owned());
                }
            }
            dump.ok_or_else(|| {
                HttpError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "no minidump in the multipart body: expected a part named {DUMP_FIELD}"
                    ),
                )
            })?
        }
    };
    // Symbols uploaded through another node count for this very dump.
    state.cluster.catch_up_before_work().await;
    let report = state
        .pipeline
        .run(
            dump,
            &annotations,
            state.config.processing.variables_for(&project.slug),
        )
        .await?;
    let id = crate::ingest::new_crash_id();
    let received_at = crate::clock::now();
    let recorder = Recorder {
        index: &state.index,
        objects: &*state.objects,
        user_annotations: &state.config.group.user_annotations,
        replaces_earlier: false,
    };
    let (recorded, stored) = recorder
        .record(&id, project.id, received_at, &annotations, &report)
        .await
        .map_err(|RecordError::Index(e)| HttpError::from(e))?;
    let json = stored.unwrap_or_else(|| processed_json(&report, &id, &recorded));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response())
}

/// Largest symbolication request body.
const MAX_SYMBOLICATE_BYTES: u64 = 16 << 20;

/// A symbolication request's JSON body (at most [`MAX_SYMBOLICATE_BYTES`]); a body that is not
/// one is a 400 naming `what` and showing `expected`.
async fn read_request<T: serde::de::DeserializeOwned>(
    request: Request,
    what: &str,
    expected: &'static str,
) -> Result<T, HttpError> {
    let mut limit = BodyLimit::new(
        MAX_SYMBOLICATE_BYTES,
        "nothing: split the frames over several requests",
    );
    let body = read_limited(request.into_body().into_data_stream(), &mut limit).await?;
    serde_json::from_slice(&body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid {what} request: {e}"),
        )
        .with_detail(expected)
    })
}

/// Handles `POST /api/v1/symbolicate` (needs `symbols:read`).
pub async fn symbolicate(
    State(state): State<App>,
    caller: Caller,
    request: Request,
) -> Result<axum::response::Response, HttpError> {
    caller.require(Scope::SymbolsRead)?;
    let request: SymbolicateRequest = read_request(
        request,
        "symbolication",
        "expected {\"stacktraces\": [{\"frames\": [{\"instruction_addr\": \"0x...\"}]}], \"modules\": [{\"debug_id\": ..., \"image_addr\": \"0x...\", \"image_size\": ...}]}",
    )
    .await?;
    let response = crate::process::symbolicate::symbolicate(
        state.pipeline.processor.modules(),
        request,
        std::time::Instant::now() + state.pipeline.processor.symbols_wait(),
    )
    .await;
    Ok(fast_json(&response, response.json_size_hint()))
}

/// Handles `POST /api/v1/symbolicate-jvm` (needs `symbols:read`).
pub async fn symbolicate_jvm(
    State(state): State<App>,
    caller: Caller,
    request: Request,
) -> Result<Json<SymbolicateJvmResponse>, HttpError> {
    caller.require(Scope::SymbolsRead)?;
    let request: SymbolicateJvmRequest = read_request(
        request,
        "JVM symbolication",
        "expected {\"stacktraces\": [{\"frames\": [{\"function\": \"a\", \"module\": \"a.b.c\", \"lineno\": 13}]}], \"modules\": [{\"uuid\": ..., \"type\": \"proguard\"}]}",
    )
    .await?;
    let frames: usize = request.stacktraces.iter().map(|s| s.frames.len()).sum();
    if frames > crate::jvm::MAX_FRAMES {
        return Err(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{frames} frames; at most {} per request",
                crate::jvm::MAX_FRAMES
            ),
        ));
    }
    let response = crate::jvm::symbolicate_jvm(state.pipeline.processor.modules(), request).await;
    Ok(Json(response))
}
