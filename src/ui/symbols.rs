//! The missing-symbols page: the debug files whose absence hurt the most crashes, each with the
//! exact command that uploads it (an upload reprocesses the crashes that lacked it).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::groups::{project_choices, readable_projects};
use super::page::{ago, now, render, server_origin, when, Chrome, UiError};
use super::session::Viewer;
use crate::api::AppState;
use crate::auth::Scope;

/// Rows on the page.
const ROWS: i64 = 200;

/// One debug file to upload.
pub struct MissingRow {
    pub module: String,
    pub debug_file: String,
    pub debug_id: String,
    pub crashes: i64,
    pub last_seen: String,
    pub last_seen_ago: String,
    pub upload: String,
    pub curl: String,
}

#[derive(Template)]
#[template(path = "missing_symbols.html")]
struct MissingPage {
    chrome: Chrome,
    projects: Vec<super::groups::Choice>,
    rows: Vec<MissingRow>,
    can_upload: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct MissingParams {
    project: Option<String>,
}

/// `GET /ui/symbols/missing?project=`.
pub async fn missing(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Result<Query<MissingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(params) = params.map_err(|e| UiError::bad_request(e.body_text()))?;
    let projects = readable_projects(&state, &viewer).await?;
    let project = super::groups::chosen_project(&projects, params.project.as_deref())?;
    let origin = server_origin(&headers, &state);
    let t = now();
    let rows = state
        .index
        .missing_symbols(project.id, ROWS)
        .await?
        .into_iter()
        .map(|m| {
            let file = m
                .module
                .debug_file
                .clone()
                .or(m.module.code_file.clone())
                .unwrap_or_else(|| "<debug file>".to_owned());
            MissingRow {
                module: m.module.code_file.clone().unwrap_or_default(),
                upload: format!(
                    "faultline upload --server {origin} --token $FAULTLINE_TOKEN {file}"
                ),
                curl: format!(
                    "curl -H \"Authorization: Bearer $FAULTLINE_TOKEN\" --data-binary @{file} \
                     '{origin}/api/v1/symbols?name={}'",
                    super::page::segment(&file)
                ),
                debug_file: file,
                // As symbol tools and Breakpad file names spell it (and the crash page shows it).
                debug_id: m
                    .module
                    .debug_id
                    .parse::<symbolic::common::DebugId>()
                    .map_or(m.module.debug_id.clone(), |id| id.breakpad().to_string()),
                crashes: m.crashes,
                last_seen: when(m.last_seen),
                last_seen_ago: ago(m.last_seen, t),
            }
        })
        .collect();
    let page = MissingPage {
        chrome: viewer.chrome(),
        projects: project_choices(&projects, project.id),
        rows,
        can_upload: viewer.caller.may(Scope::SymbolsWrite, project.id),
    };
    Ok(render(&page))
}
