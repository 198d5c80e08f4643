//! Tickets: the issue a tracker channel (Jira, GitHub Issues) keeps for a group, created by an
//! alert and kept in step with the group both ways.
//!
//! Out (`TicketDesk::deliver`, run by the alert dispatcher with retries): an alert creates the
//! group's ticket, after looking for one labelled `faultline-group-{id}` first, so a retry after
//! a timeout never creates a second; later alerts comment on it. A group resolved, reopened (a
//! regression, a mute ending) or reassigned moves its ticket: a transition to a done or a to-do
//! status in Jira, close or reopen on GitHub; with `on_regression: new_ticket`, a regression
//! whose ticket is done gets a new ticket instead.
//!
//! In (`inbound.rs`, behind `/api/v1/integrations/{jira,github}/webhook`): the tracker's status
//! and assignee map back onto the group (done → resolved in its latest release; reopened →
//! open). A tracker never unmutes a muted group, and a webhook that only echoes what faultline
//! set (the state recorded in `group_tickets`, or the group's state already) changes nothing.

mod github;
pub mod inbound;
mod jira;
pub mod template;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{AnyPool, Row};

use crate::clock::now;
use crate::group::index::GroupState;
use crate::outbound::Attempt;
use crate::outbound::{AlertMessage, MessageEvent};

pub use github::GithubSettings;
pub use jira::JiraSettings;

/// What a regression does to a ticket that is done.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnRegression {
    /// Reopen it (the default).
    #[default]
    Reopen,
    /// Leave it closed and open a new one (trackers whose done is final).
    NewTicket,
}

/// A tracker's issue, as faultline sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// `GAME-12`, or a GitHub issue number.
    pub key: String,
    /// Where people open it.
    pub url: String,
    /// Whether its status is a done one (closed).
    pub done: bool,
    /// Who it is assigned to (Jira name or display name; GitHub login).
    pub assignee: Option<String>,
}

/// Why a tracker call failed, and whether trying again can help.
#[derive(Debug, Clone)]
pub struct TrackerError {
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// What went wrong, in the tracker's words where it gave some.
    pub message: String,
    /// A timeout, a 429 or a 5xx: worth another attempt.
    pub retryable: bool,
    /// The tracker's `Retry-After`, seconds.
    pub retry_after: Option<u64>,
}

impl TrackerError {
    fn into_attempt(self) -> Attempt {
        if self.retryable {
            Attempt::Retry {
                status: self.status,
                error: self.message,
                retry_after: self.retry_after,
            }
        } else {
            Attempt::Failed {
                status: self.status,
                error: self.message,
            }
        }
    }
}

