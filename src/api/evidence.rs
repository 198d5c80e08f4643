//! `GET /api/v1/groups/{id}/evidence`: a group's evidence (docs/EVIDENCE.md) as JSON, or as
//! Markdown with `?format=markdown` (for a ticket or a chat). Reads what the services stored.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::app::App;
use crate::auth::Scope;
use crate::http::{bad_request, Caller, HttpError};

/// The query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceQuery {
    /// `json` (default) or `markdown`.
    format: Option<String>,
}

/// The handler: the caller reads the group's project (`triage:read`).
pub async fn group_evidence(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<EvidenceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(query) = query.map_err(|e| bad_request(e.body_text()))?;
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| bad_request(format!("a group ID is an integer, not {id:?}")))?;
    super::triage::visible_group(&state, &caller, Scope::TriageRead, id).await?;
    let evidence = state
        .evidence
        .of_group(id)
        .await?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, format!("no group {id}")))?;
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(evidence).into_response()),
        "markdown" => Ok((
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            crate::evidence::markdown::render(&evidence),
        )
            .into_response()),
        other => Err(bad_request(format!(
            "format is json or markdown, not {other:?}"
        ))),
    }
}
