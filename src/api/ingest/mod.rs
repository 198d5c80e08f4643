//! Crash-reporter routes, each answering the way its clients expect:
//!
//! | Route | Clients | Success reply |
//! | --- | --- | --- |
//! | `POST /submit` | Breakpad, Crashpad, Electron, Firefox | `CrashID=bp-<id>` |
//! | `POST /api/{project}/minidump/` | Sentry SDKs (sentry-native + Crashpad) | the bare ID |
//! | `POST /api/{project}/unreal/{key}/` | Unreal Engine's CrashReportClient | the bare ID |
//! | `POST /post?format=minidump&token=…` | Backtrace-style clients | `{"response":"ok","_rxid":"<id>"}` |
//! | `POST /api/v1/applecrashreport?project=` | Apple crash reports (`.crash`, `.ips`) | `{"id":"<id>"}` |
//!
//! Never 201/202/429 (Crashpad and Breakpad treat anything but 200 as failure): a throttled
//! crash gets 200 with `Discarded=<reason>`. Malformed requests get 400 with Antenna's reasons
//! (`Discarded=malformed_no_content_type`, …), oversized ones 413, and a storage failure 503 —
//! nothing is acknowledged that is not stored. The body (`Content-Encoding` gzip, deflate, br or zstd decoded,
//! within `ingest.max_decompressed_bytes`) and its parts are held in memory up to 4 MiB each and
//! spill to unnamed scratch files past that, so a request never holds a large body in memory.
//!
//! `credentials.rs` finds the project a crash is filed under; `parts.rs` reads what a body holds.

mod apple;
mod credentials;
mod events;
mod parts;

pub use apple::apple_crash_report;
pub use events::{browser_cors, envelope, store};

use credentials::{resolve_project, sentry_auth_key, Credentials};
use parts::{decompress_part, read_body, read_multipart, read_unreal, BodyEncoding};

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

use crate::app::App;
use crate::http::FramingGuard;
use crate::ingest::throttle::Verdict;
use crate::ingest::{raw_key, RawCrashBuilder, MAIN_DUMP};

/// Which client family a route serves: it decides the reply format.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Client {
    Breakpad,
    Sentry,
    Unreal,
    Backtrace,
    /// Sentry SDKs' `/envelope/` route (events, attachments, a minidump).
    SentryEnvelope,
    /// Sentry SDKs' older `/store/` route (one event).
    SentryStore,
    /// Apple crash reports (`/api/v1/applecrashreport`).
    AppleCrashReport,
}

impl Client {
    pub(super) fn name(self) -> &'static str {
        match self {
            Client::Breakpad => "breakpad",
            Client::Sentry => "sentry",
            Client::Unreal => "unreal",
            Client::Backtrace => "backtrace",
            Client::SentryEnvelope => "sentry-envelope",
            Client::SentryStore => "sentry-store",
            Client::AppleCrashReport => "apple-crash-report",
        }
    }

    /// Whether errors go back as JSON (`{"error": …}`), as Sentry's event routes answer.
    fn speaks_json(self) -> bool {
        matches!(
            self,
            Client::SentryEnvelope | Client::SentryStore | Client::AppleCrashReport
        )
    }

    fn accepted(self, id: &str) -> Response {
        metrics::counter!("faultline_ingest_received_total", "client" => self.name(), "result" => "accepted").increment(1);
        match self {
            Client::Breakpad => (StatusCode::OK, format!("CrashID=bp-{id}\n")).into_response(),
            Client::Sentry | Client::Unreal => (StatusCode::OK, id.to_owned()).into_response(),
            Client::Backtrace => (
                StatusCode::OK,
                axum::Json(json!({"response": "ok", "_rxid": id})),
            )
                .into_response(),
            Client::SentryEnvelope | Client::SentryStore | Client::AppleCrashReport => {
                (StatusCode::OK, axum::Json(json!({"id": id}))).into_response()
            }
        }
    }

    fn discarded(self, reason: &str) -> Response {
        metrics::counter!("faultline_ingest_received_total", "client" => self.name(), "result" => "throttled").increment(1);
        if self.speaks_json() {
            return (StatusCode::OK, axum::Json(json!({"discarded": reason}))).into_response();
        }
        (StatusCode::OK, format!("Discarded={reason}\n")).into_response()
    }
}

