//! Sentry's release routes, so sentry-cli works unchanged (`releases new`, `set-commits`,
//! `finalize`, `deploys … new`, `list`, `info`), and faultline's own release list.
//!
//! Sentry's releases belong to an organization and name projects; faultline keeps one release
//! per project, so a version names the releases of every project the token may see. Writing
//! needs `releases:write` in each project named; reading needs `triage:read`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ProjectQuery;
use crate::app::App;
use crate::auth::{Project, Scope};
use crate::http::bad_request;
use crate::http::{project_param, typed_json, Caller, HttpError};
use crate::releases::{HeadRef, NewRelease, Release, ReleaseCommit};

/// A release as sentry-cli sends it (`POST`, `PUT`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReleaseBody {
    version: Option<String>,
    projects: Option<Vec<Value>>,
    #[serde(rename = "ref")]
    vcs_ref: Option<String>,
    url: Option<String>,
    #[serde(rename = "dateReleased")]
    date_released: Option<String>,
    refs: Option<Vec<RefBody>>,
    commits: Option<Vec<CommitBody>>,
}

/// A head (`refs[]`).
#[derive(Debug, Deserialize)]
pub struct RefBody {
    repository: String,
    commit: String,
    #[serde(rename = "previousCommit", default)]
    previous_commit: Option<String>,
}

/// A commit listed by the client (`commits[]`).
#[derive(Debug, Deserialize)]
pub struct CommitBody {
    id: String,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    author_name: Option<String>,
    #[serde(default)]
    author_email: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    patch_set: Vec<PatchBody>,
}

/// A changed path of a listed commit.
#[derive(Debug, Deserialize)]
pub struct PatchBody {
    path: String,
}

/// A deploy as sentry-cli sends it.
#[derive(Debug, Deserialize)]
pub struct DeployBody {
    environment: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(rename = "dateStarted", default)]
    date_started: Option<String>,
    #[serde(rename = "dateFinished", default)]
    date_finished: Option<String>,
}

const RELEASE_EXAMPLE: &str = r#"send {"version": "2.1.0", "projects": ["default"], "refs": [{"repository": "acme/game", "commit": "a1b2..c3d4"}]} (see docs/CODE.md)"#;

/// An RFC 3339 date as Unix seconds.
fn date(name: &str, text: Option<&str>) -> Result<Option<i64>, HttpError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|d| Some(d.unix_timestamp()))
        .map_err(|_| bad_request(format!("{name} must be an RFC 3339 date, not {text:?}")))
}

/// Unix seconds as RFC 3339.
pub fn iso(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The projects a body names (slugs, or numeric IDs), each checked for `scope`.
async fn named_projects(
    state: &App,
    caller: &Caller,
    names: &[Value],
    scope: Scope,
) -> Result<Vec<Project>, HttpError> {
    let mut projects = Vec::new();
    for name in names {
        let slug = match name {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(bad_request("projects are slugs or numeric IDs")),
        };
        let project = state.registry.project(&slug).await?.ok_or_else(|| {
            HttpError::new(StatusCode::NOT_FOUND, format!("no project {slug:?}"))
                .with_detail("create it with `faultline project create`")
        })?;
        caller.require_in(scope, &project)?;
        projects.push(project);
    }
    Ok(projects)
}

/// The scope a read uses: `releases:write` (what CI's token has: sentry-cli reads releases
/// back) when the token has it, else `triage:read`.
fn read_scope(caller: &Caller) -> Scope {
    if caller.require(Scope::ReleasesWrite).is_ok() {
        Scope::ReleasesWrite
    } else {
        Scope::TriageRead
    }
}

/// The releases with this version in every project the caller may use with `scope`.
async fn releases_named(
    state: &App,
    caller: &Caller,
    version: &str,
    scope: Scope,
) -> Result<Vec<(Project, Release)>, HttpError> {
    caller.require(scope)?;
    let mut found = Vec::new();
    for project in state.registry.projects().await? {
        if !caller.may(scope, project.id) {
            continue;
        }
        if let Some(release) = state.releases.get(project.id, version).await? {
            found.push((project, release));
        }
    }
    if found.is_empty() {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no release {version:?}"),
        ));
    }
    Ok(found)
}

