//! Crash-reporter routes, each answering the way its clients expect:
//!
//! | Route | Clients | Success reply |
//! | --- | --- | --- |
//! | `POST /submit` | Breakpad, Crashpad, Electron, Firefox | `CrashID=bp-<id>` |
//! | `POST /api/{project}/minidump/` | Sentry SDKs (sentry-native + Crashpad) | the bare ID |
//! | `POST /api/{project}/unreal/{key}/` | Unreal Engine's CrashReportClient | the bare ID |
//! | `POST /post?format=minidump&token=…` | Backtrace-style clients | `{"response":"ok","_rxid":"<id>"}` |
//!
//! Never 201/202/429 (Crashpad and Breakpad treat anything but 200 as failure): a throttled
//! crash gets 200 with `Discarded=<reason>`. Malformed requests get 400 with Antenna's reasons
//! (`Discarded=malformed_no_content_type`, …), oversized ones 413, and a storage failure 503 —
//! nothing is acknowledged that is not stored. The body (gzip `Content-Encoding` decoded,
//! within `ingest.max_decompressed_bytes`) is spooled to disk, never held whole in memory.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::io::{ReaderStream, StreamReader};

use super::body::is_body_timeout;
use super::multipart::FramingGuard;
use super::AppState;
use crate::auth::{Project, Scope};
use crate::ingest::throttle::Verdict;
use crate::ingest::{raw_key, RawCrashBuilder, MAIN_DUMP};

/// Files received with a crash, spooled locally: (dump field, path) and (attachment name, path).
type ReceivedFiles = (Vec<(String, PathBuf)>, Vec<(String, PathBuf)>);

/// Which client family a route serves: it decides the reply format.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Breakpad,
    Sentry,
    Unreal,
    Backtrace,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Breakpad => "breakpad",
            Client::Sentry => "sentry",
            Client::Unreal => "unreal",
            Client::Backtrace => "backtrace",
        }
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
        }
    }

    fn discarded(self, reason: &str) -> Response {
        metrics::counter!("faultline_ingest_received_total", "client" => self.name(), "result" => "throttled").increment(1);
        (StatusCode::OK, format!("Discarded={reason}\n")).into_response()
    }
}

/// Why a request was refused.
enum Refusal {
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
        };
        metrics::counter!("faultline_ingest_received_total", "client" => client.name(), "result" => result).increment(1);
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
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    Refusal::Unavailable(e.to_string())
}

/// Writes `body` (gzip-decoded if `gzip`) to `path` within the byte caps; a multipart body's
/// framing is checked on the way (`guard`), so a body without its boundary fails within the
/// first few kilobytes instead of being stored whole.
async fn spool_body(
    state: &AppState,
    body: Body,
    gzip: bool,
    mut guard: Option<FramingGuard>,
    path: &Path,
) -> Result<(), Refusal> {
    let limits = &state.config.ingest;
    let mut raw_bytes = 0u64;
    let max_body = limits.max_body_bytes;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        raw_bytes += chunk.len() as u64;
        if raw_bytes > max_body {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "body",
            ));
        }
        Ok(chunk)
    });
    let reader = StreamReader::new(stream);
    let mut reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> = if gzip {
        Box::pin(async_compression::tokio::bufread::GzipDecoder::new(
            tokio::io::BufReader::new(reader),
        ))
    } else {
        Box::pin(reader)
    };
    let mut file = tokio::fs::File::create(path).await.map_err(unavailable)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                return Err(Refusal::TooLarge(format!(
                    "the body is larger than ingest.max_body_bytes ({max_body})"
                )))
            }
            Err(e) if is_body_timeout(&e) || e.get_ref().is_some_and(|e| is_body_timeout(e)) => {
                return Err(Refusal::TimedOut)
            }
            Err(_) if gzip => return Err(Refusal::Malformed("bad_gzip")),
            Err(e) => return Err(Refusal::Unavailable(format!("reading the body: {e}"))),
        };
        written += n as u64;
        if let Some(guard) = &mut guard {
            guard
                .check(&buf[..n])
                .map_err(|_| Refusal::Malformed("invalid_payload_structure"))?;
        }
        if written > limits.max_decompressed_bytes {
            return Err(Refusal::TooLarge(format!(
                "the body expands past ingest.max_decompressed_bytes ({})",
                limits.max_decompressed_bytes
            )));
        }
        file.write_all(&buf[..n]).await.map_err(unavailable)?;
    }
    file.flush().await.map_err(unavailable)
}

