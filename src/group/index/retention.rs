//! What retention asks of the crash index: when each module's debug files last symbolicated a
//! crash, which crashes still hold a payload past its age, and marking those payloads deleted
//! (the crash row, its counts and its group stay); and the session states no update can
//! reach any more.

use std::collections::HashMap;

use sqlx::Row;

use super::sessions::SESSION_MAX_AGE_SECS;
use super::{placeholders, CrashIndex, IndexError};

/// Session states deleted per transaction (on SQLite the session writer waits meanwhile).
const PRUNE_CHUNK: i64 = 5_000;

/// A crash whose payload (dumps, attachments, processed result) is past its age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgedPayload {
    /// The crash.
    pub crash_id: String,
    /// When it was received, seconds since the Unix epoch (its files' folder is that day's).
    pub received_at: i64,
}

impl CrashIndex {
    /// When each module last symbolicated a crash: debug ID (store spelling) → seconds since the
    /// Unix epoch. Modules no crash has used are absent.
    pub async fn symbol_last_used(&self) -> Result<HashMap<String, i64>, IndexError> {
        let rows = sqlx::query("SELECT debug_id, last_used_at FROM symbol_usage")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("debug_id")?, row.try_get("last_used_at")?)))
            .collect()
    }

    /// Crashes received before `cutoff` whose payload was not deleted yet, oldest first, after
    /// `after` (the last of the previous page), at most `limit`. Crashes waiting in the ingest
    /// queue (queued or being processed) are left alone.
    pub async fn payloads_received_before(
        &self,
        cutoff: i64,
        after: Option<&AgedPayload>,
        limit: i64,
    ) -> Result<Vec<AgedPayload>, IndexError> {
        let (after_at, after_id) = after.map_or((i64::MIN, ""), |a| (a.received_at, &a.crash_id));
        let rows = sqlx::query(
            "SELECT id, received_at FROM crashes WHERE received_at < $1 \
             AND payload_expired_at IS NULL \
             AND (received_at > $2 OR (received_at = $3 AND id > $4)) \
             AND id NOT IN (SELECT crash_id FROM ingest_queue WHERE state IN ('queued', 'processing')) \
             ORDER BY received_at, id LIMIT $5",
        )
        .bind(cutoff)
        .bind(after_at)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AgedPayload {
                    crash_id: row.try_get("id")?,
                    received_at: row.try_get("received_at")?,
                })
            })
            .collect()
    }

    /// Records that these crashes' payloads were deleted at `now`: no processed result is kept
    /// (a kept payload moves to its group's dropped count), and, its dumps gone, the crash
    /// leaves the ingest queue (it cannot be reprocessed) and the missing-symbols lists.
    pub async fn expire_payloads(&self, crash_ids: &[String], now: i64) -> Result<(), IndexError> {
        let _writer = self.write.lock().await;
        for chunk in crash_ids.chunks(200) {
            let mut tx = self.begin_write().await?;
            let ids = placeholders(chunk.len(), 1, 1);
            // Groups lose kept payloads and gain dropped ones, one per crash that had one.
            let sql = format!(
                "SELECT group_id, COUNT(*) AS kept FROM crashes WHERE id IN ({ids}) \
                 AND payload_key IS NOT NULL GROUP BY group_id ORDER BY group_id"
            );
            let sql = self.dialect.statement(sql);
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            let kept = query.fetch_all(&mut *tx).await?;
            for row in &kept {
                let group_id: i64 = row.try_get("group_id")?;
                let count: i64 = row.try_get("kept")?;
                sqlx::query(
                    "UPDATE crash_groups SET payloads_kept = payloads_kept - $1, \
                     payloads_dropped = payloads_dropped + $2 WHERE id = $3",
                )
                .bind(count)
                .bind(count)
                .bind(group_id)
                .execute(&mut *tx)
                .await?;
            }
            let sql = format!(
                "UPDATE crashes SET payload_key = NULL, payload_expired_at = $1 WHERE id IN ({})",
                placeholders(chunk.len(), 1, 2)
            );
            let sql = self.dialect.statement(sql);
            let mut query = sqlx::query(&sql).bind(now);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            query.execute(&mut *tx).await?;
            for table in ["crash_missing_symbol_sets", "ingest_queue"] {
                let sql = format!("DELETE FROM {table} WHERE crash_id IN ({ids})");
                let sql = self.dialect.statement(sql);
                let mut query = sqlx::query(&sql);
                for id in chunk {
                    query = query.bind(id.as_str());
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Deletes the missing-symbol sets no crash points at any more (their crashes expired,
    /// deleted or reprocessed with the symbols) and that no batch used for a day, with their
    /// modules. Returns how many went.
    pub async fn sweep_missing_symbol_sets(&self, now: i64) -> Result<u64, IndexError> {
        let _writer = self.write.lock().await;
        let done = sqlx::query(
            "DELETE FROM missing_symbol_sets WHERE used_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM crash_missing_symbol_sets c WHERE c.set_id = missing_symbol_sets.id)",
        )
        .bind(now - 86_400)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes the states of sessions whose updates can no longer be counted at `now` (started
    /// more than `SESSION_MAX_AGE_SECS` before it: every update of them is dropped as it
    /// arrives), a chunk per transaction; with `dry_run` only counts them. Their hours, users
    /// and totals stay. Returns how many.
    pub async fn prune_session_states(&self, now: i64, dry_run: bool) -> Result<u64, IndexError> {
        // A state's hour is its start's, rounded down: the whole hour must be past the limit.
        let last_hour = now - SESSION_MAX_AGE_SECS - 3_600;
        if dry_run {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM session_states WHERE hour <= $1")
                .bind(last_hour)
                .fetch_one(&self.sessions)
                .await?
                .try_get("n")?;
            return Ok(n.max(0) as u64);
        }
        let mut pruned = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM session_states WHERE (project_id, sid) IN (SELECT project_id, sid \
                 FROM session_states WHERE hour <= $1 LIMIT $2)",
            )
            .bind(last_hour)
            .bind(PRUNE_CHUNK)
            .execute(&self.sessions)
            .await?;
            pruned += done.rows_affected();
            if done.rows_affected() < PRUNE_CHUNK as u64 {
                return Ok(pruned);
            }
        }
    }
}