/// A release in Sentry's shape (what sentry-cli reads), for the projects that have it.
async fn sentry_release(state: &App, found: &[(Project, Release)]) -> Result<Value, HttpError> {
    let (_, first) = &found[0];
    let mut commits = 0i64;
    let mut deploys = 0i64;
    let mut last_commit = None;
    let mut new_groups = 0;
    let mut first_crash: Option<i64> = None;
    for (_, release) in found {
        let heads = state.releases.heads(release.id).await?;
        if last_commit.is_none() {
            last_commit = heads.first().map(|h| json!({"id": h.head_commit}));
        }
        if let Some(s) = state.releases.summary(release).await? {
            commits += s.commits;
            deploys += s.deploys;
            new_groups += s.new_groups;
            first_crash = match (first_crash, s.first_crash) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    Ok(json!({
        "version": first.version,
        "shortVersion": first.version,
        "ref": first.vcs_ref,
        "url": first.url,
        "dateCreated": iso(first.created_at),
        "dateReleased": first.released_at.map(iso),
        "firstEvent": first_crash.map(iso),
        "newGroups": new_groups,
        "commitCount": commits,
        "deployCount": deploys,
        "lastCommit": last_commit,
        "projects": found.iter().map(|(p, _)| json!({"slug": p.slug, "name": p.name})).collect::<Vec<_>>(),
    }))
}

/// `POST /api/0/organizations/{org}/releases/`: creates the release in each project named (or
/// completes it), with its heads or commits when given.
pub async fn create(
    State(state): State<App>,
    caller: Caller,
    Path(_org): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    caller.require(Scope::ReleasesWrite)?;
    let body: ReleaseBody = typed_json(body, RELEASE_EXAMPLE)?;
    let version = body
        .version
        .clone()
        .ok_or_else(|| bad_request("a release needs a version"))?;
    let names = body.projects.clone().unwrap_or_default();
    if names.is_empty() {
        return Err(bad_request(
            "a release names at least one project (`projects`)",
        ));
    }
    let projects = named_projects(&state, &caller, &names, Scope::ReleasesWrite).await?;
    let new = NewRelease {
        version: version.clone(),
        vcs_ref: body.vcs_ref.clone(),
        url: body.url.clone(),
        released_at: date("dateReleased", body.date_released.as_deref())?,
    };
    let mut found = Vec::new();
    for project in projects {
        let release = state.releases.create(project.id, &new).await?;
        apply_code(&state, &release, &body).await?;
        found.push((project, release));
    }
    Ok((
        StatusCode::CREATED,
        Json(sentry_release(&state, &found).await?),
    ))
}

/// Sets the heads or commits a body gives.
async fn apply_code(state: &App, release: &Release, body: &ReleaseBody) -> Result<(), HttpError> {
    if let Some(refs) = &body.refs {
        let refs: Vec<HeadRef> = refs
            .iter()
            .map(|r| HeadRef {
                repository: r.repository.clone(),
                commit: r.commit.clone(),
                previous_commit: r.previous_commit.clone().filter(|p| !p.is_empty()),
            })
            .collect();
        state.releases.set_heads(release, &refs).await?;
    } else if let Some(commits) = &body.commits {
        let mut listed = Vec::with_capacity(commits.len());
        for c in commits {
            listed.push(ReleaseCommit {
                repository: c.repository.clone().unwrap_or_else(|| "(unnamed)".into()),
                sha: c.id.clone(),
                author_name: c.author_name.clone(),
                author_email: c.author_email.clone(),
                message: c.message.clone(),
                committed_at: date("timestamp", c.timestamp.as_deref())?,
                files: c.patch_set.iter().map(|p| p.path.clone()).collect(),
                resolves_group: None,
            });
        }
        state.releases.set_commits(release, listed).await?;
    }
    Ok(())
}

/// `GET /api/0/organizations/{org}/releases/{version}/`.
pub async fn get(
    State(state): State<App>,
    caller: Caller,
    Path((_org, version)): Path<(String, String)>,
) -> Result<Json<Value>, HttpError> {
    let found = releases_named(&state, &caller, &version, read_scope(&caller)).await?;
    Ok(Json(sentry_release(&state, &found).await?))
}

/// `PUT /api/0/organizations/{org}/releases/{version}/`: finalize (`dateReleased`), link,
/// heads (`refs`) or commits.
pub async fn update(
    State(state): State<App>,
    caller: Caller,
    Path((_org, version)): Path<(String, String)>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::ReleasesWrite)?;
    let body: ReleaseBody = typed_json(body, RELEASE_EXAMPLE)?;
    let mut found = releases_named(&state, &caller, &version, Scope::ReleasesWrite).await?;
    if let Some(names) = body.projects.as_ref().filter(|n| !n.is_empty()) {
        let named = named_projects(&state, &caller, names, Scope::ReleasesWrite).await?;
        found.retain(|(p, _)| named.iter().any(|n| n.id == p.id));
    }
    let released_at = date("dateReleased", body.date_released.as_deref())?;
    for (_, release) in &found {
        state
            .releases
            .update(release, body.url.as_deref(), released_at)
            .await?;
        apply_code(&state, release, &body).await?;
    }
    let found = releases_named(&state, &caller, &version, Scope::ReleasesWrite).await?;
    Ok(Json(sentry_release(&state, &found).await?))
}

/// `GET /api/0/organizations/{org}/releases/`: every release the caller may read.
pub async fn list(
    State(state): State<App>,
    caller: Caller,
    Path(_org): Path<String>,
) -> Result<Json<Value>, HttpError> {
    let scope = read_scope(&caller);
    caller.require(scope)?;
    let mut out = Vec::new();
    for project in state.registry.projects().await? {
        if caller.may(scope, project.id) {
            out.extend(project_releases(&state, &project).await?);
        }
    }
    Ok(Json(Value::Array(out)))
}

/// A project's releases in Sentry's shape, newest first.
async fn project_releases(state: &App, project: &Project) -> Result<Vec<Value>, HttpError> {
    let mut out = Vec::new();
    for summary in state.releases.list(project.id).await? {
        out.push(sentry_release(state, &[(project.clone(), summary.release)]).await?);
    }
    Ok(out)
}

/// `GET /api/0/projects/{org}/{project}/releases/`.
pub async fn list_project(
    State(state): State<App>,
    caller: Caller,
    Path((_org, slug)): Path<(String, String)>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, Some(&slug)).await?;
    caller.require_in(read_scope(&caller), &project)?;
    Ok(Json(Value::Array(
        project_releases(&state, &project).await?,
    )))
}