/// Why a request was refused.
pub(super) enum Refusal {
    /// 400 `Discarded=malformed_<reason>`.
    Malformed(&'static str),
    /// 413.
    TooLarge(String),
    /// 503: storage failed; the client should retry.
    Unavailable(String),
    /// 403 `Discarded=<reason>`: no valid ingest key (or token) for the project.
    Forbidden(&'static str),
    /// 503 with `Retry-After`: too many crash bodies are being read at once.
    Busy,
    /// 408: the body stopped arriving.
    TimedOut,
    /// 400 with a specific reason (event routes): what was wrong and what to send instead.
    Invalid(String),
}

impl Refusal {
    fn into_response(self, client: Client) -> Response {
        let result = match &self {
            Refusal::Malformed(_) => "malformed",
            Refusal::TooLarge(_) => "too_large",
            Refusal::Unavailable(_) => "unavailable",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::Busy => "busy",
            Refusal::TimedOut => "timed_out",
            Refusal::Invalid(_) => "malformed",
        };
        metrics::counter!("faultline_ingest_received_total", "client" => client.name(), "result" => result).increment(1);
        if client.speaks_json() {
            return self.into_json_response();
        }
        match self {
            Refusal::Malformed(reason) => (
                StatusCode::BAD_REQUEST,
                format!("Discarded=malformed_{reason}\n"),
            )
                .into_response(),
            Refusal::TooLarge(what) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Discarded=too_large\n{what}\n"),
            )
                .into_response(),
            Refusal::Unavailable(why) => {
                tracing::error!(error = %why, "crash not stored");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable; retry later\n",
                )
                    .into_response()
            }
            Refusal::Forbidden(reason) => {
                (StatusCode::FORBIDDEN, format!("Discarded={reason}\n")).into_response()
            }
            Refusal::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "too many crashes arriving at once; retry later\n",
            )
                .into_response(),
            Refusal::TimedOut => (
                StatusCode::REQUEST_TIMEOUT,
                "Discarded=timed_out\nthe body stopped arriving\n",
            )
                .into_response(),
            Refusal::Invalid(reason) => (
                StatusCode::BAD_REQUEST,
                format!("Discarded=malformed\n{reason}\n"),
            )
                .into_response(),
        }
    }

    /// The refusal as Sentry's event routes answer: a status and `{"error": …}`.
    fn into_json_response(self) -> Response {
        let (status, error) = match self {
            Refusal::Malformed(reason) => (StatusCode::BAD_REQUEST, format!("malformed_{reason}")),
            Refusal::Invalid(reason) => (StatusCode::BAD_REQUEST, reason),
            Refusal::TooLarge(what) => (StatusCode::PAYLOAD_TOO_LARGE, what),
            Refusal::Unavailable(why) => {
                tracing::error!(error = %why, "event not stored");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable; retry later".to_owned(),
                )
            }
            Refusal::Forbidden(reason) => (StatusCode::FORBIDDEN, reason.to_owned()),
            Refusal::Busy => {
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({"error": "too many requests arriving at once; retry later"})),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("5"),
                );
                return response;
            }
            Refusal::TimedOut => (
                StatusCode::REQUEST_TIMEOUT,
                "the body stopped arriving".to_owned(),
            ),
        };
        (status, axum::Json(json!({"error": error}))).into_response()
    }
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> Refusal {
    Refusal::Unavailable(e.to_string())
}

/// Everything a route does after knowing its client: read, validate, throttle, store, enqueue.
async fn receive(
    state: App,
    client: Client,
    credentials: Credentials,
    query: HashMap<String, String>,
    request: Request,
) -> Response {
    // Bodies are read a bounded number at a time; past it the client is told to come back.
    let Ok(_permit) = state.ingest_bodies.try_acquire() else {
        return closing(Refusal::Busy.into_response(client));
    };
    let (parts, body) = request.into_parts();
    let mut body = Some(body);
    match receive_inner(
        &state,
        client,
        credentials,
        query,
        &parts.headers,
        &mut body,
    )
    .await
    {
        Ok(response) => response,
        Err(refusal) => {
            let response = refusal.into_response(client);
            // Refused before its body was read: a small rest is read and dropped so the
            // connection stays usable; a large one closes it.
            match body {
                Some(body) => {
                    if drain(body).await {
                        response
                    } else {
                        closing(response)
                    }
                }
                None => response,
            }
        }
    }
}

