//! The code behind frames: repositories faultline keeps a mirror of (`git.rs`), where a frame's
//! path is in one (code mappings, `mappings.rs`), links to a line in the repository's web view
//! (`links.rs`), and the source lines around a frame (`context.rs`).
//!
//! Nothing here runs on the path of a crash being processed: mirrors are fetched by the
//! server's job and when a release names a commit they lack; a crash page asks for source
//! context when it is opened; suspect commits (`crate::suspects`) are computed beside.

pub mod context;
pub mod git;
pub mod links;
pub mod mappings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::config::CodeConfig;
use crate::group::index::CrashIndex;
use git::{Credential, GitError, Mirror};
use mappings::{CodeMapping, Derivation, MappingOrigin};

/// Why a code request failed.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The database failed.
    #[error("code: {0}")]
    Database(#[from] sqlx::Error),
    /// git failed (fetch, blame…).
    #[error(transparent)]
    Git(#[from] GitError),
    /// A request that cannot be carried out as sent (the message says what to fix).
    #[error("{0}")]
    Invalid(String),
    /// No such repository, mapping or release.
    #[error("{0}")]
    NotFound(String),
}

/// A repository as faultline keeps it (its credential stays inside this module).
#[derive(Debug, Clone, Serialize)]
pub struct Repository {
    /// ID.
    pub id: i64,
    /// The name releases use (`acme/game`).
    pub name: String,
    /// Where it is fetched from: a URL or a local folder.
    pub remote: String,
    /// The branch new commits are expected on.
    pub branch: String,
    /// The link to a line (`{commit}`, `{path}`, `{line}`), set or derived from the URL.
    pub web_url_template: Option<String>,
    /// `https_token` or `ssh_key` when a credential is kept (the secret is never shown).
    pub credential: Option<String>,
    /// Registered, Unix seconds.
    pub created_at: i64,
    /// Last fetched, Unix seconds.
    pub fetched_at: Option<i64>,
    /// Why the last fetch failed.
    pub fetch_error: Option<String>,
    #[serde(skip)]
    secret: Option<Credential>,
}

/// A repository to register.
#[derive(Debug, Clone)]
pub struct NewRepository {
    /// Its name.
    pub name: String,
    /// A URL or a local folder.
    pub remote: String,
    /// The branch (default `main`).
    pub branch: Option<String>,
    /// A link template, when the URL's shape is not a known host's.
    pub web_url_template: Option<String>,
    /// How to reach a private remote.
    pub credential: Option<Credential>,
}

/// A release's commit in one repository, where frames are looked up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CodeAt {
    /// The repository's name.
    pub repository: String,
    /// The commit (full SHA).
    pub commit: String,
}

/// A frame's file found in a repository.
#[derive(Debug, Clone, Serialize)]
pub struct Located {
    /// The repository.
    pub repository: String,
    /// The path in it.
    pub path: String,
    /// The commit read.
    pub commit: String,
    /// The mapping used (`derived` ones are stored the first time).
    pub mapping: CodeMapping,
}

/// Most files listed per commit kept in memory for deriving mappings.
const FILE_LISTS_CACHED: u64 = 64;

/// Bytes of file text kept in memory.
const TEXT_CACHE_BYTES: u64 = 64 << 20;

