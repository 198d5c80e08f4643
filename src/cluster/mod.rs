//! What one node tells the others: changes that make something another node keeps in memory
//! (or in its local copies) stale. A symbol file uploaded through node A must be used by node
//! B's very next crash; a token revoked on A must stop working on B.
//!
//! Each change is a row in `cluster_events` (the index database every node shares). Nodes read
//! the rows other nodes wrote every `cluster.event_poll_secs`, and on Postgres (several servers)
//! also before every queue claim and synchronous dump and at once when a `NOTIFY
//! faultline_events` arrives. Notifications are only a
//! wake-up: one lost while a listener reconnects is still read by the next poll. Reading is
//! idempotent (dropping a cache entry twice is harmless), so each read looks back over a window
//! rather than trusting ID order (Postgres IDs can commit out of order). Rows older than a day
//! are deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::{AnyPool, Row};

use crate::clock::now;
use crate::group::index::{CrashIndex, Dialect, IndexError};

/// The Postgres notification channel.
const CHANNEL: &str = "faultline_events";
/// How far back each read looks, seconds: a change committed this long after it was stamped
/// is still seen (and the poll fallback covers notifications lost for this long).
const LOOKBACK_SECS: i64 = 120;
/// How long events are kept, seconds.
const KEEP_SECS: i64 = 86_400;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Symbol files were stored for this debug ID: cached symbols and local copies of its
    /// derived caches are stale.
    Symbols(String),
    /// Tokens, ingest keys or projects changed: cached credential checks are stale.
    Access,
}

impl Change {
    fn kind(&self) -> &'static str {
        match self {
            Change::Symbols(_) => "symbols",
            Change::Access => "access",
        }
    }

    fn subject(&self) -> &str {
        match self {
            Change::Symbols(id) => id,
            Change::Access => "",
        }
    }

    fn parse(kind: &str, subject: String) -> Option<Change> {
        match kind {
            "symbols" => Some(Change::Symbols(subject)),
            "access" => Some(Change::Access),
            _ => None,
        }
    }
}

/// Something a node keeps that another node's change can make stale.
#[async_trait]
pub trait ChangeListener: Send + Sync {
    /// Drops whatever `change` made stale.
    async fn changed(&self, change: &Change);
}

/// This node's end of the cluster's change log.
pub struct ClusterEvents {
    pool: AnyPool,
    dialect: Dialect,
    node: String,
    listeners: Mutex<Vec<Arc<dyn ChangeListener>>>,
    /// Events already applied here, by ID, with their time (pruned after the lookback), and
    /// when the latest read started.
    applied: tokio::sync::Mutex<Applied>,
}

#[derive(Default)]
struct Applied {
    events: HashMap<i64, i64>,
    last_read: Option<Instant>,
}

impl ClusterEvents {
    /// The change log in the index's database, as node `node`.
    pub fn new(index: &CrashIndex, node: impl Into<String>) -> ClusterEvents {
        ClusterEvents {
            pool: index.pool().clone(),
            dialect: index.dialect(),
            node: node.into(),
            listeners: Mutex::new(Vec::new()),
            applied: tokio::sync::Mutex::new(Applied::default()),
        }
    }

    /// Adds a listener for other nodes' changes.
    pub fn listen(&self, listener: Arc<dyn ChangeListener>) {
        self.listeners
            .lock()
            .expect("listener list is never poisoned")
            .push(listener);
    }

