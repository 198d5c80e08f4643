//! Alert routes (the `admin` scope, per project): rules (`/api/v1/alert-rules`), channels
//! (`/api/v1/channels`, with a test send), what fired (`/api/v1/alert-fires`) and what was
//! delivered or not (`/api/v1/deliveries`). A rule or channel of a project the token does not
//! cover reads as not found.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ProjectQuery;
use crate::alerts::{ChannelConfig, DeliveryFilter, NewChannel, RuleDefinition};
use crate::app::App;
use crate::auth::Scope;
use crate::http::HttpError;
use crate::http::{project_param, Caller};
use crate::outbound::Attempt;

const RULE_EXAMPLE: &str = r#"send {"project": "default", "name": "New crashes", "triggers": [{"kind": "new_group"}], "actions": [{"channel": 1}]} (see docs/ALERTS.md)"#;
const CHANNEL_EXAMPLE: &str = r#"send {"project": "default", "name": "ops", "config": {"kind": "webhook", "url": "https://…", "secret": "…"}} (see docs/ALERTS.md)"#;

fn json_body(
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
    example: &str,
) -> Result<serde_json::Map<String, Value>, HttpError> {
    match body {
        Ok(Json(Value::Object(map))) => Ok(map),
        Ok(_) => Err(
            HttpError::new(StatusCode::BAD_REQUEST, "expected a JSON object")
                .with_detail(example.to_owned()),
        ),
        Err(e) => Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid request: {}", e.body_text()),
        )
        .with_detail(example.to_owned())),
    }
}

fn take_string(
    map: &mut serde_json::Map<String, Value>,
    key: &str,
    example: &str,
) -> Result<Option<String>, HttpError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(
            HttpError::new(StatusCode::BAD_REQUEST, format!("{key} must be a string"))
                .with_detail(example.to_owned()),
        ),
    }
}

/// The rule body: `project`, `name`, `enabled` and the definition's fields side by side.
fn rule_body(
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<(Option<String>, String, bool, RuleDefinition), HttpError> {
    let mut map = json_body(body, RULE_EXAMPLE)?;
    let project = take_string(&mut map, "project", RULE_EXAMPLE)?;
    let name = take_string(&mut map, "name", RULE_EXAMPLE)?.ok_or_else(|| {
        HttpError::new(StatusCode::BAD_REQUEST, "a rule needs a name").with_detail(RULE_EXAMPLE)
    })?;
    let enabled = match map.remove("enabled") {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "enabled must be true or false",
            ))
        }
    };
    let definition: RuleDefinition = serde_json::from_value(Value::Object(map)).map_err(|e| {
        HttpError::new(StatusCode::BAD_REQUEST, format!("invalid rule: {e}"))
            .with_detail(RULE_EXAMPLE)
    })?;
    Ok((project, name, enabled, definition))
}

/// `GET /api/v1/alert-rules?project=`.
pub async fn list_rules(
    State(state): State<App>,
    caller: Caller,
    Query(q): Query<ProjectQuery>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, q.project.as_deref()).await?;
    caller.require_in(Scope::Admin, &project)?;
    Ok(Json(
        json!({ "rules": state.alerts.rules(project.id).await? }),
    ))
}

/// `POST /api/v1/alert-rules`.
pub async fn create_rule(
    State(state): State<App>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    caller.require(Scope::Admin)?;
    let (project, name, enabled, definition) = rule_body(body)?;
    let project = project_param(&state, project.as_deref()).await?;
    caller.require_in(Scope::Admin, &project)?;
    let rule = state
        .alerts
        .create_rule(project.id, &name, enabled, definition)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(rule))))
}

fn numeric_id(id: &str, what: &str) -> Result<i64, HttpError> {
    id.parse()
        .map_err(|_| HttpError::new(StatusCode::NOT_FOUND, format!("no {what} {id:?}")))
}

/// 404 for an object of a project the caller does not administer (as if it did not exist).
fn administered(caller: &Caller, project_id: i64, what: &str, id: i64) -> Result<(), HttpError> {
    if caller.may(Scope::Admin, project_id) {
        Ok(())
    } else {
        Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no {what} {id}"),
        ))
    }
}

/// A rule the caller may administer, else 404 (another project's rule is not revealed).
async fn visible_rule(
    state: &App,
    caller: &Caller,
    id: &str,
) -> Result<crate::alerts::RuleView, HttpError> {
    caller.require(Scope::Admin)?;
    let id = numeric_id(id, "alert rule")?;
    let rule = state.alerts.rule(id).await?;
    administered(caller, rule.project_id, "alert rule", id)?;
    Ok(rule)
}

