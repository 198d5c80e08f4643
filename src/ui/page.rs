//! What every page shares: the frame around it (`Chrome`), error pages, rendering, and the
//! small formatting helpers templates use (times, query strings).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::group::index::IndexError;
use crate::http::{HttpError, RequestId};

/// The frame around a page: who is signed in, and the anti-forgery token its forms carry.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The signed-in token's label; `None` on the sign-in page.
    pub signed_in_as: Option<String>,
    /// The session's anti-forgery token (hidden field of every form that changes something).
    pub csrf: String,
}

/// A page that could not be shown, rendered as a page with its status.
#[derive(Debug)]
pub struct UiError {
    status: StatusCode,
    message: String,
    detail: Option<String>,
    request_id: Option<RequestId>,
}

impl UiError {
    /// An error page with `status` and what went wrong.
    pub fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError {
            status,
            message: message.into(),
            detail: None,
            request_id: None,
        }
    }

    /// 404 for `what` (also what a page of another project reads as).
    pub fn not_found(what: impl Into<String>) -> UiError {
        UiError::new(StatusCode::NOT_FOUND, what)
    }

    /// A service's error, as the API words it (the caller's mistake, or ours with nothing
    /// internal).
    pub fn of(e: impl Into<crate::http::HttpError>) -> UiError {
        UiError::from(e.into())
    }

    /// 400 with what to fix.
    pub fn bad_request(message: impl Into<String>) -> UiError {
        UiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Adds what to do next.
    pub fn with_detail(mut self, detail: impl Into<String>) -> UiError {
        self.detail = Some(detail.into());
        self
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    status: u16,
    reason: &'a str,
    message: &'a str,
    detail: Option<&'a str>,
    request_id: Option<&'a str>,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            chrome: Chrome::default(),
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
            detail: self.detail.as_deref(),
            request_id: self.request_id.as_ref().map(RequestId::as_str),
        };
        (self.status, render(&page)).into_response()
    }
}

impl From<HttpError> for UiError {
    fn from(e: HttpError) -> UiError {
        let (status, message, detail, request_id) = e.parts();
        UiError {
            status,
            message: message.to_owned(),
            detail: detail.map(str::to_owned),
            request_id: request_id.cloned(),
        }
    }
}

impl From<IndexError> for UiError {
    fn from(e: IndexError) -> UiError {
        UiError::from(HttpError::from(e))
    }
}

/// A template rendered as an HTML response (a template error is a 500 page, logged).
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>faultline</title><p>This page failed to render; the server log says why.</p>".to_owned()),
            )
                .into_response()
        }
    }
}

/// A time as people read it in a table: `2026-12-02 21:45 UTC`.
pub fn when(unix: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix) else {
        return unix.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// How long ago `unix` was, shortly: `just now`, `5 min ago`, `3 h ago`, `12 d ago`.
pub fn ago(unix: i64, now: i64) -> String {
    let secs = (now - unix).max(0);
    match secs {
        0..60 => "just now".to_owned(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// A query string (`?a=1&b=x%20y`) of the non-empty pairs, percent-encoded; empty when none.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    format!(
        "?{}",
        serde_urlencoded::to_string(kept).expect("string pairs always encode")
    )
}

/// One path segment, percent-encoded (crash IDs and file names in links).
pub use crate::http::segment;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(ago(100, 100), "just now");
        assert_eq!(ago(0, 125), "2 min ago");
        assert_eq!(ago(0, 7200), "2 h ago");
        assert_eq!(ago(0, 3 * 86_400), "3 d ago");
        assert_eq!(ago(500, 100), "just now", "a clock behind is not negative");
    }

    #[test]
    fn links_are_encoded() {
        assert_eq!(query_string(&[("a", ""), ("b", "")]), "");
        assert_eq!(
            query_string(&[("q", "a&b=<c>"), ("state", "open"), ("x", "")]),
            "?q=a%26b%3D%3Cc%3E&state=open"
        );
        assert_eq!(segment("../a b\"<"), "..%2Fa%20b%22%3C");
    }
}
