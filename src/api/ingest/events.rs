//! Sentry SDKs' error events: `POST /api/{project}/envelope/` (an `event` item, attachments,
//! perhaps a minidump) and the older `POST /api/{project}/store/` (the event JSON alone).
//! Authenticated like the minidump route (`sentry_key` in the query or `X-Sentry-Auth`), read
//! within the same body limits, stored and queued before the answer. An envelope whose
//! attachment is a minidump (`attachment_type: event.minidump`) becomes a minidump crash with
//! the event as its `sentry.json`; an event alone is processed as an event. Items that are not
//! errors (transactions, client reports…) are accepted and dropped; `session` and `sessions`
//! items are recorded for release health (`crate::health`) before the answer.

use std::collections::HashMap;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::credentials::{sentry_auth_key, Credentials};
use super::{receive, store_and_queue, Client, Refusal};
use crate::app::App;
use crate::events::envelope::parse;
use crate::events::{Event, MAX_EVENT_BYTES};
use crate::health::session::SessionItems;
use crate::ingest::{RawCrashBuilder, MAIN_DUMP};

/// Cross-origin access for the event routes: browser SDKs send from the application's own
/// origin, with a preflight for their `Content-Type` and `X-Sentry-Auth` headers. The routes
/// need an ingest key, not a cookie, so any origin may send (as Sentry allows).
pub fn browser_cors() -> tower_http::cors::CorsLayer {
    use axum::http::{header, HeaderName, Method};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            HeaderName::from_static("x-sentry-auth"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// `POST /api/{project}/envelope/`.
pub async fn envelope(
    state: State<App>,
    project: UrlPath<String>,
    query: Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    receive_sentry(Client::SentryEnvelope, state, project, query, request).await
}

/// `POST /api/{project}/store/`.
pub async fn store(
    state: State<App>,
    project: UrlPath<String>,
    query: Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    receive_sentry(Client::SentryStore, state, project, query, request).await
}

async fn receive_sentry(
    client: Client,
    State(state): State<App>,
    UrlPath(project): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let credentials = sentry_credentials(project, &query, &request);
    receive(state, client, credentials, query, request).await
}

fn sentry_credentials(
    project: String,
    query: &HashMap<String, String>,
    request: &Request,
) -> Credentials {
    Credentials {
        route_project: Some(project),
        key: query
            .get("sentry_key")
            .cloned()
            .or_else(|| sentry_auth_key(request.headers())),
    }
}

/// Checks an event's JSON and its size.
fn checked_event(json: Bytes) -> Result<(Bytes, Event), Refusal> {
    if json.len() > MAX_EVENT_BYTES {
        return Err(Refusal::TooLarge(format!(
            "the event is {} bytes; at most {MAX_EVENT_BYTES}",
            json.len()
        )));
    }
    if json
        .first()
        .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'{')
    {
        return Err(Refusal::Invalid(
            "the event is not JSON (base64/zlib bodies of very old SDKs are not accepted; send the JSON, gzip-encoded if you like)".to_owned(),
        ));
    }
    let event = Event::from_slice(&json).map_err(|e| Refusal::Invalid(e.to_string()))?;
    Ok((json, event))
}

/// Everything after the body is read: the event (and files) stored and queued.
pub(super) async fn receive_event(
    state: &App,
    client: Client,
    project: &crate::auth::Project,
    body: Bytes,
    mut builder: RawCrashBuilder,
) -> Result<Response, Refusal> {
    let (event, dump, files) = match client {
        Client::SentryStore => (Some(checked_event(body)?), None, Vec::new()),
        _ => {
            let ((event_json, dump, files), mut sessions) = envelope_parts(&body)?;
            let event = event_json.map(checked_event).transpose();
            let fatal = matches!(&event, Ok(Some((_, e))) if e.is_fatal());
            if dump.is_some() || fatal {
                sessions.ended_by_crash();
            }
            // Sessions are committed before the answer, whatever else the envelope holds.
            state
                .health
                .record(project.id, sessions)
                .await
                .map_err(|e| Refusal::Unavailable(e.to_string()))?;
            (event?, dump, files)
        }
    };
    for (name, value) in event.iter().flat_map(|(_, event)| event.annotations()) {
        builder.annotate(name, value);
    }
    if let Some(dump) = dump {
        if !dump.starts_with(b"MDMP") {
            return Err(Refusal::Malformed("not_a_minidump"));
        }
        let mut files = files;
        if let Some((json, _)) = event {
            files.push(("sentry.json".to_owned(), json));
        }
        return store_and_queue(
            state,
            client,
            project,
            builder,
            vec![(MAIN_DUMP.to_owned(), dump)],
            files,
            None,
        )
        .await;
    }
    let Some((json, _)) = event else {
        if client == Client::SentryStore {
            return Err(Refusal::Invalid(
                "the body is empty: send the event JSON".into(),
            ));
        }
        // Sessions (recorded above), transactions, client reports: nothing else to keep.
        return Ok((axum::http::StatusCode::OK, axum::Json(json!({}))).into_response());
    };
    store_and_queue(
        state,
        client,
        project,
        builder,
        Vec::new(),
        files,
        Some(json),
    )
    .await
}

/// An envelope's event, minidump, other attachments and session items.
type EnvelopeParts = (Option<Bytes>, Option<Bytes>, Vec<(String, Bytes)>);

fn envelope_parts(body: &Bytes) -> Result<(EnvelopeParts, SessionItems), Refusal> {
    let envelope = parse(body).map_err(|e| Refusal::Invalid(format!("envelope: {e}")))?;
    let mut event = None;
    let mut dump = None;
    let mut files = Vec::new();
    let mut sessions = SessionItems::default();
    let mut unreadable = None;
    for item in envelope.items {
        match item.kind.as_str() {
            "session" => match crate::health::session::read_session(&item.payload) {
                Ok(update) => sessions.updates.push(update),
                Err(e) => unreadable = Some(e),
            },
            "sessions" => match crate::health::session::read_sessions(&item.payload) {
                Ok(buckets) => sessions.buckets.extend(buckets),
                Err(e) => unreadable = Some(e),
            },
            "event" if event.is_none() => event = Some(item.payload),
            "event" => return Err(Refusal::Invalid("envelope: more than one event".into())),
            "attachment" if item.header_str("attachment_type") == Some("event.minidump") => {
                if dump.is_some() {
                    return Err(Refusal::Invalid("envelope: more than one minidump".into()));
                }
                dump = Some(item.payload);
            }
            "attachment" => {
                let name = item
                    .header_str("filename")
                    .unwrap_or("attachment")
                    .to_owned();
                files.push((name, item.payload));
            }
            other => {
                metrics::counter!("faultline_ingest_items_dropped_total", "type" => item_label(other)).increment(1);
            }
        }
    }
    if let Some(reason) = unreadable {
        // A crash is never refused for a session item beside it; an envelope of nothing but
        // unreadable session items is, saying why.
        if event.is_none() && dump.is_none() && files.is_empty() && sessions.is_empty() {
            return Err(Refusal::Invalid(reason));
        }
        metrics::counter!("faultline_ingest_items_dropped_total", "type" => "session_unreadable")
            .increment(1);
    }
    Ok(((event, dump, files), sessions))
}

/// A bounded label for an item type in metrics (SDKs may invent types).
fn item_label(kind: &str) -> &'static str {
    match kind {
        "session" => "session",
        "sessions" => "sessions",
        "transaction" => "transaction",
        "client_report" => "client_report",
        "check_in" => "check_in",
        "profile" => "profile",
        "span" => "span",
        "log" => "log",
        _ => "other",
    }
}
