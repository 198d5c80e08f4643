//! Triage routes over the crash index: list and inspect groups, change their state, merge
//! them, and find crashes (by ID, or every crash of one user through an annotation).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::auth::Scope;
use crate::group::index::{CrashRow, GroupPatch, GroupQuery, GroupSort, GroupState};
use crate::group::CrashClass;
use crate::http::bad_request;
use crate::http::HttpError;
use crate::http::{project_param, Caller};
use crate::triage::StoredCrash;

fn parse_int(name: &str, value: &str) -> Result<i64, HttpError> {
    value
        .trim()
        .parse()
        .map_err(|_| bad_request(format!("{name} must be an integer, not {value:?}")))
}

/// The single `annotation.<name>=<value>` filter of a query, if any.
fn annotation_filter(
    params: &HashMap<String, String>,
) -> Result<Option<(String, String)>, HttpError> {
    let mut found = params
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("annotation.")?.to_owned(), v.clone())));
    let first = found.next();
    if found.next().is_some() {
        return Err(bad_request(
            "give at most one annotation.<name>=<value> filter",
        ));
    }
    Ok(first)
}

const GROUP_PARAMS: [&str; 12] = [
    "project",
    "assignee",
    "q",
    "state",
    "product",
    "release",
    "fault_class",
    "since",
    "until",
    "sort",
    "limit",
    "cursor",
];

/// `GET /api/v1/groups?project=&state=&assignee=&q=<signature text>&product=&release=&fault_class=&since=&until=&annotation.<n>=<v>&sort=events|users|last_seen|first_seen|rate&limit=&cursor=`
/// (needs `triage:read` on the project; the default project when `project` is absent).
pub async fn list_groups(
    State(state): State<App>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, params.get("project").map(String::as_str)).await?;
    caller.require_in(Scope::TriageRead, &project)?;
    if let Some(unknown) = params
        .keys()
        .find(|k| !GROUP_PARAMS.contains(&k.as_str()) && !k.starts_with("annotation."))
    {
        return Err(
            bad_request(format!("unknown parameter {unknown:?}")).with_detail(format!(
                "use {}, or annotation.<name>",
                GROUP_PARAMS.join(", ")
            )),
        );
    }
    let sort = GroupSort::parse(
        params
            .get("sort")
            .map(String::as_str)
            .unwrap_or("last_seen"),
    )
    .map_err(bad_request)?;
    let query = GroupQuery {
        project_id: project.id,
        state: params
            .get("state")
            .map(|s| GroupState::settable(s))
            .transpose()?,
        product: params.get("product").cloned(),
        release: params.get("release").cloned(),
        fault_class: params
            .get("fault_class")
            .map(|name| CrashClass::parse(name))
            .transpose()?,
        since: params
            .get("since")
            .map(|v| parse_int("since", v))
            .transpose()?,
        until: params
            .get("until")
            .map(|v| parse_int("until", v))
            .transpose()?,
        annotation: annotation_filter(&params)?,
        assignee: params.get("assignee").cloned(),
        signature_contains: params.get("q").cloned().filter(|q| !q.trim().is_empty()),
        sort,
        limit: params
            .get("limit")
            .map(|v| parse_int("limit", v))
            .transpose()?
            .unwrap_or(25),
        cursor: params.get("cursor").cloned(),
    };
    let page = state.index.groups(&query).await?;
    Ok(Json(
        json!({ "groups": page.items, "next_cursor": page.next_cursor }),
    ))
}

fn group_id(id: &str) -> Result<i64, HttpError> {
    parse_int("the group ID", id)
}

/// The group `id`, if the caller may act on its project with `scope`; a group of a project the
/// token does not cover reads as not found.
pub(super) async fn visible_group(
    state: &App,
    caller: &Caller,
    scope: Scope,
    id: i64,
) -> Result<i64, HttpError> {
    caller.require(scope)?;
    let project = match state.index.group(id).await? {
        Some(group) => Some(group.project_id),
        None => match state.index.merged_into(id).await? {
            Some(target) => state.index.group(target).await?.map(|g| g.project_id),
            None => None,
        },
    };
    match project {
        Some(project) if caller.may(scope, project) => Ok(id),
        Some(_) => Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no group {id}"),
        )),
        None => Err(not_found(state, id).await),
    }
}

