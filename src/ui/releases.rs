//! The releases page: a project's releases (newest first) with the commits each brought, its
//! deploys, first crash and new groups; and the project's code mappings, where a person
//! confirms a derived one or sets their own (which wins).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::groups::{chosen_project, project_choices, readable_projects, Choice};
use super::page::{ago, render, when, Chrome, UiError};
use super::session::Viewer;
use crate::app::App;
use crate::auth::Scope;
use crate::clock::now;
use crate::code::mappings::MappingOrigin;
use crate::health::HealthSummary;

struct ReleaseRow {
    version: String,
    /// The version as a URL path segment.
    version_segment: String,
    sessions: i64,
    crash_free_sessions: String,
    crash_free_users: String,
    adoption: String,
    created: String,
    released: String,
    commits: i64,
    deploys: i64,
    first_crash: String,
    crashes: i64,
    new_groups: i64,
}

struct MappingRow {
    repository: String,
    stack_root: String,
    source_root: String,
    derived: bool,
}

#[derive(Template)]
#[template(path = "releases.html")]
struct ReleasesPage {
    chrome: Chrome,
    project: String,
    projects: Vec<Choice>,
    releases: Vec<ReleaseRow>,
    mappings: Vec<MappingRow>,
    repositories: Vec<String>,
    can_write: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReleasesParams {
    project: Option<String>,
}

/// `GET /ui/releases?project=`.
pub async fn show(
    State(state): State<App>,
    viewer: Viewer,
    params: Result<Query<ReleasesParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(params) = params.map_err(|e| UiError::bad_request(e.body_text()))?;
    viewer.caller.require(Scope::TriageRead)?;
    let projects = readable_projects(&state, &viewer).await?;
    let project = chosen_project(&projects, params.project.as_deref())?;
    let t = now();
    let listed = state.releases.list(project.id).await.map_err(UiError::of)?;
    let health = state
        .health
        .summaries(project.id)
        .await
        .map_err(UiError::of)?;
    let mut releases = Vec::with_capacity(listed.len());
    for s in listed {
        let mut row = health_row(&s.release.version, &health);
        row.created = ago(s.release.created_at, t);
        row.released = s.release.released_at.map(when).unwrap_or_default();
        row.commits = s.commits;
        row.deploys = s.deploys;
        row.first_crash = s.first_crash.map(|at| ago(at, t)).unwrap_or_default();
        row.crashes = s.crashes;
        row.new_groups = s.new_groups;
        releases.push(row);
    }
    // Releases SDKs sent sessions for that no one created.
    for summary in &health {
        if !releases.iter().any(|r| r.version == summary.release) {
            releases.push(health_row(&summary.release, &health));
        }
    }
    let mappings = state
        .code
        .mappings(project.id)
        .await
        .map_err(UiError::of)?
        .into_iter()
        .map(|m| MappingRow {
            repository: m.repository,
            stack_root: m.stack_root,
            source_root: m.source_root,
            derived: m.origin == MappingOrigin::Derived,
        })
        .collect();
    let repositories = state
        .code
        .repositories()
        .await
        .map_err(UiError::of)?
        .into_iter()
        .map(|r| r.name)
        .collect();
    let page = ReleasesPage {
        chrome: viewer.chrome(),
        project: project.slug.clone(),
        projects: project_choices(&projects, project.id),
        releases,
        mappings,
        repositories,
        can_write: viewer.may(Scope::TriageWrite, project.id),
    };
    Ok(render(&page))
}

/// A release's row with its health (sessions, crash-free rates, adoption), the rest blank.
fn health_row(version: &str, health: &[HealthSummary]) -> ReleaseRow {
    let summary = health.iter().find(|h| h.release == version);
    let percent = |p: Option<f64>| p.map(|p| format!("{p:.2} %")).unwrap_or_default();
    ReleaseRow {
        version: version.to_owned(),
        version_segment: crate::http::segment(version),
        sessions: summary.map_or(0, |h| h.sessions),
        crash_free_sessions: percent(summary.and_then(|h| h.crash_free_sessions)),
        crash_free_users: percent(summary.and_then(|h| h.crash_free_users)),
        adoption: percent(summary.and_then(|h| h.adoption)),
        created: String::new(),
        released: String::new(),
        commits: 0,
        deploys: 0,
        first_crash: String::new(),
        crashes: summary.map_or(0, |h| h.crash_reports),
        new_groups: 0,
    }
}

/// A mapping a person sets or confirms.
#[derive(Debug, Deserialize)]
pub struct MappingForm {
    csrf: String,
    project: String,
    repository: String,
    stack_root: String,
    #[serde(default)]
    source_root: String,
}

/// `POST /ui/code-mappings`: sets a person's mapping (confirming a derived one sets the same
/// roots as a person's).
pub async fn set_mapping(
    State(state): State<App>,
    viewer: Viewer,
    form: Result<Form<MappingForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| UiError::bad_request(e.body_text()))?;
    viewer.check_csrf(&form.csrf)?;
    viewer.caller.require(Scope::TriageWrite)?;
    let project = state
        .registry
        .project(&form.project)
        .await?
        .filter(|p| viewer.may(Scope::TriageWrite, p.id))
        .ok_or_else(|| UiError::not_found(format!("no project {:?}", form.project)))?;
    let repo = state
        .code
        .repository_by_name(&form.repository)
        .await
        .map_err(UiError::of)?
        .ok_or_else(|| UiError::not_found(format!("no repository {:?}", form.repository)))?;
    state
        .code
        .set_mapping(
            project.id,
            &repo,
            &form.stack_root,
            &form.source_root,
            MappingOrigin::User,
        )
        .await
        .map_err(UiError::of)?;
    let back = format!(
        "/ui/releases?project={}",
        crate::http::segment(&project.slug)
    );
    Ok(axum::response::IntoResponse::into_response(Redirect::to(
        &back,
    )))
}
