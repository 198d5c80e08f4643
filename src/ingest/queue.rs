//! The persistent ingest queue, a table in the crash index database: `queued` → `processing` →
//! `processed` or `failed` (with the reason).
//!
//! Several nodes can share it. A claim leases rows to one node (`claimed_by`, `lease_until`):
//! on Postgres the claim skips rows another claim has locked (`FOR UPDATE SKIP LOCKED`), so two
//! workers never get the same crash; SQLite's single writer gives the same guarantee. A node
//! renews its leases while it works; rows whose lease ran out (their node died) go back to
//! `queued`, and a restarted node requeues what its previous life held. Since recording in the
//! crash index is keyed by crash ID, a crash processed twice is still indexed once.

use std::time::Duration;

use serde::Serialize;
use sqlx::{AnyPool, Row};

use crate::clock::{now, now_ms};
use crate::group::index::{placeholders, CrashIndex, Dialect, IndexError};

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
    /// When it was enqueued (acknowledged), Unix milliseconds; absent for rows queued by a
    /// version before it was kept.
    pub enqueued_ms: Option<i64>,
    /// Queued again by a reprocess: its recording replaces the crash's earlier record.
    pub reprocess: bool,
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

/// The queue, as one node sees it.
pub struct IngestQueue {
    pool: AnyPool,
    dialect: Dialect,
    node: String,
    lease: Duration,
    /// Crashes waiting for the next enqueue commit, and whether a committer is running.
    pending: std::sync::Arc<std::sync::Mutex<Pending>>,
}

/// The enqueue group commit's state: crashes that arrived since the running commit began
/// (the committer takes them all when it finishes), or none and no committer.
#[derive(Default)]
struct Pending {
    crashes: Vec<Waiting>,
    committing: bool,
}

/// A stored crash waiting for its enqueue commit, and who to tell how it went.
struct Waiting {
    crash_id: String,
    project_id: i64,
    raw_key: String,
    enqueued_ms: i64,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Rows per enqueue `INSERT` (7 parameters each, well under SQLite's limit of 32,766).
const ENQUEUE_ROWS: usize = 500;

/// The enqueue committer: commits everything pending, then everything that arrived meanwhile,
/// until nothing is pending. Crashes arriving during a commit wait for the next one only, not
/// for a turn each (a lock per caller made commits of one crash, each waiting its turn for the
/// database behind the index's writes).
async fn commit_enqueues(
    pool: AnyPool,
    dialect: Dialect,
    pending: std::sync::Arc<std::sync::Mutex<Pending>>,
) {
    loop {
        let batch = {
            let mut pending = pending.lock().expect("never poisoned");
            if pending.crashes.is_empty() {
                pending.committing = false;
                return;
            }
            std::mem::take(&mut pending.crashes)
        };
        let written = insert_queued(&pool, dialect, &batch)
            .await
            .map_err(|e| e.to_string());
        metrics::histogram!("faultline_ingest_enqueue_batch_crashes").record(batch.len() as f64);
        for waiting in batch {
            let _ = waiting.done.send(written.clone());
        }
    }
}

/// Commits `batch` to the queue in one transaction; on SQLite that one commit is fsync'd.
async fn insert_queued(
    pool: &AnyPool,
    dialect: Dialect,
    batch: &[Waiting],
) -> Result<(), IndexError> {
    let mut connection = pool.acquire().await?;
    if dialect == Dialect::Sqlite {
        // Held, so no other statement runs at FULL meanwhile.
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *connection)
            .await?;
    }
    let written = async {
        let t = now();
        let mut tx = sqlx::Connection::begin(&mut *connection).await?;
        for rows in batch.chunks(ENQUEUE_ROWS) {
            let sql = format!(
                "INSERT INTO ingest_queue (crash_id, project_id, raw_key, state, enqueued_at, \
                 updated_at, enqueued_ms) VALUES {}",
                placeholders(rows.len(), 7, 1)
            );
            let sql = dialect.statement(sql);
            let mut query = sqlx::query(&sql);
            for row in rows {
                query = query
                    .bind(row.crash_id.as_str())
                    .bind(row.project_id)
                    .bind(row.raw_key.as_str())
                    .bind("queued")
                    .bind(t)
                    .bind(t)
                    .bind(row.enqueued_ms);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, IndexError>(())
    }
    .await;
    if dialect == Dialect::Sqlite {
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *connection)
            .await?;
    }
    written
}

impl IngestQueue {
    /// The queue in the crash index's database, claimed from as `node` with leases of `lease`.
    pub fn new(index: &CrashIndex, node: impl Into<String>, lease: Duration) -> IngestQueue {
        IngestQueue {
            pool: index.pool().clone(),
            dialect: index.dialect(),
            node: node.into(),
            lease: lease.max(Duration::from_secs(1)),
            pending: Default::default(),
        }
    }

    /// How long a claim is leased for.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn lease_until(&self) -> i64 {
        now() + self.lease.as_secs() as i64
    }

    /// Adds a stored crash; once this returns, the crash will be processed even if the server
    /// is killed or the machine loses power: on SQLite the queue's commit is made with
    /// `synchronous = FULL` (the WAL is fsync'd), where the index's own writes use `NORMAL`
    /// (they can be redone from the stored crash); on Postgres every commit is durable.
    ///
    /// Crashes enqueued at the same time share one commit (one fsync): a committer task writes
    /// everything waiting, then everything that arrived meanwhile, so a client hanging up
    /// cannot cancel a commit other crashes wait for.
    pub async fn enqueue(
        &self,
        crash_id: &str,
        project_id: i64,
        raw_key: &str,
    ) -> Result<(), IndexError> {
        let started = std::time::Instant::now();
        let (done, result) = tokio::sync::oneshot::channel();
        let start_committer = {
            let mut pending = self.pending.lock().expect("never poisoned");
            pending.crashes.push(Waiting {
                crash_id: crash_id.to_owned(),
                project_id,
                raw_key: raw_key.to_owned(),
                enqueued_ms: now_ms(),
                done,
            });
            !std::mem::replace(&mut pending.committing, true)
        };
        if start_committer {
            let (pool, dialect) = (self.pool.clone(), self.dialect);
            tokio::spawn(commit_enqueues(
                pool,
                dialect,
                std::sync::Arc::clone(&self.pending),
            ));
        }
        let outcome = result.await;
        metrics::histogram!("faultline_ingest_enqueue_seconds")
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(IndexError::Broken(format!("could not enqueue: {e}"))),
            Err(_) => Err(IndexError::Broken(
                "the enqueue commit was interrupted".into(),
            )),
        }
    }

