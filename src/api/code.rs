//! Repositories (`admin`), code mappings (read with `triage:read`, set with `triage:write`), a
//! group's suspect commits and a crash's source context (`triage:read`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ProjectQuery;
use crate::app::App;
use crate::auth::Scope;
use crate::code::git::Credential;
use crate::code::mappings::MappingOrigin;
use crate::code::NewRepository;
use crate::http::bad_request;
use crate::http::{project_param, typed_json, Caller, HttpError};
use crate::triage::StoredCrash;

/// A repository to register.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryBody {
    name: String,
    /// A URL or a local folder.
    url: String,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    web_url_template: Option<String>,
    /// An HTTPS token (never returned).
    #[serde(default)]
    token: Option<String>,
    /// The path of an SSH private key on the server.
    #[serde(default)]
    ssh_key_file: Option<String>,
}

/// `GET /api/v1/repositories`.
pub async fn list_repositories(
    State(state): State<App>,
    caller: Caller,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::Admin)?;
    Ok(Json(
        json!({"repositories": state.code.repositories().await?}),
    ))
}

/// `POST /api/v1/repositories`: registers one and fetches its mirror in the background.
pub async fn add_repository(
    State(state): State<App>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    caller.require(Scope::Admin)?;
    let body: RepositoryBody = typed_json(
        body,
        r#"send {"name": "acme/game", "url": "https://github.com/acme/game.git", "token": "…"} (see docs/CODE.md)"#,
    )?;
    let credential = match (body.token, body.ssh_key_file) {
        (Some(_), Some(_)) => return Err(bad_request("give a token or an ssh_key_file, not both")),
        (Some(token), None) => Some(Credential::HttpsToken(token)),
        (None, Some(path)) => Some(Credential::SshKey(path.into())),
        (None, None) => None,
    };
    let repo = state
        .code
        .add_repository(NewRepository {
            name: body.name,
            remote: body.url,
            branch: body.branch,
            web_url_template: body.web_url_template,
            credential,
        })
        .await?;
    let code = std::sync::Arc::clone(&state.code);
    let fetching = repo.clone();
    tokio::spawn(async move {
        let _ = code.fetch(&fetching).await;
    });
    Ok((StatusCode::CREATED, Json(json!(repo))))
}

/// `DELETE /api/v1/repositories/{id}`.
pub async fn remove_repository(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, HttpError> {
    caller.require(Scope::Admin)?;
    if state.code.remove_repository(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no repository {id}"),
        ))
    }
}

/// `POST /api/v1/repositories/{id}/fetch`: fetches now and says how it went.
pub async fn fetch_repository(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::Admin)?;
    let repo = state
        .code
        .repositories()
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, format!("no repository {id}")))?;
    let changed = state.code.fetch(&repo).await?;
    if changed {
        state.suspects.mark_all_stale().await?;
    }
    Ok(Json(json!({"fetched": true, "changed": changed})))
}

/// `GET /api/v1/code-mappings?project=`: in the order they are tried.
pub async fn list_mappings(
    State(state): State<App>,
    caller: Caller,
    Query(query): Query<ProjectQuery>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, query.project.as_deref()).await?;
    caller.require_in(Scope::TriageRead, &project)?;
    Ok(Json(
        json!({"mappings": state.code.mappings(project.id).await?}),
    ))
}

/// A mapping a person sets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingBody {
    repository: String,
    stack_root: String,
    #[serde(default)]
    source_root: String,
}

/// `POST /api/v1/code-mappings?project=`: a person's mapping (it wins over derived ones).
pub async fn set_mapping(
    State(state): State<App>,
    caller: Caller,
    Query(query): Query<ProjectQuery>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    caller.require(Scope::TriageWrite)?;
    let project = project_param(&state, query.project.as_deref()).await?;
    caller.require_in(Scope::TriageWrite, &project)?;
    let body: MappingBody = typed_json(
        body,
        r#"send {"repository": "acme/game", "stack_root": "C:/b/", "source_root": ""}"#,
    )?;
    let repo = state
        .code
        .repository_by_name(&body.repository)
        .await?
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                format!("no repository {:?}", body.repository),
            )
        })?;
    let mapping = state
        .code
        .set_mapping(
            project.id,
            &repo,
            &body.stack_root,
            &body.source_root,
            MappingOrigin::User,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(mapping))))
}

/// `DELETE /api/v1/code-mappings/{id}?project=`.
pub async fn delete_mapping(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(query): Query<ProjectQuery>,
) -> Result<StatusCode, HttpError> {
    let project = project_param(&state, query.project.as_deref()).await?;
    caller.require_in(Scope::TriageWrite, &project)?;
    if state.code.delete_mapping(project.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no code mapping {id}"),
        ))
    }
}

/// `GET /api/v1/groups/{id}/suspects`: the stored report (computed beside processing);
/// `?compute=1` (with `triage:write`) computes it now.
pub async fn suspects(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, HttpError> {
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| bad_request(format!("a group ID is an integer, not {id:?}")))?;
    let compute = query
        .get("compute")
        .is_some_and(|v| v == "1" || v == "true");
    let scope = if compute {
        Scope::TriageWrite
    } else {
        Scope::TriageRead
    };
    super::triage::visible_group(&state, &caller, scope, id).await?;
    let report = if compute {
        state.suspects.compute(id).await?
    } else {
        state.suspects.stored(id).await?
    };
    let fixes = state.releases.fixes_of(id).await?;
    Ok(Json(json!({
        "group_id": id,
        "report": report,
        "pending": report.is_none(),
        "fixed_by": fixes.iter().map(|(version, c)| json!({"release": version, "commit": c})).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/crashes/{id}/source-context`: the lines around the crashing thread's frames,
/// and for each where they came from.
pub async fn source_context(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::TriageRead)?;
    let StoredCrash {
        id, crash, project, ..
    } = state.triage.stored_crash(&id).await?;
    let (Some(crash), Some(project)) = (crash, project) else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no processed crash {id:?}"),
        ));
    };
    if !caller.may(Scope::TriageRead, project) {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no processed crash {id:?}"),
        ));
    }
    let view = match crash.payload_key.as_deref() {
        Some(key) => state.triage.processed(key).await,
        None => None,
    }
    .ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            format!("crash {id:?} has no kept payload"),
        )
    })?;
    let context = state
        .releases
        .source_context(
            &state.symbols,
            project,
            crash.attributes.release.as_deref(),
            &view,
        )
        .await?;
    Ok(Json(
        json!({"crash_id": id, "release": crash.attributes.release, "context": context}),
    ))
}
