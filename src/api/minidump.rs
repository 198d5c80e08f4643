//! Synchronous processing routes.
//!
//! - `POST /api/v1/minidump`: process one minidump and answer with the result JSON
//!   (minidump-stackwalk's schema plus faultline's fields; see docs/OUTPUT.md). The dump comes
//!   as the multipart field `upload_file_minidump` (what Breakpad and Crashpad clients send) or
//!   as the raw body.
//! - `POST /api/v1/symbolicate`: raw frames plus modules in symbolicator's request format.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::body::{next_part, read_limited, BodyLimit, UploadBody};
use super::{ApiError, AppState};
use crate::process::symbolicate::SymbolicateRequest;

const SETTING: &str = "limits.max_dump_bytes (FAULTLINE_LIMITS_MAX_DUMP_BYTES)";

/// The multipart field crash reporters put the minidump in.
pub const DUMP_FIELD: &str = "upload_file_minidump";

/// Handles `POST /api/v1/minidump`.
pub async fn process(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let mut limit = BodyLimit::new(state.config.limits.max_dump_bytes, SETTING);
    let dump = match UploadBody::from_request(request, &state, &limit).await? {
        UploadBody::Raw(body) => read_limited(body.into_data_stream(), &mut limit).await?,
        UploadBody::Multipart(mut multipart) => {
            let mut dump = None;
            while let Some(field) = next_part(&mut multipart).await? {
                if field.name() == Some(DUMP_FIELD) {
                    dump = Some(read_limited(field, &mut limit).await?);
                    break;
                }
            }
            dump.ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "no minidump in the multipart body: expected a part named {DUMP_FIELD}"
                    ),
                )
            })?
        }
    };
    let crash = state.pipeline.run(dump).await?;
    Ok(Json(crash.to_json()))
}

/// Largest symbolication request body.
const MAX_SYMBOLICATE_BYTES: u64 = 16 << 20;

/// Handles `POST /api/v1/symbolicate`.
pub async fn symbolicate(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let mut limit = BodyLimit::new(
        MAX_SYMBOLICATE_BYTES,
        "nothing: split the frames over several requests",
    );
    let body = read_limited(request.into_body().into_data_stream(), &mut limit).await?;
    let request: SymbolicateRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("invalid symbolication request: {e}")).with_detail(
            "expected {\"stacktraces\": [{\"frames\": [{\"instruction_addr\": \"0x...\"}]}], \"modules\": [{\"debug_id\": ..., \"image_addr\": \"0x...\", \"image_size\": ...}]}",
        )
    })?;
    let response =
        crate::process::symbolicate::symbolicate(state.pipeline.processor.modules(), request).await;
    Ok(Json(
        serde_json::to_value(response).expect("responses serialize"),
    ))
}