/// If `path` holds a gzip, zstd, bzip2 or xz stream (a Sentry SDK may compress the dump part),
/// decompresses it in place within `limit` bytes.
async fn decompress_part(path: &Path, limit: u64) -> Result<(), Refusal> {
    let mut magic = [0u8; 6];
    let n = {
        let mut f = tokio::fs::File::open(path).await.map_err(unavailable)?;
        f.read(&mut magic).await.map_err(unavailable)?
    };
    let magic = &magic[..n];
    let file = tokio::io::BufReader::new(tokio::fs::File::open(path).await.map_err(unavailable)?);
    use async_compression::tokio::bufread as dec;
    let mut reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> =
        if magic.starts_with(&[0x1f, 0x8b]) {
            Box::pin(dec::GzipDecoder::new(file))
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::pin(dec::ZstdDecoder::new(file))
        } else if magic.starts_with(b"BZh") {
            Box::pin(dec::BzDecoder::new(file))
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Box::pin(dec::XzDecoder::new(file))
        } else {
            return Ok(());
        };
    let out_path = path.with_extension("decompressed");
    let mut out = tokio::fs::File::create(&out_path)
        .await
        .map_err(unavailable)?;
    let copied = tokio::io::copy(&mut (&mut reader).take(limit + 1), &mut out)
        .await
        .map_err(|_| Refusal::Malformed("bad_compression"))?;
    if copied > limit {
        return Err(Refusal::TooLarge(format!(
            "the dump expands past ingest.max_decompressed_bytes ({limit})"
        )));
    }
    out.flush().await.map_err(unavailable)?;
    tokio::fs::rename(&out_path, path)
        .await
        .map_err(unavailable)
}

async fn is_minidump(path: &Path) -> Result<bool, Refusal> {
    let mut magic = [0u8; 4];
    let mut f = tokio::fs::File::open(path).await.map_err(unavailable)?;
    let n = f.read(&mut magic).await.map_err(unavailable)?;
    Ok(n == 4 && &magic == b"MDMP")
}

/// Sets annotations from a JSON object: strings as they are, other values as JSON text.
fn annotate_json(
    builder: &mut RawCrashBuilder,
    object: &serde_json::Map<String, Value>,
    prefix: &str,
) {
    for (key, value) in object {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        builder.annotate(format!("{prefix}{key}"), value);
    }
}

/// The well-known fields of a Sentry event (JSON or `sentry[...]` fields) as annotations.
fn annotate_sentry(builder: &mut RawCrashBuilder, event: &Value) {
    for (field, annotation) in [
        ("release", "release"),
        ("environment", "environment"),
        ("dist", "dist"),
        ("platform", "sentry_platform"),
    ] {
        if let Some(v) = event.get(field).and_then(Value::as_str) {
            builder.annotate(annotation, v);
        }
    }
    if let Some(user) = event.get("user") {
        for (field, annotation) in [
            ("id", "user_id"),
            ("username", "username"),
            ("email", "user_email"),
        ] {
            match user.get(field) {
                Some(Value::String(s)) => builder.annotate(annotation, s.clone()),
                Some(Value::Number(n)) => builder.annotate(annotation, n.to_string()),
                _ => {}
            }
        }
    }
    if let Some(Value::Object(tags)) = event.get("tags") {
        annotate_json(builder, tags, "tag.");
    }
}

/// `sentry[user][id]` → `["user", "id"]`.
fn sentry_path(name: &str) -> Option<Vec<&str>> {
    let rest = name.strip_prefix("sentry[")?.strip_suffix(']')?;
    Some(rest.split("][").collect())
}

