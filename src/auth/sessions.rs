//! Web UI sessions: a browser signs in once with an API token and then carries a random session
//! secret in a cookie. Only the secret's SHA-256 digest is stored; a session acts with its
//! token's scopes and projects, and ends when it expires, when its user signs out, or as soon as
//! its token is revoked or expires (every lookup re-reads the token).
//!
//! Server-side sessions rather than self-contained signed cookies, so that signing out and
//! revoking a token end a session at once on every node.

use sqlx::Row;

use super::registry::{token_from, TOKEN_COLUMNS};
use super::{digest, digests_match, new_secret, Registry, Token};
use crate::clock::now;
use crate::group::index::IndexError;

/// How long a sign-in lasts (never past its token's own expiry).
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// A new session: the secret for the cookie (shown to the browser only) and when it ends.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The cookie's value.
    pub secret: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The anti-forgery token of a session: forms that change something must send it back. Derived
/// from the session secret, so it needs no storage and another site cannot know it.
pub fn csrf_token(session_secret: &str) -> String {
    digest(&format!("faultline-csrf\0{session_secret}"))
}

impl Registry {
    /// Starts a session for a token the caller just presented (and `authenticate` accepted);
    /// expired sessions of every user are removed on the way.
    pub async fn start_session(&self, token: &Token) -> Result<SignedIn, IndexError> {
        let t = now();
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
            .bind(t)
            .execute(&self.pool)
            .await?;
        let lifetime = SESSION_LIFETIME.as_secs() as i64;
        let expires_at = token
            .expires_at
            .map_or(t + lifetime, |e| e.min(t + lifetime));
        let secret = new_secret("fls_");
        sqlx::query(
            "INSERT INTO ui_sessions (session_digest, token_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(digest(&secret))
        .bind(token.id.as_str())
        .bind(t)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(SignedIn { secret, expires_at })
    }

    /// The token a session acts for, if the session and its token are both still valid.
    pub async fn session(&self, secret: &str) -> Result<Option<Token>, IndexError> {
        let wanted = digest(secret);
        let columns = TOKEN_COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = sqlx::query(&format!(
            "SELECT s.session_digest, s.expires_at AS session_expires, {columns} \
             FROM ui_sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.session_digest = $1"
        ))
        .bind(wanted.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("session_digest")?;
        let session_expires: i64 = row.try_get("session_expires")?;
        let token = token_from(&row)?;
        let t = now();
        let usable = digests_match(&stored, &wanted)
            && session_expires > t
            && token.revoked_at.is_none()
            && token.expires_at.is_none_or(|e| e > t);
        Ok(usable.then_some(token))
    }

    /// Ends a session (signing out); unknown secrets are ignored.
    pub async fn end_session(&self, secret: &str) -> Result<(), IndexError> {
        sqlx::query("DELETE FROM ui_sessions WHERE session_digest = $1")
            .bind(digest(secret))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
