//! Alert rules: when a project's groups deserve a message. A rule has triggers (what happened),
//! conditions (which crashes count: an ordered `submit` / `filter` list where the last matching
//! entry decides, as in Backtrace's workflow rules), group filters, actions (channels) and an
//! action interval. This module holds the definition, its validation, and the evaluation that
//! needs no database; counting triggers are counted by `fire.rs`.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::group::index::{CrashAttributes, Group, GroupState};
use crate::group::version;

/// The default action interval: a rule fires at most once per group in 30 minutes.
pub const DEFAULT_INTERVAL_SECS: i64 = 30 * 60;

/// Longest regular expression a condition may carry, and most entries per list.
const MAX_PATTERN: usize = 1024;
const MAX_ENTRIES: usize = 100;

/// What a rule says, as sent to and returned by `/api/v1/alert-rules`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleDefinition {
    /// What happened; at least one.
    pub triggers: Vec<Trigger>,
    /// `any` (the default): one trigger is enough; `all`: every trigger must hold.
    #[serde(default)]
    pub trigger_match: TriggerMatch,
    /// Which crashes count; the last entry that matches decides; none matching submits.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Which groups count.
    #[serde(default)]
    pub filters: GroupFilters,
    /// Where the message goes; at least one.
    pub actions: Vec<RuleAction>,
    /// A rule fires at most once per group in this many seconds (0: every time).
    #[serde(default = "default_interval")]
    pub interval_secs: i64,
}

fn default_interval() -> i64 {
    DEFAULT_INTERVAL_SECS
}

/// Whether one trigger is enough or all must hold.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TriggerMatch {
    /// Any one trigger fires the rule.
    #[default]
    Any,
    /// Every trigger must hold for the same crash.
    All,
}

/// Something that happened to a group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A crash made a new group.
    NewGroup,
    /// A crash from a release newer than the fix reopened a resolved group.
    Regression,
    /// A muted group woke up (its mute's date passed or its crash count was reached).
    Woke,
    /// More than `count` crashes in the last `window_secs`.
    Events {
        /// Crashes needed: more than this.
        count: i64,
        /// The window, seconds.
        window_secs: i64,
    },
    /// More than `count` distinct users in the last `window_secs`.
    Users {
        /// Users needed: more than this.
        count: i64,
        /// The window, seconds.
        window_secs: i64,
    },
    /// The last `window_secs` had more than `factor` times the crashes of the same window a
    /// week earlier, and at least `min_events` (so a brand-new group can spike too).
    Spike {
        /// How many times last week's count.
        factor: f64,
        /// The window, seconds.
        window_secs: i64,
        /// Crashes the window needs at least.
        min_events: i64,
    },
    /// Every crash.
    EveryCrash,
    /// The crash's release has at least `min_sessions` sessions and its crash-free sessions
    /// (crash-free users with `users: true`) are below `percent` (docs/HEALTH.md).
    CrashFreeBelow {
        /// The threshold, percent.
        percent: f64,
        /// Crash-free users instead of sessions.
        #[serde(default)]
        users: bool,
        /// Sessions the release needs before it can fire (a release with 10 sessions pages
        /// no one).
        #[serde(default = "default_min_sessions")]
        min_sessions: i64,
    },
    /// The group's crashes per 1,000 sessions of the crash's release are above `per_1000`, once
    /// the release has at least `min_sessions` sessions.
    RateAbove {
        /// The threshold: crashes per 1,000 sessions.
        per_1000: f64,
        /// Sessions the release needs first.
        #[serde(default = "default_min_sessions")]
        min_sessions: i64,
    },
}

fn default_min_sessions() -> i64 {
    100
}

impl Trigger {
    /// Its name in firings (`new_group`, `spike`…).
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::NewGroup => "new_group",
            Trigger::Regression => "regression",
            Trigger::Woke => "woke",
            Trigger::Events { .. } => "events",
            Trigger::Users { .. } => "users",
            Trigger::Spike { .. } => "spike",
            Trigger::EveryCrash => "every_crash",
            Trigger::CrashFreeBelow { .. } => "crash_free_below",
            Trigger::RateAbove { .. } => "rate_above",
        }
    }
}

