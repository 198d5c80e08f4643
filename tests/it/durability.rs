//! Durability: a client submits crashes (or session updates) continuously while the server
//! (the real binary) is killed with SIGKILL at arbitrary moments and restarted on the same
//! folders. Every crash that got a 200 must end up processed, and indexed exactly once; every
//! acknowledged session counted, none twice.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common;

use common::Db;

use tokio::process::Child;

/// Starts `faultline serve` on a free port with the given folders; returns it and its URL.
async fn start(dir: &Path, index_url: &Option<String>) -> (Child, String) {
    let env: Vec<(&str, &str)> = index_url
        .iter()
        .map(|url| ("FAULTLINE_INDEX_URL", url.as_str()))
        .collect();
    let (child, url, _) = common::serve_process(dir, &env).await;
    (child, url)
}

fn body(dump: &[u8], seq: usize) -> Vec<u8> {
    let mut body = Vec::new();
    write!(
        body,
        "--B\r\nContent-Disposition: form-data; name=\"run\"\r\n\r\ndurability\r\n"
    )
    .unwrap();
    write!(
        body,
        "--B\r\nContent-Disposition: form-data; name=\"seq\"\r\n\r\n{seq}\r\n"
    )
    .unwrap();
    write!(body, "--B\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; filename=\"a.dmp\"\r\n\r\n").unwrap();
    body.extend_from_slice(dump);
    write!(body, "\r\n--B--\r\n").unwrap();
    body
}

on_both_databases! {
async fn every_acknowledged_crash_survives_kill_9_and_is_indexed_once(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    // SQLite: the default file in the data folder; Postgres: a fresh database.
    let index_url = match db {
        Db::Sqlite => None,
        Db::Postgres => match common::database_url(db, dir.path()).await {
            Some(url) => Some(url),
            None => return,
        },
    };
    let dump = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/minidumps/null-write.dmp"),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    let mut seq = 0;
    // Each round kills the server after its k-th acknowledged crash plus a delay that differs
    // per round, while later submissions are in flight: kills land mid-request,
    // mid-processing and idle. Counting acknowledgements (not time) keeps the test's floor
    // the same on a slow machine.
    for (round, (burst, k, delay_ms)) in [(7usize, 3usize, 0u64), (13, 5, 7), (3, 1, 2), (11, 4, 15), (5, 2, 4)]
        .into_iter()
        .enumerate()
    {
        let (server, url) = start(dir.path(), &index_url).await;
        let server = std::sync::Arc::new(tokio::sync::Mutex::new(server));
        let kill = |delay: Duration| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                server.lock().await.start_kill().unwrap();
            })
        };
        let mut killer = None;
        let mut acknowledged_now = 0;
        for _ in 0..burst {
            seq += 1;
            let sent = client
                .post(format!("{url}/submit"))
                .header("content-type", "multipart/form-data; boundary=B")
                .body(body(&dump, seq))
                .send()
                .await;
            match sent {
                Ok(response) if response.status() == 200 => match response.text().await {
                    Ok(text) => {
                        let id = text
                            .trim()
                            .strip_prefix("CrashID=bp-")
                            .expect("a crash ID")
                            .to_owned();
                        acknowledged.insert(id);
                        acknowledged_now += 1;
                        if acknowledged_now == k {
                            killer = Some(kill(Duration::from_millis(delay_ms)));
                        }
                    }
                    Err(_) => refused += 1,
                },
                // The server died under the request: not acknowledged; a client would retry.
                _ => {
                    refused += 1;
                    break;
                }
            }
        }
        let killer = killer.unwrap_or_else(|| kill(Duration::ZERO));
        killer.await.unwrap();
        server.lock().await.wait().await.unwrap();
        assert!(acknowledged_now >= k, "round {round}: the server stopped early");
    }
    eprintln!(
        "{} acknowledged, {refused} cut off by kills",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= 10,
        "enough crashes got through ({} acknowledged, {refused} not)",
        acknowledged.len()
    );

    // Restart and let the queue drain; reading crashes needs the first start's admin token.
    let (_server, url) = start(dir.path(), &index_url).await;
    let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.trim()).parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap();
    for id in &acknowledged {
        let mut state = String::new();
        for _ in 0..400 {
            let crash: serde_json::Value = client
                .get(format!("{url}/api/v1/crashes/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            state = crash["state"].as_str().unwrap_or_default().to_owned();
            if state == "processed" {
                assert_eq!(crash["crash"]["annotations"]["run"], "durability");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            state, "processed",
            "acknowledged crash {id} was not processed"
        );
    }
    // Exactly once: every crash in the index is distinct, and the group counts add up to them.
    let mut indexed = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = client.get(format!(
            "{url}/api/v1/crashes?annotation.run=durability&limit=100"
        ));
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let page: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
        for crash in page["crashes"].as_array().unwrap() {
            assert!(
                indexed.insert(crash["id"].as_str().unwrap().to_owned()),
                "crash listed twice"
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(
        acknowledged.is_subset(&indexed),
        "every acknowledged crash is indexed"
    );
    let groups: serde_json::Value = client
        .get(format!("{url}/api/v1/groups"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events: i64 = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["event_count"].as_i64().unwrap())
        .sum();
    assert_eq!(
        events as usize,
        indexed.len(),
        "group counts match the crashes, none twice"
    );
}
}

on_both_databases! {
/// Session updates stream in from 16 connections while the server is killed with SIGKILL;
/// after a restart every acknowledged session is counted (and none twice: at most what was
/// sent).
async fn every_acknowledged_session_survives_kill_9(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let index_url = match db {
        Db::Sqlite => None,
        Db::Postgres => match common::database_url(db, dir.path()).await {
            Some(url) => Some(url),
            None => return,
        },
    };
    let (server, url) = start(dir.path(), &index_url).await;
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut senders = Vec::new();
    let (yesterday, _) = common::days_ago_at_ten(1);
    for c in 0..16u64 {
        let (url, acknowledged, sent) = (url.clone(), acknowledged.clone(), sent.clone());
        let yesterday = yesterday.clone();
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0.. {
                let session = |init: bool, status: &str| {
                    format!(r#"{{"sid":"k-{c}-{n}","did":"u{c}","init":{init},"started":"{yesterday}","status":"{status}","attrs":{{"release":"kill@1"}}}}"#)
                };
                let mut body = b"{}\n".to_vec();
                for payload in [session(true, "ok"), session(false, "exited")] {
                    body.extend_from_slice(format!("{{\"type\":\"session\",\"length\":{}}}\n{payload}\n", payload.len()).as_bytes());
                }
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = client
                    .post(format!("{url}/api/1/envelope/"))
                    .header("x-sentry-auth", "Sentry sentry_key=public")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status() == 200 => {
                        acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        }));
    }
    // Kill once a few hundred sessions were acknowledged, mid-stream.
    while acknowledged.load(std::sync::atomic::Ordering::SeqCst) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut server = server;
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
    let (_server, url) = start(dir.path(), &index_url).await;
    let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let health: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/releases/kill@1/health?project=default"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = health["sessions"].as_u64().unwrap();
    assert!(sessions >= acknowledged && sessions <= sent, "{acknowledged} acknowledged, {sent} sent, {sessions} counted: {health}");
    assert_eq!(health["crash_free_sessions"].as_f64(), Some(100.0), "{health}");
    assert_eq!(health["crashed"], 0);
}
}