    /// At start-up: puts back in the queue the rows this node held before it stopped (it is
    /// not working on them any more), then any whose lease ran out. Returns how many.
    pub async fn recover(&self) -> Result<u64, IndexError> {
        let mine = sqlx::query(
            "UPDATE ingest_queue SET state = 'queued', claimed_by = NULL, lease_until = NULL \
             WHERE state = 'processing' AND claimed_by = $1",
        )
        .bind(self.node.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(mine + self.requeue_expired().await?)
    }

    /// Puts back in the queue the rows whose lease ran out (their node died or hangs), and
    /// rows left `processing` without a lease by a version before leases. Returns how many.
    pub async fn requeue_expired(&self) -> Result<u64, IndexError> {
        Ok(sqlx::query(
            "UPDATE ingest_queue SET state = 'queued', claimed_by = NULL, lease_until = NULL \
             WHERE state = 'processing' AND (lease_until IS NULL OR lease_until < $1)",
        )
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Extends the lease of every crash this node is processing; returns how many.
    pub async fn renew(&self) -> Result<u64, IndexError> {
        Ok(sqlx::query(
            "UPDATE ingest_queue SET lease_until = $1 WHERE state = 'processing' AND claimed_by = $2",
        )
        .bind(self.lease_until())
        .bind(self.node.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Claims up to `n` of the oldest queued crashes, leased to this node, oldest first. On
    /// Postgres, rows another claim is taking are skipped rather than waited for (or, without
    /// `SKIP LOCKED`, handed out twice).
    pub async fn claim_many(&self, n: usize) -> Result<Vec<QueueEntry>, IndexError> {
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE ingest_queue SET state = 'processing', attempts = attempts + 1, \
             claimed_by = $1, lease_until = $2, updated_at = $3 \
             WHERE crash_id IN (SELECT crash_id FROM ingest_queue WHERE state = 'queued' \
                                ORDER BY enqueued_at, enqueued_ms, crash_id LIMIT $4{lock}) \
             RETURNING crash_id, project_id, raw_key, state, attempts, error, enqueued_at, enqueued_ms, reprocess"
        );
        let rows = sqlx::query(&sql)
            .bind(self.node.as_str())
            .bind(self.lease_until())
            .bind(now())
            .bind(n.max(1) as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut entries = rows.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
        entries.sort_by(|a, b| {
            (a.enqueued_at, a.enqueued_ms, &a.crash_id).cmp(&(
                b.enqueued_at,
                b.enqueued_ms,
                &b.crash_id,
            ))
        });
        Ok(entries)
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
            "UPDATE ingest_queue SET state = $1, error = $2, claimed_by = NULL, lease_until = NULL, \
             updated_at = $3 WHERE crash_id = $4",
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
            "SELECT crash_id, project_id, raw_key, state, attempts, error, enqueued_at, enqueued_ms, reprocess FROM ingest_queue WHERE crash_id = $1",
        )
        .bind(crash_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| entry(&r)).transpose()
    }

    /// Queues a crash again so that it is regrouped with whatever symbols exist now. Its
    /// record stays in the crash index until the new processing's replaces it (in the
    /// recording's transaction), so a reprocess that fails leaves the crash where it was.
    /// `None` if there is no such crash.
    pub async fn reprocess(&self, crash_id: &str) -> Result<Option<QueueEntry>, IndexError> {
        sqlx::query(
            "UPDATE ingest_queue SET state = 'queued', error = NULL, reprocess = 1, updated_at = $1 \
             WHERE crash_id = $2 AND state IN ('processed', 'failed')",
        )
        .bind(now())
        .bind(crash_id)
        .execute(&self.pool)
        .await?;
        self.entry(crash_id).await
    }

    /// Crashes that were missing symbols for `debug_id` (newest first, at most `limit`).
    pub async fn missing(&self, debug_id: &str, limit: i64) -> Result<Vec<String>, IndexError> {
        let rows = sqlx::query(
            "SELECT cm.crash_id FROM missing_symbol_set_modules m \
             JOIN crash_missing_symbol_sets cm ON cm.set_id = m.set_id \
             JOIN ingest_queue q ON q.crash_id = cm.crash_id \
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
        enqueued_ms: row.try_get("enqueued_ms")?,
        reprocess: row.try_get::<i64, _>("reprocess")? != 0,
    })
}
