//! Ticket templates: `{signature}`, `{fault_class}`, `{events}`, `{users}`, `{first_release}`,
//! `{last_release}`, `{url}`, `{crash_url}`, `{top_frames}`, `{group_id}`, `{trigger}`,
//! `{suspect_commits}` (a line per suspect commit, docs/CODE.md), `{evidence}` (a few lines of
//! what explains the group, docs/EVIDENCE.md) from the
//! alert, and `$name` for the most common value of annotation `name` among the group's crashes
//! (Backtrace's custom-field convention). Unknown `{placeholders}` are refused when a channel is
//! created, so a typo never reaches a ticket.

use std::collections::BTreeMap;

use crate::outbound::AlertMessage;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 13] = [
    "signature",
    "fault_class",
    "events",
    "users",
    "first_release",
    "last_release",
    "url",
    "crash_url",
    "top_frames",
    "group_id",
    "trigger",
    "suspect_commits",
    "evidence",
];

/// Checks that every `{…}` in `template` is a known placeholder.
pub fn check(template: &str, what: &str) -> Result<(), String> {
    for name in placeholders(template) {
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "{what}: unknown placeholder {{{name}}} (known: {})",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
    }
    Ok(())
}

fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template.split('{').skip(1).filter_map(|rest| {
        let (name, _) = rest.split_once('}')?;
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then_some(name)
    })
}

/// The annotation names a template refers to with `$name`.
pub fn annotation_names(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let name = annotation_name(rest);
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// The annotation name at the start of `text` (after a `$`): a letter or `_`, then letters,
/// digits, `_`, `-`, `.`; empty when there is none (`$5` is text).
fn annotation_name(text: &str) -> &str {
    if !text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return "";
    }
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .unwrap_or(text.len());
    // A sentence's full stop is not part of the name.
    text[..end].trim_end_matches('.')
}

/// `template` with the alert's values and the group's top annotation values filled in.
pub fn render(
    template: &str,
    message: &AlertMessage,
    annotations: &BTreeMap<String, String>,
) -> String {
    let group = message.group.as_ref();
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "signature" => group?.signature.clone(),
            "fault_class" => group?.fault_class.to_string(),
            "events" => group?.events.to_string(),
            "users" => group?.users.to_string(),
            "first_release" => group?
                .first_release
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            "last_release" => group?
                .last_release
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            "url" => message.links.group.clone().unwrap_or_default(),
            "crash_url" => message.links.crash.clone().unwrap_or_default(),
            "top_frames" => message
                .crash
                .as_ref()
                .map(|c| c.top_frames.join("\n"))
                .unwrap_or_default(),
            "group_id" => group?.id.to_string(),
            "trigger" => message.trigger.clone(),
            "suspect_commits" => match message.suspect_commits.as_slice() {
                [] => "none found yet".to_owned(),
                lines => lines.join("\n"),
            },
            "evidence" => message
                .evidence
                .clone()
                .unwrap_or_else(|| "no evidence gathered yet".to_owned()),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find(['{', '$']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix('{') {
            if let Some((name, tail)) = after.split_once('}') {
                if let Some(v) = value(name) {
                    out.push_str(&v);
                    rest = tail;
                    continue;
                }
            }
            out.push('{');
            rest = after;
        } else {
            let after = &rest[1..];
            let name = annotation_name(after);
            match annotations.get(name) {
                Some(v) if !name.is_empty() => {
                    out.push_str(v);
                    rest = &after[name.len()..];
                }
                _ if !name.is_empty() => {
                    // No crash of the group had it.
                    rest = &after[name.len()..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every string inside `value` rendered (custom fields: plain values, `{"value": …}` options,
/// lists).
pub fn render_json(
    value: &serde_json::Value,
    message: &AlertMessage,
    annotations: &BTreeMap<String, String>,
) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(render(s, message, annotations)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_json(v, message, annotations))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_json(v, message, annotations)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every string inside `value` (to find `$name`s and check placeholders).
pub fn strings(value: &serde_json::Value) -> Vec<&str> {
    use serde_json::Value;
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{GroupSummary, Links, MessageEvent};

    fn message() -> AlertMessage {
        AlertMessage {
            suspect_commits: Vec::new(),
            evidence: None,
            event: MessageEvent::Alert,
            rule: None,
            trigger: "new_group".into(),
            reason: serde_json::json!({}),
            project_id: 1,
            group: Some(GroupSummary {
                id: 7,
                signature: "crash_here".into(),
                fault_class: crate::classify::FaultClass::WildWrite.into(),
                state: crate::group::index::GroupState::Open,
                events: 12,
                users: 3,
                first_seen: 0,
                first_release: Some("1.2".into()),
                last_release: None,
                assignee: None,
            }),
            crash: None,
            links: Links::to("https://f.example", 7, None),
            at: 0,
        }
    }

    #[test]
    fn placeholders_and_annotations_are_filled() {
        let annotations = [("platform".to_owned(), "Win64".to_owned())].into();
        let text = render(
            "{fault_class} in {signature}: {events}/{users} since {first_release} on $platform $missing {unknown} {url} costs $5",
            &message(),
            &annotations,
        );
        assert_eq!(
            text,
            "wild-write in crash_here: 12/3 since 1.2 on Win64  {unknown} https://f.example/ui/groups/7 costs $5"
        );
        assert_eq!(annotation_names("$a and $b.c, $a"), vec!["a", "b.c"]);
        assert!(check("{signature} {sig}", "summary")
            .unwrap_err()
            .contains("{sig}"));
        assert!(check("{signature} {} { x }", "summary").is_ok());
    }
}
