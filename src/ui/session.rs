//! Signing in and out of the web UI, and who a page request comes from (`Viewer`).
//!
//! Sign-in takes an API token once (a form field, never a URL) and sets an HttpOnly,
//! `SameSite=Lax` session cookie scoped to `/ui`; Lax so that a shared link opened from chat
//! arrives signed in, while forms posted from other sites arrive without it. Every form that
//! changes something also carries the session's anti-forgery token, checked in constant time.

use askama::Template;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::page::{query_string, render, Chrome, UiError};
use crate::app::App;
use crate::auth::{csrf_token, Scope, Token};
use crate::http::Caller;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "faultline_session";

/// Longest token accepted by the sign-in form (real ones are 44 characters).
const MAX_TOKEN_LEN: usize = 256;

/// The signed-in user behind a page request.
pub struct Viewer {
    /// The session's token, as the API's scope checks take it.
    pub caller: Caller,
    /// The session's anti-forgery token.
    pub csrf: String,
}

impl Viewer {
    /// The token (a session always has one).
    pub fn token(&self) -> &Token {
        self.caller.0.as_ref().expect("a viewer is signed in")
    }

    /// The page frame for this viewer.
    pub fn chrome(&self) -> Chrome {
        Chrome {
            signed_in_as: Some(self.token().name.clone()),
            csrf: self.csrf.clone(),
        }
    }

    /// Whether the token grants `scope` on `project_id`.
    pub fn may(&self, scope: Scope, project_id: i64) -> bool {
        self.caller.may(scope, project_id)
    }

    /// Refuses a form whose anti-forgery token is not this session's (403).
    pub fn check_csrf(&self, presented: &str) -> Result<(), UiError> {
        let same = presented.len() == self.csrf.len()
            && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()));
        if same {
            Ok(())
        } else {
            Err(UiError::new(
                StatusCode::FORBIDDEN,
                "this form is out of date or came from another site",
            )
            .with_detail("reload the page and submit it again"))
        }
    }
}

/// The session secret a request's cookie carries.
fn session_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= MAX_TOKEN_LEN)
}

impl FromRequestParts<App> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Viewer, Response> {
        let token = match session_secret(&parts.headers) {
            Some(secret) => match state.registry.session(&secret).await {
                Ok(Some(token)) => Some((token, csrf_token(&secret))),
                Ok(None) => None,
                Err(e) => return Err(UiError::from(e).into_response()),
            },
            None => None,
        };
        match token {
            Some((token, csrf)) => Ok(Viewer {
                caller: Caller(Some(token)),
                csrf,
            }),
            // A page asks to sign in and comes back; a form cannot be replayed after sign-in.
            None if parts.method == Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/ui/", |p| p.as_str())
                    .to_owned();
                Err(
                    Redirect::to(&format!("/ui/sign-in{}", query_string(&[("next", &next)])))
                        .into_response(),
                )
            }
            None => Err(UiError::new(
                StatusCode::UNAUTHORIZED,
                "your session has ended: sign in again, then repeat the change",
            )
            .into_response()),
        }
    }
}

/// Where to go after signing in: only a page of this UI (never another site).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/ui/",
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    chrome: Chrome,
    next: &'a str,
    problem: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

/// `GET /ui/sign-in`: the form.
pub async fn form(Query(params): Query<NextParam>) -> Response {
    render(&SignInPage {
        chrome: Chrome::default(),
        next: safe_next(params.next.as_deref()),
        problem: None,
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    next: Option<String>,
}

/// `POST /ui/sign-in`: checks the token, starts a session, and goes where the user was going.
pub async fn sign_in(
    State(state): State<App>,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, UiError> {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_request("send the sign-in form's token field"));
    };
    let next = safe_next(form.next.as_deref());
    let refuse = |problem: &str| {
        let mut response = render(&SignInPage {
            chrome: Chrome::default(),
            next,
            problem: Some(problem),
        });
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response
    };
    let secret = form.token.trim();
    if secret.is_empty() || secret.len() > MAX_TOKEN_LEN {
        return Ok(refuse("paste an API token (it starts with flt_)"));
    }
    let token = match state.registry.authenticate(secret).await? {
        Ok(token) => token,
        Err(failure) => return Ok(refuse(failure.message())),
    };
    let session = state.registry.start_session(&token).await?;
    let max_age = (session.expires_at - crate::clock::now()).max(0);
    let cookie = Cookie::build((SESSION_COOKIE, session.secret))
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.auth.secure_cookies)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie.to_string()).expect("cookie text is a valid header"),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /ui/sign-out`: ends the session and clears the cookie.
pub async fn sign_out(
    State(state): State<App>,
    headers: HeaderMap,
    viewer: Viewer,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, UiError> {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_request("send the sign-out form"));
    };
    viewer.check_csrf(&form.csrf)?;
    if let Some(secret) = session_secret(&headers) {
        state.registry.end_session(&secret).await?;
    }
    let cookie = Cookie::build((SESSION_COOKIE, ""))
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut response = Redirect::to("/ui/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie.to_string()).expect("cookie text is a valid header"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_only_returns_to_this_ui() {
        assert_eq!(safe_next(Some("/ui/groups/4?x=1")), "/ui/groups/4?x=1");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui/");
        assert_eq!(safe_next(Some("/ui/\\evil")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }
}