/// `GET /api/0/organizations/{org}/releases/{version}/commits/`.
pub async fn commits(
    State(state): State<App>,
    caller: Caller,
    Path((_org, version)): Path<(String, String)>,
) -> Result<Json<Value>, HttpError> {
    let found = releases_named(&state, &caller, &version, read_scope(&caller)).await?;
    let mut out = Vec::new();
    for (_, release) in &found {
        for c in state.releases.commits(release.id).await? {
            out.push(json!({
                "id": c.sha,
                "message": c.message,
                "dateCreated": c.committed_at.map(iso),
                "author": {"name": c.author_name, "email": c.author_email},
                "repository": {"name": c.repository},
            }));
        }
    }
    Ok(Json(Value::Array(out)))
}

/// `GET /api/0/organizations/{org}/releases/{version}/previous-with-commits/`: `{}` when none.
pub async fn previous_with_commits(
    State(state): State<App>,
    caller: Caller,
    Path((_org, version)): Path<(String, String)>,
) -> Result<Json<Value>, HttpError> {
    let found = match releases_named(&state, &caller, &version, read_scope(&caller)).await {
        Ok(found) => found,
        Err(e) if e.status() == StatusCode::NOT_FOUND => return Ok(Json(json!({}))),
        Err(e) => return Err(e),
    };
    let (project, release) = &found[0];
    match state.releases.previous_with_commits(release).await? {
        Some((previous, _)) => Ok(Json(
            sentry_release(&state, &[(project.clone(), previous)]).await?,
        )),
        None => Ok(Json(json!({}))),
    }
}

