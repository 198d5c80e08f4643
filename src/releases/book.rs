//! Releases, their heads, commits and deploys in the database (SQLite or Postgres, the same
//! SQL).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Deploy, NewRelease, Release, ReleaseCommit, ReleaseHead};

const RELEASE_COLUMNS: &str = "id, project_id, version, vcs_ref, url, created_at, released_at";
const COMMIT_COLUMNS: &str = "repository, sha, author_name, author_email, message, committed_at, \
     files, resolves_group";

/// A release in a list, with what it brought and what followed.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseSummary {
    /// The release.
    #[serde(flatten)]
    pub release: Release,
    /// Commits it brought.
    pub commits: i64,
    /// Deploys recorded.
    pub deploys: i64,
    /// Its first crash, Unix seconds.
    pub first_crash: Option<i64>,
    /// Crashes from it.
    pub crashes: i64,
    /// Groups whose first crash came from it.
    pub new_groups: i64,
}

pub(super) async fn upsert(
    pool: &AnyPool,
    project_id: i64,
    version: &str,
    new: &NewRelease,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO releases (project_id, version, vcs_ref, url, created_at, released_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (project_id, version) DO UPDATE SET \
         vcs_ref = COALESCE(excluded.vcs_ref, releases.vcs_ref), \
         url = COALESCE(excluded.url, releases.url), \
         released_at = COALESCE(excluded.released_at, releases.released_at)",
    )
    .bind(project_id)
    .bind(version)
    .bind(new.vcs_ref.as_deref())
    .bind(new.url.as_deref())
    .bind(crate::clock::now())
    .bind(new.released_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn release(
    pool: &AnyPool,
    project_id: i64,
    version: &str,
) -> Result<Option<Release>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE project_id = $1 AND version = $2"
    ))
    .bind(project_id)
    .bind(version)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(release_row).transpose()
}

/// A project's releases with their counts (only release `only` when it is not 0).
pub(super) async fn summaries(
    pool: &AnyPool,
    project_id: i64,
    only: i64,
) -> Result<Vec<ReleaseSummary>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.id, r.project_id, r.version, r.vcs_ref, r.url, r.created_at, r.released_at, \
         (SELECT COUNT(*) FROM release_commits c WHERE c.release_id = r.id) AS commits, \
         (SELECT COUNT(*) FROM deploys d WHERE d.release_id = r.id) AS deploys, \
         (SELECT MIN(x.received_at) FROM crashes x WHERE x.project_id = r.project_id \
            AND x.release = r.version) AS first_crash, \
         (SELECT COUNT(*) FROM crashes x WHERE x.project_id = r.project_id \
            AND x.release = r.version) AS crashes, \
         (SELECT COUNT(*) FROM crash_groups g WHERE g.project_id = r.project_id \
            AND g.first_release = r.version AND g.merged_into IS NULL) AS new_groups \
         FROM releases r WHERE r.project_id = $1 AND ($2 = 0 OR r.id = $2)",
    )
    .bind(project_id)
    .bind(only)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ReleaseSummary {
                release: release_row(row)?,
                commits: row.try_get("commits")?,
                deploys: row.try_get("deploys")?,
                first_crash: row.try_get("first_crash")?,
                crashes: row.try_get("crashes")?,
                new_groups: row.try_get("new_groups")?,
            })
        })
        .collect()
}

pub(super) async fn update(
    pool: &AnyPool,
    id: i64,
    url: Option<&str>,
    released_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE releases SET url = COALESCE($1, url), released_at = COALESCE($2, released_at) \
         WHERE id = $3",
    )
    .bind(url)
    .bind(released_at)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Replaces a release's heads and commits in one transaction, and marks the suspects of the
