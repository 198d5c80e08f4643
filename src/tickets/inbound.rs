//! Tracker webhooks coming in: checking their signature (HMAC-SHA256 with the channel's
//! `webhook_secret`, compared in constant time), reading what changed on a ticket, and deciding
//! what that means for its group.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::TicketLink;
use crate::group::index::{Group, GroupPatch, GroupState};

/// What a tracker says happened to one ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketEvent {
    /// The tracker's delivery ID (a redelivery carries the same).
    pub delivery_id: String,
    /// The ticket.
    pub ticket_key: String,
    /// Its status now, when this event concerns it: done or not.
    pub done: Option<bool>,
    /// Its assignee now, when this event concerns it.
    pub assignee: Option<Option<String>>,
}

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// Missing or wrong signature.
    #[error("{0}")]
    Signature(String),
    /// Not a body this route understands.
    #[error("{0}")]
    Malformed(String),
}

/// Checks `sha256=<hex>` against HMAC-SHA256(`secret`, `body`) in constant time.
pub fn verify(secret: &str, signature: Option<&str>, body: &[u8]) -> Result<(), InboundError> {
    let signature = signature.ok_or_else(|| {
        InboundError::Signature(
            "the webhook is not signed: set the same secret on both sides".into(),
        )
    })?;
    let hex_digest = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or_else(|| InboundError::Signature("the signature is not sha256=<hex>".into()))?;
    let expected = hex::decode(hex_digest)
        .map_err(|_| InboundError::Signature("the signature is not hex".into()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| {
        InboundError::Signature("the signature does not match the channel's webhook_secret".into())
    })
}

fn delivery_id(id: Option<&str>, body: &[u8]) -> String {
    match id.filter(|id| !id.is_empty() && id.len() <= 200) {
        Some(id) => id.to_owned(),
        // No ID: the body's digest stands in, so an identical redelivery is still recognised.
        None => {
            use sha2::Digest;
            hex::encode(Sha256::digest(body))
        }
    }
}

/// A Jira `jira:issue_updated` event (`None`: an event that says nothing about status or
/// assignee). Only the fields its changelog names are taken, when it has one.
pub fn jira_event(id: Option<&str>, body: &[u8]) -> Result<Option<TicketEvent>, InboundError> {
    let event: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("the body is not JSON: {e}")))?;
    let Some(key) = event["issue"]["key"].as_str() else {
        return Ok(None);
    };
    let fields = &event["issue"]["fields"];
    let changed: Vec<&str> = event["changelog"]["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["field"].as_str()).collect())
        .unwrap_or_default();
    let names =
        |field: &str| changed.is_empty() || changed.iter().any(|c| c.eq_ignore_ascii_case(field));
    let done = fields["status"]["statusCategory"]["key"]
        .as_str()
        .filter(|_| names("status"))
        .map(|category| category == "done");
    let assignee = names("assignee").then(|| {
        let a = &fields["assignee"];
        a["name"]
            .as_str()
            .or(a["displayName"].as_str())
            .or(a["emailAddress"].as_str())
            .map(str::to_owned)
    });
    if done.is_none() && assignee.is_none() {
        return Ok(None);
    }
    Ok(Some(TicketEvent {
        delivery_id: delivery_id(id, body),
        ticket_key: key.to_owned(),
        done,
        assignee,
    }))
}

/// A GitHub `issues` event (closed, reopened, assigned, unassigned; `None` for other actions).
pub fn github_event(id: Option<&str>, body: &[u8]) -> Result<Option<TicketEvent>, InboundError> {
    let event: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("the body is not JSON: {e}")))?;
    let Some(number) = event["issue"]["number"].as_i64() else {
        return Ok(None);
    };
    let issue = &event["issue"];
    let (done, assignee) = match event["action"].as_str() {
        Some("closed") | Some("reopened") => (Some(issue["state"] == "closed"), None),
        Some("assigned") | Some("unassigned") => (
            None,
            Some(issue["assignee"]["login"].as_str().map(str::to_owned)),
        ),
        _ => return Ok(None),
    };
    Ok(Some(TicketEvent {
        delivery_id: delivery_id(id, body),
        ticket_key: number.to_string(),
        done,
        assignee,
    }))
}

/// What `event` changes on `group`: `(patch, what it did)`. An echo of what faultline set (the
/// link's synced values) or of the group's own state changes nothing; a done ticket resolves
/// the group in its latest release; a reopened ticket reopens a resolved group; a muted group
/// stays muted whatever the tracker says.
pub fn decide(group: &Group, link: &TicketLink, event: &TicketEvent) -> (GroupPatch, Vec<String>) {
    let mut patch = GroupPatch::default();
    let mut did = Vec::new();
    if let Some(done) = event.done {
        let heard = if done { "done" } else { "open" };
        let echo = heard == link.synced_state;
        match (done, group.state) {
            _ if echo => {}
            (_, GroupState::Muted) => did.push("left muted (a tracker never unmutes)".to_owned()),
            (true, GroupState::Open | GroupState::InProgress) => {
                patch.state = Some(GroupState::Resolved);
                patch.resolved_in = Some(group.last_release.clone());
                did.push(format!(
                    "resolved in {}",
                    group.last_release.as_deref().unwrap_or("no release")
                ));
            }
            (false, GroupState::Resolved) => {
                patch.state = Some(GroupState::Open);
                did.push("reopened".to_owned());
            }
            _ => {}
        }
    }
    if let Some(assignee) = &event.assignee {
        if *assignee != link.synced_assignee && *assignee != group.assignee {
            patch.assignee = Some(assignee.clone());
            did.push(format!(
                "assigned to {}",
                assignee.as_deref().unwrap_or("nobody")
            ));
        }
    }
    (patch, did)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let body = br#"{"a":1}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(verify("s3cret", Some(&good), body).is_ok());
        assert!(verify("other", Some(&good), body).is_err());
        assert!(verify("s3cret", Some(&good), b"{\"a\":2}").is_err());
        assert!(verify("s3cret", None, body).is_err());
        assert!(verify("s3cret", Some("sha1=00"), body).is_err());
    }

    #[test]
    fn jira_changelog_limits_what_is_taken() {
        let body = br#"{"webhookEvent":"jira:issue_updated","issue":{"key":"G-1","fields":{"status":{"statusCategory":{"key":"done"}},"assignee":{"name":"ana"}}},"changelog":{"items":[{"field":"status"}]}}"#;
        let event = jira_event(Some("d1"), body).unwrap().unwrap();
        assert_eq!(event.done, Some(true));
        assert_eq!(event.assignee, None);
        assert_eq!(event.delivery_id, "d1");
    }
}
