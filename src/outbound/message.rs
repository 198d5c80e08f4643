//! The alert message: what a firing says, fixed when it is written (so every retry sends the
//! same thing), rendered per channel kind by `render.rs`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::group::index::{CrashAttributes, Group, GroupState};
use crate::group::CrashClass;

/// What happened, in a message: `alert` (a rule fired), `resolved` (a paged group was
/// resolved), `sync` (a group with a ticket changed state or assignee: move the ticket),
/// `test` (`POST /api/v1/channels/{id}/test`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MessageEvent {
    /// A rule fired.
    Alert,
    /// A group an alert was about was resolved.
    Resolved,
    /// A group with a ticket changed (state, assignee, a regression): the ticket follows.
    Sync,
    /// A test message.
    Test,
}

impl MessageEvent {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageEvent::Alert => "alert",
            MessageEvent::Resolved => "resolved",
            MessageEvent::Sync => "sync",
            MessageEvent::Test => "test",
        }
    }
}

/// One alert, as stored with its delivery and sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertMessage {
    /// What happened.
    pub event: MessageEvent,
    /// The rule that fired (absent for tests).
    pub rule: Option<RuleRef>,
    /// The trigger that fired (`new_group`, `regression`, `spike`…).
    pub trigger: String,
    /// Why: counts, windows, the condition entry that submitted the crash.
    pub reason: Value,
    /// The project.
    pub project_id: i64,
    /// The group.
    pub group: Option<GroupSummary>,
    /// The crash that fired it.
    pub crash: Option<CrashSummary>,
    /// Where to look, in the web UI.
    pub links: Links,
    /// When, Unix seconds.
    pub at: i64,
    /// The group's suspect commits, a line each (filled when the message is sent: they are
    /// computed beside crash processing, after the firing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspect_commits: Vec<String>,
    /// The group's evidence in a few lines (correlations, the deploy it followed, groups that
    /// failed the same way; docs/EVIDENCE.md), filled when the message is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// Who explains a group to the people an alert reaches: its suspect commits, a line each
/// (`crate::suspects` answers; the composition root connects it).
#[async_trait::async_trait]
pub trait SuspectLines: Send + Sync {
    /// The group's suspect commits, best first (computed now when they are due and missing).
    async fn suspect_lines(&self, group_id: i64) -> Vec<String>;
}

/// Who sums up a group's evidence for the people an alert reaches (`crate::evidence` answers;
/// the composition root connects it).
#[async_trait::async_trait]
pub trait EvidenceSummary: Send + Sync {
    /// A few lines of what explains the group, none when nothing does yet; with the fault
    /// frame's variables only when `with_variables` (the channel opted in: they can hold
    /// personal data).
    async fn evidence_summary(&self, group_id: i64, with_variables: bool) -> Option<String>;
}

/// A rule, named in a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleRef {
    /// Its ID.
    pub id: i64,
    /// Its name.
    pub name: String,
}

/// The group, as the firing crash left it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupSummary {
    /// ID.
    pub id: i64,
    /// Signature.
    pub signature: String,
    /// Fault class.
    pub fault_class: CrashClass,
    /// State after the crash (`open` after a regression or a wake-up).
    pub state: GroupState,
    /// Crashes.
    pub events: i64,
    /// Distinct users.
    pub users: i64,
    /// First crash, Unix seconds.
    pub first_seen: i64,
    /// Oldest release.
    pub first_release: Option<String>,
    /// Newest release.
    pub last_release: Option<String>,
    /// Who is on it.
    pub assignee: Option<String>,
}

/// The crash that fired the alert.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CrashSummary {
    /// ID.
    pub id: String,
    /// Received, Unix seconds.
    pub received_at: i64,
    /// Release.
    pub release: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// The first frames of its signature.
    #[serde(default)]
    pub top_frames: Vec<String>,
}

/// Links into the web UI (absolute when `server.public_url` is set).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Links {
    /// The group's page.
    pub group: Option<String>,
    /// The crash's page.
    pub crash: Option<String>,
}

impl GroupSummary {
    /// The summary of `group`.
    pub fn of(group: &Group) -> GroupSummary {
        GroupSummary {
            id: group.id,
            signature: group.signature.clone(),
            fault_class: group.fault_class,
            state: group.state,
            events: group.event_count,
            users: group.user_count,
            first_seen: group.first_seen,
            first_release: group.first_release.clone(),
            last_release: group.last_release.clone(),
            assignee: group.assignee.clone(),
        }
    }
}

impl CrashSummary {
    /// The summary of `crash`.
    pub fn of(crash: &CrashAttributes, top_frames: &[String]) -> CrashSummary {
        CrashSummary {
            id: crash.id.clone(),
            received_at: crash.received_at,
            release: crash.release.clone(),
            os: crash.platform.clone(),
            product: crash.product.clone(),
            top_frames: top_frames.to_vec(),
        }
    }
}

impl Links {
    /// Links to `group` (and `crash`) under `base` (`https://faultline.example.com`).
    pub fn to(base: &str, group: i64, crash: Option<&str>) -> Links {
        let base = base.trim_end_matches('/');
        Links {
            group: Some(format!("{base}/ui/groups/{group}")),
            crash: crash.map(|c| format!("{base}/ui/crashes/{c}#fault")),
        }
    }
}

impl AlertMessage {
    /// A one-line title: `[faultline] new group: wild-write in crash_here (12 crashes)`.
    pub fn title(&self) -> String {
        let what = match self.event {
            MessageEvent::Test => return "[faultline] test message".to_owned(),
            MessageEvent::Resolved => "resolved".to_owned(),
            MessageEvent::Sync => "group changed".to_owned(),
            MessageEvent::Alert => self.trigger.replace('_', " "),
        };
        match &self.group {
            Some(g) => format!(
                "[faultline] {what}: {} in {} ({} crashes)",
                g.fault_class,
                truncate(&g.signature, 120),
                g.events
            ),
            None => format!("[faultline] {what}"),
        }
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}
