//! What each channel kind is sent for an alert message. Signatures and annotations come from
//! crash reports, so they are attacker-controlled text: Slack's control characters (`&`, `<`,
//! `>`) are escaped, so a signature cannot become a link or a mention.

use serde_json::{json, Value};

use crate::outbound::{truncate, AlertMessage, MessageEvent};

/// A webhook's JSON body: the message, plus the delivery ID (the same on every retry).
pub fn webhook(delivery_id: &str, message: &AlertMessage) -> Value {
    let mut body = serde_json::to_value(message).expect("messages serialize");
    body["delivery_id"] = json!(delivery_id);
    body["title"] = json!(message.title());
    body
}

/// Slack's (and Mattermost's) incoming-webhook body: `text` for notifications and clients
/// without blocks, blocks for the rest.
pub fn slack(message: &AlertMessage) -> Value {
    let title = slack_escape(&message.title());
    let mut lines = Vec::new();
    if let Some(g) = &message.group {
        lines.push(format!(
            "*{}* in `{}`",
            slack_escape(g.fault_class.as_str()),
            slack_escape(&truncate(&g.signature, 300))
        ));
        lines.push(format!(
            "{} crashes, {} users · first release {} · latest {}",
            g.events,
            g.users,
            slack_escape(g.first_release.as_deref().unwrap_or("unknown")),
            slack_escape(g.last_release.as_deref().unwrap_or("unknown"))
        ));
    }
    if let Some(rule) = &message.rule {
        lines.push(format!("rule: {}", slack_escape(&rule.name)));
    }
    for (i, line) in message.suspect_commits.iter().enumerate() {
        let head = if i == 0 { "suspect commit: " } else { "also: " };
        lines.push(format!("{head}{}", slack_escape(&truncate(line, 300))));
    }
    if let Some(evidence) = &message.evidence {
        for line in evidence.lines().take(6) {
            lines.push(slack_escape(&truncate(line, 300)));
        }
    }
    let link = message
        .links
        .group
        .as_deref()
        .map(|url| format!("<{url}|Open the group>"));
    let mut text = title.clone();
    if let Some(link) = &link {
        text.push_str(" — ");
        text.push_str(link);
    }
    let mut blocks = vec![
        // Plain text is not parsed, but some clients still link `<…>`: use look-alikes.
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&message.title(), 150).replace('<', "‹").replace('>', "›")}}),
    ];
    if !lines.is_empty() {
        blocks
            .push(json!({"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}}));
    }
    if let Some(link) = link {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]}));
    }
    json!({ "text": text, "blocks": blocks })
}

/// Slack's escaping for text it would otherwise read as markup.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A PagerDuty Events v2 event: `trigger` for an alert (`resolve` when the group was resolved),
/// with one `dedup_key` per group so repeated alerts update one incident.
pub fn pagerduty(routing_key: &str, severity: &str, message: &AlertMessage) -> Value {
    let dedup_key = match &message.group {
        Some(g) => format!("faultline-group-{}", g.id),
        None => "faultline-test".to_owned(),
    };
    if message.event == MessageEvent::Resolved {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        });
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": truncate(&message.title(), 1000),
            "source": "faultline",
            "severity": severity,
            "component": message.group.as_ref().map(|g| truncate(&g.signature, 200)),
            "class": message.group.as_ref().map(|g| g.fault_class),
            "custom_details": {
                "trigger": message.trigger,
                "reason": message.reason,
                "group": message.group,
                "crash": message.crash,
            },
        },
    });
    if let Some(url) = &message.links.group {
        event["links"] = json!([{"href": url, "text": "The group in faultline"}]);
    }
    event
}

/// An email's subject and plain-text body for one message or a digest of several.
pub fn email(messages: &[AlertMessage]) -> (String, String) {
    let subject = match messages {
        [one] => one.title(),
        many => format!("[faultline] {} alerts", many.len()),
    };
    let mut body = String::new();
    for message in messages {
        body.push_str(&message.title());
        body.push('\n');
        if let Some(g) = &message.group {
            body.push_str(&format!(
                "  {} crashes, {} users; releases {} to {}; state {}\n",
                g.events,
                g.users,
                g.first_release.as_deref().unwrap_or("?"),
                g.last_release.as_deref().unwrap_or("?"),
                g.state
            ));
        }
        if let Some(rule) = &message.rule {
            body.push_str(&format!(
                "  rule: {} (trigger {})\n",
                rule.name, message.trigger
            ));
        }
        if let Some(url) = &message.links.group {
            body.push_str(&format!("  {url}\n"));
        }
        body.push('\n');
    }
    // Control characters from crash text would only garble the mail.
    let body = body
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    let subject = subject.chars().filter(|c| !c.is_control()).collect();
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{GroupSummary, Links};

    #[test]
    fn slack_text_cannot_carry_markup() {
        let message = AlertMessage {
            suspect_commits: Vec::new(),
            evidence: None,
            event: MessageEvent::Alert,
            rule: None,
            trigger: "new_group".into(),
            reason: json!({}),
            project_id: 1,
            group: Some(GroupSummary {
                id: 1,
                signature: "<!channel> <http://evil|click> & co".into(),
                fault_class: crate::classify::FaultClass::WildRead.into(),
                state: crate::group::index::GroupState::Open,
                events: 1,
                users: 0,
                first_seen: 0,
                first_release: None,
                last_release: None,
                assignee: None,
            }),
            crash: None,
            links: Links::default(),
            at: 0,
        };
        let body = slack(&message).to_string();
        assert!(!body.contains("<!channel>"), "{body}");
        assert!(!body.contains("<http://evil"), "{body}");
        assert!(body.contains("&lt;!channel&gt;"), "{body}");
    }
}