/// One entry of a rule's condition list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// What a match does.
    pub action: ConditionAction,
    /// An annotation's name, or `fault_class`, `release`, `signature`, `os`, `product`,
    /// `cpu`; `*` matches when any of them matches.
    pub attribute: String,
    /// A regular expression (unanchored: use `^…$` for a whole value).
    pub pattern: String,
}

/// What a matching condition entry decides.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConditionAction {
    /// The crash counts.
    Submit,
    /// The crash does not count.
    Filter,
}

/// Which groups a rule looks at (absent: any).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GroupFilters {
    /// The group's fault class is one of these.
    pub fault_classes: Option<Vec<String>>,
    /// The crash's release is this one or newer (version order).
    pub release_min: Option<String>,
    /// The crash's release is this one or older.
    pub release_max: Option<String>,
    /// The group is at most this old (seconds since its first crash).
    pub max_age_secs: Option<i64>,
    /// The group is at least this old.
    pub min_age_secs: Option<i64>,
    /// The group's state (after the crash: a regression is `open`) is one of these.
    pub states: Option<Vec<String>>,
    /// `true`: only assigned groups; `false`: only unassigned ones.
    pub assigned: Option<bool>,
}

/// Where a firing goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleAction {
    /// A channel of the rule's project.
    pub channel: i64,
}

/// What a rule's condition list decided about a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It counts: entry `by` submitted it (`None`: no entry matched).
    Submitted {
        /// The deciding entry.
        by: Option<usize>,
    },
    /// It does not count: entry `by` filtered it.
    Filtered {
        /// The deciding entry.
        by: usize,
    },
}

/// Why a definition was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

fn invalid(message: impl Into<String>) -> RuleError {
    RuleError(message.into())
}

/// A rule ready to evaluate: its definition with the condition patterns compiled.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// Its ID.
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// Its name (in messages).
    pub name: String,
    /// What it says.
    pub definition: RuleDefinition,
    patterns: Vec<Regex>,
}