/// project's groups stale (their inputs changed).
pub(super) async fn replace_commits(
    pool: &AnyPool,
    release: &Release,
    heads: &[ReleaseHead],
    commits: &[ReleaseCommit],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for table in ["release_heads", "release_commits"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE release_id = $1"))
            .bind(release.id)
            .execute(&mut *tx)
            .await?;
    }
    for head in heads {
        sqlx::query(
            "INSERT INTO release_heads (release_id, repository, head_commit, previous_commit) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(release.id)
        .bind(&head.repository)
        .bind(&head.head_commit)
        .bind(head.previous_commit.as_deref())
        .execute(&mut *tx)
        .await?;
    }
    let mut seen = std::collections::HashSet::new();
    for (position, commit) in commits.iter().enumerate() {
        if !seen.insert((&commit.repository, &commit.sha)) {
            continue;
        }
        sqlx::query(
            "INSERT INTO release_commits (release_id, repository, sha, position, author_name, \
             author_email, message, committed_at, files, resolves_group) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(release.id)
        .bind(&commit.repository)
        .bind(&commit.sha)
        .bind(position as i64)
        .bind(commit.author_name.as_deref())
        .bind(commit.author_email.as_deref())
        .bind(commit.message.as_deref())
        .bind(commit.committed_at)
        .bind(commit.files.join("\n"))
        .bind(commit.resolves_group)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE group_suspects SET stale = 1 WHERE group_id IN \
         (SELECT id FROM crash_groups WHERE project_id = $1)",
    )
    .bind(release.project_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Every release of a project with a head in `repository`, and that head.
pub(super) async fn heads_in(
    pool: &AnyPool,
    project_id: i64,
    repository: &str,
) -> Result<Vec<(Release, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.id, r.project_id, r.version, r.vcs_ref, r.url, r.created_at, r.released_at, \
         h.head_commit FROM releases r JOIN release_heads h ON h.release_id = r.id \
         WHERE r.project_id = $1 AND h.repository = $2",
    )
    .bind(project_id)
    .bind(repository)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((release_row(row)?, row.try_get("head_commit")?)))
        .collect()
}

pub(super) async fn heads(
    pool: &AnyPool,
    release_id: i64,
) -> Result<Vec<ReleaseHead>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT repository, head_commit, previous_commit FROM release_heads \
         WHERE release_id = $1 ORDER BY repository",
    )
    .bind(release_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ReleaseHead {
                repository: row.try_get("repository")?,
                head_commit: row.try_get("head_commit")?,
                previous_commit: row.try_get("previous_commit")?,
            })
        })
        .collect()
}

pub(super) async fn commits(
    pool: &AnyPool,
    release_id: i64,
) -> Result<Vec<ReleaseCommit>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COMMIT_COLUMNS} FROM release_commits WHERE release_id = $1 ORDER BY position"
    ))
    .bind(release_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(commit_row).collect()
}

pub(super) async fn fixes_of(
    pool: &AnyPool,
    group_id: i64,
) -> Result<Vec<(String, ReleaseCommit)>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT r.version, {} FROM release_commits c JOIN releases r ON r.id = c.release_id \
         WHERE c.resolves_group = $1 ORDER BY r.created_at",
        COMMIT_COLUMNS
            .split(", ")
            .map(|c| format!("c.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(group_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("version")?, commit_row(row)?)))
        .collect()
}

pub(super) async fn add_deploy(
    pool: &AnyPool,
    release_id: i64,
    environment: &str,
    name: Option<&str>,
    url: Option<&str>,
    started_at: Option<i64>,
    finished_at: i64,
) -> Result<Deploy, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO deploys (release_id, environment, name, url, started_at, finished_at, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         RETURNING id, environment, name, url, started_at, finished_at",
    )
    .bind(release_id)
    .bind(environment)
    .bind(name)
    .bind(url)
    .bind(started_at)
    .bind(finished_at)
    .bind(crate::clock::now())
    .fetch_one(pool)
    .await?;
    deploy_row(&row)
}

pub(super) async fn deploys(pool: &AnyPool, release_id: i64) -> Result<Vec<Deploy>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, environment, name, url, started_at, finished_at FROM deploys \
         WHERE release_id = $1 ORDER BY finished_at DESC, id DESC",
    )
    .bind(release_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(deploy_row).collect()
}

fn release_row(row: &AnyRow) -> Result<Release, sqlx::Error> {
    Ok(Release {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        version: row.try_get("version")?,
        vcs_ref: row.try_get("vcs_ref")?,
        url: row.try_get("url")?,
        created_at: row.try_get("created_at")?,
        released_at: row.try_get("released_at")?,
    })
}

fn commit_row(row: &AnyRow) -> Result<ReleaseCommit, sqlx::Error> {
    let files: String = row.try_get("files")?;
    Ok(ReleaseCommit {
        repository: row.try_get("repository")?,
        sha: row.try_get("sha")?,
        author_name: row.try_get("author_name")?,
        author_email: row.try_get("author_email")?,
        message: row.try_get("message")?,
        committed_at: row.try_get("committed_at")?,
        files: files.lines().map(str::to_owned).collect(),
        resolves_group: row.try_get("resolves_group")?,
    })
}

fn deploy_row(row: &AnyRow) -> Result<Deploy, sqlx::Error> {
    Ok(Deploy {
        id: row.try_get("id")?,
        environment: row.try_get("environment")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
