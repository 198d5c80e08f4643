//! `GET /api/v1/symbols/missing`: the modules a project's crashes had no symbols for, as JSON
//! or CSV, the list a build engineer works through to fix symbol uploads.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use symbolic::common::DebugId;

use crate::app::App;
use crate::auth::Scope;
use crate::http::bad_request;
use crate::http::Caller;
use crate::http::HttpError;

/// `?project=&format=json|csv&limit=` of the missing-symbols report.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingParams {
    project: Option<String>,
    format: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/symbols/missing`: the debug files a project's crashes lacked, most crashes
/// first — debug file, debug ID, code file, code ID, crashes affected, last seen — as JSON or
/// CSV (`format=csv`): the list a build engineer works through to fix symbol uploads.
/// Needs `triage:read` on the project (it describes crashes).
pub async fn missing(
    State(state): State<App>,
    caller: Caller,
    params: Result<Query<MissingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(params) = params.map_err(|e| {
        bad_request(e.body_text()).with_detail("use project, format (json or csv) and limit")
    })?;
    let project = crate::http::project_param(&state, params.project.as_deref()).await?;
    caller.require_in(Scope::TriageRead, &project)?;
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "unknown format {other:?}: use json or csv"
            )))
        }
    };
    let limit = params.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(bad_request(format!("limit {limit} is not within 1..=1000")));
    }
    let rows: Vec<MissingRow> = state
        .index
        .missing_symbols(project.id, limit)
        .await?
        .into_iter()
        .map(|m| MissingRow {
            sources: match (&state.upstream, m.module.debug_id.parse()) {
                (Some(upstream), Ok(id)) => upstream.why_missing(&id),
                _ => String::new(),
            },
            // As symbol tools and Breakpad paths spell a debug ID (`3249D99D…1`).
            debug_id: m
                .module
                .debug_id
                .parse::<DebugId>()
                .map_or(m.module.debug_id.clone(), |id| id.breakpad().to_string()),
            debug_file: m.module.debug_file,
            code_file: m.module.code_file,
            code_id: m.module.code_id,
            crashes: m.crashes,
            last_seen: m.last_seen,
        })
        .collect();
    if !csv {
        return Ok(Json(json!({ "project": project.slug, "modules": rows })).into_response());
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    // The header comes with the first row; an empty report still names its columns.
    let written = if rows.is_empty() {
        out.write_record(MissingRow::COLUMNS)
    } else {
        rows.iter().try_for_each(|row| out.serialize(row))
    };
    let body = written
        .map_err(|e| e.to_string())
        .and_then(|()| out.into_inner().map_err(|e| e.to_string()))
        .map_err(|e| {
            HttpError::internal(StatusCode::INTERNAL_SERVER_ERROR, "cannot write the CSV", e)
        })?;
    let file = format!(
        "attachment; filename=\"missing-symbols-{}.csv\"",
        project.slug
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response())
}

/// One row of the missing-symbols report (a JSON object, or a CSV line under these names).
#[derive(Serialize)]
struct MissingRow {
    debug_file: Option<String>,
    debug_id: String,
    code_file: Option<String>,
    code_id: Option<String>,
    crashes: i64,
    last_seen: i64,
    /// What the upstream symbol sources said about it (empty without sources).
    sources: String,
}

impl MissingRow {
    /// The CSV header: the field names above, in order.
    const COLUMNS: [&str; 7] = [
        "debug_file",
        "debug_id",
        "code_file",
        "code_id",
        "crashes",
        "last_seen",
        "sources",
    ];
}