/// Inserts `value` at `path` in a JSON object tree.
fn insert_path(root: &mut Value, path: &[&str], value: String) {
    let mut node = root;
    for (i, part) in path.iter().enumerate() {
        if !node.is_object() {
            *node = json!({});
        }
        let map = node.as_object_mut().expect("just made an object");
        if i == path.len() - 1 {
            map.insert(part.to_string(), Value::String(value));
            return;
        }
        node = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

/// Reads a multipart body from `body_path` into `builder`, spooling files into `scratch`.
/// Returns the parts holding minidumps and other files.
async fn read_multipart(
    client: Client,
    max_field: u64,
    boundary: String,
    body_path: &Path,
    scratch: &Path,
    builder: &mut RawCrashBuilder,
) -> Result<ReceivedFiles, Refusal> {
    let file = tokio::fs::File::open(body_path)
        .await
        .map_err(unavailable)?;
    let mut multipart = multer::Multipart::new(ReaderStream::new(file), boundary);
    let mut dumps = Vec::new();
    let mut files = Vec::new();
    let mut sentry_fields = json!({});
    let mut n = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => return Err(Refusal::Malformed("invalid_payload_structure")),
        };
        n += 1;
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let is_json = field
            .content_type()
            .is_some_and(|m| m.essence_str() == "application/json");
        let path = scratch.join(format!("part-{n}"));
        let mut out = std::fs::File::create(&path).map_err(unavailable)?;
        let mut field = field;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => out.write_all(&chunk).map_err(unavailable)?,
                Ok(None) => break,
                Err(_) => return Err(Refusal::Malformed("invalid_payload_structure")),
            }
        }
        out.flush().map_err(unavailable)?;
        drop(out);
        let small_text = || -> Result<String, Refusal> {
            let len = std::fs::metadata(&path).map_err(unavailable)?.len();
            if len > max_field {
                return Err(Refusal::TooLarge(format!(
                    "the text part {name:?} is larger than ingest.max_field_bytes ({max_field})"
                )));
            }
            let bytes = std::fs::read(&path).map_err(unavailable)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        if name.starts_with(MAIN_DUMP) {
            dumps.push((name, path));
        } else if name == "extra"
            || file_name.as_deref() == Some("extra.json")
            || (is_json && name == "extra.json")
        {
            // Firefox's annotations.
            let text = small_text()?;
            let value: Value =
                serde_json::from_str(&text).map_err(|_| Refusal::Malformed("invalid_json"))?;
            let Value::Object(object) = &value else {
                return Err(Refusal::Malformed("invalid_json_value"));
            };
            annotate_json(builder, object, "");
        } else if client == Client::Sentry && name == "sentry" {
            let text = small_text()?;
            let value: Value =
                serde_json::from_str(&text).map_err(|_| Refusal::Malformed("invalid_json"))?;
            if !value.is_object() {
                return Err(Refusal::Malformed("invalid_json_value"));
            }
            annotate_sentry(builder, &value);
            files.push(("sentry.json".to_owned(), path));
        } else if let (Client::Sentry, Some(keys)) = (client, sentry_path(&name)) {
            insert_path(&mut sentry_fields, &keys, small_text()?);
        } else if file_name.is_some() {
            files.push((file_name.filter(|f| !f.is_empty()).unwrap_or(name), path));
        } else {
            let text = small_text()?;
            builder.annotate(name, text);
        }
    }
    if sentry_fields.as_object().is_some_and(|o| !o.is_empty()) {
        annotate_sentry(builder, &sentry_fields);
    }
    Ok((dumps, files))
}

/// How a request names its project: the route's project (Sentry, Unreal) and the ingest key its
/// client sends.
struct Credentials {
    route_project: Option<String>,
    key: Option<String>,
}

/// The `sentry_key` of an `X-Sentry-Auth: Sentry sentry_key=…, sentry_version=7` header.
fn sentry_auth_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-sentry-auth")?.to_str().ok()?;
    let value = value.trim();
    let fields = value
        .strip_prefix("Sentry ")
        .or_else(|| value.strip_prefix("sentry "))
        .unwrap_or(value);
    fields.split(',').find_map(|field| {
        let (name, value) = field.trim().split_once('=')?;
        (name.trim() == "sentry_key").then(|| value.trim().to_owned())
    })
}

