//! The dispatcher: drains the delivery outbox. It claims due deliveries with a lease (several
//! nodes never send the same one at once; a node killed mid-send leaves a lease that runs out,
//! and a restarted node takes back its own at once), sends them (an email channel's due
//! deliveries as one digest), and records the outcome: `delivered`; `pending` again after a
//! backoff with jitter, or after the other side's `Retry-After`; or `dead` with the reason
//! after the last attempt or a refusal that retrying cannot fix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;

use super::book::{delivery_from, Delivery, DELIVERY_COLUMNS};
use super::channels::{Attempt, ChannelConfig};
use super::message::AlertMessage;
use super::{now, AlertError, Alerts};

/// Deliveries one claim takes at most.
const CLAIM: i64 = 64;
/// Longest wait between two looks at the outbox when nothing woke the dispatcher.
const IDLE: Duration = Duration::from_secs(1);

impl Alerts {
    /// Sends deliveries until the process ends (spawn it once per node).
    pub async fn dispatch(self: Arc<Alerts>) {
        if let Err(e) = self.take_back_own_leases().await {
            tracing::warn!(error = %e, "could not take back this node's delivery leases");
        }
        loop {
            match self.dispatch_once().await {
                Ok(0) => {
                    let _ = tokio::time::timeout(IDLE, self.wake.notified()).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "alert delivery failed; trying again shortly");
                    tokio::time::sleep(IDLE).await;
                }
            }
        }
    }

    /// Claims what is due and sends it; returns how many deliveries it claimed.
    pub async fn dispatch_once(&self) -> Result<usize, AlertError> {
        let claimed = self.claim().await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let count = claimed.len();
        // One send per channel for digests (email); one per delivery otherwise.
        let mut by_channel: BTreeMap<i64, Vec<Delivery>> = BTreeMap::new();
        for delivery in claimed {
            by_channel
                .entry(delivery.channel_id)
                .or_default()
                .push(delivery);
        }
        // A send is one attempt for one or more deliveries (an email digest), or several in
        // order (a tracker's deliveries: a ticket must exist before it is commented or moved).
        let mut sends: Vec<(Option<ChannelConfig>, Vec<Vec<Delivery>>)> = Vec::new();
        for (channel_id, deliveries) in by_channel {
            match self.channel_settings(channel_id).await {
                Ok(config) if config.digest_secs() > 0 => {
                    sends.push((Some(config), vec![deliveries]));
                }
                Ok(config @ (ChannelConfig::Jira(_) | ChannelConfig::Github(_))) => {
                    sends.push((
                        Some(config),
                        deliveries.into_iter().map(|d| vec![d]).collect(),
                    ));
                }
                Ok(config) => {
                    for delivery in deliveries {
                        sends.push((Some(config.clone()), vec![vec![delivery]]));
                    }
                }
                Err(AlertError::NotFound(_)) => sends.push((None, vec![deliveries])),
                Err(e) => return Err(e),
            }
        }
        let results = futures::future::join_all(sends.into_iter().map(|(config, steps)| {
            let sender = self.sender.clone();
            async move {
                let mut done = Vec::new();
                for deliveries in steps {
                    let attempt = match &config {
                        Some(config @ (ChannelConfig::Jira(_) | ChannelConfig::Github(_))) => {
                            let d = &deliveries[0];
                            self.desk.deliver(d.channel_id, config, &d.message).await
                        }
                        Some(config) => {
                            let messages: Vec<AlertMessage> =
                                deliveries.iter().map(|d| d.message.clone()).collect();
                            sender.send(config, &deliveries[0].id, &messages).await
                        }
                        None => Attempt::Failed {
                            status: None,
                            error: "its channel was deleted".into(),
                        },
                    };
                    done.push((deliveries, attempt));
                }
                (config.map(|c| c.kind()), done)
            }
        }))
        .await;
        // Every outcome in one transaction: the database's writer is shared with crash
        // recording, and one commit per delivery would queue behind it for each.
        let mut tx = self.pool.begin().await?;
        let mut counted = Vec::new();
        for (kind, done) in results {
            for (deliveries, attempt) in done {
                for delivery in &deliveries {
                    self.record_attempt(&mut tx, delivery, &attempt).await?;
                }
                counted.push((kind, deliveries.len(), attempt));
            }
        }
        tx.commit().await?;
        for (kind, deliveries, attempt) in counted {
            let result = match &attempt {
                Attempt::Delivered { .. } => "delivered",
                Attempt::Retry { .. } => "retry",
                Attempt::Failed { .. } => "failed",
            };
            metrics::counter!("faultline_alert_deliveries_total", "channel" => kind.unwrap_or("deleted"), "result" => result)
                .increment(deliveries as u64);
        }
        Ok(count)
    }

    /// Sends a test message through channel `id` now (not through the outbox) and says what
    /// the other side answered.
    pub async fn test_channel(&self, id: i64, project_id: i64) -> Result<Attempt, AlertError> {
        let config = self.channel_settings(id).await?;
        let message = AlertMessage {
            event: super::message::MessageEvent::Test,
            rule: None,
            trigger: "test".into(),
            reason: serde_json::json!({"test": true}),
            project_id,
            group: None,
            crash: None,
            links: super::message::Links::default(),
            at: now(),
        };
        if matches!(config, ChannelConfig::Jira(_) | ChannelConfig::Github(_)) {
            return Ok(self.desk.deliver(id, &config, &message).await);
        }
        let id = uuid::Uuid::new_v4().to_string();
        Ok(self.sender.send(&config, &id, &[message]).await)
    }

    /// At start-up: leases this node held before it stopped are released (it was killed
    /// mid-delivery; the other side may have the message, and its delivery ID lets it tell).
    async fn take_back_own_leases(&self) -> Result<(), AlertError> {
        sqlx::query(
            "UPDATE alert_deliveries SET claimed_by = NULL, lease_until = NULL \
             WHERE claimed_by = $1 AND state = 'pending'",
        )
        .bind(self.node.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim(&self) -> Result<Vec<Delivery>, AlertError> {
        let lock = match self.dialect {
            crate::group::index::Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::group::index::Dialect::Sqlite => "",
        };
        let now = now();
        // A lease outlives every attempt of the batch (a tracker channel's run one after
        // another, each bounded by the timeout).
        let lease = now + self.config.timeout_secs.max(1) as i64 * CLAIM + 30;
        let rows = sqlx::query(&format!(
            "UPDATE alert_deliveries SET claimed_by = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM alert_deliveries WHERE state = 'pending' \
               AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
               ORDER BY next_attempt_at, id LIMIT $4{lock}) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(self.node.as_str())
        .bind(lease)
        .bind(now)
        .bind(CLAIM)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from).collect()
    }

    /// Writes what an attempt gave.
    async fn record_attempt(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        delivery: &Delivery,
        attempt: &Attempt,
    ) -> Result<(), AlertError> {
        let now = now();
        let attempts = delivery.attempts + 1;
        let (state, next, status, error, response) = match attempt {
            Attempt::Delivered { status, response } => (
                "delivered",
                delivery.next_attempt_at,
                Some(i64::from(*status)),
                None,
                Some(response.clone()),
            ),
            Attempt::Retry {
                status,
                error,
                retry_after,
            } => {
                if attempts >= i64::from(self.config.max_attempts.max(1)) {
                    (
                        "dead",
                        delivery.next_attempt_at,
                        status.map(i64::from),
                        Some(format!("gave up after {attempts} attempts: {error}")),
                        None,
                    )
                } else {
                    let wait = match retry_after {
                        Some(secs) => Duration::from_secs((*secs).min(self.config.retry_max_secs)),
                        None => self.backoff(attempts),
                    };
                    (
                        "pending",
                        now + wait.as_secs_f64().ceil() as i64,
                        status.map(i64::from),
                        Some(error.clone()),
                        None,
                    )
                }
            }
            Attempt::Failed { status, error } => (
                "dead",
                delivery.next_attempt_at,
                status.map(i64::from),
                Some(error.clone()),
                None,
            ),
        };
        if state == "dead" {
            tracing::warn!(delivery = %delivery.id, channel = delivery.channel_id, error = error.as_deref().unwrap_or(""), "alert delivery is dead");
        }
        sqlx::query(
            "UPDATE alert_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, \
             last_status = $4, last_error = $5, response = $6, claimed_by = NULL, \
             lease_until = NULL, updated_at = $7 WHERE id = $8",
        )
        .bind(state)
        .bind(attempts)
        .bind(next)
        .bind(status)
        .bind(error)
        .bind(response)
        .bind(now)
        .bind(delivery.id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The wait before attempt `attempts + 1`: the base doubled per attempt, ±20 % jitter,
    /// capped.
    fn backoff(&self, attempts: i64) -> Duration {
        let base = self.config.retry_base_ms as f64 / 1000.0;
        let exponent = (attempts - 1).clamp(0, 30) as i32;
        let wait = (base * 2f64.powi(exponent)).min(self.config.retry_max_secs as f64);
        let mut byte = [0u8; 1];
        let _ = getrandom::fill(&mut byte);
        let jitter = 0.8 + 0.4 * (f64::from(byte[0]) / 255.0);
        Duration::from_secs_f64((wait * jitter).max(0.0))
    }

    /// Deliveries waiting, and dead ones, for `/metrics` (read at each scrape).
    pub async fn outbox_counts(&self) -> Result<(i64, i64), AlertError> {
        let row = sqlx::query(
            "SELECT COUNT(CASE WHEN state = 'pending' THEN 1 END) AS pending, \
             COUNT(CASE WHEN state = 'dead' THEN 1 END) AS dead FROM alert_deliveries",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("pending")?, row.try_get("dead")?))
    }
}
