//! Release health routes: usage reported by a launcher or game backend (`ingest`), a
//! release's health (`triage:read`), and Sentry's sessions query for dashboards written for it.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ProjectQuery;
use crate::app::App;
use crate::auth::Scope;
use crate::health::session::{SessionItems, UsageRow, MAX_BUCKETS};
use crate::health::HealthQuery;
use crate::http::bad_request;
use crate::http::{project_param, typed_json, Caller, HttpError};

/// The usage body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageBody {
    usage: Vec<UsageRow>,
}

/// `POST /api/v1/usage?project=`: sessions (and users) per release, environment and hour, for
/// crash reporters that send no sessions; committed before the answer.
pub async fn usage(
    State(state): State<App>,
    caller: Caller,
    Query(query): Query<ProjectQuery>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::Ingest)?;
    let project = project_param(&state, query.project.as_deref()).await?;
    caller.require_in(Scope::Ingest, &project)?;
    let body: UsageBody = typed_json(
        body,
        r#"send {"usage": [{"release": "2.1.0", "environment": "production", "hour": 1796468400, "sessions": 5120, "users": 4870}]}"#,
    )?;
    if body.usage.len() > MAX_BUCKETS {
        return Err(bad_request(format!(
            "at most {MAX_BUCKETS} usage rows per request"
        )));
    }
    let usage = body
        .usage
        .into_iter()
        .map(UsageRow::checked)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_request)?;
    let rows = usage.len();
    let items = SessionItems {
        usage,
        ..SessionItems::default()
    };
    state.health.record(project.id, items).await?;
    Ok(Json(json!({"recorded": rows})))
}

/// `?project=&environment=&since=`.
#[derive(Debug, Deserialize)]
pub struct HealthParams {
    project: Option<String>,
    environment: Option<String>,
    since: Option<i64>,
}

/// `GET /api/v1/releases/{version}/health?project=&environment=&since=`.
pub async fn release_health(
    State(state): State<App>,
    caller: Caller,
    Path(version): Path<String>,
    Query(params): Query<HealthParams>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, params.project.as_deref()).await?;
    caller.require_in(Scope::TriageRead, &project)?;
    let query = HealthQuery {
        environment: params.environment.filter(|e| !e.is_empty()),
        since: params.since,
    };
    let health = state
        .health
        .release_health(project.id, &version, &query)
        .await?;
    Ok(Json(json!(health)))
}

/// `GET /api/0/organizations/{org}/sessions/?project=ID&field=…&groupBy=release`: Sentry's
/// shape for `sum(session)`, `count_unique(user)`, `crash_free_rate(session)` and
/// `crash_free_rate(user)` (rates as fractions), totals per release.
pub async fn sentry_sessions(
    State(state): State<App>,
    caller: Caller,
    Path(_org): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, HttpError> {
    let one = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let fields: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "field")
        .map(|(_, v)| v.clone())
        .collect();
    let known = [
        "sum(session)",
        "count_unique(user)",
        "crash_free_rate(session)",
        "crash_free_rate(user)",
    ];
    if let Some(unknown) = fields.iter().find(|f| !known.contains(&f.as_str())) {
        return Err(bad_request(format!(
            "field {unknown:?} is not one of {}",
            known.join(", ")
        )));
    }
    let project = project_param(&state, one("project").as_deref()).await?;
    caller.require_in(Scope::TriageRead, &project)?;
    let period = one("statsPeriod").unwrap_or_else(|| "24h".into());
    let seconds = period_seconds(&period).ok_or_else(|| {
        bad_request(format!(
            "statsPeriod {period:?} is not like 24h, 14d or 90m"
        ))
    })?;
    let end = crate::clock::now();
    let query = HealthQuery {
        environment: one("environment"),
        since: Some(end - seconds),
    };
    let releases = match one("groupBy").as_deref() {
        Some("release") => state.health.releases_with_sessions(project.id).await?,
        Some(other) => {
            return Err(bad_request(format!(
                "groupBy {other:?}: only release is supported"
            )))
        }
        None => Vec::new(),
    };
    let mut groups = Vec::new();
    for release in &releases {
        let h = state
            .health
            .release_health(project.id, release, &query)
            .await?;
        if h.sessions == 0 {
            continue;
        }
        let mut totals = HashMap::new();
        for field in &fields {
            let value = match field.as_str() {
                "sum(session)" => json!(h.sessions),
                "count_unique(user)" => json!(h.users),
                "crash_free_rate(session)" => json!(h.crash_free_sessions.map(|p| p / 100.0)),
                _ => json!(h.crash_free_users.map(|p| p / 100.0)),
            };
            totals.insert(field.clone(), value);
        }
        groups.push(json!({"by": {"release": release}, "totals": totals}));
    }
    Ok(Json(json!({
        "start": super::releases::iso(end - seconds),
        "end": super::releases::iso(end),
        "query": "",
        "intervals": [],
        "groups": groups,
    })))
}

/// `24h`, `14d`, `90m` as seconds.
fn period_seconds(text: &str) -> Option<i64> {
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: i64 = number.parse().ok().filter(|n| *n > 0 && *n <= 100_000)?;
    Some(
        n * match unit {
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return None,
        },
    )
}
