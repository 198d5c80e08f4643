//! Helpers shared by the alert and ticket suites: a server whose deliveries retry fast, and
//! reading the delivery outbox over the API.

use std::time::Duration;

use hmac::Mac;
use serde_json::Value;

use super::TestServer;

/// A server whose deliveries retry fast (100 ms, doubled), give up after `max_attempts`, and
/// whose links start with `https://crashes.example.com`.
pub async fn server(max_attempts: u32, timeout_secs: u64) -> TestServer {
    TestServer::start_with(|c| {
        c.alerts.retry_base_ms = 100;
        c.alerts.max_attempts = max_attempts;
        c.alerts.timeout_secs = timeout_secs;
        c.server.public_url = "https://crashes.example.com".into();
    })
    .await
}

/// POSTs to an admin route that creates something; its ID.
pub async fn create(server: &TestServer, path: &str, body: Value) -> i64 {
    let (status, answer) = server.admin_post(path, body).await;
    assert_eq!(status, 201, "{path}: {answer}");
    answer["id"].as_i64().unwrap()
}

/// The default project's deliveries in `state` (empty: all), newest first.
pub async fn deliveries(server: &TestServer, state: &str) -> Vec<Value> {
    let (status, body) = server
        .get_json(&format!("/api/v1/deliveries?state={state}&limit=500"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// Waits until no delivery is pending; every delivery so far.
pub async fn drained(server: &TestServer) -> Vec<Value> {
    for _ in 0..300 {
        if deliveries(server, "pending").await.is_empty() {
            return deliveries(server, "").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still pending: {:?}", deliveries(server, "pending").await);
}

/// HMAC-SHA256 of `parts` (concatenated) with `secret`, in hex: what a receiver computes.
pub fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// A loopback webhook receiver told of every new group (a channel and a `new_group` rule).
pub async fn new_group_webhook(server: &TestServer) -> super::receiver::Receiver {
    let receiver = super::receiver::Receiver::start().await;
    let channel = create(
        server,
        "/api/v1/channels",
        serde_json::json!({"name": "hook", "config": {"kind": "webhook", "url": receiver.url, "secret": "0123456789abcdef"}}),
    )
    .await;
    create(
        server,
        "/api/v1/alert-rules",
        serde_json::json!({"name": "new", "triggers": [{"kind": "new_group"}], "actions": [{"channel": channel}]}),
    )
    .await;
    receiver
}
