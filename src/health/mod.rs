//! Release health: the denominator of crash counts. Sentry SDKs' session items and usage
//! reported by launchers are recorded as hourly counts per project, release and environment
//! (`record.rs`, group commit); from them, per release: sessions, users, crash-free sessions and
//! users, adoption, and the change against the previous release; per group: crashes per 1,000
//! sessions and the share of the release's users it hit (`stats.rs`). See docs/HEALTH.md.

pub mod record;
pub mod session;
mod statements;
mod stats;
mod users;

use sqlx::AnyPool;

use crate::group::index::sessions::SESSION_MAX_AGE_SECS;
use crate::group::index::CrashIndex;

use record::Recorder;
use session::SessionItems;
pub use stats::{GroupRate, HealthQuery, HealthSummary, HourPoint, ReleaseHealth};

/// How far ahead of the server's clock a session may say it started.
const SESSION_MAX_AHEAD_SECS: i64 = 86_400;

/// Why release health failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The database failed.
    #[error("release health: {0}")]
    Database(#[from] sqlx::Error),
    /// Recording failed (nothing was acknowledged).
    #[error("sessions could not be recorded: {0}")]
    Record(String),
}

/// Sessions in, health out.
pub struct Health {
    /// The session tables (`CrashIndex::sessions_pool`).
    sessions: AnyPool,
    /// The crash index (crash reports per release and group).
    crashes: AnyPool,
    recorder: Recorder,
}

impl Health {
    /// The service over the crash index's session tables and crashes; starts the session
    /// writer.
    pub fn new(index: &CrashIndex) -> Health {
        Health {
            recorder: Recorder::start(index.sessions_pool().clone()),
            sessions: index.sessions_pool().clone(),
            crashes: index.pool().clone(),
        }
    }

    /// Records a request's session items; returns once they are committed.
    /// Updates and aggregates of sessions that started more than `SESSION_MAX_AGE_SECS` ago
    /// are dropped (counted in `/metrics`), as Relay drops them: their session's state may be
    /// gone, and counting them could count the session twice. So are those that start more
    /// than a day from now (a clock that wrong says nothing true, and their states would wait
    /// that long to be pruned).
    pub async fn record(
        &self,
        project_id: i64,
        mut items: SessionItems,
    ) -> Result<(), HealthError> {
        let now = crate::clock::now();
        let counted = (now - SESSION_MAX_AGE_SECS)..=(now + SESSION_MAX_AHEAD_SECS);
        let arrived = items.updates.len() + items.buckets.len();
        items.updates.retain(|u| counted.contains(&u.started));
        items.buckets.retain(|b| counted.contains(&b.started));
        let dropped = arrived - items.updates.len() - items.buckets.len();
        if dropped > 0 {
            metrics::counter!("faultline_ingest_items_dropped_total", "type" => "session_out_of_time")
                .increment(dropped as u64);
        }
        if items.is_empty() {
            return Ok(());
        }
        let count = items.updates.len() + items.buckets.len() + items.usage.len();
        self.recorder
            .record(project_id, items)
            .await
            .map_err(HealthError::Record)?;
        metrics::counter!("faultline_session_items_total").increment(count as u64);
        Ok(())
    }
}
