//! The triage service: what a person does to groups and crashes, whichever front end they use
//! (the API, the web UI, a tracker's webhook, whose verified events are applied here). Changing a group tells alerting what follows
//! (resolved groups close their PagerDuty incidents, tickets follow state and assignee);
//! merging moves one group's crashes into another; reading a crash finds it in the queue and
//! the index, and reads its processed payload back as the typed crash view.

use std::sync::Arc;

use crate::alerts::{AlertError, Alerts};
use crate::group::index::{CrashIndex, CrashRow, Group, GroupPatch, IndexError};
use crate::ingest::queue::{IngestQueue, QueueEntry};
use crate::pipeline::CrashView;
use crate::store::ObjectStore;
use crate::tickets::inbound::{self, TicketEvent};

/// Why a triage action failed.
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// The crash index refused or failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Alerting's tables failed.
    #[error(transparent)]
    Alerts(#[from] AlertError),
    /// The ticket desk could not record what the tracker said.
    #[error("the ticket desk failed: {0}")]
    Desk(String),
}

/// What a tracker's verified webhook event did.
#[derive(Debug)]
pub enum TrackerOutcome {
    /// Nothing, and why (a redelivery, a ticket faultline does not keep, a group gone…).
    Ignored(&'static str),
    /// The ticket's group, and what changed on it (`changed` false: already in step).
    Applied {
        /// The group.
        group: i64,
        /// The ticket.
        ticket: String,
        /// Whether the group's state or assignee changed.
        changed: bool,
        /// What was done, in words.
        did: Vec<String>,
    },
}

/// Changes, merges and reads what triage works on.
pub struct Triage {
    index: Arc<CrashIndex>,
    queue: Arc<IngestQueue>,
    alerts: Arc<Alerts>,
    objects: Arc<dyn ObjectStore>,
}

/// A crash found by ID (`bp-` prefix or not): its queue row and its index record, either of
/// which may be absent, and the project it belongs to (from either).
pub struct StoredCrash {
    /// The crash ID without the `bp-` prefix.
    pub id: String,
    /// Its index record, once processed.
    pub crash: Option<CrashRow>,
    /// Its queue row, when it came through the ingest routes.
    pub queued: Option<QueueEntry>,
    /// The project it belongs to.
    pub project: Option<i64>,
}

impl Triage {
    /// The service over the crash index, the ingest queue, alerting and the object store that
    /// keeps processed payloads.
    pub fn new(
        index: Arc<CrashIndex>,
        queue: Arc<IngestQueue>,
        alerts: Arc<Alerts>,
        objects: Arc<dyn ObjectStore>,
    ) -> Triage {
        Triage {
            index,
            queue,
            alerts,
            objects,
        }
    }

    /// A kept processed payload (at `key`, from a crash row) as the crash view; `None` when it
    /// is gone, or cannot be read or parsed (logged: a page shows the crash without it).
    pub async fn processed(&self, key: &str) -> Option<CrashView<'static>> {
        let bytes = match crate::ingest::read_processed(&*self.objects, key).await {
            Ok(bytes) => bytes?,
            Err(e) => {
                tracing::warn!(key, error = %e, "could not read a processed crash");
                return None;
            }
        };
        match CrashView::read(&bytes) {
            Ok(view) => Some(view),
            Err(e) => {
                tracing::warn!(key, error = %e, "a processed crash does not read as a crash view");
                None
            }
        }
    }

    /// A group by ID.
    pub async fn group(&self, id: i64) -> Result<Option<Group>, IndexError> {
        self.index.group(id).await
    }

    /// A group's latest crashes.
    pub async fn group_crashes(&self, id: i64, limit: i64) -> Result<Vec<CrashRow>, IndexError> {
        self.index.group_crashes(id, limit).await
    }

    /// Applies a triage change (from a front end, or a tracker's webhook from channel
    /// `origin`), then tells alerting what follows from it. `None`: no such group.
    pub async fn change_group(
        &self,
        id: i64,
        patch: &GroupPatch,
        origin: Option<i64>,
    ) -> Result<Option<Group>, IndexError> {
        let Some(before) = self.index.group(id).await? else {
            return Ok(None);
        };
        let after = self.index.update_group(id, patch).await?;
        if let Some(after) = &after {
            if let Err(e) = self.alerts.group_changed(&before, after, origin).await {
                tracing::warn!(group = after.id, error = %e, "could not queue the messages a triage change causes");
            }
        }
        Ok(after)
    }

    /// Applies what a tracker's webhook says about one of its tickets (verified by the caller)
    /// to the ticket's group: once per delivery, only for tickets faultline keeps, never
    /// unmuting (`tickets::inbound::decide`). What the tracker says becomes what the next sync
    /// compares against.
    pub async fn apply_tracker_event(
        &self,
        channel_id: i64,
        event: &TicketEvent,
    ) -> Result<TrackerOutcome, TriageError> {
        if !self
            .alerts
            .first_sight_of_webhook(channel_id, &event.delivery_id)
            .await?
        {
            return Ok(TrackerOutcome::Ignored("this delivery was applied before"));
        }
        let desk = self.alerts.desk();
        let link = desk
            .link_of_ticket(channel_id, &event.ticket_key)
            .await
            .map_err(IndexError::Database)?;
        let Some(link) = link else {
            return Ok(TrackerOutcome::Ignored("not a ticket faultline keeps"));
        };
        let Some(group) = self.index.group(link.group_id).await? else {
            return Ok(TrackerOutcome::Ignored("its group is gone"));
        };
        let (patch, did) = inbound::decide(&group, &link, event);
        desk.set_synced(
            channel_id,
            link.group_id,
            event.done.map(|done| if done { "done" } else { "open" }),
            event.assignee.as_ref().map(|a| a.as_deref()),
        )
        .await
        .map_err(|e| TriageError::Desk(e.message))?;
        let changed = patch.state.is_some() || patch.assignee.is_some();
        if changed {
            self.change_group(group.id, &patch, Some(channel_id))
                .await?;
        }
        Ok(TrackerOutcome::Applied {
            group: group.id,
            ticket: link.ticket_key,
            changed,
            did,
        })
    }

    /// Merges the groups `from` into `into` (same project; refused otherwise). `None`: `into`
    /// does not exist or was itself merged.
    pub async fn merge(&self, into: i64, from: &[i64]) -> Result<Option<Group>, IndexError> {
        self.index.merge(into, from).await
    }

    /// Finds a crash in the queue and the index. The queue first: a row is marked processed
    /// only after its index record committed, so reading in this order never shows
    /// `processed` without the record (the other order could, when the worker finished
    /// between the two reads).
    pub async fn stored_crash(&self, id: &str) -> Result<StoredCrash, IndexError> {
        let id = id.strip_prefix("bp-").unwrap_or(id).to_owned();
        let queued = self.queue.entry(&id).await?;
        let crash = self.index.crash(&id).await?;
        let project = crash
            .as_ref()
            .map(|c| c.attributes.project_id)
            .or(queued.as_ref().map(|q| q.project_id));
        Ok(StoredCrash {
            id,
            crash,
            queued,
            project,
        })
    }
}
