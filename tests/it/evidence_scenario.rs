//! The evidence on a whole project: a repository with a known history and a program built from
//! it, releases and a deploy, 10,000 crashes of the release, and a new group right after the
//! deploy whose crashes run one GPU driver version. Its evidence names the driver, the deploy,
//! the commit that wrote the crashing line and the earlier resolved group failing in the same
//! function; both databases.

use crate::common;

use serde_json::{json, Value};

use common::repository::{crash, Scenario};
use common::{sentry_cli_in, tool_present, TestServer};

const DRIVER: &str = "31.0.15.3623";
/// Crashes of the release besides the new group's.
const BACKGROUND: usize = 9_960;
/// The new group's crashes, and how many of them run the driver.
const GROUP: usize = 40;
const GROUP_ON_DRIVER: usize = 30;
/// Background crashes on the driver.
const BACKGROUND_ON_DRIVER: usize = 300;

/// A native event of the program: `frames` oldest first, the program as its one image.
fn event(image: &Value, release: &str, signal: &str, frames: &[u64], driver: &str) -> Value {
    let frames: Vec<Value> = frames
        .iter()
        .map(|a| json!({"instruction_addr": format!("{a:#x}")}))
        .collect();
    json!({
        "platform": "native",
        "release": release,
        "tags": {"gpu_driver": driver},
        "exception": {"values": [{
            "type": signal,
            "value": signal,
            "mechanism": {"type": "signalhandler", "handled": false},
            "stacktrace": {"frames": frames},
        }]},
        "debug_meta": {"images": [image]},
    })
}

/// Sends `events`, 32 at a time.
async fn send_all(server: &TestServer, events: Vec<Value>) {
    for wave in events.chunks(32) {
        let sends = wave.iter().map(|e| async move {
            let (status, reply) =
                common::send_envelope_items(server, &[("event", e.clone())]).await;
            assert_eq!(status, 200, "{reply}");
        });
        futures::future::join_all(sends).await;
    }
}

/// Waits until the index counts `total` crashes.
async fn indexed(server: &TestServer, total: u64) {
    for _ in 0..1200 {
        let (_, groups) = server.get_json("/api/v1/groups?limit=100").await;
        let counted: u64 = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["event_count"].as_u64().unwrap())
            .sum();
        if counted == total {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the crashes were not all indexed in time");
}

/// The group whose signature names `function`.
async fn group_of(server: &TestServer, function: &str, state: &str) -> i64 {
    let (_, groups) = server.get_json("/api/v1/groups?limit=100").await;
    groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["signature"].as_str().unwrap().starts_with(function) && g["state"] == state)
        .unwrap_or_else(|| panic!("no {state} group of {function}: {groups}"))["id"]
        .as_i64()
        .unwrap()
}

async fn cli(server: &TestServer, token: &str, dir: &std::path::Path, args: &[&str]) {
    let (ok, out) = sentry_cli_in(server, token, Some(dir), args).await;
    assert!(ok, "sentry-cli {args:?}: {out}");
}

