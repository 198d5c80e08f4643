//! What the hourly counts say: a release's health (sessions, users, crash-free rates, adoption,
//! the previous release), its hours, and a group's rate per release.

use serde::Serialize;
use sqlx::Row;

use super::{Health, HealthError};

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
    /// Distinct users (exact; see docs/HEALTH.md), or the users a launcher reported.
    pub users: i64,
    /// Users with a crashed session.
    pub crashed_users: i64,
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

fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (100.0 * part as f64 / whole as f64 * 1000.0).round() / 1000.0)
}

impl Health {
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
        let pool = &self.pool;
        let since = query.since.unwrap_or(0);
        let env = query.environment.clone().unwrap_or_default();
        let hours = sqlx::query(
            "SELECT hour, CAST(SUM(sessions) AS BIGINT) AS sessions, CAST(SUM(exited) AS BIGINT) AS exited, \
             CAST(SUM(errored) AS BIGINT) AS errored, CAST(SUM(abnormal) AS BIGINT) AS abnormal, CAST(SUM(crashed) AS BIGINT) AS crashed, \
             CAST(SUM(reported_users) AS BIGINT) AS reported FROM session_hours WHERE project_id = $1 \
             AND release = $2 AND ($3 = '' OR environment = $3) AND hour >= $4 \
             GROUP BY hour ORDER BY hour",
        )
        .bind(project_id)
        .bind(release)
        .bind(&env)
        .bind(since - since.rem_euclid(3600))
        .fetch_all(pool)
        .await?;
        let (mut sessions, mut crashed, mut abnormal, mut errored, mut ended, mut reported) =
            (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
        let mut points = Vec::with_capacity(hours.len());
        for row in &hours {
            let get = |name: &str| row.try_get::<i64, _>(name);
            let (s, c) = (get("sessions")?, get("crashed")?);
            sessions += s;
            crashed += c;
            abnormal += get("abnormal")?;
            errored += get("errored")?;
            ended += get("exited")? + get("errored")? + get("abnormal")? + c;
            reported = reported.max(get("reported")?);
            points.push(HourPoint {
                hour: get("hour")?,
                sessions: s,
                crashed: c,
            });
        }
        let users_row = sqlx::query(
            "SELECT COUNT(DISTINCT did) AS users, \
             COUNT(DISTINCT CASE WHEN crashed = 1 THEN did END) AS crashed_users \
             FROM session_users WHERE project_id = $1 AND release = $2 \
             AND ($3 = '' OR environment = $3) AND day >= $4",
        )
        .bind(project_id)
        .bind(release)
        .bind(&env)
        .bind(since - since.rem_euclid(86_400))
        .fetch_one(pool)
        .await?;
        let mut users: i64 = users_row.try_get("users")?;
        let crashed_users: i64 = users_row.try_get("crashed_users")?;
        let crash_reports: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM crashes WHERE project_id = $1 AND release = $2 \
             AND received_at >= $3",
        )
        .bind(project_id)
        .bind(release)
        .bind(since)
        .fetch_one(pool)
        .await?
        .try_get("n")?;
        if ended == 0 {
            // Usage reported by a launcher says nothing of how sessions ended: a crash report
            // stands for a crashed session.
            crashed = crash_reports.min(sessions);
        }
        if users == 0 {
            users = reported;
        }
        Ok(ReleaseHealth {
            release: release.to_owned(),
            crash_free_sessions: percent(sessions - crashed, sessions),
            crash_free_users: percent(users - crashed_users.min(users), users),
            adoption: self.adoption(project_id, release).await?,
            sessions,
            crashed,
            abnormal,
            errored,
            users,
            crashed_users,
            crash_reports,
            previous: None,
            hours: points,
        })
    }

    /// The release's share of the project's sessions in the last 24 hours.
    async fn adoption(&self, project_id: i64, release: &str) -> Result<Option<f64>, HealthError> {
        let day_ago = crate::clock::now() - 86_400;
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(sessions), 0) AS BIGINT) AS total, \
             CAST(COALESCE(SUM(CASE WHEN release = $2 THEN sessions ELSE 0 END), 0) AS BIGINT) AS mine \
             FROM session_hours WHERE project_id = $1 AND hour >= $3",
        )
        .bind(project_id)
        .bind(release)
        .bind(day_ago - day_ago.rem_euclid(3600))
        .fetch_one(&self.pool)
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

    /// The project's releases that have sessions.
    pub async fn releases_with_sessions(
        &self,
        project_id: i64,
    ) -> Result<Vec<String>, HealthError> {
        let rows = sqlx::query("SELECT DISTINCT release FROM session_hours WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(&self.pool)
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
        .fetch_all(&self.pool)
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