async fn not_found(state: &App, id: i64) -> HttpError {
    match state.index.merged_into(id).await {
        Ok(Some(target)) => HttpError::new(
            StatusCode::NOT_FOUND,
            format!("group {id} was merged into group {target}"),
        )
        .with_detail(format!("see /api/v1/groups/{target}")),
        _ => HttpError::new(StatusCode::NOT_FOUND, format!("no group {id}")),
    }
}

/// `GET /api/v1/groups/{id}`: the group, hourly counts, breakdowns and sample crashes.
pub async fn get_group(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, HttpError> {
    let id = visible_group(&state, &caller, Scope::TriageRead, group_id(&id)?).await?;
    match state.index.group_detail(id).await? {
        Some(detail) => {
            let mut body = serde_json::to_value(detail).expect("groups serialize");
            // The tickets trackers keep for it (Jira, GitHub).
            let tickets = state
                .alerts
                .desk()
                .links_of_group(id)
                .await
                .map_err(|e| HttpError::from(crate::group::index::IndexError::Database(e)))?;
            body["tickets"] = serde_json::to_value(tickets).expect("tickets serialize");
            // Its crashes per 1,000 sessions and share of users, per release.
            body["rates"] = json!(state.health.group_rates(id).await?);
            Ok(Json(body))
        }
        None => Err(not_found(&state, id).await),
    }
}

/// A triage update: absent fields stay, `null` clears `assignee`, `resolved_in`, `muted_until`
/// `mute_for_events` or `mute_for_users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupUpdate {
    state: Option<String>,
    #[serde(default, with = "serde_with_null")]
    assignee: Option<Option<String>>,
    #[serde(default, with = "serde_with_null")]
    resolved_in: Option<Option<String>>,
    #[serde(default, with = "serde_with_null")]
    muted_until: Option<Option<i64>>,
    #[serde(default, with = "serde_with_null")]
    mute_for_events: Option<Option<i64>>,
    #[serde(default, with = "serde_with_null")]
    mute_for_users: Option<Option<i64>>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
mod serde_with_null {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// `PATCH /api/v1/groups/{id}` with `{"state": "resolved", "resolved_in": "2.4.1", "assignee": "ana"}`
/// or `{"state": "muted", "muted_until": 1767225600, "mute_for_events": 100, "mute_for_users": 10}`.
pub async fn update_group(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<GroupUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, HttpError> {
    let id = visible_group(&state, &caller, Scope::TriageWrite, group_id(&id)?).await?;
    let Json(update) = body.map_err(|e| {
        bad_request(format!("invalid group update: {}", e.body_text()))
            .with_detail(r#"send {"state": "open|in_progress|resolved|muted", "assignee": "…"|null, "resolved_in": "1.2.3"|null, "muted_until": unix seconds|null, "mute_for_events": N|null, "mute_for_users": N|null}"#)
    })?;
    let patch = GroupPatch {
        state: update
            .state
            .as_deref()
            .map(GroupState::settable)
            .transpose()?,
        assignee: update.assignee,
        resolved_in: update.resolved_in,
        muted_until: update.muted_until,
        mute_for_events: update.mute_for_events,
        mute_for_users: update.mute_for_users,
    };
    match state.triage.change_group(id, &patch, None).await? {
        Some(group) => Ok(Json(serde_json::to_value(group).expect("groups serialize"))),
        None => Err(not_found(&state, id).await),
    }
}

/// `POST /api/v1/groups/{id}/merge` with `{"groups": [other IDs]}`: merges them into `{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    groups: Vec<i64>,
}

/// Handles the merge.
pub async fn merge_groups(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<MergeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, HttpError> {
    let id = visible_group(&state, &caller, Scope::TriageWrite, group_id(&id)?).await?;
    let Json(request) = body.map_err(|e| {
        bad_request(format!("invalid merge request: {}", e.body_text()))
            .with_detail(r#"send {"groups": [2, 3]} to merge groups 2 and 3 into this one"#)
    })?;
    if request.groups.is_empty() {
        return Err(bad_request("nothing to merge: groups is empty"));
    }
    for &other in &request.groups {
        visible_group(&state, &caller, Scope::TriageWrite, other).await?;
    }
    match state.triage.merge(id, &request.groups).await? {
        Some(group) => Ok(Json(serde_json::to_value(group).expect("groups serialize"))),
        None => Err(not_found(&state, id).await),
    }
}

/// `GET /api/v1/crashes/{id}`: where the crash is (`queued`, `processing`, `processed`,
/// `failed` with the reason), its index record and its processed result (symbolicated threads,
/// classification), when the payload budget kept it.
pub async fn get_crash(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::TriageRead)?;
    let StoredCrash {
        id,
        crash,
        queued,
        project,
    } = state.triage.stored_crash(&id).await?;
    if project.is_none_or(|p| !caller.may(Scope::TriageRead, p)) {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no crash {id:?}"),
        ));
    }
    let processed = match crash.as_ref().and_then(|c| c.payload_key.as_deref()) {
        Some(key) => crate::ingest::read_processed(&*state.objects, key)
            .await
            .map_err(|e| {
                HttpError::internal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the crash payload could not be read",
                    e,
                )
            })?
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok()),
        None => None,
    };
    let state_name = match (&queued, &crash) {
        (Some(entry), _) => entry.state.clone(),
        (None, Some(_)) => "processed".to_owned(),
        (None, None) => unreachable!("checked above"),
    };
    let note = crash.as_ref().and_then(CrashRow::payload_note);
    Ok(Json(json!({
        "id": id,
        "state": state_name,
        "error": queued.as_ref().and_then(|q| q.error.clone()),
        "attempts": queued.as_ref().map(|q| q.attempts),
        "crash": crash,
        "processed": processed,
        "payload_note": note,
    })))
}

