//! Releases: versions of a project, the commits each brought (per repository, from the
//! previous release's head to its own), and where they were deployed, as sentry-cli and
//! `faultline release` record them. A commit whose message says `Fixes FAULTLINE-12` resolves
//! group 12 in the release that brought it.

mod book;

use std::sync::Arc;

use serde::Serialize;

use crate::code::{Code, CodeAt, CodeError};
use crate::group::index::{GroupPatch, GroupState};
use crate::triage::Triage;
pub use book::ReleaseSummary;

/// Commits one release range may bring (a range past this keeps its newest commits).
pub const MAX_RANGE_COMMITS: usize = 10_000;
/// Commits one request may list.
pub const MAX_GIVEN_COMMITS: usize = 10_000;
/// The longest version string.
const MAX_VERSION_CHARS: usize = 200;

/// A release of one project.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    /// ID.
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// Its version (`game@2.1.0`, `2.1.0+build.7`).
    pub version: String,
    /// The VCS ref it was built from, as given.
    pub vcs_ref: Option<String>,
    /// A link to it, as given.
    pub url: Option<String>,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Released (finalized), Unix seconds.
    pub released_at: Option<i64>,
}

/// A release's head in one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseHead {
    /// The repository's name.
    pub repository: String,
    /// The release's commit.
    pub head_commit: String,
    /// Where its range starts (excluded).
    pub previous_commit: Option<String>,
}

/// One commit a release brought.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseCommit {
    /// The repository's name.
    pub repository: String,
    /// Full SHA (or as given, when the repository is not mirrored).
    pub sha: String,
    /// Author name.
    pub author_name: Option<String>,
    /// Author email.
    pub author_email: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// When it landed, Unix seconds.
    pub committed_at: Option<i64>,
    /// Paths it changed.
    pub files: Vec<String>,
    /// The group it says it fixes.
    pub resolves_group: Option<i64>,
}

impl ReleaseCommit {
    /// The first line of its message.
    pub fn summary(&self) -> &str {
        self.message
            .as_deref()
            .and_then(|m| m.lines().next())
            .unwrap_or("")
    }
}

/// A deploy of a release.
#[derive(Debug, Clone, Serialize)]
pub struct Deploy {
    /// ID.
    pub id: i64,
    /// `production`, `staging`…
    pub environment: String,
    /// A name, as given.
    pub name: Option<String>,
    /// A link, as given.
    pub url: Option<String>,
    /// Started, Unix seconds.
    pub started_at: Option<i64>,
    /// Finished, Unix seconds.
    pub finished_at: i64,
}

/// A release to create (or, when it exists, to complete).
#[derive(Debug, Clone, Default)]
pub struct NewRelease {
    /// Its version.
    pub version: String,
    /// The VCS ref.
    pub vcs_ref: Option<String>,
    /// A link.
    pub url: Option<String>,
    /// Released at (Unix seconds).
    pub released_at: Option<i64>,
}

/// A head given for a repository: `commit` may be a range `from..to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadRef {
    /// The repository's name.
    pub repository: String,
    /// The head commit, or `from..to`.
    pub commit: String,
    /// Where the range starts, when `commit` is not a range.
    pub previous_commit: Option<String>,
}

/// Why a release request failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The database failed.
    #[error("releases: {0}")]
    Database(#[from] sqlx::Error),
    /// Repositories failed.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// A request that cannot be carried out as sent.
    #[error("{0}")]
    Invalid(String),
    /// No such release.
    #[error("{0}")]
    NotFound(String),
}

/// Releases, their commits and deploys.
pub struct Releases {
    pool: sqlx::AnyPool,
    code: Arc<Code>,
    triage: Arc<Triage>,
    /// `Fixes FAULTLINE-12` (the configured prefix).
    resolves: regex::Regex,
}

