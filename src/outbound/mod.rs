//! What faultline sends out, whichever way it goes (alert channels, ticket trackers): the
//! message about a group or a crash, and how an attempt to deliver one went. A shared
//! vocabulary below `alerts/` and `tickets/`, so neither imports the other back.

mod attempt;
mod message;

pub use attempt::{describe, one_line, Attempt};
pub use message::{
    truncate, AlertMessage, CrashSummary, EvidenceSummary, GroupSummary, Links, MessageEvent,
    RuleRef, SuspectLines,
};