/// Most of a refused body read (and dropped) to keep its connection open, and how long for.
const DRAIN_BYTES: usize = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops `body` if it ends within [`DRAIN_BYTES`] and [`DRAIN_TIME`].
pub(in crate::api) async fn drain(body: Body) -> bool {
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let all = async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) if read + chunk.len() <= DRAIN_BYTES => read += chunk.len(),
                _ => return false,
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, all).await.unwrap_or(false)
}

/// Tells the client this connection ends with this response (it is not reused).
pub(in crate::api) fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// How a crash body is framed, checked from its headers before it is read: its encoding, its
/// multipart boundary, and the guard that checks the framing while it streams.
struct BodyFraming {
    encoding: BodyEncoding,
    boundary: Option<String>,
    guard: Option<FramingGuard>,
}

/// Refuses a body too large by its `Content-Length`, in an unknown encoding, or of a content
/// type the client's protocol does not use; reads the multipart boundary.
fn body_framing(state: &App, client: Client, headers: &HeaderMap) -> Result<BodyFraming, Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.config.ingest.max_body_bytes) {
        return Err(Refusal::TooLarge(format!(
            "the body is larger than ingest.max_body_bytes ({})",
            state.config.ingest.max_body_bytes
        )));
    }
    let encoding = BodyEncoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )
    .ok_or(Refusal::Malformed("bad_content_encoding"))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let is_multipart =
        content_type.is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/"));
    match (client, content_type) {
        (Client::Breakpad, None) => return Err(Refusal::Malformed("no_content_type")),
        (Client::Breakpad, Some(_)) if !is_multipart => {
            return Err(Refusal::Malformed("wrong_content_type"))
        }
        _ => {}
    }
    let boundary = if is_multipart {
        Some(
            multer::parse_boundary(content_type.unwrap_or_default())
                .map_err(|_| Refusal::Malformed("no_boundary"))?,
        )
    } else {
        None
    };
    let guard = match (&boundary, client) {
        // An Unreal body is a container, whatever its Content-Type says.
        (Some(boundary), Client::Breakpad | Client::Sentry | Client::Backtrace) => Some(
            FramingGuard::new(boundary)
                .map_err(|_| Refusal::Malformed("invalid_payload_structure"))?,
        ),
        _ => None,
    };
    Ok(BodyFraming {
        encoding,
        boundary,
        guard,
    })
}

/// The query's parameters as annotations, but for credentials and protocol switches.
fn annotate_from_query(builder: &mut RawCrashBuilder, query: &HashMap<String, String>) {
    const NOT_ANNOTATIONS: [&str; 7] = [
        "key",
        "project",
        "sentry_key",
        "sentry_secret",
        "token",
        "format",
        "sentry_version",
    ];
    for (key, value) in query {
        if !NOT_ANNOTATIONS.contains(&key.as_str()) {
            builder.annotate(key.clone(), value.clone());
        }
    }
}

