//! Throttling: ordered rules on annotations decide whether a crash is kept, dropped, or kept
//! for a percentage of crashes. The first rule that matches wins; no match accepts. Each
//! rule's decisions are counted in `/metrics` (`faultline_throttle_total{rule, verdict}`).
//!
//! ```toml
//! [[ingest.throttle]]
//! name = "nightly-sample"
//! annotation = "ReleaseChannel"
//! matches = "^nightly$"
//! action = "sample"      # accept | reject | sample
//! percent = 10
//! ```

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One rule, as configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThrottleRule {
    /// Name in metrics and in `Discarded=` replies.
    pub name: String,
    /// The annotation the rule looks at.
    pub annotation: String,
    /// Regex the annotation's value must match (a missing annotation never matches).
    pub matches: String,
    /// `accept`, `reject` or `sample`.
    pub action: String,
    /// For `sample`: the percentage kept.
    #[serde(default)]
    pub percent: Option<u32>,
}

/// What a rule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it (the rule that said so, if one did).
    Accept(Option<String>),
    /// Drop it; the reason for the client (`Discarded=<reason>`).
    Reject(String),
}

enum Action {
    Accept,
    Reject,
    Sample(u32),
}

/// The compiled rules.
pub struct Throttle {
    rules: Vec<(String, String, Regex, Action)>,
}

impl Throttle {
    /// Compiles the rules, naming the first bad one.
    pub fn new(rules: &[ThrottleRule]) -> Result<Throttle, String> {
        let mut compiled = Vec::new();
        for rule in rules {
            let regex = Regex::new(&rule.matches)
                .map_err(|e| format!("ingest.throttle rule {:?}: bad regex: {e}", rule.name))?;
            let action = match (rule.action.as_str(), rule.percent) {
                ("accept", _) => Action::Accept,
                ("reject", _) => Action::Reject,
                ("sample", Some(p)) if p <= 100 => Action::Sample(p),
                ("sample", _) => return Err(format!("ingest.throttle rule {:?}: sample needs percent = 0..100", rule.name)),
                (other, _) => return Err(format!("ingest.throttle rule {:?}: action must be accept, reject or sample, not {other:?}", rule.name)),
            };
            compiled.push((rule.name.clone(), rule.annotation.clone(), regex, action));
        }
        Ok(Throttle { rules: compiled })
    }

    /// Judges a crash. Sampling is decided by a hash of the crash ID, so it is spread evenly
    /// and the same crash always gets the same answer.
    pub fn judge(&self, annotations: &BTreeMap<String, String>, crash_id: &str) -> Verdict {
        for (name, annotation, regex, action) in &self.rules {
            let Some(value) = annotations.get(annotation) else {
                continue;
            };
            if !regex.is_match(value) {
                continue;
            }
            let verdict = match action {
                Action::Accept => Verdict::Accept(Some(name.clone())),
                Action::Reject => Verdict::Reject(format!("rule_{name}")),
                Action::Sample(percent) => {
                    let hash = Sha256::digest(crash_id.as_bytes());
                    let bucket = u32::from(u16::from_le_bytes([hash[0], hash[1]])) % 100;
                    if bucket < *percent {
                        Verdict::Accept(Some(name.clone()))
                    } else {
                        Verdict::Reject(format!("rule_{name}_sampled"))
                    }
                }
            };
            let label = if matches!(verdict, Verdict::Accept(_)) {
                "accept"
            } else {
                "reject"
            };
            metrics::counter!("faultline_throttle_total", "rule" => name.clone(), "verdict" => label).increment(1);
            return verdict;
        }
        Verdict::Accept(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        name: &str,
        annotation: &str,
        matches: &str,
        action: &str,
        percent: Option<u32>,
    ) -> ThrottleRule {
        ThrottleRule {
            name: name.into(),
            annotation: annotation.into(),
            matches: matches.into(),
            action: action.into(),
            percent,
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let throttle = Throttle::new(&[
            rule("keep-esr", "ReleaseChannel", "^esr$", "accept", None),
            rule("no-test", "ProductName", "^Test", "reject", None),
            rule("half", "ProductName", ".", "sample", Some(50)),
        ])
        .unwrap();
        let a = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            throttle.judge(
                &a(&[("ReleaseChannel", "esr"), ("ProductName", "TestApp")]),
                "x"
            ),
            Verdict::Accept(Some("keep-esr".into()))
        );
        assert_eq!(
            throttle.judge(&a(&[("ProductName", "TestApp")]), "x"),
            Verdict::Reject("rule_no-test".into())
        );
        assert_eq!(throttle.judge(&a(&[]), "x"), Verdict::Accept(None));
        // About half of many crash IDs are sampled in, and the same ID always gets the same answer.
        let kept = (0..1000)
            .filter(|i| {
                matches!(
                    throttle.judge(&a(&[("ProductName", "Game")]), &format!("id-{i}")),
                    Verdict::Accept(_)
                )
            })
            .count();
        assert!((400..600).contains(&kept), "{kept}");
        let once = throttle.judge(&a(&[("ProductName", "Game")]), "stable");
        assert_eq!(
            throttle.judge(&a(&[("ProductName", "Game")]), "stable"),
            once
        );
    }

    #[test]
    fn bad_rules_are_named() {
        assert!(Throttle::new(&[rule("r", "a", "(", "accept", None)])
            .err()
            .unwrap()
            .contains("\"r\""));
        assert!(Throttle::new(&[rule("s", "a", ".", "sample", None)])
            .err()
            .unwrap()
            .contains("percent"));
        assert!(Throttle::new(&[rule("t", "a", ".", "drop", None)])
            .err()
            .unwrap()
            .contains("accept, reject or sample"));
    }
}