impl Releases {
    /// The service over the index's database, resolving commit ranges in `code`'s mirrors and
    /// resolving groups through `triage`.
    pub fn new(
        pool: sqlx::AnyPool,
        code: Arc<Code>,
        triage: Arc<Triage>,
        resolve_prefix: &str,
    ) -> Releases {
        let pattern = format!(
            r"(?i)\b(?:fix(?:es|ed)?|close[sd]?|resolve[sd]?)\s*:?\s+{}-(\d{{1,18}})\b",
            regex::escape(resolve_prefix)
        );
        Releases {
            pool,
            code,
            triage,
            resolves: regex::Regex::new(&pattern).expect("the pattern is escaped"),
        }
    }

    /// Creates a release of a project, or completes the one that exists (a given link or date
    /// replaces the stored one).
    pub async fn create(&self, project_id: i64, new: &NewRelease) -> Result<Release, ReleaseError> {
        let version = new.version.trim();
        if version.is_empty()
            || version.chars().count() > MAX_VERSION_CHARS
            || version.chars().any(char::is_control)
            || matches!(version, "." | "..")
            || version.contains('/')
        {
            return Err(ReleaseError::Invalid(format!(
                "a release version is 1 to {MAX_VERSION_CHARS} printable characters without `/`"
            )));
        }
        book::upsert(&self.pool, project_id, version, new).await?;
        self.get(project_id, version)
            .await?
            .ok_or_else(|| ReleaseError::NotFound(format!("release {version:?} vanished")))
    }

    /// A release of a project.
    pub async fn get(
        &self,
        project_id: i64,
        version: &str,
    ) -> Result<Option<Release>, ReleaseError> {
        Ok(book::release(&self.pool, project_id, version).await?)
    }

    /// A project's releases with their counts, newest version first.
    pub async fn list(&self, project_id: i64) -> Result<Vec<ReleaseSummary>, ReleaseError> {
        let mut list = book::summaries(&self.pool, project_id, 0).await?;
        list.sort_by(|a, b| newest_first(&a.release, &b.release));
        Ok(list)
    }

    /// One release with its counts.
    pub async fn summary(&self, release: &Release) -> Result<Option<ReleaseSummary>, ReleaseError> {
        Ok(book::summaries(&self.pool, release.project_id, release.id)
            .await?
            .pop())
    }

    /// Marks a release released (finalized) at `at`, and changes its link.
    pub async fn update(
        &self,
        release: &Release,
        url: Option<&str>,
        released_at: Option<i64>,
    ) -> Result<(), ReleaseError> {
        book::update(&self.pool, release.id, url, released_at).await?;
        Ok(())
    }

    /// Sets a release's heads: each range resolved in the repository's mirror (fetched when it
    /// lacks a commit) into the commits it brought; a head without a range starts where the
    /// project's previous release's head in that repository is.
    pub async fn set_heads(&self, release: &Release, refs: &[HeadRef]) -> Result<(), ReleaseError> {
        let mut commits = Vec::new();
        let mut heads = Vec::new();
        for given in refs {
            let repo = self
                .code
                .repository_by_name(&given.repository)
                .await?
                .ok_or_else(|| {
                    ReleaseError::Invalid(format!(
                        "no repository {:?}; register it with `faultline repo add` or POST /api/v1/repositories",
                        given.repository
                    ))
                })?;
            let (from, to) = match given.commit.split_once("..") {
                Some((from, to)) => (Some(from.to_owned()), to.to_owned()),
                None => (given.previous_commit.clone(), given.commit.clone()),
            };
            let head = self.code.resolve_commit(&repo, &to).await?.ok_or_else(|| {
                ReleaseError::Invalid(format!("{} has no commit {to:?}", repo.name))
            })?;
            let previous = match from {
                Some(from) => Some(self.code.resolve_commit(&repo, &from).await?.ok_or_else(
                    || ReleaseError::Invalid(format!("{} has no commit {from:?}", repo.name)),
                )?),
                None => self.previous_head(release, &repo.name).await?,
            };
            let log = self
                .code
                .mirror(&repo)
                .log(previous.as_deref(), &head, MAX_RANGE_COMMITS)
                .await
                .map_err(CodeError::from)?;
            commits.extend(log.into_iter().map(|c| ReleaseCommit {
                repository: repo.name.clone(),
                sha: c.sha,
                author_name: Some(c.author_name),
                author_email: Some(c.author_email),
                message: Some(c.message),
                committed_at: Some(c.committed_at),
                files: c.files,
                resolves_group: None,
            }));
            heads.push(ReleaseHead {
                repository: repo.name.clone(),
                head_commit: head,
                previous_commit: previous,
            });
        }
        self.store_commits(release, heads, commits).await
    }

