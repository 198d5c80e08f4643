//! How a request fails: [`HttpError`], a status with a one-line `error` and an optional
//! `detail` that says what to do next, answered as JSON by the API (the web UI shows the same
//! on an error page). The caller's mistakes (4xx) say what was wrong; faultline's own failures
//! (5xx) say only that it failed and a request ID, and the log line with that ID holds the
//! internal detail, so nothing internal reaches a client.

use std::fmt::Display;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::alerts::AlertError;
use crate::code::CodeError;
use crate::evidence::EvidenceError;
use crate::group::index::IndexError;
use crate::health::HealthError;
use crate::process::{BudgetKind, ProcessError};
use crate::releases::ReleaseError;
use crate::store::StoreError;
use crate::suspects::SuspectError;
use crate::symbols::SymbolError;
use crate::triage::TriageError;

/// Names one failure in the server log and in the answer that reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// A new random ID (16 hex digits).
    pub fn new() -> RequestId {
        RequestId(uuid::Uuid::new_v4().simple().to_string()[..16].to_owned())
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A failed request: status, a one-line `error`, an optional `detail`, and for faultline's own
/// failures the request ID its log line carries.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    error: String,
    detail: Option<String>,
    request_id: Option<RequestId>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The caller's request is wrong (400), saying how.
pub fn bad_request(message: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, message)
}

impl HttpError {
    /// A client error (4xx), or a server error (5xx) whose message says nothing internal.
    pub fn new(status: StatusCode, error: impl Into<String>) -> HttpError {
        HttpError {
            status,
            error: error.into(),
            detail: None,
            request_id: None,
            headers: Vec::new(),
        }
    }

    /// A failure of faultline's own (5xx): `public` is what the client reads, with a new
    /// request ID; `internal` goes to the log under that ID, never to the client.
    pub fn internal(
        status: StatusCode,
        public: impl Into<String>,
        internal: impl Display,
    ) -> HttpError {
        let id = RequestId::new();
        tracing::error!(request_id = %id, status = status.as_u16(), error = %internal, "request failed inside faultline");
        HttpError {
            request_id: Some(id),
            ..HttpError::new(status, public)
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the caller reads (never anything internal).
    pub fn message(&self) -> &str {
        &self.error
    }

    /// Adds a response header (`WWW-Authenticate`, `Retry-After`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> HttpError {
        self.headers.push((name, value));
        self
    }

    /// Adds what to do next.
    pub fn with_detail(mut self, detail: impl Into<String>) -> HttpError {
        self.detail = Some(detail.into());
        self
    }

    /// Its status, message, explanation and request ID (the web UI shows them on a page).
    pub fn parts(&self) -> (StatusCode, &str, Option<&str>, Option<&RequestId>) {
        (
            self.status,
            &self.error,
            self.detail.as_deref(),
            self.request_id.as_ref(),
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error });
        if let Some(detail) = self.detail {
            body["detail"] = detail.into();
        }
        if let Some(id) = self.request_id {
            body["request_id"] = id.0.into();
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

impl From<SymbolError> for HttpError {
    fn from(e: SymbolError) -> HttpError {
        let status = match &e {
            SymbolError::Store(StoreError::Backend { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError::internal(status, "the symbol store failed; try again later", e)
    }
}

impl From<ProcessError> for HttpError {
    fn from(e: ProcessError) -> HttpError {
        let status = match &e {
            ProcessError::NotAMinidump(_) | ProcessError::Corrupt(_) => StatusCode::BAD_REQUEST,
            ProcessError::Budget {
                budget: BudgetKind::Size,
                ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            ProcessError::Budget { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ProcessError::Internal(_) => {
                return HttpError::internal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "processing failed inside faultline",
                    e,
                )
            }
        };
        HttpError::new(status, e.to_string())
    }
}

impl From<IndexError> for HttpError {
    fn from(e: IndexError) -> HttpError {
        match e {
            IndexError::Rejected(message) => HttpError::new(StatusCode::BAD_REQUEST, message),
            other => HttpError::internal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the crash index failed; try again later",
                other,
            ),
        }
    }
}

impl From<AlertError> for HttpError {
    fn from(e: AlertError) -> HttpError {
        match e {
            AlertError::Invalid(message) => HttpError::new(StatusCode::BAD_REQUEST, message),
            AlertError::NotFound(message) => HttpError::new(StatusCode::NOT_FOUND, message),
            AlertError::Database(e) => IndexError::Database(e).into(),
        }
    }
}

impl From<CodeError> for HttpError {
    fn from(e: CodeError) -> HttpError {
        match e {
            CodeError::Invalid(message) => HttpError::new(StatusCode::BAD_REQUEST, message),
            CodeError::NotFound(message) => HttpError::new(StatusCode::NOT_FOUND, message),
            CodeError::Database(e) => IndexError::Database(e).into(),
            CodeError::Git(e) => HttpError::internal(
                StatusCode::BAD_GATEWAY,
                "the repository could not be read (see the repository's fetch_error)",
                e.to_string(),
            ),
        }
    }
}

impl From<ReleaseError> for HttpError {
    fn from(e: ReleaseError) -> HttpError {
        match e {
            ReleaseError::Invalid(message) => HttpError::new(StatusCode::BAD_REQUEST, message),
            ReleaseError::NotFound(message) => HttpError::new(StatusCode::NOT_FOUND, message),
            ReleaseError::Database(e) => IndexError::Database(e).into(),
            ReleaseError::Code(e) => e.into(),
        }
    }
}

impl From<HealthError> for HttpError {
    fn from(e: HealthError) -> HttpError {
        match e {
            HealthError::Database(e) => IndexError::Database(e).into(),
            HealthError::Record(reason) => HttpError::internal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the sessions could not be recorded; send them again",
                reason,
            ),
        }
    }
}

impl From<SuspectError> for HttpError {
    fn from(e: SuspectError) -> HttpError {
        match e {
            SuspectError::Code(e) => e.into(),
            SuspectError::Releases(e) => e.into(),
            SuspectError::Index(e) => e.into(),
            SuspectError::Database(e) => IndexError::Database(e).into(),
            SuspectError::Report(e) => HttpError::internal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "a stored suspect report is unreadable",
                e.to_string(),
            ),
        }
    }
}

impl From<EvidenceError> for HttpError {
    fn from(e: EvidenceError) -> HttpError {
        HttpError::internal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the group's evidence could not be assembled",
            e,
        )
    }
}

impl From<TriageError> for HttpError {
    fn from(e: TriageError) -> HttpError {
        match e {
            TriageError::Index(e) => e.into(),
            TriageError::Alerts(e) => e.into(),
            TriageError::Desk(reason) => HttpError::internal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ticket desk failed; the tracker may send the webhook again",
                reason,
            ),
        }
    }
}
