//! What the hourly counts say: a release's health (sessions, users, crash-free rates, adoption,
//! the previous release), its hours, and a group's rate per release.

use serde::Serialize;
use sqlx::Row;

use super::{Health, HealthError};
use crate::group::index::sessions::{all_release_counts, percent, session_counts, CountSources};

/// Which sessions a health figure covers.
#[derive(Debug, Clone, Default)]
pub struct HealthQuery {
    /// One environment, or all.
    pub environment: Option<String>,
    /// From this time (Unix seconds), or since the release's first session.
    pub since: Option<i64>,
}

/// One hour of a release.
#[derive(Debug, Clone, Serialize)]
pub struct HourPoint {
    /// The hour's start, Unix seconds.
    pub hour: i64,
    /// Sessions started.
    pub sessions: i64,
    /// Of them, crashed.
    pub crashed: i64,
}

/// A release's health.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseHealth {
    /// The release.
    pub release: String,
    /// Sessions started.
    pub sessions: i64,
    /// Sessions that crashed (status `crashed`; for releases whose sessions carry no status —
    /// usage reported by a launcher — the crash reports received, at most one per session).
    pub crashed: i64,
    /// Sessions that ended without a clean shutdown (shown apart: not crashes).
    pub abnormal: i64,
    /// Sessions with handled errors.
    pub errored: i64,
    /// Distinct users (exact up to 10,000, then estimated; see docs/HEALTH.md), or the users a
    /// launcher reported.
    pub users: i64,
    /// Users with a crashed session.
    pub crashed_users: i64,
    /// Whether `users` and `crashed_users` are HyperLogLog estimates (standard error 0.81 %).
    pub users_estimated: bool,
    /// Crash reports received from the release.
    pub crash_reports: i64,
    /// 100 × (1 − crashed / sessions); none without sessions.
    pub crash_free_sessions: Option<f64>,
    /// 100 × (1 − crashed users / users); none without users.
    pub crash_free_users: Option<f64>,
    /// Its share of the project's sessions of the last 24 hours, percent.
    pub adoption: Option<f64>,
    /// The previous release (by version) with sessions, for comparison.
    pub previous: Option<Box<ReleaseHealth>>,
    /// Its hours.
    pub hours: Vec<HourPoint>,
}

/// A release's headline figures.
#[derive(Debug, Clone, Serialize)]
pub struct HealthSummary {
    /// The release.
    pub release: String,
    /// Sessions started.
    pub sessions: i64,
    /// Crash-free sessions, percent.
    pub crash_free_sessions: Option<f64>,
    /// Crash-free users, percent.
    pub crash_free_users: Option<f64>,
    /// Share of the last 24 hours' sessions, percent.
    pub adoption: Option<f64>,
    /// Crash reports received.
    pub crash_reports: i64,
}

/// A group's rate in one release.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRate {
    /// The release.
    pub release: String,
    /// The group's crashes from it.
    pub crashes: i64,
    /// The release's sessions.
    pub sessions: i64,
    /// Crashes per 1,000 sessions.
    pub per_1000_sessions: Option<f64>,
    /// Distinct users the group's crashes came from.
    pub users_affected: i64,
    /// The release's users.
    pub release_users: i64,
    /// `users_affected` as a percentage of `release_users`.
    pub users_share: Option<f64>,
}

