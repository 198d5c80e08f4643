//! Paths: routes that answer with and without a trailing slash (Sentry's and Unreal's clients
//! send both), a text made safe as one URL path segment, and this server's origin as a browser
//! reached it.

use axum::routing::MethodRouter;
use axum::Router;

use crate::app::App;

/// Adds `handler` at `path` (which ends with `/`) and at the same path without the slash.
pub fn route_with_and_without_slash(
    router: Router<App>,
    path: &str,
    handler: MethodRouter<App>,
) -> Router<App> {
    let bare = path.strip_suffix('/').unwrap_or(path);
    router.route(path, handler.clone()).route(bare, handler)
}

/// `text` percent-encoded as one URL path segment (everything but unreserved characters).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// This server as the browser reached it (`http://host:port`), for commands shown on pages and
/// URLs handed to clients: the request's `Host` when it is a plain host name (shown back to the
/// same user, escaped), else the listen address.
pub fn server_origin(headers: &axum::http::HeaderMap, app: &App) -> String {
    let scheme = if app.config.auth.secure_cookies {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| app.config.server.listen.to_string());
    format!("{scheme}://{host}")
}
