//! Who is calling: the `Authorization: Bearer <token>` (or Tecken's `Auth-Token: <token>`) of a
//! request, checked before its body is read. Handlers then ask for the scope (and project) they
//! need: 401 with `WWW-Authenticate` when there is no usable token, 403 naming what is missing.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

use super::error::HttpError;
use crate::app::App;
use crate::auth::{Project, Scope, Token};

/// The token a request presented, if any (an unknown, revoked or expired one is refused while
/// extracting, with 401).
pub struct Caller(pub Option<Token>);

/// The secret a request presents, from `Authorization: Bearer` or `Auth-Token`.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get("auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Refusals come before the body is read: the connection is closed after them, and saying so
/// keeps clients from reusing it.
fn unauthorized(message: &str) -> HttpError {
    HttpError::new(StatusCode::UNAUTHORIZED, message)
        .with_header(header::CONNECTION, HeaderValue::from_static("close"))
        .with_detail(
            "send `Authorization: Bearer <token>`; create one with `faultline token create --scope …`",
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"faultline\""),
        )
}

impl FromRequestParts<App> for Caller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Caller, HttpError> {
        Caller::from_secret(state, presented_token(&parts.headers)).await
    }
}

impl Caller {
    /// The caller a presented secret names (from the headers, or from `?token=` where a
    /// protocol puts it there); no secret is an anonymous caller, a bad one a 401.
    pub async fn from_secret(state: &App, secret: Option<&str>) -> Result<Caller, HttpError> {
        let Some(secret) = secret.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Caller(None));
        };
        match state.registry.authenticate(secret).await? {
            Ok(token) => Ok(Caller(Some(token))),
            Err(failure) => Err(unauthorized(failure.message())),
        }
    }

    /// The token, whatever its scopes; 401 without one.
    pub fn authenticated(&self) -> Result<&Token, HttpError> {
        self.0
            .as_ref()
            .ok_or_else(|| unauthorized("this route needs a token"))
    }

    /// The token, if it grants `scope`; 401 without a token, 403 naming the scope.
    pub fn require(&self, scope: Scope) -> Result<&Token, HttpError> {
        let Some(token) = &self.0 else {
            return Err(unauthorized(&format!(
                "this route needs a token with the {scope} scope"
            )));
        };
        if !token.allows(scope) {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                format!("this token lacks the {scope} scope"),
            )
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
            .with_detail(format!(
                "create a token with `faultline token create --scope {scope}`"
            )));
        }
        Ok(token)
    }

    /// The token, if it grants `scope` on `project`; 403 naming the project otherwise.
    pub fn require_in(&self, scope: Scope, project: &Project) -> Result<&Token, HttpError> {
        let token = self.require(scope)?;
        if !token.covers(project.id) {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                format!("this token is not valid for project {:?}", project.slug),
            )
            .with_header(header::CONNECTION, HeaderValue::from_static("close")));
        }
        Ok(token)
    }

    /// Whether the caller may act with `scope` on the project numbered `project_id` (for
    /// objects found by ID: a crash or group of another project reads as not found).
    pub fn may(&self, scope: Scope, project_id: i64) -> bool {
        self.0
            .as_ref()
            .is_some_and(|t| t.allows(scope) && t.covers(project_id))
    }
}

/// The project a triage or ingest request names with `?project=` (the default project when
/// absent); 404 naming it when there is none.
pub async fn project_param(state: &App, slug: Option<&str>) -> Result<Project, HttpError> {
    let slug = slug.unwrap_or(crate::auth::DEFAULT_PROJECT);
    state.registry.project(slug).await?.ok_or_else(|| {
        HttpError::new(StatusCode::NOT_FOUND, format!("no project {slug:?}"))
            .with_detail("see `faultline project list`")
    })
}
