//! The project registry and the token table, in the crash index's database: projects and their
//! ingest keys, API tokens with scopes, expiry, revocation and last use.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{digest, digests_match, new_id, new_secret, Scope};
use crate::clock::now;
use crate::cluster::{Change, ChangeListener, ClusterEvents};
use crate::group::index::IndexError;

/// The project crashes land in when nothing names another (a keyless `/submit`).
pub const DEFAULT_PROJECT: &str = "default";

/// How often a token's last-used time is written (at most once per this many seconds).
const LAST_USED_RESOLUTION: i64 = 60;

/// How long a checked token is trusted without asking the database again. Revoking through this
/// server takes effect at once; revoking from another process (the CLI) or node, within this.
pub const TOKEN_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// A product whose crashes are grouped and triaged together.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Project {
    /// Its number (crash and group rows refer to it).
    pub id: i64,
    /// Its short name in URLs and `?project=` (lowercase letters, digits, `-`).
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// When it was created, Unix seconds.
    pub created_at: i64,
}

/// An ingest key as listed (the key itself is shown only when created).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestKey {
    /// Its identifier, for revoking.
    pub id: String,
    /// The project its crashes are filed under.
    pub project_id: i64,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// An API token as listed and as a request's caller (never the secret itself).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Token {
    /// Its identifier, for listing and revoking.
    pub id: String,
    /// A label saying who or what holds it.
    pub name: String,
    /// What it allows.
    #[serde(serialize_with = "scope_names")]
    pub scopes: Vec<Scope>,
    /// The projects it is limited to; `None` means every project.
    pub projects: Option<Vec<i64>>,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// When it stops working, if ever.
    pub expires_at: Option<i64>,
    /// When it was last used (to a minute).
    pub last_used_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

fn scope_names<S: serde::Serializer>(scopes: &[Scope], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(scopes.iter().map(|scope| scope.as_str()))
}

impl Token {
    /// Whether it grants `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether it may act on `project_id`.
    pub fn covers(&self, project_id: i64) -> bool {
        self.projects
            .as_ref()
            .is_none_or(|projects| projects.contains(&project_id))
    }
}

/// What a token is created with.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Its label.
    pub name: String,
    /// What it allows (at least one).
    pub scopes: Vec<Scope>,
    /// Project slugs it is limited to; empty means every project.
    pub projects: Vec<String>,
    /// Days until it expires; `None` never.
    pub expires_in_days: Option<u32>,
}

/// Why a presented token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token has this secret.
    Unknown,
    /// It was revoked.
    Revoked,
    /// It expired.
    Expired,
}

impl AuthFailure {
    /// What to tell the caller.
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Unknown => "unknown token",
            AuthFailure::Revoked => "this token was revoked",
            AuthFailure::Expired => "this token has expired",
        }
    }
}

/// Why a project operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The database failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A request the registry refuses, with what to do instead.
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for ProjectError {
    fn from(e: sqlx::Error) -> ProjectError {
        ProjectError::Index(IndexError::Database(e))
    }
}

