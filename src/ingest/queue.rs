//! The persistent ingest queue, a table in the crash index database: `queued` → `processing` →
//! `processed` or `failed` (with the reason). Rows left in `processing` by a killed server are
//! requeued at start-up; since recording in the crash index is keyed by crash ID, a crash
//! processed twice is still indexed once.

use serde::Serialize;
use sqlx::{AnyPool, Row};

use crate::group::index::{CrashIndex, IndexError};

/// A queue row.
#[derive(Debug, Clone, Serialize)]
pub struct QueueEntry {
    /// The crash.
    pub crash_id: String,
    /// The project it was filed under.
    pub project_id: i64,
    /// Its `raw.json` key.
    pub raw_key: String,
    /// `queued`, `processing`, `processed` or `failed`.
    pub state: String,
    /// Processing attempts so far.
    pub attempts: i64,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// When it was enqueued, Unix seconds.
    pub enqueued_at: i64,
}

/// How many rows are in each state (for `/metrics`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueDepth {
    /// Waiting.
    pub queued: i64,
    /// Being processed now.
    pub processing: i64,
    /// Given up on.
    pub failed: i64,
    /// When the oldest crash still waiting was enqueued, Unix seconds.
    pub oldest_queued_at: Option<i64>,
}

/// The queue.
pub struct IngestQueue {
    pool: AnyPool,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl IngestQueue {
    /// The queue in the crash index's database.
    pub fn new(index: &CrashIndex) -> IngestQueue {
        IngestQueue {
            pool: index.pool().clone(),
        }
    }

    /// Adds a stored crash; once this returns, the crash will be processed even if the server
    /// is killed.
    pub async fn enqueue(
        &self,
        crash_id: &str,
        project_id: i64,
        raw_key: &str,
    ) -> Result<(), IndexError> {
        let t = now();
        sqlx::query(
            "INSERT INTO ingest_queue (crash_id, project_id, raw_key, state, enqueued_at, updated_at) \
             VALUES ($1, $2, $3, 'queued', $4, $5)",
        )
        .bind(crash_id)
        .bind(project_id)
        .bind(raw_key)
        .bind(t)
        .bind(t)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts rows a previous run left in `processing` back in the queue; returns how many.
    pub async fn recover(&self) -> Result<u64, IndexError> {
        Ok(
            sqlx::query("UPDATE ingest_queue SET state = 'queued' WHERE state = 'processing'")
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Claims the oldest queued crash, if any.
    pub async fn claim(&self) -> Result<Option<QueueEntry>, IndexError> {
        let row = sqlx::query(
            "UPDATE ingest_queue SET state = 'processing', attempts = attempts + 1, updated_at = $1 \
             WHERE crash_id = (SELECT crash_id FROM ingest_queue WHERE state = 'queued' \
                               ORDER BY enqueued_at, crash_id LIMIT 1) \
             RETURNING crash_id, project_id, raw_key, state, attempts, error, enqueued_at",
        )
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| entry(&r)).transpose()
    }

    /// Marks a crash processed, remembering which modules lacked symbols.
    pub async fn finish(
        &self,
        crash_id: &str,
        missing_debug_ids: &[String],
    ) -> Result<(), IndexError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM crash_missing_symbols WHERE crash_id = $1")
            .bind(crash_id)
            .execute(&mut *tx)
            .await?;
        for debug_id in missing_debug_ids {
            sqlx::query("INSERT INTO crash_missing_symbols (crash_id, debug_id) VALUES ($1, $2)")
                .bind(crash_id)
                .bind(debug_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE ingest_queue SET state = 'processed', error = NULL, updated_at = $1 WHERE crash_id = $2")
            .bind(now())
            .bind(crash_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a crash failed with its reason (it stays stored; reprocess retries it).
    pub async fn fail(&self, crash_id: &str, error: &str) -> Result<(), IndexError> {
        self.set_state(crash_id, "failed", error).await
    }

    /// Puts a crash back in the queue after a transient failure (storage unreachable).
    pub async fn retry_later(&self, crash_id: &str, error: &str) -> Result<(), IndexError> {
        self.set_state(crash_id, "queued", error).await
    }

    async fn set_state(&self, crash_id: &str, state: &str, error: &str) -> Result<(), IndexError> {
        sqlx::query(
            "UPDATE ingest_queue SET state = $1, error = $2, updated_at = $3 WHERE crash_id = $4",
        )
        .bind(state)
        .bind(error)
        .bind(now())
        .bind(crash_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One crash's row.
    pub async fn entry(&self, crash_id: &str) -> Result<Option<QueueEntry>, IndexError> {
        let row = sqlx::query(
            "SELECT crash_id, project_id, raw_key, state, attempts, error, enqueued_at FROM ingest_queue WHERE crash_id = $1",
        )
        .bind(crash_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| entry(&r)).transpose()
    }

    /// Queues a crash again, removing it from the crash index first (in one transaction), so
    /// that it is regrouped with whatever symbols exist now. `None` if there is no such crash.
    pub async fn reprocess(
        &self,
        index: &CrashIndex,
        crash_id: &str,
    ) -> Result<Option<QueueEntry>, IndexError> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT state FROM ingest_queue WHERE crash_id = $1")
            .bind(crash_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = exists else { return Ok(None) };
        let state: String = row.try_get("state")?;
        if state == "queued" || state == "processing" {
            drop(tx);
            return self.entry(crash_id).await;
        }
        index.forget(&mut tx, crash_id).await?;
        sqlx::query("UPDATE ingest_queue SET state = 'queued', error = NULL, updated_at = $1 WHERE crash_id = $2")
            .bind(now())
            .bind(crash_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.entry(crash_id).await
    }

    /// Crashes that were missing symbols for `debug_id` (newest first, at most `limit`).
    pub async fn missing(&self, debug_id: &str, limit: i64) -> Result<Vec<String>, IndexError> {
        let rows = sqlx::query(
            "SELECT m.crash_id FROM crash_missing_symbols m JOIN ingest_queue q ON q.crash_id = m.crash_id \
             WHERE m.debug_id = $1 AND q.state = 'processed' ORDER BY q.enqueued_at DESC LIMIT $2",
        )
        .bind(debug_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("crash_id"))
            .collect::<Result<_, _>>()?)
    }

    /// Rows per state.
    pub async fn depth(&self) -> Result<QueueDepth, IndexError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM ingest_queue GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut depth = QueueDepth {
            oldest_queued_at: sqlx::query(
                "SELECT MIN(enqueued_at) AS oldest FROM ingest_queue WHERE state = 'queued'",
            )
            .fetch_one(&self.pool)
            .await?
            .try_get("oldest")?,
            ..QueueDepth::default()
        };
        for row in rows {
            let state: String = row.try_get("state")?;
            let n: i64 = row.try_get("n")?;
            match state.as_str() {
                "queued" => depth.queued = n,
                "processing" => depth.processing = n,
                "failed" => depth.failed = n,
                _ => {}
            }
        }
        Ok(depth)
    }
}

fn entry(row: &sqlx::any::AnyRow) -> Result<QueueEntry, IndexError> {
    Ok(QueueEntry {
        crash_id: row.try_get("crash_id")?,
        project_id: row.try_get("project_id")?,
        raw_key: row.try_get("raw_key")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        error: row.try_get("error")?,
        enqueued_at: row.try_get("enqueued_at")?,
    })
}
