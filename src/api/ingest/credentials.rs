//! Which project a crash is filed under: the ingest key its client sends (in the way that client
//! can), or a bearer token with the `ingest` scope; the default project without either, unless
//! keys are required.

use std::collections::HashMap;

use axum::http::HeaderMap;

use super::{unavailable, Refusal};
use crate::app::App;
use crate::auth::{Project, Scope};

/// How a request names its project: the route's project (Sentry, Unreal) and the ingest key its
/// client sends.
pub(super) struct Credentials {
    pub(super) route_project: Option<String>,
    pub(super) key: Option<String>,
}

/// The `sentry_key` of an `X-Sentry-Auth: Sentry sentry_key=…, sentry_version=7` header.
pub(super) fn sentry_auth_key(headers: &HeaderMap) -> Option<String> {
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
pub(super) async fn resolve_project(
    state: &App,
    credentials: &Credentials,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Project, Refusal> {
    let route_project = credentials.route_project.as_deref();
    if let Some(secret) = crate::http::presented_token(headers) {
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
