//! A release's session counts, as release health (`crate::health`) and alert rules
//! (`crash_free_below`, `rate_above`) both read them: one query over the hourly counts, one
//! over the distinct users, from the session tables (`CrashIndex::sessions_pool`), and the crash
//! reports from the index (a pool, or the recording transaction).

use sqlx::{AnyConnection, AnyPool, Row};

use super::user_sketch::{register_of, Histogram, ALL_TIME, EXACT_USERS, REGISTERS};

/// How long after it started a session's updates are still counted (Relay's limit): later
/// ones are dropped as they arrive, so a session's state (what makes its updates count once)
/// can be deleted once its hour is this far behind (`CrashIndex::prune_session_states`).
pub const SESSION_MAX_AGE_SECS: i64 = 5 * 86_400;

/// What a release's sessions say, over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// Sessions started.
    pub sessions: i64,
    /// Of them, crashed (as their status says).
    pub crashed: i64,
    /// Errored.
    pub errored: i64,
    /// Abnormal.
    pub abnormal: i64,
    /// Sessions whose final status is known (0: the sessions came as usage, with none).
    pub ended: i64,
    /// Distinct users.
    pub users: i64,
    /// Users with a crashed session.
    pub crashed_users: i64,
    /// Whether `users` and `crashed_users` are the sketches' estimates (past the exact limit).
    pub users_estimated: bool,
    /// The busiest hour's reported users (usage).
    pub reported_users: i64,
    /// Crash reports received from the release.
    pub crash_reports: i64,
}

impl SessionCounts {
    /// Crashed sessions: by status; for usage (no statuses), the crash reports, at most one
    /// per session.
    pub fn crashed_sessions(&self) -> i64 {
        if self.ended == 0 {
            self.crash_reports.min(self.sessions)
        } else {
            self.crashed
        }
    }

    /// Users: distinct `did`s, else the usage's reported users.
    pub fn all_users(&self) -> i64 {
        if self.users == 0 {
            self.reported_users
        } else {
            self.users
        }
    }

    /// Crash-free sessions, percent (none without sessions).
    pub fn crash_free_sessions(&self) -> Option<f64> {
        percent(self.sessions - self.crashed_sessions(), self.sessions)
    }

    /// Crash-free users, percent (none without users).
    pub fn crash_free_users(&self) -> Option<f64> {
        let users = self.all_users();
        percent(users - self.crashed_users.min(users), users)
    }
}

/// `part` of `whole` in percent, to three decimals.
pub fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (100.0 * part as f64 / whole as f64 * 1000.0).round() / 1000.0)
}

/// Where a release's counts are read: the session tables and the crash index (on SQLite two
/// files, `CrashIndex::sessions_pool` and `CrashIndex::pool`).
#[derive(Clone, Copy)]
pub struct CountSources<'a> {
    /// The session tables.
    pub sessions: &'a AnyPool,
    /// The crash index.
    pub crashes: &'a AnyPool,
}

/// The counts of `release` in `environment` (`""`: all) since `since` (Unix seconds).
pub async fn session_counts(
    CountSources { sessions, crashes }: CountSources<'_>,
    project_id: i64,
    release: &str,
    environment: &str,
    since: i64,
) -> Result<SessionCounts, sqlx::Error> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(sessions), 0) AS BIGINT) AS sessions, \
         CAST(COALESCE(SUM(crashed), 0) AS BIGINT) AS crashed, \
         CAST(COALESCE(SUM(errored), 0) AS BIGINT) AS errored, \
         CAST(COALESCE(SUM(abnormal), 0) AS BIGINT) AS abnormal, \
         CAST(COALESCE(SUM(exited + errored + abnormal + crashed), 0) AS BIGINT) AS ended, \
         CAST(COALESCE(MAX(reported_users), 0) AS BIGINT) AS reported \
         FROM session_hours WHERE project_id = $1 AND release = $2 \
         AND ($3 = '' OR environment = $3) AND hour >= $4",
    )
    .bind(project_id)
    .bind(release)
    .bind(environment)
    .bind(since - since.rem_euclid(3600))
    .fetch_one(sessions)
    .await?;
    let (users, crashed_users, users_estimated) =
        window_users(sessions, project_id, release, environment, since).await?;
    let reports = sqlx::query(
        "SELECT COUNT(*) AS n FROM crashes WHERE project_id = $1 AND release = $2 \
         AND received_at >= $3",
    )
    .bind(project_id)
    .bind(release)
    .bind(since)
    .fetch_one(crashes)
    .await?;
    Ok(SessionCounts {
        sessions: row.try_get("sessions")?,
        crashed: row.try_get("crashed")?,
        errored: row.try_get("errored")?,
        abnormal: row.try_get("abnormal")?,
        ended: row.try_get("ended")?,
        reported_users: row.try_get("reported")?,
        users,
        crashed_users,
        users_estimated,
        crash_reports: reports.try_get("n")?,
    })
}

