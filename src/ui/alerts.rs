//! The alerts page (`admin`): a project's rules and channels, what fired lately and why, and
//! every delivery that failed with the other side's reason — so an alert that did not arrive
//! is seen, not guessed at. Rules and channels are changed through the API (docs/ALERTS.md).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::groups::{project_choices, readable_projects, Choice};
use super::page::{ago, render, when, Chrome, UiError};
use super::session::Viewer;
use crate::alerts::RuleView;
use crate::app::App;
use crate::auth::Scope;
use crate::clock::now;

/// Rows per table.
const ROWS: i64 = 50;

struct RuleRow {
    id: i64,
    name: String,
    enabled: bool,
    triggers: String,
    channels: String,
    interval: String,
}

struct ChannelRow {
    id: i64,
    name: String,
    kind: String,
}

struct FireRow {
    rule: String,
    group: i64,
    trigger: String,
    at: String,
    ago: String,
}

struct FailedRow {
    channel: String,
    state: String,
    attempts: i64,
    error: String,
    at: String,
    ago: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    projects: Vec<Choice>,
    rules: Vec<RuleRow>,
    channels: Vec<ChannelRow>,
    fires: Vec<FireRow>,
    failed: Vec<FailedRow>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AlertsParams {
    project: Option<String>,
}

fn map_err(e: crate::alerts::AlertError) -> UiError {
    UiError::from(crate::http::HttpError::from(e))
}

/// One rule as the table shows it: its triggers, the channels it sends to, its interval.
fn rule_row(r: &RuleView, channel_name: &impl Fn(i64) -> String) -> RuleRow {
    RuleRow {
        id: r.id,
        name: r.name.clone(),
        enabled: r.enabled,
        triggers: r
            .definition
            .triggers
            .iter()
            .map(|t| t.name().replace('_', " "))
            .collect::<Vec<_>>()
            .join(match r.definition.trigger_match {
                crate::alerts::rules::TriggerMatch::Any => " or ",
                crate::alerts::rules::TriggerMatch::All => " and ",
            }),
        channels: r
            .definition
            .actions
            .iter()
            .map(|a| channel_name(a.channel))
            .collect::<Vec<_>>()
            .join(", "),
        interval: match r.definition.interval_secs {
            0 => "every time".to_owned(),
            s if s % 3600 == 0 => format!("{} h", s / 3600),
            s if s % 60 == 0 => format!("{} min", s / 60),
            s => format!("{s} s"),
        },
    }
}

/// `GET /ui/alerts?project=`.
pub async fn show(
    State(state): State<App>,
    viewer: Viewer,
    params: Result<Query<AlertsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(params) = params.map_err(|e| UiError::bad_request(e.body_text()))?;
    viewer.caller.require(Scope::Admin)?;
    let projects: Vec<_> = readable_projects(&state, &viewer)
        .await?
        .into_iter()
        .filter(|p| viewer.may(Scope::Admin, p.id))
        .collect();
    let project = super::groups::chosen_project(&projects, params.project.as_deref())?;
    let alerts = &state.alerts;
    let channel_list = alerts.channels(project.id).await.map_err(map_err)?;
    let channel_name = |id: i64| {
        channel_list
            .iter()
            .find(|c| c.id == id)
            .map_or(format!("#{id} (deleted)"), |c| {
                format!("{} ({})", c.name, c.kind)
            })
    };
    let rule_list = alerts.rules(project.id).await.map_err(map_err)?;
    let rules = rule_list
        .iter()
        .map(|r| rule_row(r, &channel_name))
        .collect();
    let t = now();
    let fires = alerts
        .fires(project.id, None, None, ROWS)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|f| FireRow {
            rule: rule_list
                .iter()
                .find(|r| r.id == f.rule_id)
                .map_or(format!("#{} (deleted)", f.rule_id), |r| r.name.clone()),
            group: f.group_id,
            trigger: f.trigger.replace('_', " "),
            at: when(f.fired_at),
            ago: ago(f.fired_at, t),
        })
        .collect();
    let failed = alerts
        .deliveries(project.id, crate::alerts::DeliveryFilter::Failed, ROWS)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|d| FailedRow {
            channel: channel_name(d.channel_id),
            state: d.state,
            attempts: d.attempts,
            error: d.last_error.unwrap_or_default(),
            at: when(d.updated_at),
            ago: ago(d.updated_at, t),
        })
        .collect();
    let page = AlertsPage {
        chrome: viewer.chrome(),
        projects: project_choices(&projects, project.id),
        rules,
        channels: channel_list
            .iter()
            .map(|c| ChannelRow {
                id: c.id,
                name: c.name.clone(),
                kind: c.kind.clone(),
            })
            .collect(),
        fires,
        failed,
    };
    Ok(render(&page))
}
