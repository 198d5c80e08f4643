//! Firing rules inside the transaction that records crashes: for each crash recorded for the
//! first time and each enabled rule of its project, the conditions and group filters decide
//! whether it counts; the triggers whether something happened; the action interval, claimed
//! with one upsert, whether the rule may fire for that group now. A firing and its deliveries
//! are written in the same transaction, so they commit with the crash or not at all.
//!
//! Counting triggers (events, users, spike) read the crash table in that transaction, so they
//! include the batch's crashes, and only for groups that passed everything cheaper first (the
//! group's totals, the rule's interval); each count stops at the number that decides it.

use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::Row;

use super::rules::{AlertRule, Trigger, TriggerMatch, Verdict};
use super::{now, Alerts};
use crate::group::index::sessions::release_totals;
use crate::group::index::{Dialect, Group, GroupState, IndexError, RecordObserver, RecordedCrash};
use crate::outbound::{AlertMessage, CrashSummary, GroupSummary, Links, MessageEvent, RuleRef};

/// What a count counts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Counted {
    /// Crashes.
    Events,
    /// Distinct users.
    Users,
}

/// Counts read so far in this batch, by (what, group, from, to, cap).
type CountCache = HashMap<(Counted, i64, i64, i64, i64), i64>;

/// The most crashes a week-old window is counted up to (a spike over a busier window than
/// this compares against this many).
const HISTORY_CAP: i64 = 1_000_000;

/// Crashes (or distinct users) of a group in `(from, to]`, counted up to `cap`: a threshold
/// only needs to know whether the count passed it, so no evaluation reads more than `cap`
/// index entries however busy the group is.
async fn count(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    cache: &mut CountCache,
    what: Counted,
    group_id: i64,
    (from, to): (i64, i64),
    cap: i64,
) -> Result<i64, IndexError> {
    let key = (what, group_id, from, to, cap);
    if let Some(n) = cache.get(&key) {
        return Ok(*n);
    }
    let sql = match what {
        Counted::Events => {
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM crashes WHERE group_id = $1 \
             AND received_at > $2 AND received_at <= $3 LIMIT $4) capped"
        }
        Counted::Users => {
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT user_id FROM crashes WHERE group_id = $1 \
             AND received_at > $2 AND received_at <= $3 AND user_id IS NOT NULL LIMIT $4) capped"
        }
    };
    let n: i64 = sqlx::query(sql)
        .bind(group_id)
        .bind(from)
        .bind(to)
        .bind(cap.max(1))
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    cache.insert(key, n);
    Ok(n)
}

impl Alerts {
    /// A group's crashes in the same window a week ago. That window is in the past and does not
    /// change, so it is counted once a minute per group and window length (the window's ends
    /// are taken to the minute) and kept in memory.
    async fn week_before(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        group_id: i64,
        window_secs: i64,
        now: i64,
    ) -> Result<i64, IndexError> {
        let minute = now - now.rem_euclid(60);
        let key = (group_id, window_secs, minute);
        if let Some(n) = self.history.lock().expect("never poisoned").get(&key) {
            return Ok(*n);
        }
        let week = 7 * 24 * 3600;
        let mut scratch = CountCache::new();
        let n = count(
            tx,
            &mut scratch,
            Counted::Events,
            group_id,
            (minute - week - window_secs, minute - week),
            HISTORY_CAP,
        )
        .await?;
        let mut history = self.history.lock().expect("never poisoned");
        if history.len() > 100_000 {
            history.clear();
        }
        history.insert(key, n);
        Ok(n)
    }

