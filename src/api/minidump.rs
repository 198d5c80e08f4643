//! Synchronous processing routes.
//!
//! - `POST /api/v1/minidump`: process one minidump and answer with the result JSON
//!   (minidump-stackwalk's schema plus faultline's fields; see docs/OUTPUT.md). The dump comes
//!   as the multipart field `upload_file_minidump` (what Breakpad and Crashpad clients send) or
//!   as the raw body.
//! - `POST /api/v1/symbolicate`: raw frames plus modules in symbolicator's request format.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use serde_json::Value;

use super::{read_limited, ApiError, AppState};
use crate::process::symbolicate::SymbolicateRequest;

const SETTING: &str = "limits.max_dump_bytes (FAULTLINE_LIMITS_MAX_DUMP_BYTES)";

/// The multipart field crash reporters put the minidump in.
pub const DUMP_FIELD: &str = "upload_file_minidump";

/// Handles `POST /api/v1/minidump`.
pub async fn process(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let limit = state.config.limits.max_dump_bytes;
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit.saturating_add(1 << 20)) {
        return Err(ApiError::too_large(limit, SETTING));
    }
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/"));
    let dump = if is_multipart {
        let mut multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed multipart body")
                    .with_detail(e.body_text())
            })?;
        let mut dump = None;
        while let Some(field) = multipart.next_field().await.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed multipart body")
                .with_detail(e.body_text())
        })? {
            if field.name() == Some(DUMP_FIELD) {
                dump = Some(read_limited(field, limit, SETTING).await?);
                break;
            }
        }
        dump.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("no minidump in the multipart body: expected a part named {DUMP_FIELD}"),
            )
        })?
    } else {
        read_limited(request.into_body().into_data_stream(), limit, SETTING).await?
    };
    let crash = state.processor.process(dump).await?;
    Ok(Json(crash.to_json()))
}

/// Largest symbolication request body.
const MAX_SYMBOLICATE_BYTES: u64 = 16 << 20;

/// Handles `POST /api/v1/symbolicate`.
pub async fn symbolicate(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let body = read_limited(
        request.into_body().into_data_stream(),
        MAX_SYMBOLICATE_BYTES,
        "the request size (split the frames over several requests)",
    )
    .await?;
    let request: SymbolicateRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("invalid symbolication request: {e}")).with_detail(
            "expected {\"stacktraces\": [{\"frames\": [{\"instruction_addr\": \"0x...\"}]}], \"modules\": [{\"debug_id\": ..., \"image_addr\": \"0x...\", \"image_size\": ...}]}",
        )
    })?;
    let response =
        crate::process::symbolicate::symbolicate(state.processor.modules(), request).await;
    Ok(Json(
        serde_json::to_value(response).expect("responses serialize"),
    ))
}