on_both_databases! {
async fn ten_thousand_crashes_and_the_evidence_names_driver_deploy_suspect_and_history(db: Db) {
    if !tool_present("sentry-cli") || !tool_present("gcc") {
        assert!(!common::services_required(), "sentry-cli and gcc are required");
        return;
    }
    let Some(server) = TestServer::start_on(db, |c| {
        c.evidence.correlations_interval_secs = 1;
        c.code.suspects_interval_secs = 1;
    }).await else {
        return;
    };
    let repo = Scenario::build();
    let out = tempfile::tempdir().unwrap();
    let binary = repo.build_program(out.path());
    let addresses = crash(&binary);
    let (status, answer) = server.admin_post("/api/v1/repositories", json!({"name": "acme/game", "url": repo.path()})).await;
    assert_eq!(status, 201, "{answer}");
    let (ci, _) = server.create_token(json!({"name": "ci", "scopes": ["releases:write"]})).await;
    let dir = repo.path();
    cli(&server, &ci, dir, &["releases", "--org", "acme", "new", "1.0.0", "-p", "default"]).await;
    let spec = format!("acme/game@{}", repo.initial);
    cli(&server, &ci, dir, &["releases", "--org", "acme", "set-commits", "1.0.0", "--commit", &spec]).await;
    cli(&server, &ci, dir, &["releases", "--org", "acme", "new", "1.1.0", "-p", "default"]).await;
    let spec = format!("acme/game@{}..{}", repo.initial, repo.late);
    cli(&server, &ci, dir, &["releases", "--org", "acme", "set-commits", "1.1.0", "--commit", &spec]).await;
    let finished = std::process::Command::new("date").args(["-u", "-d", &format!("@{}", common::now() - 14 * 60), "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
    let finished = String::from_utf8(finished.stdout).unwrap().trim().to_owned();
    let (status, deploy) = server.admin_post("/api/0/organizations/acme/releases/1.1.0/deploys/", json!({"environment": "production", "name": "prod-eu-2", "dateFinished": finished})).await;
    assert_eq!(status, 201, "{deploy}");
    let (status, uploaded) = server.upload("game", std::fs::read(&binary).unwrap()).await;
    assert_eq!(status, 200, "{uploaded}");
    let file = &uploaded["files"][0]["file"];
    let image = json!({
        "type": "elf", "debug_id": file["debug_id"], "code_id": file["code_id"],
        "code_file": "/opt/game/game", "image_addr": format!("{:#x}", addresses.base), "image_size": 0x10_0000,
    });
    let fault = [addresses.returns[0], addresses.pc];

    // 1.0.0 failed in the same function with a bus error; resolved in 1.0.0.
    send_all(&server, (0..3).map(|_| event(&image, "1.0.0", "SIGBUS", &fault, "30.0.1")).collect()).await;
    indexed(&server, 3).await;
    let (_, groups) = server.get_json("/api/v1/groups").await;
    let earlier = groups["groups"][0]["id"].as_i64().unwrap();
    let resolved = server.client.patch(server.url(&format!("/api/v1/groups/{earlier}"))).json(&json!({"state": "resolved", "resolved_in": "1.0.0"})).send().await.unwrap();
    assert_eq!(resolved.status(), 200);

    // 1.1.0: the rest of the project's crashes, 3 % on the driver, crashing in main…
    let background = (0..BACKGROUND).map(|i| {
        let driver = if i < BACKGROUND_ON_DRIVER { DRIVER } else { "30.0.1" };
        event(&image, "1.1.0", "SIGSEGV", &fault[..1], driver)
    });
    send_all(&server, background.collect()).await;
    indexed(&server, 3 + BACKGROUND as u64).await;
    // …then the new group, 75 % on the driver, crashing on the line the bug commit wrote.
    let mine = (0..GROUP).map(|i| {
        let driver = if i < GROUP_ON_DRIVER { DRIVER } else { "30.0.1" };
        event(&image, "1.1.0", "SIGSEGV", &fault, driver)
    });
    send_all(&server, mine.collect()).await;
    indexed(&server, (3 + BACKGROUND + GROUP) as u64).await;
    let group = group_of(&server, "conn_read", "open").await;
    assert_ne!(group, earlier);

    // Computed beside the crash path; on a loaded two-core machine (CI also building) it can
    // take a while: wait up to three minutes, and say what was there at the end.
    let mut e = Value::Null;
    let mut last = Value::Null;
    for _ in 0..1800 {
        let (status, body) = server.get_json(&format!("/api/v1/groups/{group}/evidence")).await;
        assert_eq!(status, 200, "{body}");
        if body["correlations"]["group_crashes"] == GROUP && !body["suspects"].as_array().unwrap().is_empty() {
            e = body;
            break;
        }
        last = body;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!e.is_null(), "the evidence of group {group} was not complete in time: {last}");
    // The driver: 30 of 40 against 330 of the release's 10,000.
    let top = &e["correlations"]["deviations"][0];
    assert_eq!(top["items"], json!([["annotation.tag.gpu_driver", DRIVER]]), "{}", e["correlations"]);
    assert_eq!((top["group_count"].as_u64(), top["reference_count"].as_u64()), (Some(GROUP_ON_DRIVER as u64), Some((GROUP_ON_DRIVER + BACKGROUND_ON_DRIVER) as u64)), "{top}");
    assert_eq!(e["correlations"]["reference_crashes"], (BACKGROUND + GROUP) as u64);
    // The deploy, fourteen minutes before the group appeared.
    assert_eq!(e["timeline"]["first_release"], "1.1.0");
    assert_eq!(e["timeline"]["deploy"]["name"], "prod-eu-2", "{}", e["timeline"]);
    let minutes = e["timeline"]["deploy"]["minutes_before"].as_i64().unwrap();
    assert!((14..=30).contains(&minutes), "{minutes}");
    // The commit that wrote the crashing line.
    assert_eq!(e["suspects"][0]["sha"], repo.bug.as_str(), "{}", e["suspects"]);
    // The earlier group, resolved, failing in the same function.
    let history = e["history"].as_array().unwrap();
    let before = history.iter().find(|g| g["id"] == earlier).unwrap_or_else(|| panic!("{history:?}"));
    assert_eq!(before["state"], "resolved");
    assert_eq!(before["resolved_in"], "1.0.0");
    // The Markdown for a ticket says each of them.
    let markdown = server.client.get(server.url(&format!("/api/v1/groups/{group}/evidence?format=markdown"))).send().await.unwrap().text().await.unwrap();
    assert!(markdown.contains(&format!("`annotation.tag.gpu\\_driver = {DRIVER}`")), "{markdown}");
    assert!(markdown.contains("minutes after the deploy `prod-eu-2` to production finished"), "{markdown}");
    assert!(markdown.contains(&repo.bug[..10]), "{markdown}");
    assert!(markdown.contains(&format!("- Group {earlier} (resolved, resolved in 1.0.0)")), "{markdown}");
}
}
