//! Alerts with real parts: triggers evaluated in the crash index's own transaction (on both
//! databases, two nodes at once on Postgres), webhooks, Slack and PagerDuty bodies checked by
//! loopback receivers that verify what the real services would, email through a real SMTP
//! server (aiosmtpd, STARTTLS + AUTH), retries, dead letters and a kill -9 mid-delivery.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::alerting::{create, deliveries, drained, hmac_hex, server};
use common::receiver::{Answer, Receiver};
use common::{generated_bytes, Db, TestServer};
use faultline::alerts::{Alerts, NewChannel, RuleDefinition};
use faultline::config::AlertsConfig;
use faultline::group::index::{
    CrashAttributes, CrashIndex, GroupPatch, GroupState, NewCrash, PayloadBudget, RecordObserver,
};
use serde_json::{json, Value};

const GENEROUS: PayloadBudget = PayloadBudget {
    per_new_group: 1000,
    per_group_hour: 1000,
};

const WEEK: i64 = 7 * 24 * 3600;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// An index with alerts observing it, as one node.
async fn node(url: &str, name: &str) -> (Arc<CrashIndex>, Arc<Alerts>) {
    let index = Arc::new(CrashIndex::open(url, GENEROUS).await.unwrap());
    let config = AlertsConfig {
        retry_base_ms: 100,
        ..AlertsConfig::default()
    };
    let alerts = Alerts::new(
        &index,
        name.to_owned(),
        config,
        "https://faultline.test".into(),
    );
    index.observe(Arc::clone(&alerts) as Arc<dyn RecordObserver>);
    (index, alerts)
}

fn crash(id: &str, fingerprint: &str, at: i64, release: &str, user: Option<&str>) -> NewCrash {
    crash_with(id, fingerprint, at, release, user, "null-read", &[])
}

fn crash_with(
    id: &str,
    fingerprint: &str,
    at: i64,
    release: &str,
    user: Option<&str>,
    class: &str,
    annotations: &[(&str, &str)],
) -> NewCrash {
    NewCrash {
        attributes: CrashAttributes {
            id: id.to_owned(),
            project_id: 1,
            received_at: at,
            product: Some("Game".into()),
            release: Some(release.into()),
            platform: Some("Linux".into()),
            cpu: Some("amd64".into()),
            user_id: user.map(str::to_owned),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            fingerprint: fingerprint.to_owned(),
            signature: format!("sig {fingerprint}"),
            fault_class: faultline::group::CrashClass::named(class).expect("a known class"),
            kind: Default::default(),
        },
        payload_key: format!("crashes/x/{id}/processed.json"),
        top_frames: Vec::new(),
        replaces_earlier: false,
        facts: Default::default(),
    }
}

async fn webhook_channel(alerts: &Alerts, url: &str) -> i64 {
    alerts
        .create_channel(&NewChannel {
            project_id: 1,
            name: "hook".into(),
            include_variables: false,
            config: serde_json::from_value(json!({
                "kind": "webhook", "url": url, "secret": "0123456789abcdef-secret"
            }))
            .unwrap(),
        })
        .await
        .unwrap()
        .id
}

async fn rule(alerts: &Alerts, name: &str, definition: Value) -> i64 {
    let definition: RuleDefinition = serde_json::from_value(definition).unwrap();
    alerts
        .create_rule(1, name, true, definition)
        .await
        .unwrap()
        .id
}

/// How many times `rule` fired for `group`.
async fn fired(alerts: &Alerts, rule: i64, group: i64) -> usize {
    alerts
        .fires(1, Some(group), None, 500)
        .await
        .unwrap()
        .iter()
        .filter(|f| f.rule_id == rule)
        .count()
}