    /// Whether `trigger` holds for this crash, and if so, why (as JSON). The group's totals
    /// (which include the batch) rule out most counting before any query.
    async fn holds(
        &self,
        trigger: &Trigger,
        crash: &RecordedCrash<'_>,
        now: i64,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        cache: &mut CountCache,
    ) -> Result<Option<Value>, IndexError> {
        let group = crash.group;
        Ok(match trigger {
            Trigger::NewGroup => crash.recorded.new_group.then(|| json!({})),
            Trigger::Regression => crash
                .recorded
                .regressed
                .then(|| json!({ "release": crash.crash.release })),
            Trigger::Woke => crash.recorded.woke.then(|| json!({})),
            Trigger::EveryCrash => Some(json!({})),
            Trigger::Events {
                count: n,
                window_secs,
            } => {
                if group.event_count <= *n {
                    return Ok(None);
                }
                let window = (now - window_secs, now);
                let c = count(tx, cache, Counted::Events, group.id, window, n + 1).await?;
                (c > *n).then(|| json!({ "events": c, "more_than": n, "window_secs": window_secs, "counted_up_to": n + 1 }))
            }
            Trigger::Users {
                count: n,
                window_secs,
            } => {
                if group.user_count <= *n {
                    return Ok(None);
                }
                let window = (now - window_secs, now);
                let c = count(tx, cache, Counted::Users, group.id, window, n + 1).await?;
                (c > *n).then(|| json!({ "users": c, "more_than": n, "window_secs": window_secs, "counted_up_to": n + 1 }))
            }
            Trigger::CrashFreeBelow { .. } | Trigger::RateAbove { .. } => {
                release_trigger(trigger, crash, &self.sessions, tx).await?
            }
            Trigger::Spike {
                factor,
                window_secs,
                min_events,
            } => {
                if group.event_count < *min_events {
                    return Ok(None);
                }
                let before = self.week_before(tx, group.id, *window_secs, now).await?;
                // Enough to tell whether the window passed both bars.
                let needed = ((factor * before as f64).floor() as i64 + 1).max(*min_events);
                let window = (now - window_secs, now);
                let current = count(tx, cache, Counted::Events, group.id, window, needed).await?;
                (current >= *min_events && current as f64 > factor * before as f64).then(|| {
                    json!({
                        "events": current,
                        "week_before": before,
                        "factor": factor,
                        "window_secs": window_secs,
                        "counted_up_to": needed,
                    })
                })
            }
        })
    }
}

/// Whether a trigger on the crash's release's sessions holds (`crash_free_below`,
/// `rate_above`), and why: session counts from `sessions` (committed ones; on SQLite another
/// file), crash counts in the recording transaction `tx`.
async fn release_trigger(
    trigger: &Trigger,
    crash: &RecordedCrash<'_>,
    sessions: &sqlx::AnyPool,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
) -> Result<Option<Value>, IndexError> {
    let group = crash.group;
    Ok(match trigger {
        Trigger::CrashFreeBelow {
            percent,
            users,
            min_sessions,
        } => {
            let Some(release) = crash.crash.release.as_deref() else {
                return Ok(None);
            };
            let counts =
                release_totals(sessions, &mut *tx, crash.crash.project_id, release).await?;
            let rate = if *users {
                counts.crash_free_users()
            } else {
                counts.crash_free_sessions()
            };
            match rate {
                Some(rate) if counts.sessions >= *min_sessions && rate < *percent => Some(json!({
                    "release": release,
                    "crash_free": rate,
                    "of": if *users { "users" } else { "sessions" },
                    "below": percent,
                    "sessions": counts.sessions,
                })),
                _ => None,
            }
        }
        Trigger::RateAbove {
            per_1000,
            min_sessions,
        } => {
            let Some(release) = crash.crash.release.as_deref() else {
                return Ok(None);
            };
            let counts =
                release_totals(sessions, &mut *tx, crash.crash.project_id, release).await?;
            if counts.sessions < (*min_sessions).max(1) {
                return Ok(None);
            }
            let crashes: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM crashes WHERE group_id = $1 AND release = $2",
            )
            .bind(group.id)
            .bind(release)
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?;
            let rate = crashes as f64 * 1000.0 / counts.sessions as f64;
            (rate > *per_1000).then(|| {
                json!({
                    "release": release,
                    "per_1000_sessions": (rate * 1000.0).round() / 1000.0,
                    "above": per_1000,
                    "crashes": crashes,
                    "sessions": counts.sessions,
                })
            })
        }
        _ => None,
    })
}

/// Whether the rule may fire for the group now, claiming the interval if so: one upsert that
/// only succeeds when the last firing is older than the interval. On Postgres a second writer
/// waits for the first one's row and then sees its time, so only one of them fires.
async fn claim_interval(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    rule: &AlertRule,
    group_id: i64,
    now: i64,
) -> Result<bool, IndexError> {
    let claimed = sqlx::query(
        "INSERT INTO alert_cooldowns (rule_id, group_id, fired_at) VALUES ($1, $2, $3) \
         ON CONFLICT (rule_id, group_id) DO UPDATE SET fired_at = excluded.fired_at \
         WHERE alert_cooldowns.fired_at <= $4 RETURNING rule_id",
    )
    .bind(rule.id)
    .bind(group_id)
    .bind(now)
    .bind(now - rule.definition.interval_secs)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(claimed.is_some())
}