/// `POST /api/0/organizations/{org}/releases/{version}/deploys/`.
pub async fn create_deploy(
    State(state): State<App>,
    caller: Caller,
    Path((_org, version)): Path<(String, String)>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    caller.require(Scope::ReleasesWrite)?;
    let body: DeployBody = typed_json(body, r#"send {"environment": "production"}"#)?;
    let found = releases_named(&state, &caller, &version, Scope::ReleasesWrite).await?;
    let started = date("dateStarted", body.date_started.as_deref())?;
    let finished = date("dateFinished", body.date_finished.as_deref())?;
    let mut last = None;
    for (_, release) in &found {
        last = Some(
            state
                .releases
                .add_deploy(
                    release,
                    &body.environment,
                    body.name.as_deref(),
                    body.url.as_deref(),
                    started,
                    finished,
                )
                .await?,
        );
    }
    let deploy = last.expect("releases_named finds at least one");
    Ok((StatusCode::CREATED, Json(deploy_json(&deploy))))
}

/// `GET /api/0/organizations/{org}/releases/{version}/deploys/`.
pub async fn list_deploys(
    State(state): State<App>,
    caller: Caller,
    Path((_org, version)): Path<(String, String)>,
) -> Result<Json<Value>, HttpError> {
    let found = releases_named(&state, &caller, &version, read_scope(&caller)).await?;
    let mut out = Vec::new();
    for (_, release) in &found {
        out.extend(
            state
                .releases
                .deploys(release.id)
                .await?
                .iter()
                .map(deploy_json),
        );
    }
    Ok(Json(Value::Array(out)))
}

fn deploy_json(d: &crate::releases::Deploy) -> Value {
    json!({
        "id": d.id.to_string(),
        "environment": d.environment,
        "name": d.name,
        "url": d.url,
        "dateStarted": d.started_at.map(iso),
        "dateFinished": iso(d.finished_at),
    })
}

/// `GET /api/0/organizations/{org}/repos/`: the registered repositories in Sentry's shape
/// (sentry-cli checks `--commit REPO@…` names against it).
pub async fn repositories(
    State(state): State<App>,
    caller: Caller,
    Path(_org): Path<String>,
) -> Result<Json<Value>, HttpError> {
    caller.require(read_scope(&caller))?;
    let repos = state.code.repositories().await?;
    Ok(Json(Value::Array(
        repos
            .iter()
            .map(|r| {
                json!({
                    "id": r.id.to_string(),
                    "name": r.name,
                    "url": r.web_url_template.as_ref().map(|_| r.remote.clone()),
                    "provider": {"id": "faultline", "name": "faultline"},
                    "status": "active",
                    "dateCreated": iso(r.created_at),
                })
            })
            .collect(),
    )))
}

/// `GET /api/v1/releases?project=`: the project's releases, newest first, with commits,
/// deploys, first crash and new groups.
pub async fn list_v1(
    State(state): State<App>,
    caller: Caller,
    Query(query): Query<ProjectQuery>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, query.project.as_deref()).await?;
    caller.require_in(Scope::TriageRead, &project)?;
    let releases = state.releases.list(project.id).await?;
    Ok(Json(json!({"project": project.slug, "releases": releases})))
}

/// `GET /api/v1/releases/{version}?project=`: one release with its heads, commits and deploys.
pub async fn get_v1(
    State(state): State<App>,
    caller: Caller,
    Path(version): Path<String>,
    Query(query): Query<ProjectQuery>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, query.project.as_deref()).await?;
    caller.require_in(Scope::TriageRead, &project)?;
    let release = state
        .releases
        .get(project.id, &version)
        .await?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, format!("no release {version:?}")))?;
    Ok(Json(json!({
        "release": release,
        "heads": state.releases.heads(release.id).await?,
        "commits": state.releases.commits(release.id).await?,
        "deploys": state.releases.deploys(release.id).await?,
    })))
}
