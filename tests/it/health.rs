//! Release health: sessions from the real Python SDK (application-mode sessions and
//! request-mode aggregates), session updates out of order and repeated, usage reported for
//! crash reporters without sessions, and the figures computed from them, against counts the
//! test works out itself; both databases.

use crate::common;

use serde_json::{json, Value};

use common::{post, submit, Db, TestServer};

/// Sends an envelope of session items (no event) as an SDK does; asserts 200.
async fn send_items(server: &TestServer, items: &[(&str, Value)]) {
    let (status, reply) = common::send_envelope_items(server, items).await;
    assert_eq!(status, 200, "{reply}");
}

/// A session update of a session that started yesterday at 10:00 UTC.
fn update(sid: &str, did: &str, init: bool, status: &str, release: &str) -> Value {
    let (yesterday, _) = common::days_ago_at_ten(1);
    json!({"sid": sid, "did": did, "init": init, "started": yesterday, "status": status, "attrs": {"release": release, "environment": "production"}})
}

async fn health(server: &TestServer, release: &str) -> Value {
    let (status, body) = server
        .get_json(&format!(
            "/api/v1/releases/{release}/health?project=default"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

on_both_databases! {
/// The real sentry-sdk for Python: three users' sessions in application mode (one errored, one
/// crashed) and five request-mode sessions sent as aggregates; the figures are what the test
/// counts.
async fn the_python_sdks_sessions_give_crash_free_rates(db: Db) {
    let present = std::process::Command::new("python3")
        .args(["-c", "import sentry_sdk"])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(!common::services_required(), "sentry-sdk (PyPI) is required (tests/run.sh installs it)");
        return;
    }
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let script = r#"
import sys, sentry_sdk
from sentry_sdk.sessions import track_session
sentry_sdk.init(dsn=sys.argv[1], release='game@2.1.0', environment='production', default_integrations=False)
def session(user, status=None, error=False):
    sentry_sdk.set_user({'id': user})
    sentry_sdk.start_session(session_mode='application')
    if error:
        try:
            1/0
        except Exception:
            sentry_sdk.capture_exception()
    if status:
        sentry_sdk.get_isolation_scope()._session.update(status=status)
    sentry_sdk.end_session()
session('u1')
session('u1')
session('u2', error=True)
session('u3', status='crashed')
sentry_sdk.set_user({'id': 'u4'})
sentry_sdk.start_session(session_mode='application')
sentry_sdk.capture_event({'level': 'fatal', 'exception': {'values': [{'type': 'RuntimeError', 'value': 'died', 'mechanism': {'type': 'excepthook', 'handled': False}}]}})
sentry_sdk.end_session()
sentry_sdk.set_user(None)
for _ in range(5):
    with track_session(sentry_sdk.get_isolation_scope(), session_mode='request'):
        pass
sentry_sdk.flush(10)
"#;
    let dsn = format!("http://public@{}/1", server.addr);
    let output = tokio::process::Command::new("python3").args(["-c", script, &dsn]).output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // The SDK sends from a background thread; flush waited for it.
    let h = health(&server, "game@2.1.0").await;
    // 5 application sessions + 5 request sessions; 2 crashed (u3's said so, u4's ended with its
    // fatal event, sent in the event's envelope and counted once); 1 errored; users u1–u4.
    assert_eq!(h["sessions"], 10, "{h}");
    assert_eq!(h["crashed"], 2, "{h}");
    assert_eq!(h["errored"], 1, "{h}");
    assert_eq!(h["users"], 4, "{h}");
    assert_eq!(h["crashed_users"], 2, "{h}");
    let expect = |part: f64, whole: f64| ((100.0 * part / whole) * 1000.0).round() / 1000.0;
    assert_eq!(h["crash_free_sessions"].as_f64().unwrap(), expect(8.0, 10.0));
    assert_eq!(h["crash_free_users"].as_f64().unwrap(), expect(2.0, 4.0));
    assert_eq!(h["adoption"].as_f64().unwrap(), 100.0, "the only release of the last 24 hours");
    // Sentry's sessions query reads the same.
    let (status, s) = server
        .get_json("/api/0/organizations/o/sessions/?project=default&field=sum(session)&field=crash_free_rate(session)&groupBy=release&statsPeriod=14d")
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["groups"][0]["by"]["release"], "game@2.1.0");
    assert_eq!(s["groups"][0]["totals"]["sum(session)"], 10);
    assert!((s["groups"][0]["totals"]["crash_free_rate(session)"].as_f64().unwrap() - 0.8).abs() < 1e-4);
}
}

/// The Node SDK's script: sessions of three users (one with a handled error, one with an
/// unhandled one), each session item it sends printed as a line of JSON by a wrapped transport.
const NODE_SESSIONS: &str = r#"
const Sentry = require(process.env.SENTRY_NODE);
Sentry.init({
  dsn: process.argv[2], release: 'node-game@3.0', environment: 'production',
  transport: (options) => {
    const inner = Sentry.makeNodeTransport(options);
    return {
      send: (envelope) => {
        for (const [header, payload] of envelope[1]) {
          if (header.type === 'session') console.log(JSON.stringify(payload));
        }
        return inner.send(envelope);
      },
      flush: (timeout) => inner.flush(timeout),
    };
  },
});
async function session(user, work) {
  Sentry.getIsolationScope().setUser({ id: user });
  Sentry.startSession();
  if (work) { work(); await Sentry.flush(5000); }
  Sentry.endSession();
}
(async () => {
  await session('n1');
  await session('n2', () => Sentry.captureException(new Error('handled')));
  await session('n3', () => Sentry.captureException(new Error('died'), { mechanism: { handled: false, type: 'onuncaughtexception' } }));
  process.exit((await Sentry.flush(10000)) ? 0 : 3);
})();
"#;

on_both_databases! {
/// The real @sentry/node: application sessions started and ended by the script, a handled and
/// an unhandled error; the figures equal what the test counts from the session items the SDK
/// printed as it sent them (each session once, its worst final status, `exited` with errors
/// being `errored`).
async fn the_node_sdks_sessions_give_the_counts_it_sent(db: Db) {
    if !common::tool_present("node") {
        return;
    }
    let Some(sdk) = common::sentry_node_module() else {
        assert!(!common::services_required(), "@sentry/node is required (tests/run.sh installs it)");
        return;
    };
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sessions.js");
    std::fs::write(&script, NODE_SESSIONS).unwrap();
    let dsn = format!("http://public@{}/1", server.addr);
    let output = tokio::process::Command::new("node").arg(&script).arg(&dsn).env("SENTRY_NODE", &sdk).output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // What the SDK sent, counted here.
    let mut sessions: std::collections::BTreeMap<String, (bool, u8, Option<String>)> = Default::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let item: Value = serde_json::from_str(line).unwrap();
        let entry = sessions.entry(item["sid"].as_str().unwrap().to_owned()).or_default();
        entry.0 |= item["init"] == true;
        let rank = match (item["status"].as_str().unwrap(), item["errors"].as_i64().unwrap_or(0)) {
            ("crashed", _) => 3,
            ("abnormal", _) => 2,
            ("exited", e) if e > 0 => 1,
            _ => 0,
        };
        entry.1 = entry.1.max(rank);
        if let Some(did) = item["did"].as_str() {
            entry.2 = Some(did.to_owned());
        }
    }
    let counted = sessions.values().filter(|s| s.0).count() as i64;
    let crashed = sessions.values().filter(|s| s.1 == 3).count() as i64;
    let errored = sessions.values().filter(|s| s.1 == 1).count() as i64;
    let users: std::collections::BTreeSet<&String> = sessions.values().filter_map(|s| s.2.as_ref()).collect();
    assert!(counted >= 3 && crashed == 1 && errored == 1, "the SDK sent three sessions, one crashed, one errored: {sessions:?}");
    let h = health(&server, "node-game@3.0").await;
    assert_eq!(h["sessions"], counted, "{h} {sessions:?}");
    assert_eq!(h["crashed"], crashed, "{h}");
    assert_eq!(h["errored"], errored, "{h}");
    assert_eq!(h["users"], users.len() as i64, "{h}");
    let expect = ((100.0 * (counted - crashed) as f64 / counted as f64) * 1000.0).round() / 1000.0;
    assert_eq!(h["crash_free_sessions"].as_f64().unwrap(), expect, "{h}");
}
}