/// Repositories, their mirrors, and code mappings.
pub struct Code {
    pool: AnyPool,
    root: PathBuf,
    config: CodeConfig,
    /// Each repository's file list at a commit (deriving mappings reads it for every frame).
    files: moka::future::Cache<(i64, String), Arc<Vec<String>>>,
    /// Files' text at a commit (source context, suspects), bounded by bytes.
    texts: moka::future::Cache<(i64, String, String), Arc<str>>,
    /// One fetch per repository at a time on this node.
    fetching: std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

const REPO_COLUMNS: &str = "id, name, remote, branch, web_url_template, credential_kind, \
     credential, created_at, fetched_at, fetch_error";
const MAPPING_COLUMNS: &str = "m.id, m.project_id, m.repository_id, r.name AS repository, \
     m.stack_root, m.source_root, m.origin";

impl Code {
    /// The service over the index's database, keeping mirrors under `data_dir/repositories`.
    pub fn new(index: &CrashIndex, data_dir: &std::path::Path, config: CodeConfig) -> Code {
        Code {
            pool: index.pool().clone(),
            root: data_dir.join("repositories"),
            config,
            files: moka::future::Cache::new(FILE_LISTS_CACHED),
            texts: moka::future::Cache::builder()
                .weigher(|_, text: &Arc<str>| text.len().try_into().unwrap_or(u32::MAX))
                .max_capacity(TEXT_CACHE_BYTES)
                .build(),
            fetching: Default::default(),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &CodeConfig {
        &self.config
    }

    /// Registers a repository (its mirror is made by the first fetch).
    pub async fn add_repository(&self, new: NewRepository) -> Result<Repository, CodeError> {
        let name = new.name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(CodeError::Invalid(
                "a repository needs a name of 1 to 200 printable characters (`acme/game`)".into(),
            ));
        }
        let remote = new.remote.trim();
        if remote.is_empty() || remote.starts_with('-') || remote.chars().any(char::is_control) {
            return Err(CodeError::Invalid(
                "a repository needs a remote: a URL or a local folder".into(),
            ));
        }
        if reqwest::Url::parse(remote).is_ok_and(|url| url.password().is_some()) {
            return Err(CodeError::Invalid(
                "put the password or token in the credential, not in the URL (the URL is shown)"
                    .into(),
            ));
        }
        let branch = new.branch.as_deref().unwrap_or("main").trim().to_owned();
        if !git::safe_rev(&branch) {
            return Err(CodeError::Invalid(format!(
                "{branch:?} is not a branch name"
            )));
        }
        if self.repository_by_name(name).await?.is_some() {
            return Err(CodeError::Invalid(format!(
                "a repository named {name:?} exists"
            )));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO repositories (name, remote, branch, web_url_template, credential_kind, \
             credential, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {REPO_COLUMNS}"
        ))
        .bind(name)
        .bind(remote)
        .bind(&branch)
        .bind(new.web_url_template.as_deref())
        .bind(new.credential.as_ref().map(Credential::kind))
        .bind(new.credential.as_ref().map(Credential::secret))
        .bind(crate::clock::now())
        .fetch_one(&self.pool)
        .await?;
        Ok(repository(&row)?)
    }

    /// Every registered repository.
    pub async fn repositories(&self) -> Result<Vec<Repository>, CodeError> {
        let rows = sqlx::query(&format!(
            "SELECT {REPO_COLUMNS} FROM repositories ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(repository).collect::<Result<_, _>>()?)
    }

    /// A repository by name (case-insensitive, as sentry-cli matches them).
    pub async fn repository_by_name(&self, name: &str) -> Result<Option<Repository>, CodeError> {
        let rows = self.repositories().await?;
        Ok(rows.into_iter().find(|r| r.name.eq_ignore_ascii_case(name)))
    }

    /// Removes a repository, its mappings and its mirror.
    pub async fn remove_repository(&self, id: i64) -> Result<bool, CodeError> {
        let gone = sqlx::query("DELETE FROM repositories WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0;
        sqlx::query("DELETE FROM code_mappings WHERE repository_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        let _ = std::fs::remove_dir_all(self.root.join(id.to_string()));
        Ok(gone)
    }

    /// The mirror of a repository.
    pub fn mirror(&self, repo: &Repository) -> Mirror {
        Mirror::new(
            self.root.join(repo.id.to_string()),
            Duration::from_secs(self.config.git_timeout_secs.max(1)),
            repo.secret.clone(),
        )
    }

    /// Fetches a repository's mirror from its remote (one fetch per repository at a time) and
    /// records when, or why it failed; whether it brought anything.
    pub async fn fetch(&self, repo: &Repository) -> Result<bool, CodeError> {
        let lock = {
            let mut locks = self.fetching.lock().expect("fetch locks");
            Arc::clone(locks.entry(repo.id).or_default())
        };
        let _one = lock.lock().await;
        let result = self.mirror(repo).fetch(&repo.remote).await;
        let error = result.as_ref().err().map(ToString::to_string);
        sqlx::query("UPDATE repositories SET fetched_at = $1, fetch_error = $2 WHERE id = $3")
            .bind(crate::clock::now())
            .bind(error.as_deref())
            .bind(repo.id)
            .execute(&self.pool)
            .await?;
        if let Some(error) = &error {
            tracing::warn!(repository = %repo.name, %error, "repository fetch failed");
        }
        Ok(result?)
    }

    /// A commit's full SHA in a repository, fetching the mirror once when it lacks it.
    pub async fn resolve_commit(
        &self,
        repo: &Repository,
        rev: &str,
    ) -> Result<Option<String>, CodeError> {
        let mirror = self.mirror(repo);
        if let Some(sha) = mirror.resolve(rev).await? {
            return Ok(Some(sha));
        }
        if self.fetch(repo).await? {
            self.files.invalidate_all();
        }
        Ok(mirror.resolve(rev).await?)
    }

    /// A project's code mappings, in the order they are tried.
    pub async fn mappings(&self, project_id: i64) -> Result<Vec<CodeMapping>, CodeError> {
        let rows = sqlx::query(&format!(
            "SELECT {MAPPING_COLUMNS} FROM code_mappings m JOIN repositories r \
             ON r.id = m.repository_id WHERE m.project_id = $1"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        let mappings = rows.iter().map(mapping).collect::<Result<Vec<_>, _>>()?;
        Ok(mappings::ordered(mappings))
    }

    /// Sets a mapping (a person's replaces a derived one with the same stack root).
    pub async fn set_mapping(
        &self,
        project_id: i64,
        repository: &Repository,
        stack_root: &str,
        source_root: &str,
        origin: MappingOrigin,
    ) -> Result<CodeMapping, CodeError> {
        let stack_root = mappings::normalize(stack_root);
        let source_root = source_root.trim_matches('/').to_owned();
        if stack_root.len() > 1000 || source_root.len() > 1000 || source_root.contains("..") {
            return Err(CodeError::Invalid(
                "stack_root and source_root are paths of at most 1000 bytes, without `..`".into(),
            ));
        }
        // One statement, so two derivations of the same mapping at once (the suspects job and
        // an alert's) both succeed; a derived mapping never replaces a person's.
        sqlx::query(
            "INSERT INTO code_mappings (project_id, repository_id, stack_root, source_root, \
             origin, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (project_id, repository_id, stack_root) DO UPDATE SET \
             source_root = excluded.source_root, origin = excluded.origin, \
             created_at = excluded.created_at \
             WHERE code_mappings.origin <> 'user' OR excluded.origin = 'user'",
        )
        .bind(project_id)
        .bind(repository.id)
        .bind(&stack_root)
        .bind(&source_root)
        .bind(origin.as_str())
        .bind(crate::clock::now())
        .execute(&self.pool)
        .await?;
        self.mappings(project_id)
            .await?
            .into_iter()
            .find(|m| m.repository_id == repository.id && m.stack_root == stack_root)
            .ok_or_else(|| CodeError::NotFound("the mapping vanished as it was written".into()))
    }

    /// Removes a mapping of a project.
    pub async fn delete_mapping(&self, project_id: i64, id: i64) -> Result<bool, CodeError> {
        Ok(
            sqlx::query("DELETE FROM code_mappings WHERE id = $1 AND project_id = $2")
                .bind(id)
                .bind(project_id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Where a frame's file is in the repositories of a release: through a mapping, else
    /// through one derived from the repository's files at the release's commit (stored, so the
    /// next frame uses it). `Err(files)` names the files when the derivation was ambiguous.
    pub async fn locate(
        &self,
        project_id: i64,
        frame_path: &str,
        heads: &[CodeAt],
    ) -> Result<Result<Option<Located>, Vec<String>>, CodeError> {
        let mappings = self.mappings(project_id).await?;
        if let Some((mapping, path)) = mappings::map_path(&mappings, frame_path) {
            let Some(head) = heads
                .iter()
                .find(|h| h.repository.eq_ignore_ascii_case(&mapping.repository))
            else {
                return Ok(Ok(None));
            };
            return Ok(Ok(Some(Located {
                repository: mapping.repository.clone(),
                path,
                commit: head.commit.clone(),
                mapping: mapping.clone(),
            })));
        }
        for head in heads {
            let Some(repo) = self.repository_by_name(&head.repository).await? else {
                continue;
            };
            let files = self.files_at(&repo, &head.commit).await?;
            match mappings::derive(frame_path, &files) {
                Derivation::Found {
                    stack_root,
                    source_root,
                    ..
                } => {
                    let mapping = self
                        .set_mapping(
                            project_id,
                            &repo,
                            &stack_root,
                            &source_root,
                            MappingOrigin::Derived,
                        )
                        .await?;
                    let Some(path) = mapping.apply(frame_path) else {
                        continue;
                    };
                    return Ok(Ok(Some(Located {
                        repository: repo.name.clone(),
                        path,
                        commit: head.commit.clone(),
                        mapping,
                    })));
                }
                Derivation::Ambiguous { files } => return Ok(Err(files)),
                Derivation::None => continue,
            }
        }
        Ok(Ok(None))
    }

    /// A repository's file list at a commit (cached: it never changes).
    async fn files_at(
        &self,
        repo: &Repository,
        commit: &str,
    ) -> Result<Arc<Vec<String>>, CodeError> {
        let key = (repo.id, commit.to_owned());
        if let Some(files) = self.files.get(&key).await {
            return Ok(files);
        }
        let files = Arc::new(self.mirror(repo).files_at(commit).await?);
        self.files.insert(key, Arc::clone(&files)).await;
        Ok(files)
    }
}

fn repository(row: &AnyRow) -> Result<Repository, sqlx::Error> {
    let kind: Option<String> = row.try_get("credential_kind")?;
    let secret: Option<String> = row.try_get("credential")?;
    let credential = match (&kind, secret) {
        (Some(kind), Some(secret)) => Credential::from_stored(kind, secret),
        _ => None,
    };
    let remote: String = row.try_get("remote")?;
    let template: Option<String> = row.try_get("web_url_template")?;
    Ok(Repository {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        web_url_template: template.or_else(|| links::template_for(&remote)),
        remote,
        branch: row.try_get("branch")?,
        credential: credential.as_ref().map(|c| c.kind().to_owned()),
        created_at: row.try_get("created_at")?,
        fetched_at: row.try_get("fetched_at")?,
        fetch_error: row.try_get("fetch_error")?,
        secret: credential,
    })
}

fn mapping(row: &AnyRow) -> Result<CodeMapping, sqlx::Error> {
    let origin: String = row.try_get("origin")?;
    Ok(CodeMapping {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        repository_id: row.try_get("repository_id")?,
        repository: row.try_get("repository")?,
        stack_root: row.try_get("stack_root")?,
        source_root: row.try_get("source_root")?,
        origin: MappingOrigin::from_stored(&origin),
    })
}