/// The project a crash is filed under: a bearer token with `ingest` (its `?project=`, the
/// route's project, or the default), else the client's ingest key; without a valid key, the
/// default project — or 403 when `ingest.require_key` is on.
async fn resolve_project(
    state: &AppState,
    credentials: &Credentials,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Project, Refusal> {
    let route_project = credentials.route_project.as_deref();
    if let Some(secret) = super::auth::presented_token(headers) {
        let token = match state
            .registry
            .authenticate(secret)
            .await
            .map_err(unavailable)?
        {
            Ok(token) if token.allows(Scope::Ingest) => token,
            _ => return Err(Refusal::Forbidden("invalid_token")),
        };
        let wanted = query
            .get("project")
            .map(String::as_str)
            .or(route_project)
            .unwrap_or(crate::auth::DEFAULT_PROJECT);
        let project = state
            .registry
            .project(wanted)
            .await
            .map_err(unavailable)?
            .ok_or(Refusal::Forbidden("unknown_project"))?;
        if !token.covers(project.id) {
            return Err(Refusal::Forbidden("token_not_for_project"));
        }
        return Ok(project);
    }
    let keyed = match &credentials.key {
        Some(key) => state
            .registry
            .project_of_key(key)
            .await
            .map_err(unavailable)?,
        None => None,
    };
    match keyed {
        Some(project) => {
            if route_project.is_some_and(|r| r != project.slug && r != project.id.to_string()) {
                return Err(Refusal::Forbidden("key_not_for_project"));
            }
            Ok(project)
        }
        None if state.config.ingest.require_key => {
            Err(Refusal::Forbidden(if credentials.key.is_some() {
                "unknown_key"
            } else {
                "missing_key"
            }))
        }
        None => state
            .registry
            .project(crate::auth::DEFAULT_PROJECT)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| Refusal::Unavailable("the default project is missing".to_owned())),
    }
}