/// `POST /api/v1/crashes/{id}/reprocess`: processes a stored crash again (after a failure, or
/// with symbols uploaded since), regrouping it.
pub async fn reprocess_crash(
    State(state): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, HttpError> {
    caller.require(Scope::TriageWrite)?;
    let id = id.strip_prefix("bp-").unwrap_or(&id).to_owned();
    let queued = state.queue.entry(&id).await?;
    if queued.is_some_and(|q| !caller.may(Scope::TriageWrite, q.project_id)) {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no stored crash {id:?}"),
        ));
    }
    match state.queue.reprocess(&id).await? {
        Some(entry) => {
            state.wake.notify_one();
            Ok(Json(json!({ "id": id, "state": entry.state })))
        }
        None => Err(HttpError::new(StatusCode::NOT_FOUND, format!("no stored crash {id:?}"))
            .with_detail("only crashes received through the ingest routes (/submit, /api/{project}/minidump/, …) keep their dumps and can be reprocessed")),
    }
}

/// `GET /api/v1/crashes?project=&annotation.<name>=<value>&limit=&cursor=`: e.g. every crash of
/// one user (needs `triage:read` on the project).
pub async fn list_crashes(
    State(state): State<App>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, HttpError> {
    let project = project_param(&state, params.get("project").map(String::as_str)).await?;
    caller.require_in(Scope::TriageRead, &project)?;
    let (name, value) = annotation_filter(&params)?.ok_or_else(|| {
        bad_request("give an annotation.<name>=<value> filter")
            .with_detail("e.g. /api/v1/crashes?annotation.guid=1234")
    })?;
    let limit = params
        .get("limit")
        .map(|v| parse_int("limit", v))
        .transpose()?
        .unwrap_or(25);
    let page = state
        .index
        .crashes_by_annotation(
            project.id,
            &name,
            &value,
            limit,
            params.get("cursor").map(String::as_str),
        )
        .await?;
    Ok(Json(
        json!({ "crashes": page.items, "next_cursor": page.next_cursor }),
    ))
}