on_both_databases! {
/// Every trigger fires when its event happens, once per interval; a spike is measured against
/// the same window a week earlier, and a group with no history can spike.
async fn every_trigger_fires_when_its_event_happens(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::database_url(db, dir.path()).await else { return };
    let (index, alerts) = node(&url, "a").await;
    let channel = webhook_channel(&alerts, "http://127.0.0.1:9/").await;
    let action = json!([{"channel": channel}]);
    let new = rule(&alerts, "new", json!({"triggers": [{"kind": "new_group"}], "actions": action})).await;
    let regression = rule(&alerts, "reg", json!({"triggers": [{"kind": "regression"}], "actions": action})).await;
    let woke = rule(&alerts, "woke", json!({"triggers": [{"kind": "woke"}], "actions": action})).await;
    let events = rule(&alerts, "events", json!({"triggers": [{"kind": "events", "count": 2, "window_secs": 3600}], "actions": action})).await;
    let users = rule(&alerts, "users", json!({"triggers": [{"kind": "users", "count": 1, "window_secs": 3600}], "actions": action})).await;
    let spike = rule(&alerts, "spike", json!({"triggers": [{"kind": "spike", "factor": 2.0, "window_secs": 3600, "min_events": 3}], "actions": action})).await;
    let t = now();

    // Group A: new; the third crash passes 2 events and 1 user; with no history, it spikes.
    let a = index.record(&crash("a1", "fa", t, "1.0", None)).await.unwrap().group_id;
    assert_eq!(fired(&alerts, new, a).await, 1);
    assert_eq!(fired(&alerts, events, a).await, 0);
    index.record(&crash("a2", "fa", t, "1.0", Some("u1"))).await.unwrap();
    assert_eq!(fired(&alerts, users, a).await, 0, "one user is not more than one");
    assert_eq!(fired(&alerts, spike, a).await, 0, "below min_events");
    index.record(&crash("a3", "fa", t, "1.0", Some("u2"))).await.unwrap();
    assert_eq!(fired(&alerts, events, a).await, 1);
    assert_eq!(fired(&alerts, users, a).await, 1);
    assert_eq!(fired(&alerts, spike, a).await, 1, "a group with no history spikes");
    // More crashes within the interval: nothing fires again.
    index.record(&crash("a4", "fa", t, "1.0", Some("u3"))).await.unwrap();
    assert_eq!(fired(&alerts, events, a).await, 1);
    assert_eq!(fired(&alerts, new, a).await, 1);

    // Regression: resolved in 1.0, a crash from 1.1 reopens it.
    let resolve = GroupPatch {
        state: Some(GroupState::Resolved),
        resolved_in: Some(Some("1.0".into())),
        ..GroupPatch::default()
    };
    index.update_group(a, &resolve).await.unwrap();
    index.record(&crash("a5", "fa", t, "1.0", None)).await.unwrap();
    assert_eq!(fired(&alerts, regression, a).await, 0, "same release: no regression");
    index.record(&crash("a6", "fa", t, "1.1", None)).await.unwrap();
    assert_eq!(fired(&alerts, regression, a).await, 1);
    // Woke: muted for one more crash.
    let mute = GroupPatch {
        state: Some(GroupState::Muted),
        mute_for_events: Some(Some(1)),
        ..GroupPatch::default()
    };
    index.update_group(a, &mute).await.unwrap();
    assert_eq!(fired(&alerts, woke, a).await, 0);
    index.record(&crash("a7", "fa", t, "1.1", None)).await.unwrap();
    assert_eq!(fired(&alerts, woke, a).await, 1);

    // Group B: 10 crashes in this window last week, 3 now: no spike (3 ≤ 2 × 10).
    let mut b = 0;
    for i in 0..10 {
        b = index.record(&crash(&format!("b-old{i}"), "fb", t - WEEK - 60, "1.0", None)).await.unwrap().group_id;
    }
    for i in 0..3 {
        index.record(&crash(&format!("b{i}"), "fb", t, "1.0", None)).await.unwrap();
    }
    assert_eq!(fired(&alerts, spike, b).await, 0);
    // Group C: 2 last week, 5 now: a spike (5 > 2 × 2), fired by the crash that crossed it.
    let mut c = 0;
    for i in 0..2 {
        c = index.record(&crash(&format!("c-old{i}"), "fc", t - WEEK - 60, "1.0", None)).await.unwrap().group_id;
    }
    for i in 0..5 {
        index.record(&crash(&format!("c{i}"), "fc", t, "1.0", None)).await.unwrap();
        let expected = usize::from(i == 4);
        assert_eq!(fired(&alerts, spike, c).await, expected, "after crash {i}");
    }
    let fires = alerts.fires(1, Some(c), None, 10).await.unwrap();
    let spike_fire = fires.iter().find(|f| f.rule_id == spike).unwrap();
    assert_eq!(spike_fire.trigger, "spike");
    assert_eq!(spike_fire.crash_id, "c4");
    assert_eq!(spike_fire.reason["triggers"][0]["why"]["events"], 5);
    assert_eq!(spike_fire.reason["triggers"][0]["why"]["week_before"], 2);

    // A mute for one more user: a crash without a user leaves it muted; a new user wakes it.
    let mute_users = GroupPatch {
        state: Some(GroupState::Muted),
        mute_for_users: Some(Some(1)),
        ..GroupPatch::default()
    };
    index.update_group(c, &mute_users).await.unwrap();
    let quiet = index.record(&crash("c-anon", "fc", t, "1.0", None)).await.unwrap();
    assert!(!quiet.woke);
    assert_eq!(fired(&alerts, woke, c).await, 0);
    let loud = index.record(&crash("c-user", "fc", t, "1.0", Some("new-user"))).await.unwrap();
    assert!(loud.woke);
    assert_eq!(fired(&alerts, woke, c).await, 1);
    assert_eq!(index.group(c).await.unwrap().unwrap().state.as_str(), "open");

    // Each firing left one pending delivery per action, with the message it will send.
    let deliveries = alerts
        .deliveries(1, faultline::alerts::DeliveryFilter::Pending, 500)
        .await
        .unwrap();
    let all_fires = alerts.fires(1, None, None, 500).await.unwrap();
    assert_eq!(deliveries.len(), all_fires.len());
    let d = deliveries.iter().find(|d| d.fire_id == Some(spike_fire.id)).unwrap();
    assert_eq!(d.message.trigger, "spike");
    assert_eq!(d.message.group.as_ref().unwrap().id, c);
    assert_eq!(
        d.message.links.group.as_deref(),
        Some(format!("https://faultline.test/ui/groups/{c}").as_str())
    );
}
}