fn project_from(row: &AnyRow) -> Result<Project, sqlx::Error> {
    Ok(Project {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn token_from(row: &AnyRow) -> Result<Token, sqlx::Error> {
    let scopes: String = row.try_get("scopes")?;
    let projects: Option<String> = row.try_get("projects")?;
    Ok(Token {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        // Scopes were validated when the token was made; a name this build does not know grants
        // nothing.
        scopes: scopes
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect(),
        projects: projects.map(|p| {
            p.split_whitespace()
                .filter_map(|id| id.parse().ok())
                .collect()
        }),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub(super) const TOKEN_COLUMNS: &str =
    "id, name, token_digest, scopes, projects, created_at, expires_at, last_used_at, revoked_at";

/// A slug from a display name: lowercase ASCII letters and digits, other runs become `-`.
fn slug_of(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').chars().take(48).collect()
}

/// A small cache of recent answers, forgotten after [`TOKEN_RECHECK`].
fn recent<V: Clone + Send + Sync + 'static>() -> moka::future::Cache<String, V> {
    moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(TOKEN_RECHECK)
        .build()
}

/// Projects, ingest keys and tokens.
#[derive(Clone)]
pub struct Registry {
    pub(super) pool: AnyPool,
    /// Tokens checked in the last [`TOKEN_RECHECK`], by digest (every API request presents one;
    /// asking the database each time would cost more than a small crash's processing); `None`
    /// for a secret no token has (a new token's secret is random, so no one presented it
    /// before it existed: an unknown answer cannot go stale, and a flood of wrong secrets
    /// asks the database once each).
    checked: moka::future::Cache<String, Option<Token>>,
    /// Projects found in the last [`TOKEN_RECHECK`], by slug or number (projects are never
    /// renamed or deleted, so only the delay of a new one matters, and misses are not kept).
    projects: moka::future::Cache<String, Project>,
    /// Ingest keys checked in the last [`TOKEN_RECHECK`], by digest, with their project; `None`
    /// for a key no project has, as for tokens (an SDK sending a DSN's public key to an open
    /// server presents the same unknown key with every envelope).
    keys: moka::future::Cache<String, Option<Project>>,
    /// Where revocations are announced, so other nodes drop their cached answers at once.
    events: Arc<ClusterEvents>,
}

impl Registry {
    /// The registry in the crash index's database (`CrashIndex::pool`), announcing
    /// revocations on `events`.
    pub fn new(pool: AnyPool, events: Arc<ClusterEvents>) -> Registry {
        Registry {
            pool,
            checked: recent(),
            projects: recent(),
            keys: recent(),
            events,
        }
    }

    /// Forgets every cached answer (another node revoked something).
    pub fn forget_cached(&self) {
        self.checked.invalidate_all();
        self.projects.invalidate_all();
        self.keys.invalidate_all();
    }

    /// Tells other nodes that credentials changed (a failure is logged: their caches still
    /// expire within [`TOKEN_RECHECK`]).
    async fn announce(&self) {
        if let Err(e) = self.events.publish(&Change::Access).await {
            tracing::warn!(error = %e, "could not announce a revocation to other nodes");
        }
    }

    /// Creates a project named `name`; its slug is derived from the name.
    pub async fn create_project(&self, name: &str) -> Result<Project, ProjectError> {
        let name = name.trim();
        let slug = slug_of(name);
        if slug.is_empty() {
            return Err(ProjectError::Invalid(format!(
                "cannot make a project slug from {name:?}: use letters or digits"
            )));
        }
        if self.project(&slug).await?.is_some() {
            return Err(ProjectError::Invalid(format!(
                "a project with slug {slug:?} already exists"
            )));
        }
        let row = sqlx::query(
            "INSERT INTO projects (slug, name, created_at) VALUES ($1, $2, $3) \
             RETURNING id, slug, name, created_at",
        )
        .bind(slug.as_str())
        .bind(name)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(project_from(&row)?)
    }

    /// Every project, oldest first.
    pub async fn projects(&self) -> Result<Vec<Project>, IndexError> {
        let rows = sqlx::query("SELECT id, slug, name, created_at FROM projects ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(project_from).collect::<Result<_, _>>()?)
    }

    /// The project with this slug, or this number (Sentry DSNs name projects by number).
    pub async fn project(&self, slug_or_id: &str) -> Result<Option<Project>, IndexError> {
        if let Some(project) = self.projects.get(slug_or_id).await {
            return Ok(Some(project));
        }
        let row = match slug_or_id.parse::<i64>() {
            Ok(id) => {
                sqlx::query("SELECT id, slug, name, created_at FROM projects WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
            }
            Err(_) => {
                sqlx::query("SELECT id, slug, name, created_at FROM projects WHERE slug = $1")
                    .bind(slug_or_id)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        let project = row.as_ref().map(project_from).transpose()?;
        if let Some(project) = &project {
            self.projects
                .insert(slug_or_id.to_owned(), project.clone())
                .await;
        }
        Ok(project)
    }

    /// The project with this number.
    pub async fn project_by_id(&self, id: i64) -> Result<Option<Project>, IndexError> {
        self.project(&id.to_string()).await
    }

    /// A new ingest key for `project`: returns it (shown once) and its listing.
    pub async fn create_ingest_key(
        &self,
        project: &Project,
    ) -> Result<(String, IngestKey), IndexError> {
        // Hex only: Sentry DSNs carry the key as the URL's user name.
        let secret = new_secret("");
        let key = IngestKey {
            id: new_id("key_"),
            project_id: project.id,
            created_at: now(),
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO ingest_keys (id, project_id, key_digest, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key.id.as_str())
        .bind(key.project_id)
        .bind(digest(&secret))
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok((secret, key))
    }

    /// The ingest keys of `project`.
    pub async fn ingest_keys(&self, project: &Project) -> Result<Vec<IngestKey>, IndexError> {
        let rows = sqlx::query(
            "SELECT id, project_id, created_at, revoked_at FROM ingest_keys WHERE project_id = $1 ORDER BY created_at, id",
        )
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IngestKey {
                    id: r.try_get("id")?,
                    project_id: r.try_get("project_id")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(IndexError::from)
    }

    /// Revokes an ingest key; `false` when there is no such (unrevoked) key.
    pub async fn revoke_ingest_key(&self, id: &str) -> Result<bool, IndexError> {
        let done = sqlx::query(
            "UPDATE ingest_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.keys.invalidate_all();
        self.announce().await;
        Ok(done.rows_affected() > 0)
    }

    /// The project a presented ingest key files crashes under; `None` for an unknown or
    /// revoked key.
    pub async fn project_of_key(&self, secret: &str) -> Result<Option<Project>, IndexError> {
        let wanted = digest(secret);
        if let Some(known) = self.keys.get(&wanted).await {
            return Ok(known);
        }
        let row = sqlx::query(
            "SELECT k.key_digest AS key_digest, p.id AS id, p.slug AS slug, p.name AS name, \
             p.created_at AS created_at FROM ingest_keys k JOIN projects p ON p.id = k.project_id \
             WHERE k.key_digest = $1 AND k.revoked_at IS NULL",
        )
        .bind(wanted.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let project = match row {
            Some(row) if digests_match(&row.try_get::<String, _>("key_digest")?, &wanted) => {
                Some(project_from(&row)?)
            }
            _ => None,
        };
        self.keys.insert(wanted, project.clone()).await;
        Ok(project)
    }

    /// Creates a token: returns the secret (shown once) and its listing.
    pub async fn create_token(&self, new: &NewToken) -> Result<(String, Token), ProjectError> {
        if new.scopes.is_empty() {
            return Err(ProjectError::Invalid(
                "a token needs at least one scope".to_owned(),
            ));
        }
        let mut project_ids = Vec::new();
        for slug in &new.projects {
            let project = self.project(slug).await?.ok_or_else(|| {
                ProjectError::Invalid(format!(
                    "no project {slug:?} (see `faultline project list`)"
                ))
            })?;
            project_ids.push(project.id);
        }
        let mut scopes = new.scopes.clone();
        scopes.sort();
        scopes.dedup();
        let created_at = now();
        let token = Token {
            id: new_id("tok_"),
            name: new.name.clone(),
            scopes,
            projects: (!project_ids.is_empty()).then_some(project_ids),
            created_at,
            expires_at: new
                .expires_in_days
                .map(|days| created_at + i64::from(days) * 86_400),
            last_used_at: None,
            revoked_at: None,
        };
        let secret = new_secret("flt_");
        let scope_text: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
        let project_text = token
            .projects
            .as_ref()
            .map(|ids| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" "));
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_digest, scopes, projects, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id.as_str())
        .bind(token.name.as_str())
        .bind(digest(&secret))
        .bind(scope_text.join(" "))
        .bind(project_text)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&self.pool)
        .await?;
        Ok((secret, token))
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<Token>, IndexError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token_from).collect::<Result<_, _>>()?)
    }

    /// Revokes a token; `false` when there is no such (unrevoked) token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, IndexError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.checked.invalidate_all();
        self.announce().await;
        Ok(done.rows_affected() > 0)
    }

    /// Whether some usable token has the `admin` scope.
    pub async fn has_admin_token(&self) -> Result<bool, IndexError> {
        let t = now();
        Ok(self.tokens().await?.iter().any(|tok| {
            tok.allows(Scope::Admin)
                && tok.revoked_at.is_none()
                && tok.expires_at.is_none_or(|e| e > t)
        }))
    }

    /// The token with this secret, if it is usable; records its use.
    pub async fn authenticate(
        &self,
        secret: &str,
    ) -> Result<Result<Token, AuthFailure>, IndexError> {
        let wanted = digest(secret);
        match self.checked.get(&wanted).await {
            // Checked within TOKEN_RECHECK (a revoked one is never kept); its expiry still
            // counts to the second.
            Some(Some(token)) if token.expires_at.is_some_and(|e| e <= now()) => {
                return Ok(Err(AuthFailure::Expired));
            }
            Some(Some(token)) => return Ok(Ok(token)),
            Some(None) => return Ok(Err(AuthFailure::Unknown)),
            None => {}
        }
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_digest = $1"
        ))
        .bind(wanted.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let row = match row {
            Some(row) if digests_match(&row.try_get::<String, _>("token_digest")?, &wanted) => row,
            _ => {
                self.checked.insert(wanted, None).await;
                return Ok(Err(AuthFailure::Unknown));
            }
        };
        let mut token = token_from(&row)?;
        let t = now();
        if token.revoked_at.is_some() {
            return Ok(Err(AuthFailure::Revoked));
        }
        if token.expires_at.is_some_and(|e| e <= t) {
            return Ok(Err(AuthFailure::Expired));
        }
        if token
            .last_used_at
            .is_none_or(|used| t - used >= LAST_USED_RESOLUTION)
        {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(t)
                .bind(token.id.as_str())
                .execute(&self.pool)
                .await?;
            token.last_used_at = Some(t);
        }
        self.checked.insert(wanted, Some(token.clone())).await;
        Ok(Ok(token))
    }
}

#[async_trait]
impl ChangeListener for Registry {
    async fn changed(&self, change: &Change) {
        if *change == Change::Access {
            self.forget_cached();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slug_of("My Game (PC)"), "my-game-pc");
        assert_eq!(slug_of("  --Launcher--  "), "launcher");
        assert_eq!(slug_of("日本"), "");
    }
}