    /// Tells the other nodes about `change` (this node has already applied it itself).
    pub async fn publish(&self, change: &Change) -> Result<(), IndexError> {
        let row = sqlx::query(
            "INSERT INTO cluster_events (kind, subject, node, at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(change.kind())
        .bind(change.subject())
        .bind(self.node.as_str())
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        if self.dialect == Dialect::Postgres {
            let id: i64 = row.try_get("id")?;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        }
        metrics::counter!("faultline_cluster_events_total", "direction" => "published")
            .increment(1);
        Ok(())
    }

    /// Applies every change other nodes committed before this call that this node has not
    /// applied yet; returns how many. Cheap when there are none (one indexed range read), and
    /// concurrent callers share reads: a caller that waited while a read that started after
    /// it ran is already caught up.
    pub async fn catch_up(&self) -> Result<usize, IndexError> {
        let arrived = Instant::now();
        let mut applied = self.applied.lock().await;
        if applied.last_read.is_some_and(|started| started > arrived) {
            return Ok(0);
        }
        applied.last_read = Some(Instant::now());
        let t = now();
        let rows = sqlx::query(
            "SELECT id, kind, subject, at FROM cluster_events WHERE at >= $1 AND node <> $2 ORDER BY id",
        )
        .bind(t - LOOKBACK_SECS)
        .bind(self.node.as_str())
        .fetch_all(&self.pool)
        .await?;
        let listeners: Vec<Arc<dyn ChangeListener>> = self
            .listeners
            .lock()
            .expect("listener list is never poisoned")
            .clone();
        let mut count = 0;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            if applied.events.contains_key(&id) {
                continue;
            }
            let at: i64 = row.try_get("at")?;
            let kind: String = row.try_get("kind")?;
            if let Some(change) = Change::parse(&kind, row.try_get("subject")?) {
                for listener in &listeners {
                    listener.changed(&change).await;
                }
                count += 1;
            }
            applied.events.insert(id, at);
        }
        applied.events.retain(|_, at| *at >= t - 2 * LOOKBACK_SECS);
        if count > 0 {
            metrics::counter!("faultline_cluster_events_total", "direction" => "applied")
                .increment(count as u64);
        }
        Ok(count)
    }

    /// Before work that must see every other node's changes (a queue claim, a synchronous
    /// dump): catches up, when other servers can share this index (Postgres). A SQLite index
    /// has one server; its other writer (the CLI, revoking credentials) is heard by the poll,
    /// and a query per request on its one connection would only slow it down.
    pub async fn catch_up_before_work(&self) {
        if self.dialect != Dialect::Postgres {
            return;
        }
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, "cannot read other nodes' changes");
        }
    }

    /// Marks every event so far as applied (at start-up: this node's caches are empty anyway).
    pub async fn skip_past(&self) -> Result<(), IndexError> {
        let rows = sqlx::query("SELECT id, at FROM cluster_events WHERE at >= $1")
            .bind(now() - LOOKBACK_SECS)
            .fetch_all(&self.pool)
            .await?;
        let mut applied = self.applied.lock().await;
        for row in rows {
            applied
                .events
                .insert(row.try_get("id")?, row.try_get("at")?);
        }
        Ok(())
    }

    async fn prune(&self) -> Result<u64, IndexError> {
        Ok(sqlx::query("DELETE FROM cluster_events WHERE at < $1")
            .bind(now() - KEEP_SECS)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Follows other nodes' changes until the process ends: on every notification (Postgres,
    /// `index_url`) and every `poll`.
    pub async fn follow(self: Arc<Self>, index_url: String, poll: Duration) {
        let mut listener = None;
        let mut last_prune = now();
        loop {
            if self.dialect == Dialect::Postgres && listener.is_none() {
                listener = match sqlx::postgres::PgListener::connect(&index_url).await {
                    Ok(mut l) => match l.listen(CHANNEL).await {
                        Ok(()) => Some(l),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot listen for cluster events; polling");
                            None
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for cluster events; polling");
                        None
                    }
                };
            }
            match &mut listener {
                Some(l) => {
                    tokio::select! {
                        received = l.try_recv() => match received {
                            Ok(Some(_)) => {}
                            // The connection dropped (notifications may have been lost: the
                            // catch-up below reads them); reconnect on the next turn.
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "cluster event listener failed; reconnecting");
                                listener = None;
                                tokio::time::sleep(poll).await;
                            }
                        },
                        _ = tokio::time::sleep(poll) => {}
                    }
                }
                None => tokio::time::sleep(poll).await,
            }
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "cannot read cluster events");
            }
            if now() - last_prune > 3600 {
                last_prune = now();
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "cannot prune cluster events");
                }
            }
        }
    }
}