on_both_databases! {
/// The action interval holds under concurrent crashes, and on Postgres across two nodes
/// recording the same group at once: one firing. With no interval, every crash fires.
async fn the_action_interval_holds_under_concurrent_crashes(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::database_url(db, dir.path()).await else { return };
    let (index_a, alerts_a) = node(&url, "a").await;
    let nodes = if db == Db::Postgres {
        let (index_b, alerts_b) = node(&url, "b").await;
        vec![(Arc::clone(&index_a), Arc::clone(&alerts_a)), (index_b, alerts_b)]
    } else {
        vec![(Arc::clone(&index_a), Arc::clone(&alerts_a))]
    };
    let channel = webhook_channel(&alerts_a, "http://127.0.0.1:9/").await;
    let once = rule(&alerts_a, "once", json!({"triggers": [{"kind": "every_crash"}], "actions": [{"channel": channel}]})).await;
    let every = rule(&alerts_a, "every", json!({"triggers": [{"kind": "every_crash"}], "actions": [{"channel": channel}], "interval_secs": 0})).await;
    // The group exists first, so the race is about firing, not about creating it.
    let group = index_a.record(&crash("first", "f", now(), "1.0", None)).await.unwrap().group_id;
    let t = now();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (index, _) = nodes[i % nodes.len()].clone();
        tasks.push(tokio::spawn(async move {
            index.record(&crash(&format!("c{i}"), "f", t, "1.0", None)).await.unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().group_id, group);
    }
    assert_eq!(fired(&alerts_a, once, group).await, 1);
    assert_eq!(fired(&alerts_a, every, group).await, 41);
}
}

/// Conditions: the last matching entry decides; group filters narrow further.
#[tokio::test(flavor = "multi_thread")]
async fn the_last_matching_condition_decides() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(Db::Sqlite, dir.path()).await.unwrap();
    let (index, alerts) = node(&url, "a").await;
    let channel = webhook_channel(&alerts, "http://127.0.0.1:9/").await;
    let chain = rule(
        &alerts,
        "chain",
        json!({
            "triggers": [{"kind": "new_group"}],
            "conditions": [
                {"action": "filter", "attribute": "*", "pattern": "."},
                {"action": "submit", "attribute": "fault_class", "pattern": "^wild-"},
                {"action": "filter", "attribute": "channel", "pattern": "^beta$"}
            ],
            "filters": {"release_min": "2.0"},
            "actions": [{"channel": channel}]
        }),
    )
    .await;
    let t = now();
    let record = |id: &'static str,
                  fp: &'static str,
                  release: &'static str,
                  class: &'static str,
                  ann: &'static [(&'static str, &'static str)]| {
        let index = Arc::clone(&index);
        async move {
            index
                .record(&crash_with(id, fp, t, release, None, class, ann))
                .await
                .unwrap()
                .group_id
        }
    };
    let filtered_by_everything = record("n", "null", "2.1", "null-read", &[]).await;
    let submitted = record("w", "wild", "2.1", "wild-write", &[]).await;
    let beta = record("b", "beta", "2.1", "wild-read", &[("channel", "beta")]).await;
    let old_release = record("o", "old", "1.9", "wild-read", &[]).await;
    assert_eq!(fired(&alerts, chain, filtered_by_everything).await, 0);
    assert_eq!(fired(&alerts, chain, submitted).await, 1);
    assert_eq!(fired(&alerts, chain, beta).await, 0);
    assert_eq!(
        fired(&alerts, chain, old_release).await,
        0,
        "release filter"
    );
    let fire = &alerts.fires(1, Some(submitted), None, 1).await.unwrap()[0];
    assert_eq!(
        fire.reason["condition"], 1,
        "entry 1 submitted it: {}",
        fire.reason
    );
}

