//! Synchronous processing routes.
//!
//! - `POST /api/v1/minidump`: process one minidump, record it in the crash index, and answer
//!   with the result JSON (minidump-stackwalk's schema plus faultline's fields; see
//!   docs/OUTPUT.md) with its `crash_id` and `group_id`. The dump comes as the multipart field
//!   `upload_file_minidump` (what Breakpad and Crashpad clients send), other text parts being
//!   annotations, or as the raw body.
//! - `POST /api/v1/symbolicate`: raw frames plus modules in symbolicator's request format.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use std::collections::BTreeMap;

use super::body::{next_part, read_limited, BodyLimit, UploadBody};
use super::{ApiError, AppState};
use crate::group::index::{NewCrash, Recorded};
use crate::pipeline::CrashReport;
use crate::process::symbolicate::SymbolicateRequest;
use crate::store::{ObjectKey, PutBody};

const SETTING: &str = "limits.max_dump_bytes (FAULTLINE_LIMITS_MAX_DUMP_BYTES)";

/// The multipart field crash reporters put the minidump in.
pub const DUMP_FIELD: &str = "upload_file_minidump";

/// Handles `POST /api/v1/minidump`.
pub async fn process(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let mut limit = BodyLimit::new(state.config.limits.max_dump_bytes, SETTING);
    let mut annotations = BTreeMap::new();
    let dump = match UploadBody::from_request(request, &state, &limit).await? {
        UploadBody::Raw(body) => read_limited(body.into_data_stream(), &mut limit).await?,
        UploadBody::Multipart(mut multipart) => {
            let mut dump = None;
            while let Some(field) = next_part(&mut multipart).await? {
                let name = field.name().unwrap_or_default().to_owned();
                if name == DUMP_FIELD {
                    dump = Some(read_limited(field, &mut limit).await?);
                } else if field.file_name().is_none() && !name.is_empty() {
                    // Text parts are annotations (product, version, user…).
                    let value = read_limited(field, &mut limit).await?;
                    annotations.insert(name, String::from_utf8_lossy(&value).into_owned());
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
    let report = state.pipeline.run(dump, &annotations).await?;
    let mut json = report.to_json();
    let recorded = record(&state, &report, &json, annotations).await?;
    json["crash_id"] = recorded.0.into();
    json["group_id"] = recorded.1.group_id.into();
    json["payload_kept"] = recorded.1.keep_payload.into();
    Ok(Json(json))
}

/// The first annotation present among `keys`.
fn first_of(annotations: &BTreeMap<String, String>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| annotations.get(*k))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Records a processed crash in the index and, when the payload budget keeps it, stores its
/// processed JSON under `crashes/{yyyymmdd}/{crash_id}/processed.json`.
async fn record(
    state: &AppState,
    report: &CrashReport,
    json: &Value,
    annotations: BTreeMap<String, String>,
) -> Result<(String, Recorded), ApiError> {
    let received = time::OffsetDateTime::now_utc();
    let id = uuid::Uuid::new_v4().to_string();
    let day = format!(
        "{:04}{:02}{:02}",
        received.year(),
        u8::from(received.month()),
        received.day()
    );
    let payload_key = format!("crashes/{day}/{id}/processed.json");
    let user_keys: Vec<&str> = state
        .config
        .group
        .user_annotations
        .iter()
        .map(String::as_str)
        .collect();
    let crash = NewCrash {
        id: id.clone(),
        received_at: received.unix_timestamp(),
        product: first_of(&annotations, &["product", "ProductName", "prod"]),
        release: first_of(&annotations, &["release", "version", "Version", "ver"]),
        platform: json["system_info"]["os"].as_str().map(str::to_owned),
        user_id: first_of(&annotations, &user_keys),
        annotations,
        fingerprint: report.fingerprint.clone(),
        signature: report.signature.text.clone(),
        fault_class: report.classification.fault_class.as_str().to_owned(),
        payload_key: payload_key.clone(),
    };
    let recorded = state.index.record(&crash).await?;
    if recorded.keep_payload {
        let key = ObjectKey::new(payload_key).expect("crash payload keys are safe");
        let mut payload = json.clone();
        payload["crash_id"] = id.clone().into();
        payload["group_id"] = recorded.group_id.into();
        let bytes = serde_json::to_vec(&payload).expect("JSON serializes");
        if let Err(e) = state.objects.put(&key, PutBody::Bytes(bytes.into())).await {
            tracing::error!(crash_id = %id, error = %e, "could not store the crash payload");
            state.index.drop_payload(&id).await?;
            return Ok((
                id,
                Recorded {
                    keep_payload: false,
                    ..recorded
                },
            ));
        }
    }
    Ok((id, recorded))
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
