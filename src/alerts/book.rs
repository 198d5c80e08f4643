//! The alert book: rules, channels, firings and deliveries in the database (SQLite or
//! Postgres, the same SQL), as the API creates, lists and removes them.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::rules::{AlertRule, RuleDefinition};
use super::{now, AlertError, Alerts, ChannelConfig, RuleSet};
use crate::outbound::AlertMessage;

/// Most rows one list returns.
const MAX_PAGE: i64 = 500;

/// A rule as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    /// ID.
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// Name.
    pub name: String,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// What it says.
    #[serde(flatten)]
    pub definition: RuleDefinition,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Last changed, Unix seconds.
    pub updated_at: i64,
}

/// A channel to create.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// Its project.
    pub project_id: i64,
    /// A name people recognise (`#game-crashes`, `on-call`).
    pub name: String,
    /// Where and how.
    pub config: ChannelConfig,
    /// Its messages carry the fault frame's variables (docs/VARIABLES.md).
    pub include_variables: bool,
}

/// A channel as the API shows it (secrets hidden).
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    /// ID.
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// Name.
    pub name: String,
    /// `webhook`, `slack`, `pagerduty` or `email`.
    pub kind: String,
    /// Settings, secrets replaced by `(hidden)`.
    pub config: Value,
    /// Its messages carry the fault frame's variables.
    pub include_variables: bool,
    /// Created, Unix seconds.
    pub created_at: i64,
}

/// A rule firing for a group: what fired and why.
#[derive(Debug, Clone, Serialize)]
pub struct AlertFire {
    /// ID.
    pub id: i64,
    /// The rule.
    pub rule_id: i64,
    /// Its project.
    pub project_id: i64,
    /// The group.
    pub group_id: i64,
    /// The crash that fired it.
    pub crash_id: String,
    /// The trigger (`new_group`, `spike`…).
    pub trigger: String,
    /// Why (counts, windows, the condition that submitted the crash).
    pub reason: Value,
    /// When, Unix seconds.
    pub fired_at: i64,
}

/// One message on its way to one channel.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// ID, the same on every attempt (webhooks send it as `Faultline-Delivery`).
    pub id: String,
    /// The firing it carries (absent for a resolve message).
    pub fire_id: Option<i64>,
    /// The channel.
    pub channel_id: i64,
    /// Its project.
    pub project_id: i64,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When the next attempt is due (pending), Unix seconds.
    pub next_attempt_at: i64,
    /// The last answer's status (HTTP, or SMTP reply code).
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The start of the answer that accepted it.
    pub response: Option<String>,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Last attempt, Unix seconds.
    pub updated_at: i64,
    /// What is sent.
    pub message: AlertMessage,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFilter {
    /// All of them.
    All,
    /// Waiting for an attempt.
    Pending,
    /// Accepted by the other side.
    Delivered,
    /// Out of attempts, or refused for good.
    Dead,
    /// Dead, or pending after a failed attempt.
    Failed,
}

impl DeliveryFilter {
    /// The filter named `state` (`pending`, `delivered`, `dead`, `failed`).
    pub fn parse(state: Option<&str>) -> Result<DeliveryFilter, AlertError> {
        Ok(match state {
            None | Some("") => DeliveryFilter::All,
            Some("pending") => DeliveryFilter::Pending,
            Some("delivered") => DeliveryFilter::Delivered,
            Some("dead") => DeliveryFilter::Dead,
            Some("failed") => DeliveryFilter::Failed,
            Some(other) => {
                return Err(AlertError::Invalid(format!(
                    "unknown delivery state {other:?}: use pending, delivered, dead or failed"
                )))
            }
        })
    }

    fn clause(self) -> &'static str {
        match self {
            DeliveryFilter::All => "",
            DeliveryFilter::Pending => " AND state = 'pending'",
            DeliveryFilter::Delivered => " AND state = 'delivered'",
            DeliveryFilter::Dead => " AND state = 'dead'",
            DeliveryFilter::Failed => {
                " AND (state = 'dead' OR (state = 'pending' AND last_error IS NOT NULL))"
            }
        }
    }
}

const RULE_COLUMNS: &str = "id, project_id, name, enabled, definition, created_at, updated_at";
const CHANNEL_COLUMNS: &str = "id, project_id, name, kind, config, include_variables, created_at";
pub(super) const DELIVERY_COLUMNS: &str = "id, fire_id, channel_id, project_id, message, state, \
     attempts, next_attempt_at, last_status, last_error, response, created_at, updated_at";