/// The days' user sets of a window: `$1` project, `$2` release, `$3` environment (`''`: all),
/// `$4` the first day (`day >= 0` leaves the all-time set out).
const WINDOW: &str = "project_id = $1 AND release = $2 AND ($3 = '' OR environment = $3) \
     AND day >= $4 AND day >= 0";

/// Binds a window's `$1`–`$4` (see `WINDOW`).
fn bind_window<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    project_id: i64,
    release: &'q str,
    environment: &'q str,
    day: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(project_id)
        .bind(release)
        .bind(environment)
        .bind(day)
}

/// Distinct users and crashed users of `release` in `environment` (`""`: all) since `since`,
/// and whether they are estimates:
/// the all-time set's counts for all of it; else exact over the days' sets while none passed
/// the exact limit, else the union of their sketches (and the exact sets' users hashed in).
async fn window_users(
    sessions: &AnyPool,
    project_id: i64,
    release: &str,
    environment: &str,
    since: i64,
) -> Result<(i64, i64, bool), sqlx::Error> {
    if since <= 0 && environment.is_empty() {
        let row = sqlx::query(
            "SELECT users, crashed_users, sketched FROM session_user_sets WHERE project_id = $1 \
             AND release = $2 AND environment = $3 AND day = $4",
        )
        .bind(project_id)
        .bind(release)
        .bind(ALL_TIME.0)
        .bind(ALL_TIME.1)
        .fetch_optional(sessions)
        .await?;
        return match row {
            Some(row) => Ok((
                row.try_get("users")?,
                row.try_get("crashed_users")?,
                row.try_get::<i64, _>("sketched")? != 0,
            )),
            None => Ok((0, 0, false)),
        };
    }
    let day = since.max(0) - since.max(0).rem_euclid(86_400);
    let sketched: i64 = bind_window(
        sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM session_user_sets WHERE {WINDOW} AND sketched = 1"
        )),
        project_id,
        release,
        environment,
        day,
    )
    .fetch_one(sessions)
    .await?
    .try_get("n")?;
    if sketched == 0 {
        let row = sqlx::query(&format!(
            "SELECT COUNT(DISTINCT did) AS users, \
             COUNT(DISTINCT CASE WHEN crashed = 1 THEN did END) AS crashed_users \
             FROM session_users WHERE {WINDOW}"
        ))
        .bind(project_id)
        .bind(release)
        .bind(environment)
        .bind(day)
        .fetch_one(sessions)
        .await?;
        return Ok((row.try_get("users")?, row.try_get("crashed_users")?, false));
    }
    let (users, crashed_users) =
        sketched_window_users(sessions, project_id, release, environment, day).await?;
    Ok((users, crashed_users, true))
}

/// The union of a window's sets, some past the exact limit: their sketches' registers merged
/// by maximum, with the exact sets' users hashed in.
async fn sketched_window_users(
    sessions: &AnyPool,
    project_id: i64,
    release: &str,
    environment: &str,
    day: i64,
) -> Result<(i64, i64), sqlx::Error> {
    let mut registers = [vec![0u8; REGISTERS], vec![0u8; REGISTERS]];
    let ranks = bind_window(
        sqlx::query(&format!(
            "SELECT crashed, register, MAX(rank) AS rank FROM session_user_sketches \
         WHERE {WINDOW} GROUP BY crashed, register"
        )),
        project_id,
        release,
        environment,
        day,
    )
    .fetch_all(sessions)
    .await?;
    for row in &ranks {
        let (crashed, register, rank): (i64, i64, i64) = (
            row.try_get("crashed")?,
            row.try_get("register")?,
            row.try_get("rank")?,
        );
        if let Some(slot) = registers[usize::from(crashed != 0)].get_mut(register as usize) {
            *slot = (*slot).max(rank.clamp(0, 255) as u8);
        }
    }
    let exact = bind_window(
        sqlx::query(
            "SELECT u.did, u.crashed FROM session_users u JOIN session_user_sets s \
         ON s.project_id = u.project_id AND s.release = u.release \
         AND s.environment = u.environment AND s.day = u.day \
         WHERE s.sketched = 0 AND u.project_id = $1 AND u.release = $2 \
         AND ($3 = '' OR u.environment = $3) AND u.day >= $4 AND u.day >= 0",
        ),
        project_id,
        release,
        environment,
        day,
    )
    .fetch_all(sessions)
    .await?;
    for row in &exact {
        let did: String = row.try_get("did")?;
        let crashed: i64 = row.try_get("crashed")?;
        let (register, rank) = register_of(&did);
        registers[0][register] = registers[0][register].max(rank);
        if crashed != 0 {
            registers[1][register] = registers[1][register].max(rank);
        }
    }
    let [all, crashed] = registers;
    let users = Histogram::of(all).estimate();
    Ok((users, Histogram::of(crashed).estimate().min(users)))
}

