//! Administration routes (the `admin` scope): projects, their ingest keys, and API tokens —
//! the same operations as `faultline project …` and `faultline token …`. Secrets appear once,
//! in the answer that creates them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::auth::{NewToken, ProjectError, Scope};
use crate::http::HttpError;
use crate::http::{project_param, Caller};

impl From<ProjectError> for HttpError {
    fn from(e: ProjectError) -> HttpError {
        match e {
            ProjectError::Index(e) => e.into(),
            ProjectError::Invalid(message) => HttpError::new(StatusCode::BAD_REQUEST, message),
        }
    }
}

fn invalid_body(e: axum::extract::rejection::JsonRejection, example: &str) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        format!("invalid request: {}", e.body_text()),
    )
    .with_detail(format!("send {example}"))
}

/// `GET /api/v1/token`: the calling token (any scope): its ID, scopes, projects and dates, so a
/// client can check what it may do before it sends anything large.
pub async fn whoami(caller: Caller) -> Result<Json<Value>, HttpError> {
    Ok(Json(json!(caller.authenticated()?)))
}

/// `GET /api/v1/projects`.
pub async fn list_projects(
    State(state): State<App>,
    caller: Caller,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::Admin)?;
    Ok(Json(
        json!({ "projects": state.registry.projects().await? }),
    ))
}

/// The body of `POST /api/v1/projects`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    name: String,
}

/// `POST /api/v1/projects` with `{"name": "My Game"}`.
pub async fn create_project(
    State(state): State<App>,
    caller: Caller,
    body: Result<Json<CreateProject>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    caller.require(Scope::Admin)?;
    let Json(body) = body.map_err(|e| invalid_body(e, r#"{"name": "My Game"}"#))?;
    let project = state.registry.create_project(&body.name).await?;
    Ok((StatusCode::CREATED, Json(json!(project))))
}

/// `GET /api/v1/projects/{project}/keys`: the keys' IDs and dates (never the keys).
pub async fn list_keys(
    State(state): State<App>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::Admin)?;
    let project = project_param(&state, Some(&project)).await?;
    Ok(Json(
        json!({ "keys": state.registry.ingest_keys(&project).await? }),
    ))
}

/// `POST /api/v1/projects/{project}/keys`: a new ingest key, shown once.
pub async fn create_key(
    State(state): State<App>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    caller.require(Scope::Admin)?;
    let project = project_param(&state, Some(&project)).await?;
    let (secret, key) = state.registry.create_ingest_key(&project).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": secret, "id": key.id, "project": project.slug })),
    ))
}

/// `DELETE /api/v1/projects/{project}/keys/{id}`.
pub async fn revoke_key(
    State(state): State<App>,
    caller: Caller,
    Path((project, id)): Path<(String, String)>,
) -> Result<StatusCode, HttpError> {
    caller.require(Scope::Admin)?;
    let project = project_param(&state, Some(&project)).await?;
    let owned = state
        .registry
        .ingest_keys(&project)
        .await?
        .iter()
        .any(|k| k.id == id && k.revoked_at.is_none());
    if !owned || !state.registry.revoke_ingest_key(&id).await? {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no active key {id:?} in project {:?}", project.slug),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/tokens`: every token's ID, label, scopes, projects and dates.
pub async fn list_tokens(
    State(state): State<App>,
    caller: Caller,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::Admin)?;
    Ok(Json(json!({ "tokens": state.registry.tokens().await? })))
}

/// The body of `POST /api/v1/tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    scopes: Vec<String>,
    #[serde(default)]
    projects: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_in_days: Option<u32>,
}

/// `POST /api/v1/tokens` with `{"scopes": ["triage:read"], "projects": ["game"], "name": "…",
/// "expires_in_days": 30}`: the token, shown once.
pub async fn create_token(
    State(state): State<App>,
    caller: Caller,
    body: Result<Json<CreateToken>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    caller.require(Scope::Admin)?;
    let Json(body) = body.map_err(|e| invalid_body(e, r#"{"scopes": ["triage:read"]}"#))?;
    let scopes = body
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e))?;
    let (secret, token) = state
        .registry
        .create_token(&NewToken {
            name: body.name.unwrap_or_default(),
            scopes,
            projects: body.projects,
            expires_in_days: body.expires_in_days,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": secret, "info": token })),
    ))
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    caller.require(Scope::Admin)?;
    if !state.registry.revoke_token(&id).await? {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no active token {id:?}"),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