on_both_databases! {
/// Updates out of order and repeated count a session once and its final status once; a crashed
/// session is not also exited; an older release is the previous one.
async fn session_updates_count_once_in_any_order(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    // Session a: its final update first, then its init, then both again, then crashed.
    send_items(&server, &[("session", update("a", "p1", false, "exited", "2.0.0"))]).await;
    send_items(&server, &[("session", update("a", "p1", true, "ok", "2.0.0"))]).await;
    send_items(&server, &[("session", update("a", "p1", true, "ok", "2.0.0")), ("session", update("a", "p1", false, "exited", "2.0.0"))]).await;
    send_items(&server, &[("session", update("a", "p1", false, "crashed", "2.0.0"))]).await;
    // Session b: init and exit in one envelope, three times over.
    for _ in 0..3 {
        send_items(&server, &[("session", update("b", "p2", true, "ok", "2.0.0")), ("session", update("b", "p2", false, "exited", "2.0.0"))]).await;
    }
    // An older release with one clean session.
    send_items(&server, &[("session", update("c", "p1", true, "exited", "1.9.0"))]).await;
    let h = health(&server, "2.0.0").await;
    assert_eq!(h["sessions"], 2, "{h}");
    assert_eq!(h["crashed"], 1, "{h}");
    assert_eq!(h["users"], 2);
    assert_eq!(h["crashed_users"], 1);
    assert_eq!(h["crash_free_sessions"].as_f64().unwrap(), 50.0);
    assert_eq!(h["previous"]["release"], "1.9.0", "{h}");
    assert_eq!(h["previous"]["crash_free_sessions"].as_f64().unwrap(), 100.0);
    // The releases page reads the totals the writer keeps: the same figures.
    let session = common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = session.get("/ui/releases?project=default").await;
    let row = page.body.split("<tr>").find(|r| r.contains(">2.0.0</a>")).unwrap_or_default();
    assert!(row.contains("<td class=\"num\">2</td><td class=\"num\">50.00 %</td><td class=\"num\">50.00 %</td>"), "{row}");
    let hours = h["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!(hours[0]["hour"], common::days_ago_at_ten(1).1);
    // Bad items are refused with a reason, and nothing of the envelope is counted.
    let body = b"{}\n{\"type\":\"session\"}\n{\"sid\":\"x\",\"attrs\":{}}\n".to_vec();
    let (status, reply) = post(&server, "/api/1/envelope/", Some("application/x-sentry-envelope"), &[("x-sentry-auth", "Sentry sentry_key=public")], body).await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("attrs.release"), "{reply}");
    // Hostile items: negative or absurd counts, a release with control characters, a date that
    // is not one, too many buckets; each refused with its reason, none counted.
    let bucket = |exited: i64| json!({"started": common::days_ago_at_ten(1).0, "exited": exited});
    let hostile = [
        json!({"attrs": {"release": "2.0.0"}, "aggregates": [bucket(-5)]}),
        json!({"attrs": {"release": "2.0.0"}, "aggregates": [bucket(5_000_000)]}),
        json!({"attrs": {"release": "2.0.0\u{0}"}, "aggregates": [bucket(1)]}),
        json!({"attrs": {"release": "2.0.0"}, "aggregates": [{"started": "yesterday", "exited": 1}]}),
        json!({"attrs": {"release": "2.0.0"}, "aggregates": vec![bucket(1); 1001]}),
    ];
    for item in hostile {
        let (status, reply) = common::send_envelope_items(&server, &[("sessions", item)]).await;
        assert_eq!(status, 400, "{reply}");
        assert!(reply.contains("sessions item"), "{reply}");
    }
    assert_eq!(health(&server, "2.0.0").await["sessions"], 2, "nothing hostile was counted");
}
}