    /// Sets a release's commits as a client listed them (sentry-cli `set-commits --local`):
    /// newest first; the first of each repository is its head.
    pub async fn set_commits(
        &self,
        release: &Release,
        commits: Vec<ReleaseCommit>,
    ) -> Result<(), ReleaseError> {
        if commits.len() > MAX_GIVEN_COMMITS {
            return Err(ReleaseError::Invalid(format!(
                "at most {MAX_GIVEN_COMMITS} commits per request"
            )));
        }
        let mut heads: Vec<ReleaseHead> = Vec::new();
        for commit in &commits {
            if !heads.iter().any(|h| h.repository == commit.repository) {
                heads.push(ReleaseHead {
                    repository: commit.repository.clone(),
                    head_commit: commit.sha.clone(),
                    previous_commit: None,
                });
            }
        }
        self.store_commits(release, heads, commits).await
    }

    /// Stores a release's heads and commits (replacing what it had), marks the project's
    /// groups' suspects stale, and resolves the groups the commits say they fix.
    async fn store_commits(
        &self,
        release: &Release,
        heads: Vec<ReleaseHead>,
        mut commits: Vec<ReleaseCommit>,
    ) -> Result<(), ReleaseError> {
        for commit in &mut commits {
            commit.resolves_group = commit
                .message
                .as_deref()
                .and_then(|m| self.resolves.captures(m))
                .and_then(|c| c[1].parse().ok());
        }
        book::replace_commits(&self.pool, release, &heads, &commits).await?;
        for commit in commits.iter().filter(|c| c.resolves_group.is_some()) {
            let group = commit.resolves_group.unwrap_or_default();
            self.resolve_group(release, group, &commit.sha).await;
        }
        Ok(())
    }

