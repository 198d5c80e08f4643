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
use super::channels::ChannelConfig;
use super::{now, AlertError, Alerts};
use crate::outbound::AlertMessage;
use crate::outbound::Attempt;

/// Deliveries in flight on one node at most (and the most one claim takes).
const CLAIM: i64 = 64;
/// Longest wait between two looks at the outbox when nothing woke the dispatcher.
const IDLE: Duration = Duration::from_secs(1);

/// One send: a delivery, an email digest of several (one attempt for all), or a tracker
/// channel's deliveries in order (a ticket must exist before it is commented on or moved).
struct Send {
    config: Option<ChannelConfig>,
    /// Its channel's messages carry the fault frame's variables.
    include_variables: bool,
    steps: Vec<Vec<Delivery>>,
}

/// What a send gave, for the outcome writer.
type Outcome = (Option<&'static str>, Vec<Delivery>, Attempt);

impl Alerts {
    /// Sends deliveries until the process ends (spawn it once per node). A claimer keeps up to
    /// [`CLAIM`] deliveries in flight, each send its own task, so a slow receiver holds up only
    /// its own deliveries; an outcome writer records what finished, in one transaction per
    /// batch (the database's writer is shared with crash recording).
    pub async fn dispatch(self: Arc<Alerts>) {
        if let Err(e) = self.take_back_own_leases().await {
            tracing::warn!(error = %e, "could not take back this node's delivery leases");
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(CLAIM as usize));
        let (done, outcomes) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
        tokio::spawn(Arc::clone(&self).write_outcomes(outcomes));
        loop {
            // Wait for room, then claim as much as there is room for.
            let Ok(first) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let room = permits.available_permits() + 1;
            let claimed = match self.claim(room as i64).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    drop(first);
                    tracing::warn!(error = %e, "alert delivery failed; trying again shortly");
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                drop(first);
                let _ = tokio::time::timeout(IDLE, self.wake.notified()).await;
                continue;
            }
            let sends = match self.group_sends(claimed).await {
                Ok(sends) => sends,
                Err(e) => {
                    drop(first);
                    tracing::warn!(error = %e, "alert delivery failed; trying again shortly");
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
            };
            let mut first = Some(first);
            for send in sends {
                let count: usize = send.steps.iter().map(Vec::len).sum();
                let mut held = Vec::with_capacity(count);
                if let Some(p) = first.take() {
                    held.push(p);
                }
                while held.len() < count {
                    match Arc::clone(&permits).try_acquire_owned() {
                        Ok(p) => held.push(p),
                        Err(_) => break, // claimed no more than there was room for
                    }
                }
                let alerts = Arc::clone(&self);
                let done = done.clone();
                tokio::spawn(async move {
                    alerts.run_send(send, &done).await;
                    drop(held);
                });
            }
        }
    }

    /// Groups claimed deliveries into sends: one per channel for digests (email) and trackers
    /// (in order), one per delivery otherwise.
    async fn group_sends(&self, claimed: Vec<Delivery>) -> Result<Vec<Send>, AlertError> {
        let mut by_channel: BTreeMap<i64, Vec<Delivery>> = BTreeMap::new();
        for delivery in claimed {
            by_channel
                .entry(delivery.channel_id)
                .or_default()
                .push(delivery);
        }
        let mut sends = Vec::new();
        for (channel_id, deliveries) in by_channel {
            match self.channel_sending(channel_id).await {
                Ok((config, include_variables)) if config.digest_secs() > 0 => sends.push(Send {
                    config: Some(config),
                    include_variables,
                    steps: vec![deliveries],
                }),
                Ok((
                    config @ (ChannelConfig::Jira(_) | ChannelConfig::Github(_)),
                    include_variables,
                )) => sends.push(Send {
                    config: Some(config),
                    include_variables,
                    steps: deliveries.into_iter().map(|d| vec![d]).collect(),
                }),
                Ok((config, include_variables)) => {
                    for delivery in deliveries {
                        sends.push(Send {
                            config: Some(config.clone()),
                            include_variables,
                            steps: vec![vec![delivery]],
                        });
                    }
                }
                Err(AlertError::NotFound(_)) => sends.push(Send {
                    config: None,
                    include_variables: false,
                    steps: vec![deliveries],
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(sends)
    }

    /// Sends one send's steps, handing each outcome to the writer. A tracker channel's sends
    /// run one at a time on this node (two could otherwise both create a group's ticket).
    async fn run_send(&self, send: Send, done: &tokio::sync::mpsc::UnboundedSender<Outcome>) {
        let tracker_lock = match &send.config {
            Some(ChannelConfig::Jira(_) | ChannelConfig::Github(_)) => {
                let channel = send.steps[0][0].channel_id;
                let lock = Arc::clone(
                    self.tracker_locks
                        .lock()
                        .expect("never poisoned")
                        .entry(channel)
                        .or_default(),
                );
                Some(lock)
            }
            _ => None,
        };
        let _serial = match &tracker_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let kind = send.config.as_ref().map(ChannelConfig::kind);
        for mut deliveries in send.steps {
            self.add_suspects(&mut deliveries, send.include_variables)
                .await;
            let tracker = send.config.as_ref().and_then(ChannelConfig::tracker);
            let attempt = match (&send.config, tracker) {
                (_, Some(tracker)) => {
                    let d = &deliveries[0];
                    self.desk.deliver(d.channel_id, tracker, &d.message).await
                }
                (Some(config), None) => {
                    let messages: Vec<AlertMessage> =
                        deliveries.iter().map(|d| d.message.clone()).collect();
                    self.sender.send(config, &deliveries[0].id, &messages).await
                }
                (None, None) => Attempt::Failed {
                    status: None,
                    error: "its channel was deleted".into(),
                },
            };
            let _ = done.send((kind, deliveries, attempt));
        }
    }

    /// Records outcomes as they come: everything waiting, in one transaction.
    async fn write_outcomes(
        self: Arc<Alerts>,
        mut outcomes: tokio::sync::mpsc::UnboundedReceiver<Outcome>,
    ) {
        while let Some(first) = outcomes.recv().await {
            let mut batch = vec![first];
            while batch.len() < 512 {
                match outcomes.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            // Written until it sticks: an outcome lost here would send the delivery again.
            let mut pause = Duration::from_millis(100);
            while let Err(e) = self.write_batch(&batch).await {
                tracing::warn!(error = %e, "could not record alert deliveries; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(IDLE * 10);
            }
            for (kind, deliveries, attempt) in &batch {
                let result = match attempt {
                    Attempt::Delivered { .. } => "delivered",
                    Attempt::Retry { .. } => "retry",
                    Attempt::Failed { .. } => "failed",
                };
                metrics::counter!("faultline_alert_deliveries_total", "channel" => kind.unwrap_or("deleted"), "result" => result)
                    .increment(deliveries.len() as u64);
            }
        }
    }

    async fn write_batch(&self, batch: &[Outcome]) -> Result<(), AlertError> {
        let mut tx = self.pool.begin().await?;
        for (_, deliveries, attempt) in batch {
            for delivery in deliveries {
                self.record_attempt(&mut tx, delivery, attempt).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds each alert's group's suspect commits and evidence summary (with the fault frame's
    /// variables when the channel asked for them) to its message before it is sent.
    async fn add_suspects(&self, deliveries: &mut [Delivery], include_variables: bool) {
        for delivery in deliveries {
            let message = &mut delivery.message;
            if message.event != crate::outbound::MessageEvent::Alert {
                continue;
            }
            let Some(group) = message.group.as_ref().map(|g| g.id) else {
                continue;
            };
            if let Some(suspects) = self.suspects.get() {
                message.suspect_commits = suspects.suspect_lines(group).await;
            }
            if let Some(summaries) = self.summaries.get() {
                message.evidence = summaries.evidence_summary(group, include_variables).await;
            }
        }
    }

    /// Sends a test message through channel `id` now (not through the outbox) and says what
    /// the other side answered.
    pub async fn test_channel(&self, id: i64, project_id: i64) -> Result<Attempt, AlertError> {
        let config = self.channel_settings(id).await?;
        let message = AlertMessage {
            suspect_commits: Vec::new(),
            evidence: None,
            event: crate::outbound::MessageEvent::Test,
            rule: None,
            trigger: "test".into(),
            reason: serde_json::json!({"test": true}),
            project_id,
            group: None,
            crash: None,
            links: crate::outbound::Links::default(),
            at: now(),
        };
        if let Some(tracker) = config.tracker() {
            return Ok(self.desk.deliver(id, tracker, &message).await);
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

    async fn claim(&self, room: i64) -> Result<Vec<Delivery>, AlertError> {
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
        .bind(room.clamp(1, CLAIM))
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
                        // Rounded up from the exact time, so an attempt never comes early
                        // (times are whole seconds; a `Retry-After` is a promise to keep).
                        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
                            + wait.as_secs_f64())
                        .ceil() as i64,
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