/// Whether the rule's interval for the group is running (a read, to skip counting).
async fn in_interval(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    rule: &AlertRule,
    group_id: i64,
    now: i64,
) -> Result<bool, IndexError> {
    if rule.definition.interval_secs == 0 {
        return Ok(false);
    }
    let row =
        sqlx::query("SELECT fired_at FROM alert_cooldowns WHERE rule_id = $1 AND group_id = $2")
            .bind(rule.id)
            .bind(group_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(match row {
        Some(row) => row.try_get::<i64, _>("fired_at")? > now - rule.definition.interval_secs,
        None => false,
    })
}

fn counting(trigger: &Trigger) -> bool {
    matches!(
        trigger,
        Trigger::Events { .. }
            | Trigger::Users { .. }
            | Trigger::Spike { .. }
            | Trigger::CrashFreeBelow { .. }
            | Trigger::RateAbove { .. }
    )
}

#[async_trait::async_trait]
impl RecordObserver for Alerts {
    async fn recorded(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        _dialect: Dialect,
        crashes: &[RecordedCrash<'_>],
    ) -> Result<bool, IndexError> {
        let set = self.rule_set(tx).await.map_err(|e| match e {
            super::AlertError::Database(e) => IndexError::Database(e),
            other => IndexError::Broken(other.to_string()),
        })?;
        let now = now();
        let mut wrote = false;
        for crash in crashes {
            if crash.recorded.regressed || crash.recorded.woke {
                let cause = if crash.recorded.regressed {
                    "regression"
                } else {
                    "woke"
                };
                wrote |= self.sync_tickets(tx, crash, cause, now).await?;
            }
        }
        if set.by_project.is_empty() {
            return Ok(wrote);
        }
        let mut cache = CountCache::new();
        for crash in crashes {
            let Some(rules) = set.by_project.get(&crash.crash.project_id) else {
                continue;
            };
            for rule in rules {
                let Verdict::Submitted { by: submitted_by } = rule.submits(crash.crash) else {
                    continue;
                };
                if !rule.accepts(crash.group, crash.crash, now) {
                    continue;
                }
                let d = &rule.definition;
                // Cheap triggers first; counting ones only when they can still matter.
                let mut held = Vec::new();
                let mut missed = false;
                for trigger in d.triggers.iter().filter(|t| !counting(t)) {
                    match self.holds(trigger, crash, now, tx, &mut cache).await? {
                        Some(why) => held.push((trigger.name(), why)),
                        None => missed = true,
                    }
                }
                let decided_without_counts = match d.trigger_match {
                    TriggerMatch::Any => !held.is_empty(),
                    TriggerMatch::All => missed,
                };
                let has_counting = d.triggers.iter().any(counting);
                if !decided_without_counts && has_counting {
                    if in_interval(tx, rule, crash.group.id, now).await? {
                        continue;
                    }
                    for trigger in d.triggers.iter().filter(|t| counting(t)) {
                        match self.holds(trigger, crash, now, tx, &mut cache).await? {
                            Some(why) => held.push((trigger.name(), why)),
                            None => missed = true,
                        }
                        if d.trigger_match == TriggerMatch::All && missed {
                            break;
                        }
                    }
                }
                let fires = match d.trigger_match {
                    TriggerMatch::Any => !held.is_empty(),
                    TriggerMatch::All => !missed,
                };
                if !fires || !claim_interval(tx, rule, crash.group.id, now).await? {
                    continue;
                }
                self.write_fire(tx, rule, crash, &held, submitted_by, &set.channels, now)
                    .await?;
                wrote = true;
            }
        }
        Ok(wrote)
    }

    fn committed(&self) {
        self.wake.notify_one();
    }
}

impl Alerts {
    /// Writes a firing and one delivery per action.
    #[allow(clippy::too_many_arguments)]
    async fn write_fire(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        rule: &AlertRule,
        crash: &RecordedCrash<'_>,
        held: &[(&'static str, Value)],
        submitted_by: Option<usize>,
        channels: &HashMap<i64, super::ChannelConfig>,
        now: i64,
    ) -> Result<(), IndexError> {
        let trigger = held.first().map_or("every_crash", |(name, _)| name);
        let reason = json!({
            "triggers": held.iter().map(|(name, why)| json!({"trigger": name, "why": why})).collect::<Vec<_>>(),
            "condition": submitted_by,
            "rule": rule.name,
        });
        let fire_id: i64 = sqlx::query(
            "INSERT INTO alert_fires (rule_id, project_id, group_id, crash_id, trigger, reason, \
             fired_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(rule.id)
        .bind(rule.project_id)
        .bind(crash.group.id)
        .bind(crash.crash.id.as_str())
        .bind(trigger)
        .bind(reason.to_string())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        metrics::counter!("faultline_alert_fires_total", "trigger" => trigger).increment(1);
        let message = AlertMessage {
            suspect_commits: Vec::new(),
            evidence: None,
            event: MessageEvent::Alert,
            rule: Some(RuleRef {
                id: rule.id,
                name: rule.name.clone(),
            }),
            trigger: trigger.to_owned(),
            reason,
            project_id: rule.project_id,
            group: Some(GroupSummary::of(crash.group)),
            crash: Some(CrashSummary::of(crash.crash, crash.top_frames)),
            links: Links::to(&self.public_url, crash.group.id, Some(&crash.crash.id)),
            at: now,
        };
        let message = serde_json::to_string(&message).expect("messages serialize");
        for action in &rule.definition.actions {
            let digest = channels.get(&action.channel).map_or(0, |c| c.digest_secs());
            let due = if digest > 0 {
                // Join the digest already waiting for this channel, or open one.
                let open: Option<i64> = sqlx::query(
                    "SELECT MIN(next_attempt_at) AS due FROM alert_deliveries \
                     WHERE channel_id = $1 AND state = 'pending' AND attempts = 0",
                )
                .bind(action.channel)
                .fetch_one(&mut **tx)
                .await?
                .try_get("due")?;
                open.unwrap_or(now + digest)
            } else {
                now
            };
            self.insert_delivery(
                tx,
                Some(fire_id),
                action.channel,
                rule.project_id,
                &message,
                due,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// A triage change (API, web UI, or a tracker's webhook: `origin` is that tracker's
    /// channel, which is not told back). A group resolved closes the PagerDuty incidents it
    /// opened; a state or assignee change moves the group's tickets.
    pub async fn group_changed(
        &self,
        before: &Group,
        after: &Group,
        origin: Option<i64>,
    ) -> Result<(), super::AlertError> {
        let resolved = after.state == GroupState::Resolved && before.state != GroupState::Resolved;
        let moved = after.state != before.state || after.assignee != before.assignee;
        if !resolved && !moved {
            return Ok(());
        }
        let mut targets: Vec<(i64, MessageEvent)> = Vec::new();
        if resolved {
            let rows = sqlx::query(
                "SELECT DISTINCT d.channel_id AS channel_id FROM alert_deliveries d \
                 JOIN alert_fires f ON f.id = d.fire_id \
                 JOIN alert_channels c ON c.id = d.channel_id \
                 WHERE f.group_id = $1 AND c.kind = 'pagerduty'",
            )
            .bind(after.id)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                targets.push((row.try_get("channel_id")?, MessageEvent::Resolved));
            }
        }
        if moved {
            for link in self.desk.links_of_group(after.id).await? {
                if Some(link.channel_id) != origin {
                    targets.push((link.channel_id, MessageEvent::Sync));
                }
            }
        }
        if targets.is_empty() {
            return Ok(());
        }
        let now = now();
        let mut tx = self.pool.begin().await?;
        for (channel, event) in targets {
            let message = AlertMessage {
                suspect_commits: Vec::new(),
                evidence: None,
                event,
                rule: None,
                trigger: "triage".into(),
                reason: json!({"state": after.state, "was": before.state, "resolved_in": after.resolved_in, "assignee": after.assignee}),
                project_id: after.project_id,
                group: Some(GroupSummary::of(after)),
                crash: None,
                links: Links::to(&self.public_url, after.id, None),
                at: now,
            };
            let message = serde_json::to_string(&message).expect("messages serialize");
            self.insert_delivery(&mut tx, None, channel, after.project_id, &message, now, now)
                .await
                .map_err(super::AlertError::from)?;
        }
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    /// A crash reopened its group (a regression, a mute ending): the group's tickets follow,
    /// in the transaction that records the crash.
    async fn sync_tickets(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        crash: &RecordedCrash<'_>,
        cause: &str,
        now: i64,
    ) -> Result<bool, IndexError> {
        let rows = sqlx::query("SELECT channel_id FROM group_tickets WHERE group_id = $1")
            .bind(crash.group.id)
            .fetch_all(&mut **tx)
            .await?;
        for row in &rows {
            let message = AlertMessage {
                suspect_commits: Vec::new(),
                evidence: None,
                event: MessageEvent::Sync,
                rule: None,
                trigger: cause.to_owned(),
                reason: json!({"release": crash.crash.release}),
                project_id: crash.group.project_id,
                group: Some(GroupSummary::of(crash.group)),
                crash: Some(CrashSummary::of(crash.crash, crash.top_frames)),
                links: Links::to(&self.public_url, crash.group.id, Some(&crash.crash.id)),
                at: now,
            };
            let message = serde_json::to_string(&message).expect("messages serialize");
            let channel: i64 = row.try_get("channel_id")?;
            self.insert_delivery(
                tx,
                None,
                channel,
                crash.group.project_id,
                &message,
                now,
                now,
            )
            .await?;
        }
        Ok(!rows.is_empty())
    }

    /// Writes one pending delivery.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn insert_delivery(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        fire_id: Option<i64>,
        channel_id: i64,
        project_id: i64,
        message: &str,
        due: i64,
        now: i64,
    ) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO alert_deliveries (id, fire_id, channel_id, project_id, message, state, \
             attempts, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(fire_id)
        .bind(channel_id)
        .bind(project_id)
        .bind(message)
        .bind(due)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