async fn receive_inner(
    state: &App,
    client: Client,
    credentials: Credentials,
    query: HashMap<String, String>,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<Response, Refusal> {
    let project = resolve_project(state, &credentials, &query, headers).await?;
    let BodyFraming {
        encoding,
        boundary,
        guard,
    } = body_framing(state, client, headers)?;
    let body = body.take().expect("the body is read once");
    let body = read_body(state, body, encoding, guard).await?;
    let scratch = state.symbols.scratch_root();

    let mut builder = RawCrashBuilder::new(client.name(), project.id);
    annotate_from_query(&mut builder, &query);
    if client == Client::AppleCrashReport {
        return apple::receive_report(state, &project, boundary, body, builder).await;
    }
    if client.speaks_json() {
        return events::receive_event(state, client, &project, body, builder).await;
    }
    let max_dump = state.config.ingest.max_decompressed_bytes;
    let (dumps, files) = match (client, boundary) {
        (Client::Unreal, _) => read_unreal(&body, &mut builder)?,
        (_, Some(boundary)) => {
            let max_field = state.config.ingest.max_field_bytes;
            read_multipart(client, max_field, boundary, body, scratch, &mut builder).await?
        }
        // Sentry and Backtrace clients may send the dump as the raw body.
        (_, None) => (vec![(MAIN_DUMP.to_owned(), body)], Vec::new()),
    };
    let mut dumps = dumps;
    for (_, dump) in &mut dumps {
        if client == Client::Sentry {
            *dump = decompress_part(dump.clone(), max_dump, scratch).await?;
        }
        if !dump.starts_with(b"MDMP") {
            return Err(Refusal::Malformed("not_a_minidump"));
        }
    }
    if dumps.is_empty() && client != Client::Unreal {
        return Err(Refusal::Malformed("no_dump"));
    }

    store_and_queue(state, client, &project, builder, dumps, files, None).await
}

/// Throttles, then stores the crash's files and `raw.json` and queues it: the client's 200
/// comes only after all of that.
async fn store_and_queue(
    state: &App,
    client: Client,
    project: &crate::auth::Project,
    mut builder: RawCrashBuilder,
    dumps: Vec<(String, bytes::Bytes)>,
    files: Vec<(String, bytes::Bytes)>,
    event: Option<bytes::Bytes>,
) -> Result<Response, Refusal> {
    if let Verdict::Reject(reason) = state.throttle.judge(
        &builder.crash().annotations,
        &builder.crash().id,
        &project.slug,
    ) {
        return Ok(client.discarded(&reason));
    }

    for (field, dump) in dumps {
        builder
            .add_dump(&*state.objects, &field, dump)
            .await
            .map_err(unavailable)?;
    }
    for (name, file) in files {
        builder
            .add_attachment(&*state.objects, &name, file)
            .await
            .map_err(unavailable)?;
    }
    if let Some(event) = event {
        builder
            .set_event(&*state.objects, event)
            .await
            .map_err(unavailable)?;
    }
    let crash = builder.finish(&*state.objects).await.map_err(unavailable)?;
    state
        .queue
        .enqueue(
            &crash.id,
            crash.project_id,
            &raw_key(crash.received_at, &crash.id),
        )
        .await
        .map_err(unavailable)?;
    state.wake.notify_one();
    tracing::info!(crash_id = %crash.id, client = client.name(), dumps = crash.dumps.len(), "crash stored and queued");
    Ok(client.accepted(&crash.id))
}

/// `POST /submit`.
pub async fn submit(
    State(state): State<App>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let credentials = Credentials {
        route_project: None,
        key: query.get("key").cloned(),
    };
    receive(state, Client::Breakpad, credentials, query, request).await
}

/// `POST /api/{project}/minidump/`.
pub async fn sentry(
    State(state): State<App>,
    UrlPath(project): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let credentials = Credentials {
        route_project: Some(project),
        key: query
            .get("sentry_key")
            .cloned()
            .or_else(|| sentry_auth_key(request.headers())),
    };
    receive(state, Client::Sentry, credentials, query, request).await
}

/// `POST /api/{project}/unreal/{key}/`.
pub async fn unreal(
    State(state): State<App>,
    UrlPath((project, key)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let credentials = Credentials {
        route_project: Some(project),
        key: Some(key),
    };
    receive(state, Client::Unreal, credentials, query, request).await
}

/// `POST /post?format=minidump&token=…`; `format=symbols` is Backtrace's symbol upload.
pub async fn backtrace(
    State(state): State<App>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    if query.get("format").is_some_and(|f| f == "symbols") {
        return super::symbols::backtrace_upload(state, query, request)
            .await
            .into_response();
    }
    if query.get("format").is_some_and(|f| f != "minidump") {
        return Refusal::Malformed("unsupported_format").into_response(Client::Backtrace);
    }
    let credentials = Credentials {
        route_project: None,
        key: query.get("token").cloned(),
    };
    receive(state, Client::Backtrace, credentials, query, request).await
}
