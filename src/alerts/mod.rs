//! Alerts: telling the right people when a group matters. Rules (`rules.rs`) are evaluated in
//! the transaction that records the crashes (`fire.rs`, through the crash index's
//! [`RecordObserver`](crate::group::index::RecordObserver)), so a firing is committed with the
//! crash that caused it and never twice within a rule's interval, on any number of nodes. Each
//! firing leaves one delivery per action in an outbox that `deliver.rs` drains with retries.
//! Channels (`channels.rs`) say where messages go; `render.rs` shapes them per kind; `email.rs`
//! speaks SMTP. `book.rs` keeps rules, channels, firings and deliveries in the database.
//!
//! Data flows one way: the crash index hands recorded crashes to alerts; alerts never write
//! the index's tables.

mod book;
pub mod channels;
mod deliver;
mod email;
mod fire;
pub mod render;
pub mod rules;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::AnyPool;

use crate::clock::now;
use crate::config::AlertsConfig;
use crate::group::index::{CrashIndex, Dialect};

pub use book::{AlertFire, ChannelView, Delivery, DeliveryFilter, NewChannel, RuleView};
pub use channels::{ChannelConfig, Sender};
pub use email::{EmailSettings, SmtpSecurity};
pub use rules::{AlertRule, RuleDefinition, RuleError};

/// How long a node trusts its copy of the rules before reading them again (rules changed
/// through this node apply at once; through another node, within this).
const RULES_TTL: Duration = Duration::from_secs(2);

/// Why an alert operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The database failed.
    #[error("alerts: {0}")]
    Database(#[from] sqlx::Error),
    /// A request that cannot be carried out as sent (the message says what to fix).
    #[error("{0}")]
    Invalid(String),
    /// No such rule, channel or delivery (in the caller's projects).
    #[error("{0}")]
    NotFound(String),
}

impl From<RuleError> for AlertError {
    fn from(e: RuleError) -> AlertError {
        AlertError::Invalid(e.0)
    }
}

impl From<crate::group::index::IndexError> for AlertError {
    fn from(e: crate::group::index::IndexError) -> AlertError {
        match e {
            crate::group::index::IndexError::Database(e) => AlertError::Database(e),
            other => AlertError::Invalid(other.to_string()),
        }
    }
}

/// The enabled rules and every channel, as one node last read them.
#[derive(Default)]
struct RuleSet {
    /// Enabled rules by project.
    by_project: std::collections::HashMap<i64, Vec<Arc<AlertRule>>>,
    /// Channels by ID.
    channels: std::collections::HashMap<i64, ChannelConfig>,
}

/// Alerts on one node: the rules it evaluates, the outbox it drains.
pub struct Alerts {
    pool: AnyPool,
    /// Where session counts are read for release triggers (`CrashIndex::sessions_pool`).
    sessions: AnyPool,
    dialect: Dialect,
    node: String,
    config: AlertsConfig,
    public_url: String,
    sender: Sender,
    /// The rules, and when they were read (`None`: read them again).
    rules: Mutex<Option<(Instant, Arc<RuleSet>)>>,
    /// Wakes the dispatcher when a firing committed.
    wake: tokio::sync::Notify,
    /// Tracker tickets (Jira, GitHub) the tracker channels keep per group.
    desk: crate::tickets::TicketDesk,
    /// One lock per tracker channel: its sends run one at a time on this node.
    tracker_locks: Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Last week's crash counts for spike triggers, by (group, window, minute).
    history: Mutex<std::collections::HashMap<(i64, i64, i64), i64>>,
    /// Who adds a group's suspect commits to its messages as they are sent.
    suspects: std::sync::OnceLock<Arc<dyn crate::outbound::SuspectLines>>,
    /// Who adds a group's evidence in a few lines to its messages as they are sent.
    summaries: std::sync::OnceLock<Arc<dyn crate::outbound::EvidenceSummary>>,
}

impl Alerts {
    /// Alerts over the crash index's database; links in messages start with `public_url`.
    pub fn new(
        index: &CrashIndex,
        node: String,
        config: AlertsConfig,
        public_url: String,
    ) -> Arc<Alerts> {
        let sender = Sender::new(Duration::from_secs(config.timeout_secs.max(1)));
        let desk = crate::tickets::TicketDesk::new(index.pool().clone(), sender.http.clone());
        Arc::new(Alerts {
            desk,
            history: Mutex::new(std::collections::HashMap::new()),
            suspects: std::sync::OnceLock::new(),
            summaries: std::sync::OnceLock::new(),
            tracker_locks: Mutex::new(std::collections::HashMap::new()),
            pool: index.pool().clone(),
            sessions: index.sessions_pool().clone(),
            dialect: index.dialect(),
            node,
            config,
            public_url,
            sender,
            rules: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Connects who adds suspect commits to messages as they are sent (once, at start-up).
    pub fn explain_with(&self, suspects: Arc<dyn crate::outbound::SuspectLines>) {
        let _ = self.suspects.set(suspects);
    }

    /// Connects who sums up a group's evidence in messages as they are sent (once, at
    /// start-up).
    pub fn summarize_with(&self, summaries: Arc<dyn crate::outbound::EvidenceSummary>) {
        let _ = self.summaries.set(summaries);
    }

    /// The tracker tickets of groups.
    pub fn desk(&self) -> &crate::tickets::TicketDesk {
        &self.desk
    }

    /// Makes the next batch read the rules again (after a change through this node).
    fn rules_changed(&self) {
        *self.rules.lock().expect("never poisoned") = None;
    }
}
