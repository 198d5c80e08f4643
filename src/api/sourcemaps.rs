//! `POST /api/v1/symbolicate-js`: JavaScript frames to original source in symbolicator's
//! request and answer shapes (see `src/sourcemaps/symbolicate.rs`). Needs `symbols:read` on
//! the project whose release files are looked up (`?project=`, the default project when absent).

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::app::App;
use crate::auth::Scope;
use crate::http::HttpError;
use crate::http::{project_param, Caller};
use crate::http::{read_limited, BodyLimit};
use crate::sourcemaps::symbolicate::{symbolicate, SymbolicateJsRequest, SymbolicateJsResponse};

/// The largest request body.
const MAX_REQUEST_BYTES: u64 = 8 << 20;
/// Frames one request may carry, over all its stack traces.
const MAX_FRAMES: usize = 10_000;

/// `?project=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolicateJsParams {
    project: Option<String>,
}

/// `POST /api/v1/symbolicate-js`.
pub async fn symbolicate_js(
    State(state): State<App>,
    caller: Caller,
    params: Result<Query<SymbolicateJsParams>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Json<SymbolicateJsResponse>, HttpError> {
    caller.require(Scope::SymbolsRead)?;
    let Query(params) = params.map_err(|e| {
        HttpError::new(StatusCode::BAD_REQUEST, e.body_text())
            .with_detail("the only parameter is project")
    })?;
    let project = project_param(&state, params.project.as_deref()).await?;
    caller.require_in(Scope::SymbolsRead, &project)?;
    let mut limit = BodyLimit::new(MAX_REQUEST_BYTES, "nothing: send fewer frames per request");
    let body = read_limited(request.into_body().into_data_stream(), &mut limit).await?;
    let request: SymbolicateJsRequest = serde_json::from_slice(&body).map_err(|e| {
        HttpError::new(StatusCode::BAD_REQUEST, format!("invalid request: {e}")).with_detail(
            r#"send {"stacktraces": [{"frames": [{"abs_path": …, "lineno": …, "colno": …}]}], "modules": [{"type": "sourcemap", "code_file": …, "debug_id": …}], "release": …}"#,
        )
    })?;
    let frames: usize = request.stacktraces.iter().map(|s| s.frames.len()).sum();
    if frames > MAX_FRAMES {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("{frames} frames; at most {MAX_FRAMES} per request"),
        ));
    }
    let answer = symbolicate(
        state.symbols.sourcemaps(),
        request,
        project.id,
        state.config.limits.max_upload_bytes,
    )
    .await
    .map_err(|e| {
        HttpError::internal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the source map store failed; try again later",
            e,
        )
    })?;
    Ok(Json(answer))
}