impl AlertRule {
    /// Checks `definition` and compiles its patterns; the error says what to fix.
    pub fn new(
        id: i64,
        project_id: i64,
        name: String,
        definition: RuleDefinition,
    ) -> Result<AlertRule, RuleError> {
        let d = &definition;
        if d.triggers.is_empty() {
            return Err(invalid(
                "a rule needs at least one trigger (e.g. {\"kind\": \"new_group\"})",
            ));
        }
        if d.actions.is_empty() {
            return Err(invalid(
                "a rule needs at least one action (e.g. {\"channel\": 1})",
            ));
        }
        if d.conditions.len() > MAX_ENTRIES || d.triggers.len() > MAX_ENTRIES {
            return Err(invalid(format!(
                "at most {MAX_ENTRIES} triggers and {MAX_ENTRIES} conditions"
            )));
        }
        if d.interval_secs < 0 {
            return Err(invalid("interval_secs cannot be negative"));
        }
        for trigger in &d.triggers {
            check_trigger(trigger)?;
        }
        if let Some(states) = &d.filters.states {
            if let Some(bad) = states.iter().find(|s| GroupState::settable(s).is_err()) {
                return Err(invalid(format!(
                    "unknown group state {bad:?} in filters.states (one of {})",
                    GroupState::SETTABLE.map(GroupState::as_str).join(", ")
                )));
            }
        }
        let patterns = d
            .conditions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if c.pattern.len() > MAX_PATTERN {
                    return Err(invalid(format!(
                        "condition {i}: pattern longer than {MAX_PATTERN} bytes"
                    )));
                }
                if c.attribute.is_empty() {
                    return Err(invalid(format!("condition {i}: empty attribute")));
                }
                regex::RegexBuilder::new(&c.pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| invalid(format!("condition {i}: bad pattern: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AlertRule {
            id,
            project_id,
            name,
            definition,
            patterns,
        })
    }

    /// Whether `crash` counts for this rule: the last condition entry that matches decides,
    /// and with none matching it counts.
    pub fn submits(&self, crash: &CrashAttributes) -> Verdict {
        let mut decision = Verdict::Submitted { by: None };
        for (i, (condition, pattern)) in self
            .definition
            .conditions
            .iter()
            .zip(&self.patterns)
            .enumerate()
        {
            let matched = if condition.attribute == "*" {
                [
                    "fault_class",
                    "release",
                    "signature",
                    "os",
                    "product",
                    "cpu",
                ]
                .into_iter()
                .filter_map(|name| attribute(crash, name))
                .chain(crash.annotations.values().map(String::as_str))
                .any(|value| pattern.is_match(value))
            } else {
                attribute(crash, &condition.attribute).is_some_and(|v| pattern.is_match(v))
            };
            if matched {
                decision = match condition.action {
                    ConditionAction::Submit => Verdict::Submitted { by: Some(i) },
                    ConditionAction::Filter => Verdict::Filtered { by: i },
                };
            }
        }
        decision
    }

    /// Whether `group` (as the crash left it) and the crash's release pass the group filters.
    pub fn accepts(&self, group: &Group, crash: &CrashAttributes, now: i64) -> bool {
        let f = &self.definition.filters;
        if let Some(classes) = &f.fault_classes {
            if !classes.iter().any(|c| c == group.fault_class.as_str()) {
                return false;
            }
        }
        if f.release_min.is_some() || f.release_max.is_some() {
            let Some(release) = &crash.release else {
                return false;
            };
            if let Some(min) = &f.release_min {
                if version::is_newer(min, release) {
                    return false;
                }
            }
            if let Some(max) = &f.release_max {
                if version::is_newer(release, max) {
                    return false;
                }
            }
        }
        let age = now - group.first_seen;
        if f.max_age_secs.is_some_and(|max| age > max) || f.min_age_secs.is_some_and(|m| age < m) {
            return false;
        }
        if let Some(states) = &f.states {
            if !states.iter().any(|s| s == group.state.as_str()) {
                return false;
            }
        }
        if let Some(assigned) = f.assigned {
            if group.assignee.is_some() != assigned {
                return false;
            }
        }
        true
    }
}

/// A crash attribute a condition can name: the fixed ones first, then annotations.
fn attribute<'a>(crash: &'a CrashAttributes, name: &str) -> Option<&'a str> {
    match name {
        "fault_class" => Some(crash.fault_class.as_str()),
        "release" => crash.release.as_deref(),
        "signature" => Some(crash.signature.as_str()),
        "os" => crash.platform.as_deref(),
        "product" => crash.product.as_deref(),
        "cpu" => crash.cpu.as_deref(),
        other => crash.annotations.get(other).map(String::as_str),
    }
}