/// Sends an envelope of session updates with a minidump beside them; asserts 200.
async fn send_with_minidump(server: &TestServer, updates: &[Value]) {
    let dump = common::generated_bytes("abort.dmp");
    let mut body = b"{}\n".to_vec();
    for update in updates {
        let payload = serde_json::to_vec(update).unwrap();
        body.extend_from_slice(
            format!("{{\"type\":\"session\",\"length\":{}}}\n", payload.len()).as_bytes(),
        );
        body.extend_from_slice(&payload);
        body.push(b'\n');
    }
    let header = json!({"type": "attachment", "length": dump.len(), "attachment_type": "event.minidump", "filename": "crash.dmp"});
    body.extend_from_slice(format!("{header}\n").as_bytes());
    body.extend_from_slice(&dump);
    body.push(b'\n');
    let (status, reply) = post(
        server,
        "/api/1/envelope/",
        Some("application/x-sentry-envelope"),
        &[("x-sentry-auth", "Sentry sentry_key=public")],
        body,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
}

on_both_databases! {
/// A crash report sent with its session's update ended that session: a session still `ok` is
/// counted crashed; one that already said `crashed` and then sends its minidump is one crashed
/// session, not two; a handled error beside an update crashes nothing.
async fn a_crash_report_ends_its_session_once(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    send_items(&server, &[("session", update("m1", "u1", true, "ok", "3.0.0"))]).await;
    send_with_minidump(&server, &[update("m1", "u1", false, "ok", "3.0.0")]).await;
    send_items(&server, &[("session", update("m2", "u2", true, "crashed", "3.0.0"))]).await;
    send_with_minidump(&server, &[update("m2", "u2", false, "crashed", "3.0.0")]).await;
    let handled = json!({"level": "error", "release": "3.0.0", "exception": {"values": [{"type": "ValueError", "value": "bad", "mechanism": {"type": "generic", "handled": true}}]}});
    send_items(&server, &[("session", update("m3", "u3", true, "ok", "3.0.0")), ("event", handled)]).await;
    let h = health(&server, "3.0.0").await;
    assert_eq!(h["sessions"], 3, "{h}");
    assert_eq!(h["crashed"], 2, "m1 ended by its minidump, m2 counted once: {h}");
    assert_eq!(h["crashed_users"], 2, "{h}");
    assert_eq!(h["users"], 3, "{h}");
}
}

on_both_databases! {
/// A crash reporter without sessions: the launcher reports usage; crash reports stand for
/// crashed sessions; a group's rate is its crashes per 1,000 sessions of the release.
async fn usage_and_crash_reports_give_rates(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let (ingest, _) = server.create_token(json!({"name": "launcher", "scopes": ["ingest"]})).await;
    let hour = (common::now() / 3600) * 3600;
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/api/v1/usage?project=default"))
        .bearer_auth(&ingest)
        .json(&json!({"usage": [
            {"release": "ue@5.1", "hour": hour, "sessions": 600, "users": 500},
            {"release": "ue@5.1", "hour": hour - 3600, "sessions": 400, "users": 450},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let bad = client
        .post(server.url("/api/v1/usage?project=default"))
        .bearer_auth(&ingest)
        .json(&json!({"usage": [{"release": "", "hour": hour, "sessions": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Rules on the new triggers: crash-free sessions below 99.9 % (the second crash report makes
    // it 99.8 %), and the group above 1.5 crashes per 1,000 sessions (the second makes it 2).
    let (_, channel) = server
        .admin_post("/api/v1/channels", json!({"name": "hook", "config": {"kind": "webhook", "url": "http://127.0.0.1:9/", "secret": "0123456789abcdef"}}))
        .await;
    for (name, trigger) in [
        ("crash-free", json!({"kind": "crash_free_below", "percent": 99.9, "min_sessions": 500})),
        ("rate", json!({"kind": "rate_above", "per_1000": 1.5})),
        ("too few sessions", json!({"kind": "crash_free_below", "percent": 99.9, "min_sessions": 5000})),
    ] {
        let (status, rule) = server
            .admin_post("/api/v1/alert-rules", json!({"name": name, "triggers": [trigger], "actions": [{"channel": channel["id"]}]}))
            .await;
        assert_eq!(status, 201, "{rule}");
    }
    let (status, refused) = server
        .admin_post("/api/v1/alert-rules", json!({"name": "bad", "triggers": [{"kind": "crash_free_below", "percent": 120}], "actions": [{"channel": channel["id"]}]}))
        .await;
    assert_eq!(status, 400, "{refused}");
    let first = submit(&server, "null-write.dmp", &[("ver", "ue@5.1")]).await;
    let (_, fires) = server.get_json("/api/v1/alert-fires").await;
    assert_eq!(fires["fires"].as_array().unwrap().len(), 0, "one crash in 1,000 sessions: {fires}");
    submit(&server, "null-write.dmp", &[("ver", "ue@5.1")]).await;
    let (_, fires) = server.get_json("/api/v1/alert-fires").await;
    let mut fired: Vec<&str> = fires["fires"].as_array().unwrap().iter().map(|f| f["trigger"].as_str().unwrap()).collect();
    fired.sort_unstable();
    assert_eq!(fired, ["crash_free_below", "rate_above"], "{fires}");
    let crash_free = fires["fires"].as_array().unwrap().iter().find(|f| f["trigger"] == "crash_free_below").unwrap();
    assert_eq!(crash_free["reason"]["triggers"][0]["why"]["crash_free"].as_f64().unwrap(), 99.8, "{crash_free}");
    let h = health(&server, "ue@5.1").await;
    assert_eq!(h["sessions"], 1000, "{h}");
    assert_eq!(h["crash_reports"], 2);
    assert_eq!(h["crashed"], 2, "crash reports stand for crashed sessions");
    assert_eq!(h["crash_free_sessions"].as_f64().unwrap(), 99.8);
    assert_eq!(h["users"], 500, "the busiest hour's reported users");
    let (_, crash) = server.get_json(&format!("/api/v1/crashes/{first}")).await;
    let group = crash["crash"]["group_id"].as_i64().unwrap();
    let (_, g) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    let rate = &g["rates"][0];
    assert_eq!(rate["release"], "ue@5.1", "{g}");
    assert_eq!(rate["crashes"], 2);
    assert_eq!(rate["sessions"], 1000);
    assert_eq!(rate["per_1000_sessions"].as_f64().unwrap(), 2.0);
    // The pages: the group's rate in words, the release's crash-free figure.
    let session = common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = session.get(&format!("/ui/groups/{group}")).await;
    assert!(page.body.contains("hits 0.200% of sessions in ue@5.1"), "{}", page.body);
    let page = session.get("/ui/releases?project=default").await;
    assert!(page.body.contains(">ue@5.1</a>"), "{}", page.body);
    assert!(page.body.contains("99.80 %"), "{}", page.body);
    let page = session.get("/ui/releases/ue%405.1?project=default").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("99.80 %") && page.body.contains("<td class=\"num\">2.000</td>"), "{}", page.body);
    // The crash-free line: today's point (2 crashed of 600 + 400 sessions… over the day's hours).
    let points = page.body.split("<polyline points=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_default();
    assert!(!points.is_empty() && page.body.contains("from 98 % (bottom)"), "{}", page.body);
    assert!(page.body.contains(&format!("/ui/groups/{group}")), "the group, by rate");
    assert!(page.body.contains("badge new"), "new in the release");
    // Sorted by rate in a release: the abort group has 3 crashes in ue@5.1, the null-write one
    // 2 (but 7 in all, 5 from ue@5.0): by rate abort first, by events null-write first.
    for _ in 0..3 {
        submit(&server, "abort.dmp", &[("ver", "ue@5.1")]).await;
    }
    for _ in 0..5 {
        submit(&server, "null-write.dmp", &[("ver", "ue@5.0")]).await;
    }
    let (status, by_rate) = server.get_json("/api/v1/groups?project=default&release=ue@5.1&sort=rate").await;
    assert_eq!(status, 200, "{by_rate}");
    let ids: Vec<i64> = by_rate["groups"].as_array().unwrap().iter().map(|g| g["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{by_rate}");
    assert_eq!(ids[1], group, "null-write second by rate: {by_rate}");
    let (_, by_events) = server.get_json("/api/v1/groups?project=default&release=ue@5.1&sort=events").await;
    assert_eq!(by_events["groups"][0]["id"], group, "null-write first by events: {by_events}");
    let (_, page_one) = server.get_json("/api/v1/groups?project=default&release=ue@5.1&sort=rate&limit=1").await;
    let cursor = page_one["next_cursor"].as_str().expect("a second page");
    let (_, page_two) = server.get_json(&format!("/api/v1/groups?project=default&release=ue@5.1&sort=rate&limit=1&cursor={cursor}")).await;
    assert_eq!(page_two["groups"][0]["id"], group, "the cursor pages by rate: {page_two}");
    let (status, refused) = server.get_json("/api/v1/groups?project=default&sort=rate").await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("release="), "{refused}");
    let page = session.get("/ui/?project=default&release=ue%405.1&sort=rate").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("aria-sort=\"descending\">Per 1,000 sessions</a>"), "{}", page.body);
    assert!(page.body.contains("<td class=\"num rate\">3.000</td>") && page.body.contains("<td class=\"num rate\">2.000</td>"), "{}", page.body);
    assert!(page.body.find("3.000").unwrap() < page.body.find("2.000</td>").unwrap(), "the higher rate first");
}
}

on_both_databases! {
/// A release with more users than are counted exactly: 24,000 players over two days (6,000 play
/// both), 300 of them crashed once, sent in parallel (on Postgres through two servers sharing the
/// database, as two nodes would): the users come from the HyperLogLog sketches within 2.5 % (three
/// standard errors) of what the test counts, all time and for one day; sessions stay exact; a
/// small release beside it stays exact too.
async fn users_past_the_exact_limit_are_estimated_within_the_bound(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let second = match db {
        Db::Postgres => {
            let (url, data) = (server.config.index.url.clone(), server.data_dir.clone());
            Some(TestServer::start_on(db, move |c| {
                c.index.url = url;
                c.storage.data_dir = data;
            })
            .await
            .unwrap())
        }
        Db::Sqlite => None,
    };
    let session = |i: usize, day: &str, crashed: bool| {
        let status = if crashed { "crashed" } else { "exited" };
        json!({"sid": format!("s-{day}-{i}"), "did": format!("player-{i}"), "init": true, "started": day, "status": status, "attrs": {"release": "big@1.0", "environment": "production"}})
    };
    let ((before, _), (yesterday, yesterday_at)) = (common::days_ago_at_ten(2), common::days_ago_at_ten(1));
    let mut updates: Vec<Value> = (0..12_000).map(|i| session(i, &before, i % 80 == 0)).collect();
    updates.extend((6_000..24_000).map(|i| session(i, &yesterday, i >= 12_000 && i % 80 == 0)));
    let envelopes: Vec<Vec<(&str, Value)>> = updates.chunks(100).map(|c| c.iter().map(|u| ("session", u.clone())).collect()).collect();
    let servers: Vec<&TestServer> = std::iter::once(&server).chain(second.as_ref()).collect();
    for wave in envelopes.chunks(8) {
        let sends = wave.iter().enumerate().map(|(i, items)| common::send_envelope_items(servers[i % servers.len()], items));
        for (status, reply) in futures::future::join_all(sends).await {
            assert_eq!(status, 200, "{reply}");
        }
    }
    send_items(&server, &[("session", update("x1", "p1", true, "exited", "small@1.0")), ("session", update("x2", "p2", true, "crashed", "small@1.0"))]).await;
    let within = |got: &Value, want: f64| {
        let got = got.as_f64().unwrap();
        assert!((got - want).abs() / want < 0.025, "{got} is not within 2.5 % of {want}");
    };
    let h = health(&server, "big@1.0").await;
    assert_eq!(h["sessions"], 30_000, "{h}");
    assert_eq!(h["crashed"], 300, "{h}");
    within(&h["users"], 24_000.0);
    within(&h["crashed_users"], 300.0);
    assert_eq!(h["users_estimated"], true, "{h}");
    let (_, day) = server.get_json(&format!("/api/v1/releases/big@1.0/health?project=default&environment=production&since={}", yesterday_at - 36_000)).await;
    assert_eq!(day["sessions"], 18_000, "{day}");
    within(&day["users"], 18_000.0);
    within(&day["crashed_users"], 150.0);
    assert_eq!(day["users_estimated"], true, "{day}");
    let small = health(&server, "small@1.0").await;
    assert_eq!((small["users"].as_i64(), small["crashed_users"].as_i64()), (Some(2), Some(1)), "{small}");
    assert_eq!(small["users_estimated"], false);
    // The releases page reads the same estimate from the release's totals.
    let session = common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = session.get("/ui/releases?project=default").await;
    assert!(page.body.contains(">big@1.0</a>"), "{}", page.body);
    let page = session.get("/ui/releases/big%401.0?project=default").await;
    let shown = format!("<td class=\"num\">≈ {}</td>", h["users"]);
    assert!(page.body.contains(&shown), "the estimate, marked: {}", page.body);
}
}
