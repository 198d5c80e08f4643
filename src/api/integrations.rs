//! Tracker webhooks coming in (`POST /api/v1/integrations/{jira,github}/webhook?channel=ID`):
//! no token (trackers cannot send one); each request must carry an HMAC-SHA256 signature made
//! with the channel's `webhook_secret`. A delivery ID seen before changes nothing; a ticket
//! faultline did not create is ignored; otherwise the ticket's status and assignee map onto
//! its group (see `crate::tickets::inbound::decide`).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alerts::ChannelConfig;
use crate::app::App;
use crate::http::HttpError;
use crate::tickets::inbound::{self, InboundError};
use crate::triage::TrackerOutcome;

/// The largest webhook body read.
const MAX_BODY: usize = 1 << 20;

/// `?channel=`.
#[derive(Deserialize)]
pub struct ChannelQuery {
    channel: Option<i64>,
}

/// `POST /api/v1/integrations/{tracker}/webhook?channel=ID`.
/// The signing secret of the tracker channel a webhook names; 404 when the channel is not a
/// channel of that tracker with a secret set.
async fn webhook_secret(state: &App, tracker: &str, channel_id: i64) -> Result<String, HttpError> {
    let not_here = || {
        HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no {tracker} channel {channel_id} that takes webhooks"),
        )
        .with_detail("set webhook_secret on the channel")
    };
    let config = match state.alerts.channel_settings_of(channel_id).await {
        Ok(config) => config,
        Err(crate::alerts::AlertError::NotFound(_)) => return Err(not_here()),
        Err(e) => return Err(e.into()),
    };
    match (tracker, &config) {
        ("jira", ChannelConfig::Jira(s)) => s.webhook_secret.clone(),
        ("github", ChannelConfig::Github(s)) => s.webhook_secret.clone(),
        _ => None,
    }
    .ok_or_else(not_here)
}

pub async fn webhook(
    State(state): State<App>,
    Path(tracker): Path<String>,
    Query(q): Query<ChannelQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, HttpError> {
    let channel_id = q.channel.ok_or_else(|| {
        HttpError::new(StatusCode::BAD_REQUEST, "no ?channel= in the webhook URL").with_detail(
            "point the tracker's webhook at /api/v1/integrations/{jira|github}/webhook?channel=ID",
        )
    })?;
    let secret = webhook_secret(&state, &tracker, channel_id).await?;
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a webhook body is at most {MAX_BODY} bytes"),
        )
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let refused = |e: InboundError| match e {
        InboundError::Signature(m) => HttpError::new(StatusCode::UNAUTHORIZED, m),
        InboundError::Malformed(m) => HttpError::new(StatusCode::BAD_REQUEST, m),
    };
    let event = if tracker == "jira" {
        inbound::verify(&secret, header("x-hub-signature"), &body).map_err(refused)?;
        inbound::jira_event(header("x-atlassian-webhook-identifier"), &body).map_err(refused)?
    } else {
        inbound::verify(&secret, header("x-hub-signature-256"), &body).map_err(refused)?;
        inbound::github_event(header("x-github-delivery"), &body).map_err(refused)?
    };
    let Some(event) = event else {
        return Ok(Json(
            json!({"applied": false, "why": "nothing about status or assignee"}),
        ));
    };
    Ok(Json(
        match state.triage.apply_tracker_event(channel_id, &event).await? {
            TrackerOutcome::Ignored(why) => json!({"applied": false, "why": why}),
            TrackerOutcome::Applied {
                group,
                ticket,
                changed,
                did,
            } => json!({"applied": changed, "group": group, "ticket": ticket, "did": did}),
        },
    ))
}