    /// Resolves a group in a release because one of its commits says it fixes it (a group of
    /// another project, or one already resolved, is left alone).
    async fn resolve_group(&self, release: &Release, group_id: i64, sha: &str) {
        let group = match self.triage.group(group_id).await {
            Ok(Some(group)) if group.project_id == release.project_id => group,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "could not read a group a commit fixes");
                return;
            }
        };
        if group.state == GroupState::Resolved {
            return;
        }
        let patch = GroupPatch {
            state: Some(GroupState::Resolved),
            resolved_in: Some(Some(release.version.clone())),
            ..Default::default()
        };
        match self.triage.change_group(group_id, &patch, None).await {
            Ok(_) => {
                tracing::info!(group = group_id, commit = %sha, release = %release.version, "group resolved by a commit")
            }
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "could not resolve a group a commit fixes")
            }
        }
    }

    /// The head, in a repository, of the project's newest release older than `release` that
    /// has one.
    async fn previous_head(
        &self,
        release: &Release,
        repository: &str,
    ) -> Result<Option<String>, ReleaseError> {
        let mut older: Vec<(Release, String)> =
            book::heads_in(&self.pool, release.project_id, repository)
                .await?
                .into_iter()
                .filter(|(other, _)| newest_first(release, other).is_lt())
                .collect();
        older.sort_by(|a, b| newest_first(&a.0, &b.0));
        Ok(older.into_iter().next().map(|(_, head)| head))
    }

    /// The project's newest release older than `release` that has commits.
    pub async fn previous_with_commits(
        &self,
        release: &Release,
    ) -> Result<Option<(Release, Vec<ReleaseHead>)>, ReleaseError> {
        let mut older = Vec::new();
        for summary in self.list(release.project_id).await? {
            if summary.commits > 0 && newest_first(release, &summary.release).is_lt() {
                older.push(summary.release);
            }
        }
        let Some(previous) = older.into_iter().next() else {
            return Ok(None);
        };
        let heads = self.heads(previous.id).await?;
        Ok(Some((previous, heads)))
    }

    /// A release's heads.
    pub async fn heads(&self, release_id: i64) -> Result<Vec<ReleaseHead>, ReleaseError> {
        Ok(book::heads(&self.pool, release_id).await?)
    }

    /// A release's commits, newest first.
    pub async fn commits(&self, release_id: i64) -> Result<Vec<ReleaseCommit>, ReleaseError> {
        Ok(book::commits(&self.pool, release_id).await?)
    }

    /// The commits (of any release of the project) that say they fix a group, with the
    /// release that brought each.
    pub async fn fixes_of(
        &self,
        group_id: i64,
    ) -> Result<Vec<(String, ReleaseCommit)>, ReleaseError> {
        Ok(book::fixes_of(&self.pool, group_id).await?)
    }

    /// Where a release's code is: its head in each repository.
    pub async fn code_at(
        &self,
        project_id: i64,
        version: &str,
    ) -> Result<Vec<CodeAt>, ReleaseError> {
        let Some(release) = self.get(project_id, version).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .heads(release.id)
            .await?
            .into_iter()
            .map(|h| CodeAt {
                repository: h.repository,
                commit: h.head_commit,
            })
            .collect())
    }

    /// The source lines around a crash's frames: stored sources first, then the repositories
    /// at the crash's release's heads.
    pub async fn source_context(
        &self,
        symbols: &crate::symbols::SymbolStore,
        project_id: i64,
        release: Option<&str>,
        view: &crate::pipeline::CrashView<'_>,
    ) -> Result<crate::code::context::SourceContext, ReleaseError> {
        let heads = match release {
            Some(version) => self.code_at(project_id, version).await?,
            None => Vec::new(),
        };
        Ok(self
            .code
            .source_context(symbols, project_id, view, &heads)
            .await?)
    }

    /// Records a deploy of a release.
    pub async fn add_deploy(
        &self,
        release: &Release,
        environment: &str,
        name: Option<&str>,
        url: Option<&str>,
        started_at: Option<i64>,
        finished_at: Option<i64>,
    ) -> Result<Deploy, ReleaseError> {
        let environment = environment.trim();
        if environment.is_empty()
            || environment.len() > 64
            || environment.chars().any(char::is_control)
        {
            return Err(ReleaseError::Invalid(
                "a deploy needs an environment of 1 to 64 printable characters".into(),
            ));
        }
        let finished_at = finished_at.unwrap_or_else(crate::clock::now);
        Ok(book::add_deploy(
            &self.pool,
            release.id,
            environment,
            name,
            url,
            started_at,
            finished_at,
        )
        .await?)
    }

    /// A release's deploys, newest first.
    pub async fn deploys(&self, release_id: i64) -> Result<Vec<Deploy>, ReleaseError> {
        Ok(book::deploys(&self.pool, release_id).await?)
    }
}

/// Orders releases newest first: by version where the two compare (as regressions do), else by
/// when they were created.
pub fn newest_first(a: &Release, b: &Release) -> std::cmp::Ordering {
    crate::group::version::compare(&b.version, &a.version)
        .filter(|o| o.is_ne())
        .unwrap_or_else(|| (b.created_at, b.id).cmp(&(a.created_at, a.id)))
}