fn rule_from(row: &AnyRow) -> Result<RuleView, AlertError> {
    let definition: String = row.try_get("definition")?;
    Ok(RuleView {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        definition: serde_json::from_str(&definition)
            .map_err(|e| AlertError::Invalid(format!("stored rule unreadable: {e}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn channel_config(row: &AnyRow) -> Result<ChannelConfig, AlertError> {
    let config: String = row.try_get("config")?;
    serde_json::from_str(&config)
        .map_err(|e| AlertError::Invalid(format!("stored channel unreadable: {e}")))
}

fn channel_from(row: &AnyRow) -> Result<ChannelView, AlertError> {
    let config = channel_config(row)?;
    Ok(ChannelView {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        config: config.redacted(),
        include_variables: row.try_get::<i64, _>("include_variables")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn delivery_from(row: &AnyRow) -> Result<Delivery, AlertError> {
    let message: String = row.try_get("message")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        fire_id: row.try_get("fire_id")?,
        channel_id: row.try_get("channel_id")?,
        project_id: row.try_get("project_id")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        response: row.try_get("response")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        message: serde_json::from_str(&message)
            .map_err(|e| AlertError::Invalid(format!("stored message unreadable: {e}")))?,
    })
}

impl Alerts {
    /// Creates a rule after checking it (patterns compile, channels exist in its project).
    pub async fn create_rule(
        &self,
        project_id: i64,
        name: &str,
        enabled: bool,
        definition: RuleDefinition,
    ) -> Result<RuleView, AlertError> {
        self.check_rule(project_id, name, &definition).await?;
        let now = now();
        let row = sqlx::query(&format!(
            "INSERT INTO alert_rules (project_id, name, enabled, definition, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {RULE_COLUMNS}"
        ))
        .bind(project_id)
        .bind(name)
        .bind(i64::from(enabled))
        .bind(serde_json::to_string(&definition).expect("rules serialize"))
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        self.rules_changed();
        rule_from(&row)
    }

    /// Replaces a rule's name, switch and definition.
    pub async fn update_rule(
        &self,
        id: i64,
        name: &str,
        enabled: bool,
        definition: RuleDefinition,
    ) -> Result<RuleView, AlertError> {
        let existing = self.rule(id).await?;
        self.check_rule(existing.project_id, name, &definition)
            .await?;
        let row = sqlx::query(&format!(
            "UPDATE alert_rules SET name = $1, enabled = $2, definition = $3, updated_at = $4 \
             WHERE id = $5 RETURNING {RULE_COLUMNS}"
        ))
        .bind(name)
        .bind(i64::from(enabled))
        .bind(serde_json::to_string(&definition).expect("rules serialize"))
        .bind(now())
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        self.rules_changed();
        rule_from(&row)
    }

    async fn check_rule(
        &self,
        project_id: i64,
        name: &str,
        definition: &RuleDefinition,
    ) -> Result<(), AlertError> {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(AlertError::Invalid(
                "a rule's name is 1 to 200 bytes".into(),
            ));
        }
        AlertRule::new(0, project_id, name.to_owned(), definition.clone())?;
        for action in &definition.actions {
            let channel = self.channel(action.channel).await.ok();
            if channel.is_none_or(|c| c.project_id != project_id) {
                return Err(AlertError::Invalid(format!(
                    "no channel {} in this rule's project (see GET /api/v1/channels)",
                    action.channel
                )));
            }
        }
        Ok(())
    }

    /// One rule.
    pub async fn rule(&self, id: i64) -> Result<RuleView, AlertError> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| AlertError::NotFound(format!("no alert rule {id}")))?;
        rule_from(&row)
    }

    /// A project's rules, oldest first.
    pub async fn rules(&self, project_id: i64) -> Result<Vec<RuleView>, AlertError> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE project_id = $1 ORDER BY id"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_from).collect()
    }

    /// Deletes a rule (its firings and deliveries stay, for the record).
    pub async fn delete_rule(&self, id: i64) -> Result<(), AlertError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM alert_rules WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM alert_cooldowns WHERE rule_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.rules_changed();
        Ok(())
    }

    /// Creates a channel after checking its settings.
    pub async fn create_channel(&self, channel: &NewChannel) -> Result<ChannelView, AlertError> {
        if channel.name.trim().is_empty() || channel.name.len() > 200 {
            return Err(AlertError::Invalid(
                "a channel's name is 1 to 200 bytes".into(),
            ));
        }
        channel.config.validate().map_err(AlertError::Invalid)?;
        let row = sqlx::query(&format!(
            "INSERT INTO alert_channels (project_id, name, kind, config, include_variables, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CHANNEL_COLUMNS}"
        ))
        .bind(channel.project_id)
        .bind(channel.name.as_str())
        .bind(channel.config.kind())
        .bind(serde_json::to_string(&channel.config).expect("channels serialize"))
        .bind(i64::from(channel.include_variables))
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        self.rules_changed();
        channel_from(&row)
    }

    /// One channel.
    pub async fn channel(&self, id: i64) -> Result<ChannelView, AlertError> {
        let row = self.channel_row(id).await?;
        channel_from(&row)
    }

    /// One channel's settings, secrets included (for sending).
    pub(super) async fn channel_settings(&self, id: i64) -> Result<ChannelConfig, AlertError> {
        let row = self.channel_row(id).await?;
        channel_config(&row)
    }

    /// One channel's settings, and whether its messages carry variables.
    pub(super) async fn channel_sending(
        &self,
        id: i64,
    ) -> Result<(ChannelConfig, bool), AlertError> {
        let row = self.channel_row(id).await?;
        let include_variables = row.try_get::<i64, _>("include_variables")? != 0;
        Ok((channel_config(&row)?, include_variables))
    }

    /// One channel's settings, secrets included (webhook signature checks).
    pub async fn channel_settings_of(&self, id: i64) -> Result<ChannelConfig, AlertError> {
        self.channel_settings(id).await
    }

    /// Records a tracker webhook delivery; false when it was seen before.
    pub async fn first_sight_of_webhook(
        &self,
        channel_id: i64,
        delivery_id: &str,
    ) -> Result<bool, AlertError> {
        let inserted = sqlx::query(
            "INSERT INTO tracker_webhooks_seen (channel_id, delivery_id, received_at) \
             VALUES ($1, $2, $3) ON CONFLICT (channel_id, delivery_id) DO NOTHING \
             RETURNING channel_id",
        )
        .bind(channel_id)
        .bind(delivery_id)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(inserted.is_some())
    }

    async fn channel_row(&self, id: i64) -> Result<AnyRow, AlertError> {
        sqlx::query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| AlertError::NotFound(format!("no channel {id}")))
    }

    /// A project's channels.
    pub async fn channels(&self, project_id: i64) -> Result<Vec<ChannelView>, AlertError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE project_id = $1 ORDER BY id"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_from).collect()
    }

    /// Deletes a channel no rule uses (pending deliveries to it end as `dead`).
    pub async fn delete_channel(&self, id: i64) -> Result<(), AlertError> {
        let channel = self.channel(id).await?;
        let users: Vec<i64> = self
            .rules(channel.project_id)
            .await?
            .into_iter()
            .filter(|r| r.definition.actions.iter().any(|a| a.channel == id))
            .map(|r| r.id)
            .collect();
        if !users.is_empty() {
            return Err(AlertError::Invalid(format!(
                "channel {id} is an action of rules {users:?}: change or delete them first"
            )));
        }
        sqlx::query("DELETE FROM alert_channels WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.rules_changed();
        Ok(())
    }

    /// A project's firings, newest first, before `before` (an ID) when given.
    pub async fn fires(
        &self,
        project_id: i64,
        group_id: Option<i64>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AlertFire>, AlertError> {
        let rows = sqlx::query(
            "SELECT id, rule_id, project_id, group_id, crash_id, trigger, reason, fired_at \
             FROM alert_fires WHERE project_id = $1 AND ($2 IS NULL OR group_id = $2) \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        )
        .bind(project_id)
        .bind(group_id)
        .bind(before)
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let reason: String = row.try_get("reason")?;
                Ok(AlertFire {
                    id: row.try_get("id")?,
                    rule_id: row.try_get("rule_id")?,
                    project_id: row.try_get("project_id")?,
                    group_id: row.try_get("group_id")?,
                    crash_id: row.try_get("crash_id")?,
                    trigger: row.try_get("trigger")?,
                    reason: serde_json::from_str(&reason).unwrap_or(Value::Null),
                    fired_at: row.try_get("fired_at")?,
                })
            })
            .collect()
    }

    /// A project's deliveries, newest first.
    pub async fn deliveries(
        &self,
        project_id: i64,
        filter: DeliveryFilter,
        limit: i64,
    ) -> Result<Vec<Delivery>, AlertError> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE project_id = $1{} \
             ORDER BY created_at DESC, id LIMIT $2",
            filter.clause()
        ))
        .bind(project_id)
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from).collect()
    }

    /// The enabled rules and the channels, read again when older than [`super::RULES_TTL`]
    /// (read through `tx`: on SQLite the pool's one connection is that transaction's).
    pub(super) async fn rule_set(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<Arc<RuleSet>, AlertError> {
        if let Some((read_at, set)) = &*self.rules.lock().expect("never poisoned") {
            if read_at.elapsed() < super::RULES_TTL {
                return Ok(Arc::clone(set));
            }
        }
        let mut set = RuleSet::default();
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE enabled = 1"
        ))
        .fetch_all(&mut **tx)
        .await?;
        for row in &rows {
            let view = rule_from(row)?;
            match AlertRule::new(view.id, view.project_id, view.name, view.definition) {
                Ok(rule) => set
                    .by_project
                    .entry(rule.project_id)
                    .or_default()
                    .push(Arc::new(rule)),
                Err(e) => tracing::warn!(rule = view.id, error = %e, "alert rule skipped"),
            }
        }
        let rows = sqlx::query(&format!("SELECT {CHANNEL_COLUMNS} FROM alert_channels"))
            .fetch_all(&mut **tx)
            .await?;
        for row in &rows {
            if let Ok(config) = channel_config(row) {
                set.channels.insert(row.try_get("id")?, config);
            }
        }
        let set = Arc::new(set);
        *self.rules.lock().expect("never poisoned") =
            Some((std::time::Instant::now(), Arc::clone(&set)));
        Ok(set)
    }
}