/// `GET /api/v1/alert-rules/{id}`.
pub async fn get_rule(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, HttpError> {
    Ok(Json(json!(visible_rule(&state, &caller, &id).await?)))
}

/// `PUT /api/v1/alert-rules/{id}`: the whole rule again (its project cannot change).
pub async fn update_rule(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, HttpError> {
    let rule = visible_rule(&state, &caller, &id).await?;
    let (_, name, enabled, definition) = rule_body(body)?;
    let rule = state
        .alerts
        .update_rule(rule.id, &name, enabled, definition)
        .await?;
    Ok(Json(json!(rule)))
}

/// `DELETE /api/v1/alert-rules/{id}`.
pub async fn delete_rule(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    let rule = visible_rule(&state, &caller, &id).await?;
    state.alerts.delete_rule(rule.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/channels?project=` (secrets hidden).
pub async fn list_channels(
    State(state): State<App>,
    caller: Caller,
    Query(q): Query<ProjectQuery>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, q.project.as_deref()).await?;
    caller.require_in(Scope::Admin, &project)?;
    Ok(Json(
        json!({ "channels": state.alerts.channels(project.id).await? }),
    ))
}

/// The body of `POST /api/v1/channels`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    project: Option<String>,
    name: String,
    config: ChannelConfig,
    /// Messages carry the fault frame's variables (they can hold personal data: off unless
    /// asked for).
    #[serde(default)]
    include_variables: bool,
}

/// `POST /api/v1/channels`.
pub async fn create_channel(
    State(state): State<App>,
    caller: Caller,
    body: Result<Json<CreateChannel>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    caller.require(Scope::Admin)?;
    let Json(body) = body.map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid channel: {}", e.body_text()),
        )
        .with_detail(CHANNEL_EXAMPLE)
    })?;
    let project = project_param(&state, body.project.as_deref()).await?;
    caller.require_in(Scope::Admin, &project)?;
    let channel = state
        .alerts
        .create_channel(&NewChannel {
            project_id: project.id,
            name: body.name,
            config: body.config,
            include_variables: body.include_variables,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!(channel))))
}

async fn visible_channel(
    state: &App,
    caller: &Caller,
    id: &str,
) -> Result<crate::alerts::ChannelView, HttpError> {
    caller.require(Scope::Admin)?;
    let id = numeric_id(id, "channel")?;
    let channel = state.alerts.channel(id).await?;
    administered(caller, channel.project_id, "channel", id)?;
    Ok(channel)
}

/// `GET /api/v1/channels/{id}`.
pub async fn get_channel(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, HttpError> {
    Ok(Json(json!(visible_channel(&state, &caller, &id).await?)))
}

/// `DELETE /api/v1/channels/{id}` (refused while a rule uses it).
pub async fn delete_channel(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    let channel = visible_channel(&state, &caller, &id).await?;
    state.alerts.delete_channel(channel.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/channels/{id}/test`: sends a test message now and returns what the other side
/// answered (`200` either way; `delivered` says whether it took it).
pub async fn test_channel(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, HttpError> {
    let channel = visible_channel(&state, &caller, &id).await?;
    let attempt = state
        .alerts
        .test_channel(channel.id, channel.project_id)
        .await?;
    Ok(Json(match attempt {
        Attempt::Delivered { status, response } => {
            json!({"delivered": true, "status": status, "response": response})
        }
        Attempt::Retry {
            status,
            error,
            retry_after,
        } => {
            json!({"delivered": false, "status": status, "error": error, "retry_after": retry_after, "retryable": true})
        }
        Attempt::Failed { status, error } => {
            json!({"delivered": false, "status": status, "error": error, "retryable": false})
        }
    }))
}

/// `GET /api/v1/alert-fires?project=&group=&before=&limit=`.
#[derive(Deserialize)]
pub struct FiresQuery {
    project: Option<String>,
    group: Option<i64>,
    before: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/v1/alert-fires`: what fired, newest first, with why.
pub async fn list_fires(
    State(state): State<App>,
    caller: Caller,
    Query(q): Query<FiresQuery>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, q.project.as_deref()).await?;
    caller.require_in(Scope::Admin, &project)?;
    let fires = state
        .alerts
        .fires(project.id, q.group, q.before, q.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!({ "fires": fires })))
}

/// `GET /api/v1/deliveries?project=&state=&limit=`.
#[derive(Deserialize)]
pub struct DeliveriesQuery {
    project: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/deliveries`: messages and their fate (`state=failed`: dead ones and those
/// retrying after a failure, with the reason).
pub async fn list_deliveries(
    State(state): State<App>,
    caller: Caller,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, q.project.as_deref()).await?;
    caller.require_in(Scope::Admin, &project)?;
    let filter = DeliveryFilter::parse(q.state.as_deref())?;
    let deliveries = state
        .alerts
        .deliveries(project.id, filter, q.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!({ "deliveries": deliveries })))
}