/// A trigger's numbers make sense (windows, thresholds), or what to fix.
fn check_trigger(trigger: &Trigger) -> Result<(), RuleError> {
    match trigger {
        Trigger::Events { count, window_secs } | Trigger::Users { count, window_secs }
            if *count < 0 || *window_secs <= 0 =>
        {
            return Err(invalid(format!(
                "trigger {}: count must be ≥ 0 and window_secs > 0",
                trigger.name()
            )));
        }
        Trigger::Spike {
            factor,
            window_secs,
            min_events,
        } if !factor.is_finite() || *factor <= 0.0 || *window_secs <= 0 || *min_events < 1 => {
            return Err(invalid(
                "trigger spike: factor must be > 0, window_secs > 0 and min_events ≥ 1",
            ));
        }
        Trigger::CrashFreeBelow {
            percent,
            min_sessions,
            ..
        } if !(percent.is_finite() && *percent > 0.0 && *percent <= 100.0) || *min_sessions < 0 => {
            return Err(invalid(
                "trigger crash_free_below: percent must be in (0, 100] and min_sessions ≥ 0",
            ));
        }
        Trigger::RateAbove {
            per_1000,
            min_sessions,
        } if !(per_1000.is_finite() && *per_1000 >= 0.0) || *min_sessions < 0 => {
            return Err(invalid(
                "trigger rate_above: per_1000 must be ≥ 0 and min_sessions ≥ 0",
            ));
        }
        _ => {}
    }
    let window = match trigger {
        Trigger::Events { window_secs, .. }
        | Trigger::Users { window_secs, .. }
        | Trigger::Spike { window_secs, .. } => *window_secs,
        _ => 0,
    };
    if window > 90 * 24 * 3600 {
        return Err(invalid("a trigger's window is at most 90 days"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(class: &str, annotations: &[(&str, &str)]) -> CrashAttributes {
        CrashAttributes {
            id: "c".into(),
            project_id: 1,
            received_at: 0,
            product: Some("Game".into()),
            release: Some("1.2.0".into()),
            platform: Some("Windows NT".into()),
            cpu: Some("amd64".into()),
            user_id: None,
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fingerprint: "f".into(),
            signature: "crash_here".into(),
            fault_class: crate::group::CrashClass::named(class).expect("a known class"),
            kind: Default::default(),
        }
    }

    fn rule(conditions: serde_json::Value) -> AlertRule {
        let definition: RuleDefinition = serde_json::from_value(serde_json::json!({
            "triggers": [{"kind": "every_crash"}],
            "conditions": conditions,
            "actions": [{"channel": 1}],
        }))
        .unwrap();
        AlertRule::new(1, 1, "r".into(), definition).unwrap()
    }

    #[test]
    fn the_last_matching_entry_decides() {
        let r = rule(serde_json::json!([
            {"action": "filter", "attribute": "*", "pattern": "."},
            {"action": "submit", "attribute": "fault_class", "pattern": "^wild-"},
            {"action": "filter", "attribute": "channel", "pattern": "^beta$"},
        ]));
        let submitted = |by| Verdict::Submitted { by };
        assert_eq!(r.submits(&crash("wild-write", &[])), submitted(Some(1)));
        assert_eq!(
            r.submits(&crash("null-read", &[])),
            Verdict::Filtered { by: 0 }
        );
        assert_eq!(
            r.submits(&crash("wild-write", &[("channel", "beta")])),
            Verdict::Filtered { by: 2 }
        );
        assert_eq!(
            r.submits(&crash("wild-write", &[("channel", "release")])),
            submitted(Some(1))
        );
        // No entries, or none matching: the crash counts.
        assert_eq!(
            rule(serde_json::json!([])).submits(&crash("abort", &[])),
            submitted(None)
        );
    }

    #[test]
    fn bad_definitions_are_refused_with_a_reason() {
        let bad = |v: serde_json::Value| {
            let d: RuleDefinition = serde_json::from_value(v).unwrap();
            AlertRule::new(1, 1, "r".into(), d).unwrap_err().0
        };
        assert!(
            bad(serde_json::json!({"triggers": [], "actions": [{"channel": 1}]}))
                .contains("trigger")
        );
        assert!(bad(serde_json::json!({
            "triggers": [{"kind": "new_group"}], "actions": [{"channel": 1}],
            "conditions": [{"action": "submit", "attribute": "os", "pattern": "("}]
        }))
        .contains("condition 0"));
        assert!(bad(serde_json::json!({
            "triggers": [{"kind": "spike", "factor": 0.0, "window_secs": 60, "min_events": 1}],
            "actions": [{"channel": 1}]
        }))
        .contains("spike"));
        assert!(bad(serde_json::json!({
            "triggers": [{"kind": "new_group"}], "actions": [{"channel": 1}],
            "filters": {"states": ["closed"]}
        }))
        .contains("closed"));
    }
}