/// POSTs a dump to the synchronous route; its group.
async fn crash_into(server: &TestServer, dump: &str) -> i64 {
    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .body(generated_bytes(dump))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["group_id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_is_signed_and_carries_the_group() {
    let server = server(3, 10).await;
    let receiver = Receiver::start().await;
    let secret = "a-long-shared-secret-for-hmac";
    let channel = create(&server, "/api/v1/channels", json!({
        "name": "hook", "config": {"kind": "webhook", "url": format!("{}/hook", receiver.url), "secret": secret}
    })).await;
    create(&server, "/api/v1/alert-rules", json!({
        "name": "new groups", "triggers": [{"kind": "new_group"}], "actions": [{"channel": channel}]
    })).await;
    let group = crash_into(&server, "null-write.dmp").await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    let request = &got[0];
    // The receiver's checks: both signatures, over the exact bytes received.
    let stamped = request.header("faultline-signature").unwrap();
    let (t, sig) = stamped
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",sha256="))
        .unwrap();
    assert!(
        (now() - t.parse::<i64>().unwrap()).abs() < 300,
        "fresh timestamp"
    );
    assert_eq!(
        sig,
        hmac_hex(
            secret.as_bytes(),
            &[format!("{t}.").as_bytes(), &request.body]
        )
    );
    assert_eq!(
        request.header("x-hub-signature-256").unwrap(),
        format!("sha256={}", hmac_hex(secret.as_bytes(), &[&request.body]))
    );
    assert_ne!(
        sig,
        hmac_hex(
            b"another secret",
            &[format!("{t}.").as_bytes(), &request.body]
        )
    );
    let body = request.json();
    assert_eq!(body["event"], "alert");
    assert_eq!(body["trigger"], "new_group");
    assert_eq!(body["group"]["id"], group);
    assert_eq!(body["group"]["fault_class"], "null-write");
    assert_eq!(
        body["links"]["group"],
        format!("https://crashes.example.com/ui/groups/{group}")
    );
    assert_eq!(
        request.header("faultline-delivery").unwrap(),
        body["delivery_id"].as_str().unwrap()
    );
    drained(&server).await;
    let delivered = deliveries(&server, "delivered").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["attempts"], 1);
    assert_eq!(delivered[0]["id"], body["delivery_id"]);
    // The same crash again: the group is not new; nothing fires.
    crash_into(&server, "null-write.dmp").await;
    let (_, fires) = server.get_json("/api/v1/alert-fires").await;
    let fires = fires["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 1, "{fires:?}");
    assert_eq!(fires[0]["trigger"], "new_group");
    assert_eq!(fires[0]["group_id"], group);
    assert_eq!(fires[0]["reason"]["triggers"][0]["trigger"], "new_group");
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_retry_honour_retry_after_and_end_dead_with_the_reason() {
    let server = server(3, 10).await;
    let flaky = Receiver::start().await;
    flaky.script([
        Answer::Status(429, Some(1), "slow down"),
        Answer::Status(503, None, "maintenance"),
    ]);
    let down = Receiver::start().await;
    down.script([
        Answer::Status(500, None, "boom"),
        Answer::Status(502, None, "boom"),
        Answer::Status(500, None, "still boom"),
    ]);
    let refusing = Receiver::start().await;
    refusing.script([Answer::Status(400, None, "unknown payload")]);
    // Nothing listens on port 9; the URL's path is Slack's credential.
    let mut channels = vec![
        json!({"channel": create(&server, "/api/v1/channels", json!({
        "name": "unreachable", "config": {"kind": "slack", "url": "http://127.0.0.1:9/services/T0/B0/SECRETPATH"}
    })).await}),
    ];
    for (name, r) in [("flaky", &flaky), ("down", &down), ("refusing", &refusing)] {
        channels.push(
            json!({"channel": create(&server, "/api/v1/channels", json!({
            "name": name, "config": {"kind": "webhook", "url": r.url, "secret": "0123456789abcdef"}
        })).await}),
        );
    }
    create(
        &server,
        "/api/v1/alert-rules",
        json!({
            "name": "all", "triggers": [{"kind": "new_group"}], "actions": channels
        }),
    )
    .await;
    crash_into(&server, "wild-read.dmp").await;

    let got = flaky.wait_for(3, Duration::from_secs(30)).await;
    let ids: Vec<String> = got
        .iter()
        .map(|r| r.header("faultline-delivery").unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one delivery ID across retries: {ids:?}"
    );
    down.wait_for(3, Duration::from_secs(30)).await;
    drained(&server).await;

    let delivered = deliveries(&server, "delivered").await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["attempts"], 3);
    assert_eq!(delivered[0]["id"], ids[0].as_str());
    let failed = deliveries(&server, "failed").await;
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        !format!("{failed:?}").contains("SECRETPATH"),
        "a URL is not an error message: {failed:?}"
    );
    let reason = |attempts: i64| {
        failed
            .iter()
            .find(|d| d["attempts"] == attempts)
            .unwrap_or_else(|| panic!("a dead delivery after {attempts} attempts: {failed:?}"))
            .clone()
    };
    let gave_up = failed
        .iter()
        .find(|d| d["attempts"] == 3 && d["last_status"] == 500)
        .unwrap()
        .clone();
    assert_eq!(gave_up["state"], "dead");
    assert!(
        gave_up["last_error"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{gave_up}"
    );
    assert!(
        gave_up["last_error"]
            .as_str()
            .unwrap()
            .contains("still boom"),
        "{gave_up}"
    );
    let refused = reason(1);
    assert_eq!(refused["state"], "dead");
    assert_eq!(refused["last_status"], 400);
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("unknown payload"),
        "{refused}"
    );
    assert_eq!(refusing.received().len(), 1, "a refusal is not retried");
    // Retry-After was honoured: the second attempt came a second or more after the first
    // (a lower bound, so a slow machine cannot fail it; the backoff alone would be 0.1 s).
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(900),
        "{:?}",
        got[1].at - got[0].at
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("faultline_alert_deliveries{state=\"dead\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("faultline_alert_deliveries_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_and_pagerduty_get_their_formats_and_resolving_closes_the_incident() {
    let server = server(3, 10).await;
    let receiver = Receiver::start().await;
    let slack = create(&server, "/api/v1/channels", json!({
        "name": "#crashes", "config": {"kind": "slack", "url": format!("{}/services/T0/B0/XYZ", receiver.url)}
    })).await;
    let pagerduty = create(&server, "/api/v1/channels", json!({
        "name": "on-call", "config": {"kind": "pagerduty", "routing_key": "R0UT1NGKEY0000000000000000000000", "url": format!("{}/v2/enqueue", receiver.url), "severity": "critical"}
    })).await;
    // The Slack URL is its credential: the API does not show it, nor the routing key.
    let (_, listed) = server.get_json("/api/v1/channels").await;
    let text = listed.to_string();
    assert!(
        !text.contains("XYZ") && !text.contains("R0UT1NGKEY"),
        "{text}"
    );
    create(
        &server,
        "/api/v1/alert-rules",
        json!({
            "name": "page", "triggers": [{"kind": "new_group"}],
            "actions": [{"channel": slack}, {"channel": pagerduty}]
        }),
    )
    .await;
    let group = crash_into(&server, "wild-write.dmp").await;
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    let slack_body = got
        .iter()
        .find(|r| r.path.starts_with("/services"))
        .unwrap()
        .json();
    assert!(
        slack_body["text"].as_str().unwrap().contains("new group"),
        "{slack_body}"
    );
    assert!(
        slack_body["text"]
            .as_str()
            .unwrap()
            .contains(&format!("/ui/groups/{group}|")),
        "{slack_body}"
    );
    assert_eq!(slack_body["blocks"][0]["type"], "header");
    let page = got.iter().find(|r| r.path == "/v2/enqueue").unwrap().json();
    assert_eq!(page["routing_key"], "R0UT1NGKEY0000000000000000000000");
    assert_eq!(page["event_action"], "trigger");
    assert_eq!(page["dedup_key"], format!("faultline-group-{group}"));
    assert_eq!(page["payload"]["severity"], "critical");
    assert_eq!(page["payload"]["source"], "faultline");
    assert!(
        page["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("wild-write"),
        "{page}"
    );

    // Resolving the group resolves the incident (same dedup_key); Slack hears nothing more.
    let response = server
        .client
        .patch(server.url(&format!("/api/v1/groups/{group}")))
        .json(&json!({"state": "resolved", "resolved_in": "9.9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    let resolve = got[2].json();
    assert_eq!(got[2].path, "/v2/enqueue");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], format!("faultline-group-{group}"));
    drained(&server).await;
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn email_goes_through_starttls_and_auth_as_one_digest() {
    let Some(smtp) = common::smtp::SmtpServer::start().await else {
        return;
    };
    let server = server(3, 10).await;
    let settings = |password: &str| {
        json!({
            "kind": "email", "smtp_host": "localhost", "smtp_port": smtp.port,
            "security": "starttls", "username": common::smtp::USER, "password": password,
            "from": "faultline <alerts@faultline.test>", "to": ["oncall@game.test", "lead@game.test"],
            "digest_secs": 2, "tls_ca_pem": smtp.ca_pem,
        })
    };
    let email = create(
        &server,
        "/api/v1/channels",
        json!({"name": "mail", "config": settings(common::smtp::PASSWORD)}),
    )
    .await;
    let wrong = create(
        &server,
        "/api/v1/channels",
        json!({"name": "bad", "config": settings("wrong")}),
    )
    .await;
    // The test route says what the server answered.
    let (status, answer) = server
        .admin_post(&format!("/api/v1/channels/{wrong}/test"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["delivered"], false, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("535"),
        "{answer}"
    );
    let (_, answer) = server
        .admin_post(&format!("/api/v1/channels/{email}/test"), json!({}))
        .await;
    assert_eq!(answer["delivered"], true, "{answer}");
    assert_eq!(answer["status"], 250);
    let test = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert!(test[0]["data"]
        .as_str()
        .unwrap()
        .contains("Subject: [faultline] test message"));

    // Two new groups within the digest window: one message naming both.
    create(
        &server,
        "/api/v1/alert-rules",
        json!({
            "name": "mail me", "triggers": [{"kind": "new_group"}], "actions": [{"channel": email}]
        }),
    )
    .await;
    let a = crash_into(&server, "null-read.dmp").await;
    let b = crash_into(&server, "wild-write.dmp").await;
    drained(&server).await;
    let messages = smtp.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    let digest = &messages[1];
    assert_eq!(digest["tls"], true, "STARTTLS was used");
    assert_eq!(digest["login"], common::smtp::USER);
    assert_eq!(digest["to"], json!(["oncall@game.test", "lead@game.test"]));
    let data = digest["data"].as_str().unwrap();
    assert!(data.contains("Subject: [faultline] 2 alerts"), "{data}");
    assert!(data.contains(&format!("/ui/groups/{a}")), "{data}");
    assert!(data.contains(&format!("/ui/groups/{b}")), "{data}");
    assert_eq!(deliveries(&server, "delivered").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_route_says_what_the_receiver_answered() {
    let server = server(3, 10).await;
    let receiver = Receiver::start().await;
    receiver.script([
        Answer::Status(200, None, "thanks"),
        Answer::Status(404, None, "no such hook"),
    ]);
    let channel = create(&server, "/api/v1/channels", json!({
        "name": "hook", "config": {"kind": "webhook", "url": receiver.url, "secret": "0123456789abcdef"}
    })).await;
    let path = format!("/api/v1/channels/{channel}/test");
    let (_, answer) = server.admin_post(&path, json!({})).await;
    assert_eq!(
        answer,
        json!({"delivered": true, "status": 200, "response": "thanks"})
    );
    let (_, answer) = server.admin_post(&path, json!({})).await;
    assert_eq!(answer["delivered"], false);
    assert_eq!(answer["status"], 404);
    assert!(
        answer["error"].as_str().unwrap().contains("no such hook"),
        "{answer}"
    );
    assert_eq!(receiver.received()[0].json()["event"], "test");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rules_and_channels_are_refused_with_a_reason() {
    let server = server(3, 10).await;
    server.create_project("Other").await;
    let receiver = Receiver::start().await;
    let hook = |project: &str| json!({"project": project, "name": "h", "config": {"kind": "webhook", "url": receiver.url, "secret": "0123456789abcdef"}});
    let other_channel = create(&server, "/api/v1/channels", hook("other")).await;
    let channel = create(&server, "/api/v1/channels", hook("default")).await;
    let refused = [
        (
            "/api/v1/channels",
            json!({"name": "h", "config": {"kind": "webhook", "url": "ftp://x", "secret": "0123456789abcdef"}}),
            "http",
        ),
        (
            "/api/v1/channels",
            json!({"name": "h", "config": {"kind": "webhook", "url": "http://x", "secret": "short"}}),
            "secret",
        ),
        (
            "/api/v1/channels",
            json!({"name": "h", "config": {"kind": "carrier-pigeon"}}),
            "carrier-pigeon",
        ),
        (
            "/api/v1/channels",
            json!({"name": "m", "config": {"kind": "email", "smtp_host": "h", "smtp_port": 25, "from": "not an address", "to": ["a@b.c"]}}),
            "from",
        ),
        (
            "/api/v1/alert-rules",
            json!({"name": "r", "triggers": [{"kind": "new_group"}], "actions": [{"channel": other_channel}]}),
            "no channel",
        ),
        (
            "/api/v1/alert-rules",
            json!({"name": "r", "triggers": [], "actions": [{"channel": channel}]}),
            "trigger",
        ),
        (
            "/api/v1/alert-rules",
            json!({"name": "r", "triggers": [{"kind": "new_group"}], "actions": [{"channel": channel}], "conditions": [{"action": "submit", "attribute": "os", "pattern": "(("}]}),
            "condition 0",
        ),
        (
            "/api/v1/alert-rules",
            json!({"name": "r", "triggers": [{"kind": "sometimes"}], "actions": [{"channel": channel}]}),
            "sometimes",
        ),
        (
            "/api/v1/alert-rules",
            json!({"triggers": [{"kind": "new_group"}], "actions": [{"channel": channel}]}),
            "name",
        ),
    ];
    for (path, body, says) in refused {
        let (status, answer) = server.admin_post(path, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    // A channel in use is not deleted from under its rule.
    create(&server, "/api/v1/alert-rules", json!({"name": "r", "triggers": [{"kind": "new_group"}], "actions": [{"channel": channel}]})).await;
    let response = server
        .client
        .delete(server.url(&format!("/api/v1/channels/{channel}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // A token for the other project sees its channel, not the default project's.
    let (token, _) = server
        .create_token(json!({"scopes": ["admin"], "projects": ["other"]}))
        .await;
    let status = |path: String| {
        let request = server.anonymous.get(server.url(&path)).bearer_auth(&token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(format!("/api/v1/channels/{other_channel}")).await,
        200
    );
    assert_eq!(status(format!("/api/v1/channels/{channel}")).await, 404);
    assert_eq!(status("/api/v1/channels".into()).await, 403);
    assert_eq!(status("/api/v1/channels?project=other".into()).await, 200);
}

/// A server killed while a delivery is in flight sends it after restart, with the same ID.
#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_cut_by_kill_9_is_sent_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    receiver.script([Answer::Hang]);
    let env = [("FAULTLINE_ALERTS_TIMEOUT_SECS", "120")];
    let (mut child, url, _log) = common::serve_process(dir.path(), &env).await;
    let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{url}{path}"))
            .bearer_auth(token.trim())
            .json(&body)
            .send()
    };
    let channel: Value = post("/api/v1/channels", json!({"name": "h", "config": {"kind": "webhook", "url": receiver.url, "secret": "0123456789abcdef"}}))
        .await.unwrap().json().await.unwrap();
    let response = post("/api/v1/alert-rules", json!({"name": "r", "triggers": [{"kind": "new_group"}], "actions": [{"channel": channel["id"]}]})).await.unwrap();
    assert_eq!(response.status(), 201);
    let response = client
        .post(format!("{url}/api/v1/minidump"))
        .bearer_auth(token.trim())
        .body(generated_bytes("null-exec.dmp"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = receiver.wait_for(1, Duration::from_secs(20)).await;
    child.kill().await.unwrap(); // SIGKILL, mid-delivery
    let (_child, url, _log) = common::serve_process(dir.path(), &env).await;
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(
        got[1].header("faultline-delivery"),
        first[0].header("faultline-delivery"),
        "the same delivery, resent"
    );
    let mut delivered = Value::Null;
    for _ in 0..200 {
        delivered = client
            .get(format!("{url}/api/v1/deliveries?state=delivered"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !delivered["deliveries"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        delivered["deliveries"].as_array().unwrap().len(),
        1,
        "{delivered}"
    );
    assert_eq!(delivered["deliveries"][0]["attempts"], 1);
}
