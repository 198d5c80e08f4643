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
use tokio_util::io::ReaderStream;

use super::crash_frames::{attach_sources, frame_rows, relevant, FrameRow};
use super::crash_modules::{module_rows, ModuleRow};
use super::page::{ago, query_string, render, segment, when, Chrome, UiError};
use super::session::Viewer;
use crate::app::App;
use crate::auth::Scope;
use crate::classify::frames::InAppRules;
use crate::clock::now;
use crate::group::index::{CrashKind, CrashRow};
use crate::http::HttpError;
use crate::ingest::queue::QueueEntry;
use crate::pipeline::CrashView;
use crate::store::ObjectKey;

/// The evidence line of a group's latest kept crash (its page header).
pub async fn latest_evidence(state: &App, key: &str) -> Option<String> {
    state.triage.processed(key).await?.evidence()
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

/// A thread in the thread list.
pub struct ThreadTab {
    pub label: String,
    pub href: String,
    pub selected: bool,
    pub crashing: bool,
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
    /// "Uncaught Objective-C exception NSRangeException: …", when the process recorded one.
    thrown_title: String,
    /// Its throw stack, a line per frame.
    thrown: Vec<String>,
    annotations: Vec<(String, String)>,
    files: Vec<FileLink>,
    can_write: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct CrashParams {
    thread: Option<usize>,
    frames: Option<String>,
}

/// One frame of a throw stack as the page lists it: function, module and offset, file and line.
fn thrown_line(frame: &crate::process::thrown::ThrownFrame) -> String {
    let mut line = frame
        .function
        .clone()
        .unwrap_or_else(|| frame.address.clone());
    if let (Some(module), Some(offset)) = (&frame.module, &frame.module_offset) {
        line.push_str(&format!(" ({module} + {offset})"));
    }
    if let (Some(file), Some(number)) = (&frame.file, frame.line) {
        line.push_str(&format!(" at {file}:{number}"));
    }
    line
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
    let processed = match crash.as_ref().and_then(|c| c.payload_key.as_deref()) {
        Some(key) => state.triage.processed(key).await,
        None => None,
    };
    let has_payload = processed.is_some();
    let view = processed.unwrap_or_default();
    let shown = ShownThread::choose(&view, &params);
    let (mut frames, hidden_frames) = shown.rows(&view, state.pipeline.classifier.in_app());
    if let (Some(crash), true) = (&crash, has_payload && Some(shown.index) == shown.crashing) {
        let sources = super::crash_source::lines_by_frame(&state, crash, &view).await;
        attach_sources(&mut frames, sources);
    }
    let verdict = Verdict::of(&view);
    let origin = crate::http::server_origin(&headers, &state);
    let page = CrashPage {
        chrome: viewer.chrome(),
        threads: shown.tabs(&view, &id),
        thread_title: shown.title(&view),
        toggle_href: shown.link(&id, shown.index, !shown.full),
        full: shown.full,
        frames,
        hidden_frames,
        relevant_rule: if state.pipeline.classifier.in_app().is_configured() {
            "the application's frames (in-app rules) and the fault frame"
        } else {
            "the fault frame and the symbolicated frames below it"
        },
        registers: view
            .registers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect(),
        modules: module_rows(&view.parts.modules, &origin),
        thrown_title: view
            .parts
            .uncaught_exception
            .as_ref()
            .map(|t| format!("Uncaught Objective-C exception {}", t.summary()))
            .unwrap_or_default(),
        thrown: view
            .parts
            .uncaught_exception
            .iter()
            .flat_map(|t| &t.frames)
            .map(thrown_line)
            .collect(),
        files: received_files(&state, queued.as_ref(), &id).await,
        evidence: verdict.evidence,
        exploitability: verdict.exploitability,
        exploitability_reasons: verdict.reasons,
        signals: verdict.signals,
        has_payload,
        ..CrashPage::header(&viewer, &id, crash.as_ref(), queued.as_ref(), has_payload)
    };
    Ok(render(&page))
}

/// The classifier's verdict as the page shows it (empty for a crash without a kept payload).
#[derive(Default)]
struct Verdict {
    evidence: String,
    exploitability: String,
    reasons: Vec<String>,
    signals: Vec<String>,
}

impl Verdict {
    fn of(view: &CrashView<'_>) -> Verdict {
        let evidence = view.evidence().unwrap_or_default();
        let Some(c) = &view.classification else {
            return Verdict {
                evidence,
                ..Verdict::default()
            };
        };
        Verdict {
            evidence,
            exploitability: c.exploitability.rating.as_str().to_owned(),
            reasons: c.exploitability.reasons.clone(),
            signals: c.signals.sentences(),
        }
    }
}

impl CrashPage {
    /// Everything the page says about the crash without its processed payload: where it is in
    /// the queue, when it came, its group, signature and class, its annotations, whether it can
    /// be reprocessed. The payload's parts are left empty.
    fn header(
        viewer: &Viewer,
        id: &str,
        crash: Option<&CrashRow>,
        queued: Option<&QueueEntry>,
        has_payload: bool,
    ) -> CrashPage {
        let t = now();
        let received_at = crash
            .map(|c| c.attributes.received_at)
            .or(queued.map(|q| q.enqueued_at))
            .unwrap_or(t);
        let group_id = crash.map_or(0, |c| c.group_id);
        CrashPage {
            chrome: viewer.chrome(),
            id: id.to_owned(),
            queue_state: queued.map_or_else(|| "processed".to_owned(), |q| q.state.clone()),
            queue_error: queued.and_then(|q| q.error.clone()).unwrap_or_default(),
            received: when(received_at),
            received_ago: ago(received_at, t),
            group_href: format!("/ui/groups/{group_id}"),
            group_id,
            signature: crash
                .map(|c| c.attributes.signature.clone())
                .unwrap_or_default(),
            is_event: crash.is_some_and(|c| c.attributes.kind == CrashKind::Event),
            fault_class: crash
                .map(|c| c.attributes.fault_class.as_str().to_owned())
                .unwrap_or_default(),
            payload_note: payload_note(crash, has_payload),
            annotations: crash
                .map(|c| {
                    c.attributes
                        .annotations
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            can_write: crash
                .is_some_and(|c| viewer.may(Scope::TriageWrite, c.attributes.project_id))
                && queued.is_some(),
            evidence: String::new(),
            exploitability: String::new(),
            exploitability_reasons: Vec::new(),
            signals: Vec::new(),
            has_payload,
            threads: Vec::new(),
            thread_title: String::new(),
            frames: Vec::new(),
            hidden_frames: 0,
            full: false,
            toggle_href: String::new(),
            relevant_rule: "",
            registers: Vec::new(),
            modules: Vec::new(),
            thrown_title: String::new(),
            thrown: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// Why a crash has no processed payload to show, as a sentence.
fn payload_note(crash: Option<&CrashRow>, has_payload: bool) -> String {
    match crash {
        Some(c) if c.payload_key.is_none() => {
            let note = c.payload_note().unwrap_or_default();
            let mut chars = note.chars();
            match chars.next() {
                Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
                None => note,
            }
        }
        Some(_) if !has_payload => "The processed crash could not be read.".to_owned(),
        _ => String::new(),
    }
}

/// The thread the page shows, and whether all its frames or the relevant ones.
struct ShownThread {
    index: usize,
    crashing: Option<usize>,
    full: bool,
}

impl ShownThread {
    /// The thread asked for, else the one that crashed, else the first.
    fn choose(view: &CrashView<'_>, params: &CrashParams) -> ShownThread {
        let crashing = view.crashing_index();
        ShownThread {
            index: params.thread.or(crashing).unwrap_or(0),
            crashing,
            full: params.frames.as_deref() == Some("full"),
        }
    }

    fn link(&self, id: &str, thread: usize, full: bool) -> String {
        let thread = thread.to_string();
        format!(
            "/ui/crashes/{}{}",
            segment(id),
            query_string(&[
                ("thread", &thread),
                ("frames", if full { "full" } else { "" })
            ])
        )
    }

    /// The shown thread's rows (the fault frame marked on the crashing thread), and how many
    /// "most relevant" hid.
    fn rows(&self, view: &CrashView<'_>, in_app: &InAppRules) -> (Vec<FrameRow>, usize) {
        let fault_index = view
            .classification
            .as_ref()
            .and_then(|c| c.fault_frame.as_ref())
            .map(|f| f.index)
            .filter(|_| Some(self.index) == self.crashing);
        let mut rows = view
            .parts
            .threads
            .get(self.index)
            .map(|thread| frame_rows(thread, fault_index))
            .unwrap_or_default();
        if self.full {
            return (rows, 0);
        }
        let keep = relevant(&rows, in_app);
        if !keep.iter().any(|k| *k) {
            return (rows, 0);
        }
        let hidden = keep.iter().filter(|k| !**k).count();
        let mut keep = keep.into_iter();
        rows.retain(|_| keep.next().unwrap_or(true));
        (rows, hidden)
    }

    /// One tab per thread.
    fn tabs(&self, view: &CrashView<'_>, id: &str) -> Vec<ThreadTab> {
        view.parts
            .threads
            .iter()
            .enumerate()
            .map(|(i, thread)| {
                let name = thread.thread_name.as_deref().unwrap_or("");
                ThreadTab {
                    label: format!(
                        "{i}{}{name} ({} frames)",
                        if name.is_empty() { "" } else { " · " },
                        thread.frame_count
                    ),
                    href: self.link(id, i, self.full),
                    selected: i == self.index,
                    crashing: Some(i) == self.crashing,
                }
            })
            .collect()
    }

    fn title(&self, view: &CrashView<'_>) -> String {
        let Some(thread) = view.parts.threads.get(self.index) else {
            return "No threads".to_owned();
        };
        format!(
            "Thread {}{}{}",
            self.index,
            if Some(self.index) == self.crashing {
                " (crashed)"
            } else {
                ""
            },
            thread
                .thread_name
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        )
    }
}

/// The files a crash reporter sent (kept for crashes that came through the ingest routes).
async fn received_files(state: &App, queued: Option<&QueueEntry>, id: &str) -> Vec<FileLink> {
    let Some(q) = queued else {
        return Vec::new();
    };
    match crate::ingest::load_raw(&*state.objects, &q.raw_key).await {
        Ok(Some(raw)) => raw
            .files()
            .map(|(name, kind, _)| FileLink {
                label: format!("{name} ({kind})"),
                href: format!("/ui/crashes/{}/files/{}", segment(id), segment(name)),
            })
            .collect(),
        _ => Vec::new(),
    }
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
        .map_err(|e| {
            UiError::from(HttpError::internal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the stored crash could not be read",
                e,
            ))
        })?
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
    match state.queue.reprocess(&id).await? {
        Some(_) => {
            state.wake.notify_one();
            Ok(Redirect::to(&format!("/ui/crashes/{}", segment(&id))).into_response())
        }
        None => Err(UiError::not_found(
            "only crashes received through the ingest routes keep their dumps and can be reprocessed",
        )),
    }
}
