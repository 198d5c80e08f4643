//! A crash's page: the verdict (signature, fault class, evidence, exploitability, signals), the
//! crashing thread with inlined frames as rows and the fault frame marked, every other thread,
//! registers, modules with what to upload for each missing one, annotations, the received files
//! and the processed JSON; and reprocessing.

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::io::ReaderStream;

use super::page::{ago, now, query_string, render, segment, when, Chrome, UiError};
use super::session::Viewer;
use crate::app::App;
use crate::auth::Scope;
use crate::classify::frames::FrameRef;
use crate::group::index::CrashRow;
use crate::ingest::queue::QueueEntry;
use crate::store::ObjectKey;

/// Reads a kept processed payload; `None` when it is gone or unreadable (logged).
async fn payload(state: &App, key: &str) -> Option<Value> {
    match crate::ingest::read_processed(&*state.objects, key).await {
        Ok(bytes) => serde_json::from_slice(&bytes?).ok(),
        Err(e) => {
            tracing::warn!(key, error = %e, "could not read a processed crash");
            None
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The one-line evidence of a processed crash: its reason and address, then the rule's words.
fn evidence_line(processed: &Value) -> Option<String> {
    let evidence = &processed["classification"]["evidence"];
    let rule = evidence["rule"].as_str()?;
    Some(match evidence["crash_reason"].as_str() {
        Some(reason) if !rule.starts_with(reason) => format!("{reason}: {rule}"),
        _ => rule.to_owned(),
    })
}

/// The evidence line of a group's latest kept crash (its page header).
pub async fn latest_evidence(state: &App, key: &str) -> Option<String> {
    evidence_line(&payload(state, key).await?)
}

/// A crash the viewer may read (or act on with `scope`): its index row and queue row.
async fn visible(
    state: &App,
    viewer: &Viewer,
    id: &str,
    scope: Scope,
) -> Result<(String, Option<CrashRow>, Option<QueueEntry>), UiError> {
    viewer.caller.require(scope)?;
    if id.len() > 100 {
        return Err(UiError::not_found("no such crash"));
    }
    let crate::triage::StoredCrash {
        id,
        crash,
        queued,
        project,
    } = state.triage.stored_crash(id).await?;
    match project {
        Some(p) if viewer.may(scope, p) => Ok((id, crash, queued)),
        _ => Err(UiError::not_found(format!("no crash {id:?}"))),
    }
}

/// One row of a thread's table: a real frame or a call inlined into it.
pub struct FrameRow {
    pub index: usize,
    /// The real frame it belongs to (an inlined call shares its caller's).
    pub frame: usize,
    pub module: String,
    pub function: String,
    pub location: String,
    pub trust: String,
    pub inlined: bool,
    pub fault: bool,
    pub missing: bool,
    pub offset: String,
}

/// A thread in the thread list.
pub struct ThreadTab {
    pub label: String,
    pub href: String,
    pub selected: bool,
    pub crashing: bool,
}

/// A module row; `upload` says what to upload when its symbols are missing.
pub struct ModuleRow {
    pub name: String,
    pub version: String,
    pub debug_file: String,
    pub debug_id: String,
    pub code_id: String,
    pub base: String,
    pub status: String,
    pub missing: bool,
    pub upload: String,
}

/// A received file to download.
pub struct FileLink {
    pub label: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "crash.html")]
struct CrashPage {
    chrome: Chrome,
    id: String,
    queue_state: String,
    queue_error: String,
    received: String,
    received_ago: String,
    group_href: String,
    group_id: i64,
    signature: String,
    /// The crash is an SDK's error event (no minidump).
    is_event: bool,
    fault_class: String,
    evidence: String,
    exploitability: String,
    exploitability_reasons: Vec<String>,
    signals: Vec<String>,
    has_payload: bool,
    payload_note: String,
    threads: Vec<ThreadTab>,
    thread_title: String,
    frames: Vec<FrameRow>,
    hidden_frames: usize,
    full: bool,
    toggle_href: String,
    relevant_rule: &'static str,
    registers: Vec<(String, String)>,
    modules: Vec<ModuleRow>,
    annotations: Vec<(String, String)>,
    files: Vec<FileLink>,
    can_write: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct CrashParams {
    thread: Option<usize>,
    frames: Option<String>,
}

/// The rows of one thread: inlined calls first within each real frame, as the classifier
/// counts them (so the fault frame's index points at the right row).
fn frame_rows(thread: &Value, fault_index: Option<usize>) -> Vec<FrameRow> {
    let mut rows = Vec::new();
    for (frame_index, frame) in thread["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let module = text(&frame["module"]);
        let missing = frame["missing_symbols"].as_bool().unwrap_or(false);
        for inline in frame["inlines"].as_array().into_iter().flatten() {
            rows.push(FrameRow {
                index: rows.len(),
                frame: frame_index,
                module: module.clone(),
                function: text(&inline["function"]),
                location: location(&inline["file"], &inline["line"]),
                trust: "inlined".to_owned(),
                inlined: true,
                fault: false,
                missing: false,
                offset: String::new(),
            });
        }
        let function = match frame["function"].as_str() {
            Some(f) => f.to_owned(),
            None if !module.is_empty() => format!("{module} + {}", text(&frame["module_offset"])),
            None => text(&frame["offset"]),
        };
        rows.push(FrameRow {
            index: rows.len(),
            frame: frame_index,
            module,
            function,
            location: location(&frame["file"], &frame["line"]),
            trust: text(&frame["trust"]),
            inlined: false,
            fault: false,
            missing,
            offset: text(&frame["offset"]),
        });
    }
    if let Some(row) = fault_index.and_then(|i| rows.get_mut(i)) {
        row.fault = true;
    }
    rows
}

fn location(file: &Value, line: &Value) -> String {
    match (file.as_str(), line.as_u64()) {
        (Some(f), Some(l)) => format!("{f}:{l}"),
        (Some(f), None) => f.to_owned(),
        _ => String::new(),
    }
}

/// Which rows "most relevant" keeps: the fault frame (with the calls inlined into it), then
/// with in-app rules configured the application's frames, and without them the symbolicated
/// frames below the fault frame (frames above it are the crash machinery the skip list passed
/// over).
fn relevant(rows: &[FrameRow], in_app: &crate::classify::frames::InAppRules) -> Vec<bool> {
    let fault = rows
        .iter()
        .find(|r| r.fault)
        .map_or((0, 0), |r| (r.index, r.frame));
    rows.iter()
        .map(|row| {
            if row.frame == fault.1 {
                return true;
            }
            if in_app.is_configured() {
                let (file, _) = row.location.rsplit_once(':').unwrap_or((&row.location, ""));
                return in_app.matches(&FrameRef {
                    index: row.index,
                    frame: 0,
                    inlined: row.inlined,
                    function: Some(row.function.clone()),
                    module: Some(row.module.clone()).filter(|m| !m.is_empty()),
                    file: Some(file.to_owned()).filter(|f| !f.is_empty()),
                    line: None,
                });
            }
            row.index > fault.0 && !row.missing && !row.location.is_empty()
        })
        .collect()
}

/// The shell command that uploads a module's debug file to `server`.
fn upload_command(server: &str, debug_file: &str) -> String {
    let file = if debug_file.is_empty() {
        "<debug file>"
    } else {
        debug_file
    };
    format!("faultline upload --server {server} --token $FAULTLINE_TOKEN {file}")
}

/// `GET /ui/crashes/{id}?thread=N&frames=full`.
pub async fn show(
    State(state): State<App>,
    viewer: Viewer,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    params: Result<Query<CrashParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(params) = params.map_err(|e| UiError::bad_request(e.body_text()))?;
    let (id, crash, queued) = visible(&state, &viewer, &id, Scope::TriageRead).await?;
    let origin = crate::http::server_origin(&headers, &state);
    let processed = match crash.as_ref().and_then(|c| c.payload_key.as_deref()) {
        Some(key) => payload(&state, key).await,
        None => None,
    };
    let t = now();
    let received_at = crash
        .as_ref()
        .map(|c| c.attributes.received_at)
        .or(queued.as_ref().map(|q| q.enqueued_at))
        .unwrap_or(t);
    let queue_state = match (&queued, &crash) {
        (Some(q), _) => q.state.clone(),
        (None, _) => "processed".to_owned(),
    };
    let empty = Value::Null;
    let p = processed.as_ref().unwrap_or(&empty);
    let classification = &p["classification"];
    let crashing = p["crash_info"]["crashing_thread"]
        .as_u64()
        .map(|i| i as usize)
        .or_else(|| {
            p["crashing_thread"]["threads_index"]
                .as_u64()
                .map(|i| i as usize)
        });
    let threads = p["threads"].as_array().cloned().unwrap_or_default();
    let selected = params.thread.or(crashing).unwrap_or(0);
    let full = params.frames.as_deref() == Some("full");
    let page_link = |thread: usize, full: bool| {
        let thread = thread.to_string();
        format!(
            "/ui/crashes/{}{}",
            segment(&id),
            query_string(&[
                ("thread", &thread),
                ("frames", if full { "full" } else { "" })
            ])
        )
    };
    let fault_index = if Some(selected) == crashing {
        classification["fault_frame"]["index"]
            .as_u64()
            .map(|i| i as usize)
    } else {
        None
    };
    let mut rows = threads
        .get(selected)
        .map(|thread| frame_rows(thread, fault_index))
        .unwrap_or_default();
    let mut hidden_frames = 0;
    if !full {
        let keep = relevant(&rows, state.pipeline.classifier.in_app());
        if keep.iter().any(|k| *k) {
            hidden_frames = keep.iter().filter(|k| !**k).count();
            let mut keep = keep.into_iter();
            rows.retain(|_| keep.next().unwrap_or(true));
        }
    }
    let thread_tabs = threads
        .iter()
        .enumerate()
        .map(|(i, thread)| {
            let name = thread["thread_name"].as_str().unwrap_or("");
            let frames = thread["frame_count"].as_u64().unwrap_or(0);
            ThreadTab {
                label: format!(
                    "{i}{}{} ({frames} frames)",
                    if name.is_empty() { "" } else { " · " },
                    name
                ),
                href: page_link(i, full),
                selected: i == selected,
                crashing: Some(i) == crashing,
            }
        })
        .collect();
    let thread_title = match threads.get(selected) {
        Some(thread) => format!(
            "Thread {selected}{}{}",
            if Some(selected) == crashing {
                " (crashed)"
            } else {
                ""
            },
            thread["thread_name"]
                .as_str()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        ),
        None => "No threads".to_owned(),
    };
    let registers = p["crashing_thread"]["frames"][0]["registers"]
        .as_object()
        .map(|regs| regs.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default();
    let modules = p["modules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let status = text(&m["symbol_status"]);
            let missing = m["missing_symbols"].as_bool().unwrap_or(false);
            let debug_file = text(&m["debug_file"]);
            ModuleRow {
                name: text(&m["filename"]),
                version: text(&m["version"]),
                debug_id: text(&m["debug_id"]),
                code_id: text(&m["code_id"]),
                base: text(&m["base_addr"]),
                status,
                missing,
                upload: if missing {
                    upload_command(&origin, &debug_file)
                } else {
                    String::new()
                },
                debug_file,
            }
        })
        .collect();
    let annotations = crash
        .as_ref()
        .map(|c| {
            c.attributes
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let files = match &queued {
        Some(q) => match crate::ingest::load_raw(&*state.objects, &q.raw_key).await {
            Ok(Some(raw)) => raw
                .files()
                .map(|(name, kind, _)| FileLink {
                    label: format!("{name} ({kind})"),
                    href: format!("/ui/crashes/{}/files/{}", segment(&id), segment(name)),
                })
                .collect(),
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    let exploitability = &classification["exploitability"];
    let signals = signal_lines(&classification["signals"]);
    let (group_id, signature, fault_class) = match &crash {
        Some(c) => (
            c.group_id,
            c.attributes.signature.clone(),
            c.attributes.fault_class.clone(),
        ),
        None => (0, String::new(), String::new()),
    };
    let page = CrashPage {
        chrome: viewer.chrome(),
        queue_error: queued
            .as_ref()
            .and_then(|q| q.error.clone())
            .unwrap_or_default(),
        queue_state,
        received: when(received_at),
        received_ago: ago(received_at, t),
        group_href: format!("/ui/groups/{group_id}"),
        group_id,
        signature,
        is_event: crash
            .as_ref()
            .is_some_and(|c| c.attributes.kind == crate::group::index::CrashKind::Event),
        fault_class,
        evidence: evidence_line(p).unwrap_or_default(),
        exploitability: text(&exploitability["rating"]),
        exploitability_reasons: exploitability["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect(),
        signals,
        has_payload: processed.is_some(),
        payload_note: match &crash {
            Some(c) if c.payload_key.is_none() => {
                let note = c.payload_note().unwrap_or_default();
                let mut chars = note.chars();
                match chars.next() {
                    Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
                    None => note,
                }
            }
            Some(_) if processed.is_none() => "The processed crash could not be read.".to_owned(),
            _ => String::new(),
        },
        threads: thread_tabs,
        thread_title,
        frames: rows,
        hidden_frames,
        toggle_href: page_link(selected, !full),
        full,
        relevant_rule: if state.pipeline.classifier.in_app().is_configured() {
            "the application's frames (in-app rules) and the fault frame"
        } else {
            "the fault frame and the symbolicated frames below it"
        },
        registers,
        modules,
        annotations,
        files,
        can_write: crash
            .as_ref()
            .is_some_and(|c| viewer.may(Scope::TriageWrite, c.attributes.project_id))
            && queued.is_some(),
        id,
    };
    Ok(render(&page))
}

/// The signals of a classification, one sentence each.
fn signal_lines(signals: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if signals["guard_page"].as_bool() == Some(true) {
        out.push("the address is in a guard page".to_owned());
    }
    if signals["likely_use_after_free"].as_bool() == Some(true) {
        out.push("likely use after free".to_owned());
    }
    if !signals["adjusted_address"].is_null() {
        out.push(format!(
            "adjusted address: {}",
            text(&signals["adjusted_address"])
        ));
    }
    for poison in signals["poison"].as_array().into_iter().flatten() {
        out.push(format!("poison value: {}", text(poison)));
    }
    for flip in signals["possible_bit_flips"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push(format!("possible bit flip: {}", text(flip)));
    }
    for issue in signals["crash_inconsistencies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push(format!("inconsistency: {}", text(issue)));
    }
    out
}

/// `GET /ui/crashes/{id}/processed.json`: the processed crash as stored.
pub async fn processed_json(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let (id, crash, _) = visible(&state, &viewer, &id, Scope::TriageRead).await?;
    let key = crash
        .and_then(|c| c.payload_key)
        .ok_or_else(|| UiError::not_found(format!("crash {id} has no kept processed payload")))?;
    let bytes = crate::ingest::read_processed(&*state.objects, &key)
        .await
        .map_err(|_| {
            UiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the processed crash could not be read",
            )
        })?
        .ok_or_else(|| UiError::not_found("the processed crash is gone"))?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(bytes),
    )
        .into_response())
}

/// `GET /ui/crashes/{id}/files/{name}`: a received minidump or attachment, as a download.
pub async fn file(
    State(state): State<App>,
    viewer: Viewer,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let (id, _, queued) = visible(&state, &viewer, &id, Scope::TriageRead).await?;
    let queued = queued.ok_or_else(|| {
        UiError::not_found("this crash was processed synchronously; its files were not kept")
    })?;
    let raw = crate::ingest::load_raw(&*state.objects, &queued.raw_key)
        .await
        .map_err(|e| UiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?
        .ok_or_else(|| UiError::not_found("the stored crash is gone"))?;
    // The name only selects an entry of raw.json; it never becomes part of a key.
    let (_, kind, key) = raw
        .files()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| UiError::not_found(format!("crash {id} has no file {name:?}")))?;
    let extension = if kind == "minidump" { ".dmp" } else { "" };
    let key = ObjectKey::new(key.to_owned()).map_err(|e| UiError::not_found(e.to_string()))?;
    let reader = state
        .objects
        .get(&key)
        .await
        .map_err(|_| {
            UiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the file could not be read",
            )
        })?
        .ok_or_else(|| UiError::not_found("the file is gone"))?;
    let download: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}-{download}{extension}\""),
            ),
        ],
        Body::from_stream(ReaderStream::new(reader.body)),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ReprocessForm {
    csrf: String,
}

/// `POST /ui/crashes/{id}/reprocess`: queues the stored crash again and shows its page.
pub async fn reprocess(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<ReprocessForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| UiError::bad_request(e.body_text()))?;
    viewer.check_csrf(&form.csrf)?;
    let (id, _, _) = visible(&state, &viewer, &id, Scope::TriageWrite).await?;
    match state.queue.reprocess(&state.index, &id).await? {
        Some(_) => {
            state.wake.notify_one();
            Ok(Redirect::to(&format!("/ui/crashes/{}", segment(&id))).into_response())
        }
        None => Err(UiError::not_found(
            "only crashes received through the ingest routes keep their dumps and can be reprocessed",
        )),
    }
}