/// A release's counts, all time, from the totals the session writer keeps: one row read by its
/// key and the release's crash reports by index (what alert rules evaluate while a crash is
/// recorded, so it stays cheap however many hours and users the release has).
pub async fn release_totals(
    sessions: &AnyPool,
    crashes: &mut AnyConnection,
    project_id: i64,
    release: &str,
) -> Result<SessionCounts, sqlx::Error> {
    let row = sqlx::query(
        "SELECT sessions, crashed, errored, abnormal, ended, reported_users, users, \
         crashed_users FROM session_releases WHERE project_id = $1 AND release = $2",
    )
    .bind(project_id)
    .bind(release)
    .fetch_optional(sessions)
    .await?;
    let Some(row) = row else {
        return Ok(SessionCounts::default());
    };
    let mut counts = totals_row(&row)?;
    if counts.ended == 0 {
        counts.crash_reports =
            sqlx::query("SELECT COUNT(*) AS n FROM crashes WHERE project_id = $1 AND release = $2")
                .bind(project_id)
                .bind(release)
                .fetch_one(&mut *crashes)
                .await?
                .try_get("n")?;
    }
    Ok(counts)
}

/// A `session_releases` row as counts (crash reports not included).
fn totals_row(row: &sqlx::any::AnyRow) -> Result<SessionCounts, sqlx::Error> {
    Ok(SessionCounts {
        sessions: row.try_get("sessions")?,
        crashed: row.try_get("crashed")?,
        errored: row.try_get("errored")?,
        abnormal: row.try_get("abnormal")?,
        ended: row.try_get("ended")?,
        reported_users: row.try_get("reported_users")?,
        users: row.try_get("users")?,
        crashed_users: row.try_get("crashed_users")?,
        users_estimated: row.try_get::<i64, _>("users")? >= EXACT_USERS,
        crash_reports: 0,
    })
}

/// The counts of every release of a project with sessions, all time (from the totals the
/// writer keeps: one row per release), with each release's sessions of the last 24 hours.
pub async fn all_release_counts(
    CountSources { sessions, crashes }: CountSources<'_>,
    project_id: i64,
    day_ago: i64,
) -> Result<std::collections::HashMap<String, (SessionCounts, i64)>, sqlx::Error> {
    let mut all: std::collections::HashMap<String, (SessionCounts, i64)> = Default::default();
    let totals = sqlx::query(
        "SELECT release, sessions, crashed, errored, abnormal, ended, reported_users, users, \
         crashed_users FROM session_releases WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_all(sessions)
    .await?;
    for row in &totals {
        all.insert(row.try_get("release")?, (totals_row(row)?, 0));
    }
    let recent = sqlx::query(
        "SELECT release, CAST(SUM(sessions) AS BIGINT) AS recent FROM session_hours \
         WHERE project_id = $1 AND hour >= $2 GROUP BY release",
    )
    .bind(project_id)
    .bind(day_ago - day_ago.rem_euclid(3600))
    .fetch_all(sessions)
    .await?;
    for row in &recent {
        let release: String = row.try_get("release")?;
        if let Some(entry) = all.get_mut(&release) {
            entry.1 = row.try_get("recent")?;
        }
    }
    let reports = sqlx::query(
        "SELECT release, COUNT(*) AS n FROM crashes WHERE project_id = $1 \
         AND release IS NOT NULL GROUP BY release",
    )
    .bind(project_id)
    .fetch_all(crashes)
    .await?;
    for row in &reports {
        let release: String = row.try_get("release")?;
        if let Some(entry) = all.get_mut(&release) {
            entry.0.crash_reports = row.try_get("n")?;
        }
    }
    Ok(all)
}
