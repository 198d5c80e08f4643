//! Throttling: ordered rules on annotations decide whether a crash is kept, dropped, or kept
//! for a percentage of crashes. The first rule that matches wins; no match accepts. Each
//! rule's decisions are counted in `/metrics` (`faultline_throttle_total{rule, verdict}`).
//!
//! A rule may name a project (its slug): it then judges only that project's crashes.
//!
//! ```toml
//! [[ingest.throttle]]
//! name = "nightly-sample"
//! project = "my-game"    # optional; every project when absent
//! annotation = "ReleaseChannel"
//! matches = "^nightly$"
//! action = "sample"      # accept | reject | sample
//! percent = 10
//! ```

use std::collections::BTreeMap;

use regex::Regex;
use sha2::{Digest, Sha256};

use crate::config::ThrottleRule;

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

/// One compiled rule.
struct CompiledRule {
    name: String,
    project: Option<String>,
    annotation: String,
    regex: Regex,
    action: Action,
}

/// The compiled rules.
pub struct Throttle {
    rules: Vec<CompiledRule>,
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
            compiled.push(CompiledRule {
                name: rule.name.clone(),
                project: rule.project.clone(),
                annotation: rule.annotation.clone(),
                regex,
                action,
            });
        }
        Ok(Throttle { rules: compiled })
    }

    /// Judges a crash of the project `project` (its slug). Sampling is decided by a hash of the
    /// crash ID, so it is spread evenly and the same crash always gets the same answer.
    pub fn judge(
        &self,
        annotations: &BTreeMap<String, String>,
        crash_id: &str,
        project: &str,
    ) -> Verdict {
        for rule in &self.rules {
            let CompiledRule {
                name,
                annotation,
                regex,
                action,
                ..
            } = rule;
            if rule.project.as_deref().is_some_and(|p| p != project) {
                continue;
            }
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
            project: None,
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
                "x",
                "default"
            ),
            Verdict::Accept(Some("keep-esr".into()))
        );
        assert_eq!(
            throttle.judge(&a(&[("ProductName", "TestApp")]), "x", "default"),
            Verdict::Reject("rule_no-test".into())
        );
        assert_eq!(
            throttle.judge(&a(&[]), "x", "default"),
            Verdict::Accept(None)
        );
        // About half of many crash IDs are sampled in, and the same ID always gets the same answer.
        let kept = (0..1000)
            .filter(|i| {
                matches!(
                    throttle.judge(
                        &a(&[("ProductName", "Game")]),
                        &format!("id-{i}"),
                        "default"
                    ),
                    Verdict::Accept(_)
                )
            })
            .count();
        assert!((400..600).contains(&kept), "{kept}");
        let once = throttle.judge(&a(&[("ProductName", "Game")]), "stable", "default");
        assert_eq!(
            throttle.judge(&a(&[("ProductName", "Game")]), "stable", "default"),
            once
        );
    }

    #[test]
    fn project_rules_judge_only_their_project() {
        let mut only_game = rule("no-game-beta", "channel", "^beta$", "reject", None);
        only_game.project = Some("game".into());
        let throttle = Throttle::new(&[only_game]).unwrap();
        let beta: BTreeMap<String, String> = [("channel".to_owned(), "beta".to_owned())].into();
        assert_eq!(
            throttle.judge(&beta, "x", "game"),
            Verdict::Reject("rule_no-game-beta".into())
        );
        assert_eq!(throttle.judge(&beta, "x", "default"), Verdict::Accept(None));
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
