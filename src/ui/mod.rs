//! The triage web UI at `/ui/`: server-rendered pages over the same index, queue and scopes as
//! the JSON API. Templates (askama), the stylesheet and one small script are compiled into the
//! binary; every page works without JavaScript (filters are query strings, actions are forms, the
//! fault frame is an anchor), and the script only makes marked forms and links update the page
//! in place. Everything a crash report carries is attacker-controlled text: templates escape it,
//! URLs are built with percent-encoding, and pages allow no inline script and no framing.
//!
//! Sign-in (`session.rs`) turns an API token into a session cookie; a page acts with that
//! token's scopes and projects, and every form that changes something carries the session's
//! anti-forgery token.

mod alerts;
mod charts;
mod crash;
mod crash_frames;
mod crash_modules;
mod crash_source;
mod group_code;
mod group_health;
mod group_why;
mod groups;
mod release;
mod releases;
pub(crate) mod page;
mod session;
mod symbols;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::app::App;

/// The stylesheet, compiled in.
const STYLESHEET: &str = include_str!("assets/faultline.css");

/// The one script (in-place updates; every page works without it), compiled in.
const SCRIPT: &str = include_str!("assets/faultline.js");

/// What pages may load: only this server's stylesheet and script (no inline script, so text
/// that slipped past escaping still could not run), requests to this server, no framing.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The UI's routes (`server/` merges them with the API's and adds state, limits and tracing).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(groups::list))
        .route("/ui/sign-in", get(session::form).post(session::sign_in))
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/groups/{id}", get(groups::show))
        .route("/ui/groups/{id}/evidence.md", get(group_why::markdown))
        .route("/ui/groups/{id}/triage", post(groups::triage))
        .route("/ui/groups/{id}/merge", post(groups::merge))
        .route("/ui/crashes/{id}", get(crash::show))
        .route(
            "/ui/crashes/{id}/processed.json",
            get(crash::processed_json),
        )
        .route("/ui/crashes/{id}/files/{name}", get(crash::file))
        .route("/ui/crashes/{id}/reprocess", post(crash::reprocess))
        .route("/ui/alerts", get(alerts::show))
        .route("/ui/releases", get(releases::show))
        .route("/ui/releases/{version}", get(release::show))
        .route("/ui/code-mappings", post(releases::set_mapping))
        .route("/ui/symbols", get(symbols::find))
        .route("/ui/symbols/missing", get(symbols::missing))
        .route("/ui/symbols/upload", post(symbols::upload))
        .route("/ui/assets/faultline.css", get(stylesheet))
        .route("/ui/assets/faultline.js", get(script))
        .layer(axum::middleware::map_response(protect))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// Headers every UI response carries: the content policy, no MIME sniffing, no referrer to
/// other sites, and no caching of pages that show crash data.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