impl Health {
    /// Where release counts are read.
    fn sources(&self) -> CountSources<'_> {
        CountSources {
            sessions: &self.sessions,
            crashes: &self.crashes,
        }
    }

    /// A release's health, with the previous release's beside it.
    pub async fn release_health(
        &self,
        project_id: i64,
        release: &str,
        query: &HealthQuery,
    ) -> Result<ReleaseHealth, HealthError> {
        let mut health = self.one_release(project_id, release, query).await?;
        if let Some(previous) = self.previous_release(project_id, release).await? {
            health.previous = Some(Box::new(
                self.one_release(project_id, &previous, query).await?,
            ));
        }
        Ok(health)
    }

    async fn one_release(
        &self,
        project_id: i64,
        release: &str,
        query: &HealthQuery,
    ) -> Result<ReleaseHealth, HealthError> {
        let since = query.since.unwrap_or(0);
        let env = query.environment.clone().unwrap_or_default();
        let sources = self.sources();
        let counts = session_counts(sources, project_id, release, &env, since).await?;
        let usage = counts.ended == 0;
        let points = hour_points(sources, project_id, release, &env, since, usage).await?;
        Ok(ReleaseHealth {
            release: release.to_owned(),
            crash_free_sessions: counts.crash_free_sessions(),
            crash_free_users: counts.crash_free_users(),
            adoption: self.adoption(project_id, release).await?,
            sessions: counts.sessions,
            crashed: counts.crashed_sessions(),
            abnormal: counts.abnormal,
            errored: counts.errored,
            users: counts.all_users(),
            crashed_users: counts.crashed_users,
            users_estimated: counts.users_estimated,
            crash_reports: counts.crash_reports,
            previous: None,
            hours: points,
        })
    }

    /// The release's share of the project's sessions in the last 24 hours.
    async fn adoption(&self, project_id: i64, release: &str) -> Result<Option<f64>, HealthError> {
        self.adoption_at(project_id, release, crate::clock::now())
            .await
    }

    /// The release's share of the project's sessions in the 24 hours up to `at` (the hour `at`
    /// is in included), percent.
    pub async fn adoption_at(
        &self,
        project_id: i64,
        release: &str,
        at: i64,
    ) -> Result<Option<f64>, HealthError> {
        let day_ago = at - 86_400;
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(sessions), 0) AS BIGINT) AS total, \
             CAST(COALESCE(SUM(CASE WHEN release = $2 THEN sessions ELSE 0 END), 0) AS BIGINT) AS mine \
             FROM session_hours WHERE project_id = $1 AND hour >= $3 AND hour <= $4",
        )
        .bind(project_id)
        .bind(release)
        .bind(day_ago - day_ago.rem_euclid(3600))
        .bind(at)
        .fetch_one(&self.sessions)
        .await?;
        Ok(percent(row.try_get("mine")?, row.try_get("total")?))
    }

    /// The newest release older than `release` (by version, as regressions compare them) that
    /// has sessions.
    async fn previous_release(
        &self,
        project_id: i64,
        release: &str,
    ) -> Result<Option<String>, HealthError> {
        let mut older: Vec<String> = self
            .releases_with_sessions(project_id)
            .await?
            .into_iter()
            .filter(|r| crate::group::version::is_newer(release, r))
            .collect();
        older.sort_by(|a, b| {
            crate::group::version::compare(b, a).unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(older.into_iter().next())
    }

    /// Every release of the project with sessions: its headline figures (the releases page),
    /// from the totals the writer keeps (one row per release) and the last 24 hours.
    pub async fn summaries(&self, project_id: i64) -> Result<Vec<HealthSummary>, HealthError> {
        let day_ago = crate::clock::now() - 86_400;
        let all = all_release_counts(self.sources(), project_id, day_ago).await?;
        let total_recent: i64 = all.values().map(|(_, recent)| recent).sum();
        let mut summaries: Vec<HealthSummary> = all
            .into_iter()
            .map(|(release, (counts, recent))| HealthSummary {
                release,
                sessions: counts.sessions,
                crash_free_sessions: counts.crash_free_sessions(),
                crash_free_users: counts.crash_free_users(),
                adoption: percent(recent, total_recent),
                crash_reports: counts.crash_reports,
            })
            .collect();
        summaries.sort_by(|a, b| {
            crate::group::version::compare(&b.release, &a.release)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(summaries)
    }

    /// The groups a release's crashes fell into, most crashes first (at most `limit`): group
    /// ID and crashes from the release.
    pub async fn groups_in_release(
        &self,
        project_id: i64,
        release: &str,
        limit: i64,
    ) -> Result<Vec<(i64, i64)>, HealthError> {
        let rows = sqlx::query(
            "SELECT group_id, COUNT(*) AS n FROM crashes WHERE project_id = $1 AND release = $2 \
             GROUP BY group_id ORDER BY n DESC, group_id LIMIT $3",
        )
        .bind(project_id)
        .bind(release)
        .bind(limit)
        .fetch_all(&self.crashes)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.try_get("group_id").ok()?, r.try_get("n").ok()?)))
            .collect())
    }

    /// The project's releases that have sessions.
    pub async fn releases_with_sessions(
        &self,
        project_id: i64,
    ) -> Result<Vec<String>, HealthError> {
        let rows = sqlx::query("SELECT DISTINCT release FROM session_hours WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(&self.sessions)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>("release").ok())
            .collect())
    }

    /// A group's crashes per 1,000 sessions and share of users, per release it crashed in.
    pub async fn group_rates(&self, group_id: i64) -> Result<Vec<GroupRate>, HealthError> {
        let rows = sqlx::query(
            "SELECT c.release AS release, COUNT(*) AS crashes, \
             COUNT(DISTINCT c.user_id) AS users_affected, MIN(c.project_id) AS project_id \
             FROM crashes c WHERE c.group_id = $1 AND c.release IS NOT NULL GROUP BY c.release",
        )
        .bind(group_id)
        .fetch_all(&self.crashes)
        .await?;
        let mut rates = Vec::with_capacity(rows.len());
        for row in &rows {
            let release: String = row.try_get("release")?;
            let project_id: i64 = row.try_get("project_id")?;
            let health = self
                .one_release(project_id, &release, &HealthQuery::default())
                .await?;
            let crashes: i64 = row.try_get("crashes")?;
            let users_affected: i64 = row.try_get("users_affected")?;
            rates.push(GroupRate {
                per_1000_sessions: (health.sessions > 0).then(|| {
                    (crashes as f64 * 1000.0 / health.sessions as f64 * 1000.0).round() / 1000.0
                }),
                users_share: percent(users_affected, health.users),
                sessions: health.sessions,
                release_users: health.users,
                release,
                crashes,
                users_affected,
            });
        }
        rates.sort_by(|a, b| {
            crate::group::version::compare(&b.release, &a.release)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(rates)
    }
}

/// A release's sessions and crashed sessions per hour. For usage (sessions without statuses)
/// the crashed ones are the hour's crash reports, at most one per session, as in its figures.
async fn hour_points(
    CountSources { sessions, crashes }: CountSources<'_>,
    project_id: i64,
    release: &str,
    environment: &str,
    since: i64,
    usage: bool,
) -> Result<Vec<HourPoint>, sqlx::Error> {
    let hours = sqlx::query(
        "SELECT hour, CAST(SUM(sessions) AS BIGINT) AS sessions, \
         CAST(SUM(crashed) AS BIGINT) AS crashed FROM session_hours WHERE project_id = $1 \
         AND release = $2 AND ($3 = '' OR environment = $3) AND hour >= $4 \
         GROUP BY hour ORDER BY hour",
    )
    .bind(project_id)
    .bind(release)
    .bind(environment)
    .bind(since - since.rem_euclid(3600))
    .fetch_all(sessions)
    .await?;
    let mut points = hours
        .iter()
        .map(|row| {
            Ok(HourPoint {
                hour: row.try_get("hour")?,
                sessions: row.try_get("sessions")?,
                crashed: row.try_get("crashed")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    if usage && !points.is_empty() {
        let reports = sqlx::query(
            "SELECT received_at - (received_at % 3600) AS hour, COUNT(*) AS n FROM crashes \
             WHERE project_id = $1 AND release = $2 AND received_at >= $3 \
             GROUP BY received_at - (received_at % 3600)",
        )
        .bind(project_id)
        .bind(release)
        .bind(since)
        .fetch_all(crashes)
        .await?;
        for row in &reports {
            let (hour, n): (i64, i64) = (row.try_get("hour")?, row.try_get("n")?);
            if let Some(point) = points.iter_mut().find(|p| p.hour == hour) {
                point.crashed = n.min(point.sessions);
            }
        }
    }
    Ok(points)
}