/// Reads an HTTP answer: the JSON body on success, a [`TrackerError`] naming `what` otherwise.
async fn answer(
    what: &str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, TrackerError> {
    let response = sent.map_err(|e| TrackerError {
        status: None,
        message: format!("{what}: {}", crate::outbound::describe(&e)),
        retryable: true,
        retry_after: None,
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let rate_limited = response
        .headers()
        .get("x-ratelimit-remaining")
        .is_some_and(|v| v.as_bytes() == b"0");
    let bytes = response.bytes().await.map_err(|e| TrackerError {
        status: Some(status),
        message: format!("{what}: {}", crate::outbound::describe(&e)),
        retryable: true,
        retry_after: None,
    })?;
    if (200..300).contains(&status) {
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&bytes).or(Ok(Value::Null));
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let detail = tracker_message(&body)
        .unwrap_or_else(|| crate::outbound::one_line(&String::from_utf8_lossy(&bytes)));
    let retryable = matches!(status, 408 | 409 | 425 | 429 | 500..=599) || rate_limited;
    let hint = match status {
        401 | 403 if !retryable => " (check the channel's credentials and their permissions)",
        400 => " (check the channel's project, issue type and custom fields)",
        _ => "",
    };
    Err(TrackerError {
        status: Some(status),
        message: format!("{what}: the tracker answered {status}: {detail}{hint}"),
        retryable,
        retry_after,
    })
}

/// The error text in a Jira (`errorMessages`, `errors`) or GitHub (`message`, `errors`) body.
fn tracker_message(body: &Value) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(messages) = body["errorMessages"].as_array() {
        parts.extend(
            messages
                .iter()
                .filter_map(|m| m.as_str().map(str::to_owned)),
        );
    }
    if let Some(errors) = body["errors"].as_object() {
        parts.extend(errors.iter().map(|(field, why)| {
            format!(
                "{field}: {}",
                why.as_str().map_or(why.to_string(), str::to_owned)
            )
        }));
    }
    if let Some(message) = body["message"].as_str() {
        parts.push(message.to_owned());
    }
    if let Some(errors) = body["errors"].as_array() {
        parts.extend(errors.iter().map(|e| e.to_string()));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// One tracker's API.
#[async_trait::async_trait]
trait Tracker: Send + Sync {
    /// The ticket labelled `label`, if one exists (open or not).
    async fn find(&self, label: &str) -> Result<Option<Ticket>, TrackerError>;
    /// Creates a ticket for `message`, labelled `label`.
    async fn create(
        &self,
        label: &str,
        message: &AlertMessage,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Ticket, TrackerError>;
    /// Moves the ticket to a done status (`done`) or back to a to-do one.
    async fn set_done(&self, key: &str, done: bool) -> Result<(), TrackerError>;
    /// Assigns it (`None`: unassigns).
    async fn assign(&self, key: &str, who: Option<&str>) -> Result<(), TrackerError>;
    /// Adds a comment.
    async fn comment(&self, key: &str, text: &str) -> Result<(), TrackerError>;
    /// Checks the credentials and the project or repository (the channel test).
    async fn check(&self) -> Result<String, TrackerError>;
    /// The annotation names its templates use (`$name`).
    fn annotation_names(&self) -> Vec<String>;
    /// What a regression does to a done ticket.
    fn on_regression(&self) -> OnRegression;
}

/// The link between a group and its ticket on one channel.
#[derive(Debug, Clone, Serialize)]
pub struct TicketLink {
    /// The tracker channel.
    pub channel_id: i64,
    /// The group.
    pub group_id: i64,
    /// The ticket's key.
    pub ticket_key: String,
    /// Where people open it.
    pub ticket_url: String,
    /// `open` or `done`: what faultline last set or heard.
    pub synced_state: String,
    /// Who faultline last set or heard as assignee.
    pub synced_assignee: Option<String>,
}

fn link_from(row: &sqlx::any::AnyRow) -> Result<TicketLink, sqlx::Error> {
    Ok(TicketLink {
        channel_id: row.try_get("channel_id")?,
        group_id: row.try_get("group_id")?,
        ticket_key: row.try_get("ticket_key")?,
        ticket_url: row.try_get("ticket_url")?,
        synced_state: row.try_get("synced_state")?,
        synced_assignee: row.try_get("synced_assignee")?,
    })
}

const LINK_COLUMNS: &str =
    "channel_id, group_id, ticket_key, ticket_url, synced_state, synced_assignee";

/// Creates and moves tickets; reads and writes their links.
#[derive(Clone)]
pub struct TicketDesk {
    pool: AnyPool,
    http: reqwest::Client,
}

/// The tracker a channel names, with its settings.
#[derive(Debug, Clone, Copy)]
pub enum TrackerSettings<'a> {
    /// A Jira project.
    Jira(&'a JiraSettings),
    /// A GitHub repository.
    Github(&'a GithubSettings),
}

impl TicketDesk {
    /// A desk over the index database, calling trackers with `http`.
    pub fn new(pool: AnyPool, http: reqwest::Client) -> TicketDesk {
        TicketDesk { pool, http }
    }

    fn tracker<'a>(&'a self, settings: TrackerSettings<'a>) -> Box<dyn Tracker + 'a> {
        match settings {
            TrackerSettings::Jira(s) => Box::new(jira::Jira::new(s, &self.http)),
            TrackerSettings::Github(s) => Box::new(github::Github::new(s, &self.http)),
        }
    }

    /// One delivery to a tracker channel: an alert creates (or comments on) the group's ticket;
    /// a sync moves it; a test checks the credentials.
    pub async fn deliver(
        &self,
        channel_id: i64,
        settings: TrackerSettings<'_>,
        message: &AlertMessage,
    ) -> Attempt {
        let tracker = self.tracker(settings);
        let outcome = match message.event {
            MessageEvent::Test => tracker.check().await,
            MessageEvent::Alert => {
                self.open_ticket(channel_id, tracker.as_ref(), message)
                    .await
            }
            MessageEvent::Sync => self.sync(channel_id, tracker.as_ref(), message).await,
            MessageEvent::Resolved => Ok("nothing to do for a tracker".into()),
        };
        match outcome {
            Ok(response) => Attempt::Delivered {
                status: 200,
                response,
            },
            Err(e) => e.into_attempt(),
        }
    }

    async fn open_ticket(
        &self,
        channel_id: i64,
        tracker: &dyn Tracker,
        message: &AlertMessage,
    ) -> Result<String, TrackerError> {
        let Some(group) = &message.group else {
            return Ok("no group".into());
        };
        if let Some(link) = self.link(channel_id, group.id).await? {
            let mut text = message.title();
            if let Some(url) = &message.links.group {
                text.push('\n');
                text.push_str(url);
            }
            tracker.comment(&link.ticket_key, &text).await?;
            return Ok(format!("commented on {}", link.ticket_key));
        }
        let label = format!("faultline-group-{}", group.id);
        // Look before creating: an earlier attempt may have created it and then timed out.
        if let Some(ticket) = tracker.find(&label).await? {
            self.save_link(channel_id, group.id, &ticket).await?;
            return Ok(format!(
                "found {} (created by an earlier attempt)",
                ticket.key
            ));
        }
        let ticket = self
            .create_ticket(channel_id, group.id, tracker, message)
            .await?;
        Ok(format!("created {}", ticket.key))
    }

    /// Creates the group's ticket (labelled `faultline-group-{id}`) and links it.
    async fn create_ticket(
        &self,
        channel_id: i64,
        group_id: i64,
        tracker: &dyn Tracker,
        message: &AlertMessage,
    ) -> Result<Ticket, TrackerError> {
        let annotations = self
            .top_annotations(group_id, &tracker.annotation_names())
            .await?;
        let label = format!("faultline-group-{group_id}");
        let ticket = tracker.create(&label, message, &annotations).await?;
        self.save_link(channel_id, group_id, &ticket).await?;
        Ok(ticket)
    }

    async fn sync(
        &self,
        channel_id: i64,
        tracker: &dyn Tracker,
        message: &AlertMessage,
    ) -> Result<String, TrackerError> {
        let Some(group) = &message.group else {
            return Ok("no group".into());
        };
        let Some(link) = self.link(channel_id, group.id).await? else {
            return Ok("the group has no ticket here".into());
        };
        let mut did = Vec::new();
        let wanted = match group.state {
            GroupState::Resolved => Some("done"),
            GroupState::Open | GroupState::InProgress => Some("open"),
            GroupState::Muted | GroupState::Merged => None, // the ticket stays as it is
        };
        if wanted == Some("open")
            && link.synced_state == "done"
            && message.trigger == "regression"
            && tracker.on_regression() == OnRegression::NewTicket
        {
            let ticket = self
                .create_ticket(channel_id, group.id, tracker, message)
                .await?;
            return Ok(format!(
                "{} is done for good: created {}",
                link.ticket_key, ticket.key
            ));
        }
        if let Some(wanted) = wanted.filter(|w| *w != link.synced_state) {
            tracker.set_done(&link.ticket_key, wanted == "done").await?;
            self.set_synced(channel_id, group.id, Some(wanted), None)
                .await?;
            did.push(format!("moved {} to {wanted}", link.ticket_key));
        }
        if group.assignee != link.synced_assignee {
            tracker
                .assign(&link.ticket_key, group.assignee.as_deref())
                .await?;
            self.set_synced(channel_id, group.id, None, Some(group.assignee.as_deref()))
                .await?;
            did.push(format!(
                "assigned {} to {}",
                link.ticket_key,
                group.assignee.as_deref().unwrap_or("nobody")
            ));
        }
        Ok(if did.is_empty() {
            format!("{} already in step", link.ticket_key)
        } else {
            did.join("; ")
        })
    }

    /// The most common value of each annotation among the group's crashes.
    async fn top_annotations(
        &self,
        group_id: i64,
        names: &[String],
    ) -> Result<BTreeMap<String, String>, TrackerError> {
        let mut values = BTreeMap::new();
        for name in names {
            let row = sqlx::query(
                "SELECT a.value AS value, COUNT(*) AS n FROM crash_annotations a \
                 JOIN crashes c ON c.id = a.crash_id WHERE c.group_id = $1 AND a.name = $2 \
                 GROUP BY a.value ORDER BY n DESC, a.value LIMIT 1",
            )
            .bind(group_id)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(database)?;
            if let Some(row) = row {
                values.insert(name.clone(), row.try_get("value").map_err(database)?);
            }
        }
        Ok(values)
    }

    /// The group's ticket on this channel.
    pub async fn link(
        &self,
        channel_id: i64,
        group_id: i64,
    ) -> Result<Option<TicketLink>, TrackerError> {
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM group_tickets WHERE channel_id = $1 AND group_id = $2"
        ))
        .bind(channel_id)
        .bind(group_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(database)?;
        row.as_ref().map(link_from).transpose().map_err(database)
    }

    /// The link of a ticket, by its key.
    pub async fn link_of_ticket(
        &self,
        channel_id: i64,
        ticket_key: &str,
    ) -> Result<Option<TicketLink>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM group_tickets WHERE channel_id = $1 AND ticket_key = $2"
        ))
        .bind(channel_id)
        .bind(ticket_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(link_from).transpose()
    }

    /// Every ticket of a group (for its page and for syncing).
    pub async fn links_of_group(&self, group_id: i64) -> Result<Vec<TicketLink>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM group_tickets WHERE group_id = $1 ORDER BY channel_id"
        ))
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(link_from).collect()
    }

    async fn save_link(
        &self,
        channel_id: i64,
        group_id: i64,
        ticket: &Ticket,
    ) -> Result<(), TrackerError> {
        let now = now();
        sqlx::query(
            "INSERT INTO group_tickets (channel_id, group_id, ticket_key, ticket_url, \
             synced_state, synced_assignee, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (channel_id, group_id) DO UPDATE SET ticket_key = excluded.ticket_key, \
             ticket_url = excluded.ticket_url, synced_state = excluded.synced_state, \
             synced_assignee = excluded.synced_assignee, updated_at = excluded.updated_at",
        )
        .bind(channel_id)
        .bind(group_id)
        .bind(ticket.key.as_str())
        .bind(ticket.url.as_str())
        .bind(if ticket.done { "done" } else { "open" })
        .bind(ticket.assignee.as_deref())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(database)?;
        Ok(())
    }

    /// Records what faultline set on (or heard from) the ticket.
    pub async fn set_synced(
        &self,
        channel_id: i64,
        group_id: i64,
        state: Option<&str>,
        assignee: Option<Option<&str>>,
    ) -> Result<(), TrackerError> {
        // `synced_state` stays when no state is given; the assignee only changes when given.
        sqlx::query(
            "UPDATE group_tickets SET synced_state = COALESCE($1, synced_state), \
             synced_assignee = CASE WHEN $2 = 1 THEN $3 ELSE synced_assignee END, \
             updated_at = $4 WHERE channel_id = $5 AND group_id = $6",
        )
        .bind(state)
        .bind(i64::from(assignee.is_some()))
        .bind(assignee.flatten())
        .bind(now())
        .bind(channel_id)
        .bind(group_id)
        .execute(&self.pool)
        .await
        .map_err(database)?;
        Ok(())
    }
}

fn database(e: sqlx::Error) -> TrackerError {
    TrackerError {
        status: None,
        message: format!("the database failed: {e}"),
        retryable: true,
        retry_after: None,
    }
}
