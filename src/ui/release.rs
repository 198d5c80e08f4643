//! One release's page: its health against the previous release, sessions and crashed sessions
//! per hour over two weeks with its deploys, and the groups its crashes fell into by rate (new
//! in the release, or regressed, marked).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::charts;
use super::groups::{chosen_project, readable_projects};
use super::page::{ago, render, Chrome, UiError};
use super::session::Viewer;
use crate::app::App;
use crate::auth::Scope;
use crate::clock::now;
use crate::health::ReleaseHealth;

/// Hours the charts cover.
const CHART_HOURS: usize = 14 * 24;
/// Groups listed.
const GROUPS: i64 = 50;

/// The figures of a release in one row.
struct Figures {
    release: String,
    sessions: i64,
    crashed: i64,
    /// Distinct users, `≈` before an estimate.
    users: String,
    crash_free_sessions: String,
    crash_free_users: String,
    adoption: String,
}

struct GroupLine {
    id: i64,
    signature: String,
    crashes: i64,
    per_1000: String,
    new: bool,
    regressed: bool,
}

struct DeployLine {
    environment: String,
    name: String,
    when: String,
    /// Where it is drawn on the charts (4 units an hour), when inside their window.
    x: Option<i64>,
}

#[derive(Template)]
#[template(path = "release.html")]
struct ReleasePage {
    chrome: Chrome,
    project: String,
    version: String,
    figures: Vec<Figures>,
    sessions_chart: String,
    crashed_chart: String,
    /// Crash-free sessions per day: the line's points and the lowest percentage shown.
    crash_free_points: String,
    crash_free_floor: String,
    /// The charts' width in units.
    chart_width: usize,
    deploys: Vec<DeployLine>,
    groups: Vec<GroupLine>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReleaseParams {
    project: Option<String>,
}

fn figures(h: &ReleaseHealth) -> Figures {
    let percent = |p: Option<f64>| p.map(|p| format!("{p:.2} %")).unwrap_or_default();
    Figures {
        release: h.release.clone(),
        sessions: h.sessions,
        crashed: h.crashed,
        users: if h.users_estimated {
            format!("≈ {}", h.users)
        } else {
            h.users.to_string()
        },
        crash_free_sessions: percent(h.crash_free_sessions),
        crash_free_users: percent(h.crash_free_users),
        adoption: percent(h.adoption),
    }
}

/// `GET /ui/releases/{version}?project=`.
pub async fn show(
    State(state): State<App>,
    viewer: Viewer,
    Path(version): Path<String>,
    params: Result<Query<ReleaseParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(params) = params.map_err(|e| UiError::bad_request(e.body_text()))?;
    viewer.caller.require(Scope::TriageRead)?;
    let projects = readable_projects(&state, &viewer).await?;
    let project = chosen_project(&projects, params.project.as_deref())?;
    let t = now();
    let health = state
        .health
        .release_health(project.id, &version, &Default::default())
        .await
        .map_err(UiError::of)?;
    let start = charts::window_start(t, CHART_HOURS);
    let sessions: Vec<(i64, i64)> = health.hours.iter().map(|h| (h.hour, h.sessions)).collect();
    let crashed: Vec<(i64, i64)> = health.hours.iter().map(|h| (h.hour, h.crashed)).collect();
    let mut rows = vec![figures(&health)];
    rows.extend(health.previous.as_deref().map(figures));
    let deploys = match state
        .releases
        .get(project.id, &version)
        .await
        .map_err(UiError::of)?
    {
        Some(release) => state
            .releases
            .deploys(release.id)
            .await
            .map_err(UiError::of)?
            .into_iter()
            .map(|d| DeployLine {
                environment: d.environment,
                name: d.name.unwrap_or_default(),
                when: ago(d.finished_at, t),
                x: (d.finished_at >= start && d.finished_at <= t)
                    .then(|| (d.finished_at - start) * 4 / 3600),
            })
            .collect(),
        None => Vec::new(),
    };
    let mut groups = Vec::new();
    for (id, crashes) in state
        .health
        .groups_in_release(project.id, &version, GROUPS)
        .await
        .map_err(UiError::of)?
    {
        let Some(group) = state.index.group(id).await? else {
            continue;
        };
        groups.push(GroupLine {
            id,
            per_1000: if health.sessions > 0 {
                format!("{:.3}", crashes as f64 * 1000.0 / health.sessions as f64)
            } else {
                String::new()
            },
            new: group.first_release.as_deref() == Some(version.as_str()),
            regressed: group.regressed && group.last_release.as_deref() == Some(version.as_str()),
            signature: group.signature,
            crashes,
        });
    }
    let per_hour_sessions = charts::per_hour(&sessions, start, CHART_HOURS);
    let per_hour_crashed = charts::per_hour(&crashed, start, CHART_HOURS);
    let (crash_free_points, floor) = charts::crash_free_line(&per_hour_sessions, &per_hour_crashed);
    let page = ReleasePage {
        chrome: viewer.chrome(),
        project: project.slug.clone(),
        version,
        figures: rows,
        sessions_chart: charts::bars(&per_hour_sessions),
        crashed_chart: charts::bars(&per_hour_crashed),
        crash_free_points,
        crash_free_floor: format!("{floor:.0} %"),
        chart_width: CHART_HOURS * 4,
        deploys,
        groups,
    };
    Ok(render(&page))
}
