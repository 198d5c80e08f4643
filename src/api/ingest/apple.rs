//! `POST /api/v1/applecrashreport?project=`: an Apple crash report (`.crash` text or `.ips`
//! JSON) as the multipart field `apple_crash_report` (symbolicator's route shape) or as the raw
//! body. The report is read into a native event (`crate::apple_reports`), stored with the report
//! itself beside it, and queued like any crash: the worker symbolicates, groups and classifies
//! it, and processes it again when a missing dSYM is uploaded. Answers `{"id": "<crash id>"}`.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::response::Response;
use bytes::Bytes;

use super::parts::pieces;
use super::{receive, store_and_queue, Client, Credentials, Refusal};
use crate::app::App;
use crate::apple_reports::{self, AppleReportError};
use crate::ingest::RawCrashBuilder;

/// The multipart field symbolicator's route reads the report from.
pub const REPORT_FIELD: &str = "apple_crash_report";

/// `POST /api/v1/applecrashreport?project=` (an API token with `ingest`, or `?key=`).
pub async fn apple_crash_report(
    State(state): State<App>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let credentials = Credentials {
        route_project: None,
        key: query.get("key").cloned(),
    };
    receive(state, Client::AppleCrashReport, credentials, query, request).await
}

/// The body read: the report found, parsed, and stored and queued as an event.
pub(super) async fn receive_report(
    state: &App,
    project: &crate::auth::Project,
    boundary: Option<String>,
    body: Bytes,
    builder: RawCrashBuilder,
) -> Result<Response, Refusal> {
    let report = match boundary {
        Some(boundary) => report_field(boundary, body).await?,
        None => body,
    };
    let parsed = apple_reports::parse(&report).map_err(|e| match e {
        AppleReportError::TooLarge(_) => Refusal::TooLarge(e.to_string()),
        AppleReportError::Unreadable(_) => Refusal::Invalid(e.to_string()),
    })?;
    let event = serde_json::to_vec(&parsed.to_event_json()).expect("JSON values serialize");
    if event.len() > crate::events::MAX_EVENT_BYTES {
        return Err(Refusal::TooLarge(format!(
            "the report's threads and images come to {} bytes as an event; at most {}",
            event.len(),
            crate::events::MAX_EVENT_BYTES
        )));
    }
    let file = match parsed.format {
        Some(apple_reports::ReportFormat::Ips) => "apple_crash_report.ips",
        _ => "apple_crash_report.crash",
    };
    store_and_queue(
        state,
        Client::AppleCrashReport,
        project,
        builder,
        Vec::new(),
        vec![(file.to_owned(), report)],
        Some(event.into()),
    )
    .await
}

/// The `apple_crash_report` part of a multipart body.
async fn report_field(boundary: String, body: Bytes) -> Result<Bytes, Refusal> {
    let mut multipart = multer::Multipart::new(pieces(body), boundary);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => {
                return Err(Refusal::Invalid(format!(
                    "no crash report in the multipart body: expected a part named {REPORT_FIELD}"
                )))
            }
            Err(e) => return Err(Refusal::Invalid(format!("the multipart body: {e}"))),
        };
        if field.name() == Some(REPORT_FIELD) {
            return field
                .bytes()
                .await
                .map_err(|e| Refusal::Invalid(format!("the {REPORT_FIELD} part: {e}")));
        }
    }
}