/// Everything a route does after knowing its client: read, validate, throttle, store, enqueue.
async fn receive(
    state: AppState,
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
async fn drain(body: Body) -> bool {
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
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

async fn receive_inner(
    state: &AppState,
    client: Client,
    credentials: Credentials,
    query: HashMap<String, String>,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<Response, Refusal> {
    let project = resolve_project(state, &credentials, &query, headers).await?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.config.ingest.max_body_bytes) {
        return Err(Refusal::TooLarge(format!(
            "the body is larger than ingest.max_body_bytes ({})",
            state.config.ingest.max_body_bytes
        )));
    }
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => true,
        Some(_) => return Err(Refusal::Malformed("bad_content_encoding")),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_multipart = content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/"));
    match (client, &content_type) {
        (Client::Breakpad, None) => return Err(Refusal::Malformed("no_content_type")),
        (Client::Breakpad, Some(_)) if !is_multipart => {
            return Err(Refusal::Malformed("wrong_content_type"))
        }
        _ => {}
    }
    let boundary = if is_multipart {
        Some(
            multer::parse_boundary(content_type.as_deref().unwrap_or_default())
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

    let scratch = state.symbols.scratch_dir().map_err(unavailable)?;
    let body_path = scratch.path().join("body");
    let body = body.take().expect("the body is read once");
    spool_body(state, body, gzip, guard, &body_path).await?;

    let mut builder = RawCrashBuilder::new(client.name(), project.id);
    for (key, value) in &query {
        // Credentials and protocol switches are not annotations.
        if ![
            "key",
            "project",
            "sentry_key",
            "sentry_secret",
            "token",
            "format",
            "sentry_version",
        ]
        .contains(&key.as_str())
        {
            builder.annotate(key.clone(), value.clone());
        }
    }
    let max_dump = state.config.ingest.max_decompressed_bytes;
    let (dumps, files) = match (client, boundary) {
        (Client::Unreal, _) => read_unreal(&body_path, scratch.path(), &mut builder)?,
        (_, Some(boundary)) => {
            let max_field = state.config.ingest.max_field_bytes;
            read_multipart(
                client,
                max_field,
                boundary,
                &body_path,
                scratch.path(),
                &mut builder,
            )
            .await?
        }
        // Sentry and Backtrace clients may send the dump as the raw body.
        (_, None) => (vec![(MAIN_DUMP.to_owned(), body_path.clone())], Vec::new()),
    };
    for (_, path) in &dumps {
        if client == Client::Sentry {
            decompress_part(path, max_dump).await?;
        }
        if !is_minidump(path).await? {
            return Err(Refusal::Malformed("not_a_minidump"));
        }
    }
    if dumps.is_empty() && client != Client::Unreal {
        return Err(Refusal::Malformed("no_dump"));
    }

    if let Verdict::Reject(reason) = state.throttle.judge(
        &builder.crash().annotations,
        &builder.crash().id,
        &project.slug,
    ) {
        return Ok(client.discarded(&reason));
    }

    for (field, path) in &dumps {
        builder
            .add_dump(&*state.objects, field, path)
            .await
            .map_err(unavailable)?;
    }
    for (name, path) in &files {
        builder
            .add_attachment(&*state.objects, name, path)
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

/// An Unreal Engine crash container: its minidump, its context XML (as annotations) and the
/// other files (logs, config) as attachments.
fn read_unreal(
    body_path: &Path,
    scratch: &Path,
    builder: &mut RawCrashBuilder,
) -> Result<ReceivedFiles, Refusal> {
    use symbolic::unreal::{Unreal4Crash, Unreal4FileType};
    let file = std::fs::File::open(body_path).map_err(unavailable)?;
    if file.metadata().map_err(unavailable)?.len() == 0 {
        return Err(Refusal::Malformed("invalid_unreal_crash"));
    }
    // Mapped, not read: the container can be as large as ingest.max_decompressed_bytes.
    // SAFETY: the spooled body is private to this request and not written while mapped.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(unavailable)?;
    let crash =
        Unreal4Crash::parse(&bytes).map_err(|_| Refusal::Malformed("invalid_unreal_crash"))?;
    if let Ok(Some(context)) = crash.context() {
        if let Some(p) = context.runtime_properties {
            let fields = [
                ("crash_guid", p.crash_guid),
                ("game_name", p.game_name),
                ("executable_name", p.executable_name),
                ("build_configuration", p.build_configuration),
                ("platform_name", p.platform_name),
                ("engine_version", p.engine_version.clone()),
                ("version", p.build_version.or(p.engine_version)),
                ("username", p.username),
                ("login_id", p.login_id),
                ("epic_account_id", p.epic_account_id),
                ("error_message", p.error_message),
                ("crash_type", p.crash_type),
                ("machine_id", p.machine_id),
            ];
            for (name, value) in fields {
                if let Some(value) = value.filter(|v| !v.is_empty()) {
                    builder.annotate(name, value);
                }
            }
            if let Some(game) = builder.crash().annotations.get("game_name").cloned() {
                builder.annotate("product", game);
            }
            if let Some(user) = builder.crash().annotations.get("login_id").cloned() {
                builder.annotate("user_id", user);
            }
        }
    }
    let mut dumps = Vec::new();
    let mut files = Vec::new();
    for (i, file) in crash.files().enumerate() {
        let path = scratch.join(format!("unreal-{i}"));
        std::fs::write(&path, file.data()).map_err(unavailable)?;
        if file.ty() == Unreal4FileType::Minidump && dumps.is_empty() {
            dumps.push((MAIN_DUMP.to_owned(), path));
        } else {
            files.push((file.name().to_owned(), path));
        }
    }
    Ok((dumps, files))
}

/// `POST /submit`.
pub async fn submit(
    State(state): State<AppState>,
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
    State(state): State<AppState>,
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
    State(state): State<AppState>,
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

/// `POST /post?format=minidump&token=…`.
pub async fn backtrace(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    if query.get("format").is_some_and(|f| f != "minidump") {
        return Refusal::Malformed("unsupported_format").into_response(Client::Backtrace);
    }
    let credentials = Credentials {
        route_project: None,
        key: query.get("token").cloned(),
    };
    receive(state, Client::Backtrace, credentials, query, request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentry_bracket_fields_build_an_event() {
        let mut event = json!({});
        insert_path(
            &mut event,
            &sentry_path("sentry[release]").unwrap(),
            "1.2.3".into(),
        );
        insert_path(
            &mut event,
            &sentry_path("sentry[user][id]").unwrap(),
            "42".into(),
        );
        insert_path(
            &mut event,
            &sentry_path("sentry[tags][level]").unwrap(),
            "boss".into(),
        );
        assert_eq!(
            event,
            json!({"release": "1.2.3", "user": {"id": "42"}, "tags": {"level": "boss"}})
        );
        assert!(sentry_path("release").is_none());
    }
}
