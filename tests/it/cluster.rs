//! Two nodes, one truth: two real `faultline serve` processes sharing one Postgres database and
//! one S3 bucket (s3s-fs). A symbol file uploaded through one node is used by the other's very
//! next crash; crashes submitted to both while one is killed with SIGKILL and restarted are all
//! processed exactly once, and the groups count exactly the acknowledged crashes; a triage
//! change on one node is what the other shows.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::s3::S3Server;
use common::{crash_form, generated_bytes, Db};
use serde_json::Value;

/// A node's environment: the shared index and bucket, its own name and a short lease.
fn node_env(name: &str, index_url: &str, s3: &S3Server) -> Vec<(String, String)> {
    let c = &s3.config;
    [
        ("FAULTLINE_INDEX_URL", index_url),
        ("FAULTLINE_STORAGE_BACKEND", "s3"),
        ("FAULTLINE_STORAGE_S3_BUCKET", &c.bucket),
        ("FAULTLINE_STORAGE_S3_PREFIX", &c.prefix),
        ("FAULTLINE_STORAGE_S3_ENDPOINT", &c.endpoint),
        ("FAULTLINE_STORAGE_S3_ACCESS_KEY", &c.access_key),
        ("FAULTLINE_STORAGE_S3_SECRET_KEY", &c.secret_key),
        ("FAULTLINE_CLUSTER_NODE_ID", name),
        ("FAULTLINE_CLUSTER_LEASE_SECS", "3"),
        ("FAULTLINE_CLUSTER_EVENT_POLL_SECS", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn start(dir: &Path, env: &[(String, String)]) -> (tokio::process::Child, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (child, url, _) = common::serve_process(dir, &env).await;
    (child, url)
}

/// Processes `dump` synchronously on the node at `url`; its grouping signature.
async fn signature_on(client: &reqwest::Client, url: &str, dump: &[u8]) -> String {
    let response = client
        .post(format!("{url}/api/v1/minidump"))
        .body(dump.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["grouping"]["signature"].as_str().unwrap().to_owned()
}

/// Submits a crash as a crash reporter would; its ID when acknowledged.
async fn submit(client: &reqwest::Client, url: &str, dump: &[u8]) -> Option<String> {
    let response = client
        .post(format!("{url}/submit"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(crash_form(dump))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let text = response.text().await.ok()?;
    Some(text.trim().strip_prefix("CrashID=bp-")?.to_owned())
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_one_index_and_one_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let Some(index_url) = common::database_url(Db::Postgres, dir.path()).await else {
        return;
    };
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a_env, b_env) = (
        node_env("node-a", &index_url, &s3),
        node_env("node-b", &index_url, &s3),
    );
    let (mut a, mut a_url) = start(&a_dir, &a_env).await;
    // The first node to start creates the admin token; the second finds one and makes none.
    let token = std::fs::read_to_string(a_dir.join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let (mut b, b_url) = start(&b_dir, &b_env).await;
    assert!(!b_dir.join("data/admin-token").exists());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Symbols uploaded through A are used by B's very next crash, though B has just cached
    // "no symbols" for that module.
    let wild_read = generated_bytes("wild-read.dmp");
    assert_eq!(signature_on(&client, &b_url, &wild_read).await, "crasher");
    let response = client
        .post(format!("{a_url}/api/v1/symbols?name=crasher.debug"))
        .body(generated_bytes("crasher.debug"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        signature_on(&client, &b_url, &wild_read).await,
        "core::ptr::read_volatile | crasher::linux::wild_read"
    );

    // Crashes to both nodes; A is killed part-way and restarted.
    let dumps = [
        generated_bytes("null-write.dmp"),
        generated_bytes("abort.dmp"),
    ];
    let mut acknowledged = BTreeSet::new();
    for n in 0..60 {
        if n == 20 {
            a.start_kill().unwrap();
            a.wait().await.unwrap();
        }
        if n == 40 {
            // Restarted on the same folders and name, on a new port.
            (a, a_url) = start(&a_dir, &a_env).await;
        }
        let to_a = n % 2 == 0;
        let url = if to_a { &a_url } else { &b_url };
        if let Some(id) = submit(&client, url, &dumps[n % 2]).await {
            acknowledged.insert(id);
        }
    }
    // Only the ten sent to A while it was down were refused.
    assert_eq!(acknowledged.len(), 50);

    // All processed (the killed node's claims are taken over once their lease runs out).
    let mut pending = acknowledged.clone();
    for _ in 0..600 {
        let mut still = BTreeSet::new();
        for id in &pending {
            let (status, body) = get(&client, &format!("{b_url}/api/v1/crashes/{id}")).await;
            assert_eq!(status, 200, "{id}: {body}");
            assert_ne!(body["state"], "failed", "{id}: {body}");
            if body["state"] != "processed" {
                still.insert(id.clone());
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pending.is_empty(), "never processed: {pending:?}");

    // Exactly once: the groups count every acknowledged crash (plus the two synchronous ones),
    // no more; both nodes see the same groups.
    let (_, groups_b) = get(&client, &format!("{b_url}/api/v1/groups?limit=100")).await;
    let groups = groups_b["groups"].as_array().unwrap();
    let total: i64 = groups
        .iter()
        .map(|g| g["event_count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, acknowledged.len() as i64 + 2, "{groups_b}");
    let (_, groups_a) = get(&client, &format!("{a_url}/api/v1/groups?limit=100")).await;
    assert_eq!(groups_a, groups_b);
    assert!(groups.len() >= 3, "{groups_b}");

    // Triage on A is what B shows: a resolution, then a merge.
    let first = groups[0]["id"].as_i64().unwrap();
    let second = groups[1]["id"].as_i64().unwrap();
    let response = client
        .patch(format!("{a_url}/api/v1/groups/{first}"))
        .json(&serde_json::json!({"state": "resolved", "resolved_in": "9.9.9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, seen) = get(&client, &format!("{b_url}/api/v1/groups/{first}")).await;
    assert_eq!(seen["state"], "resolved");
    assert_eq!(seen["resolved_in"], "9.9.9");
    let response = client
        .post(format!("{b_url}/api/v1/groups/{first}/merge"))
        .json(&serde_json::json!({"groups": [second]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let (_, after) = get(&client, &format!("{a_url}/api/v1/groups?limit=100")).await;
    let ids: Vec<i64> = after["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert!(!ids.contains(&second), "{after}");
    let merged = after["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == first)
        .unwrap();
    assert_eq!(
        merged["event_count"].as_i64().unwrap(),
        groups[0]["event_count"].as_i64().unwrap() + groups[1]["event_count"].as_i64().unwrap()
    );

    let _ = a.start_kill();
    let _ = b.start_kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_one_node_fetched_from_a_source_serves_the_other_without_a_second_download() {
    let dir = tempfile::tempdir().unwrap();
    let Some(index_url) = common::database_url(Db::Postgres, dir.path()).await else {
        return;
    };
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let upstream = common::symbol_source::SymbolSource::start().await;
    let (_, code_id) = common::crasher_ids();
    let code_id = code_id.to_lowercase();
    let path = format!("{}/{}.debug", &code_id[..2], &code_id[2..]);
    upstream.put(&path, &generated_bytes("crasher.debug"));
    let config = dir.path().join("faultline.toml");
    std::fs::write(
        &config,
        format!(
            "[[symbols.sources]]\nid = \"build-ids\"\ntype = \"http\"\nurl = \"{}\"\n\
             layout = \"native\"\nfiletypes = [\"elf_debug\"]\n",
            upstream.url("store")
        ),
    )
    .unwrap();
    let with_config = |name: &str| {
        let mut env = node_env(name, &index_url, &s3);
        env.push(("FAULTLINE_CONFIG".into(), config.to_str().unwrap().into()));
        env
    };
    let (_a, a_url) = start(&dir.path().join("a"), &with_config("node-a")).await;
    let (_b, b_url) = start(&dir.path().join("b"), &with_config("node-b")).await;
    let token = std::fs::read_to_string(dir.path().join("a/data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let client = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let wild_read = generated_bytes("wild-read.dmp");
    let symbolicated = "core::ptr::read_volatile | crasher::linux::wild_read";
    assert_eq!(
        signature_on(&client, &a_url, &wild_read).await,
        symbolicated
    );
    assert_eq!(upstream.count(&format!("/store/{path}")), 1);
    assert_eq!(
        signature_on(&client, &b_url, &wild_read).await,
        symbolicated
    );
    assert_eq!(
        upstream.count(&format!("/store/{path}")),
        1,
        "node B used the file node A stored"
    );
}
