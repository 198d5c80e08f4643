//! Tracker integrations with real parts where they run here: a Jira-compatible server (the
//! `jira820` package from PyPI, imitating Jira Data Center's REST v2) for creating, moving and
//! assigning tickets and syncing back; loopback stand-ins that check what Jira Cloud (v3
//! documents, basic auth, 429, required custom fields, a create that times out) and GitHub
//! would check.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Json;
use common::alerting::{create, deliveries, drained, hmac_hex, server};
use common::{settled, submit, TestServer};
use serde_json::{json, Value};

async fn group_of(server: &TestServer, crash: &str) -> i64 {
    settled(server, crash).await["crash"]["group_id"]
        .as_i64()
        .unwrap()
}

async fn patch_group(server: &TestServer, group: i64, body: Value) -> Value {
    let response = server
        .client
        .patch(server.url(&format!("/api/v1/groups/{group}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn sign(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(secret.as_bytes(), &[body]))
}

/// POSTs a tracker webhook; its status and answer.
async fn hook(
    server: &TestServer,
    tracker: &str,
    channel: i64,
    headers: &[(&str, String)],
    body: &Value,
) -> (u16, Value) {
    let mut request = server
        .anonymous
        .post(server.url(&format!(
            "/api/v1/integrations/{tracker}/webhook?channel={channel}"
        )))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

// ---------------------------------------------------------------- jira820 (Jira DC, REST v2)

struct Jira820 {
    url: String,
    _child: tokio::process::Child,
}

impl Jira820 {
    async fn start() -> Option<Jira820> {
        let have = std::process::Command::new("python3")
            .args(["-c", "import jira820"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            assert!(
                !common::services_required(),
                "jira820 is missing: tests/run.sh installs it (pip install jira820)"
            );
            eprintln!("skipped: no jira820 (bash tests/run.sh installs it)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new("python3")
            .args(["-m", "jira820"])
            .env("JIRA820_HOST", "127.0.0.1")
            .env("JIRA820_PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..300 {
            if let Ok(r) = reqwest::get(format!("{url}/rest/api/2/serverInfo")).await {
                if r.status().is_success() {
                    return Some(Jira820 { url, _child: child });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("jira820 did not start");
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn issue(&self, key: &str) -> Value {
        self.get(&format!("/rest/api/2/issue/{key}")).await
    }

    /// A person moving the issue in Jira.
    async fn move_to(&self, key: &str, status: &str) {
        let offered = self
            .get(&format!("/rest/api/2/issue/{key}/transitions"))
            .await;
        let id = offered["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["to"]["name"] == status)
            .unwrap()["id"]
            .clone();
        let response = reqwest::Client::new()
            .post(format!("{}/rest/api/2/issue/{key}/transitions", self.url))
            .json(&json!({"transition": {"id": id}}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
}

/// What Jira sends when an issue's status changed: the issue as it is now, and a changelog.
fn jira_update(issue: &Value, field: &str) -> Value {
    json!({
        "webhookEvent": "jira:issue_updated",
        "issue": issue,
        "changelog": {"items": [{"field": field}]},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_tickets_follow_their_groups_both_ways() {
    let Some(jira) = Jira820::start().await else {
        return;
    };
    let server = server(4, 1).await;
    let secret = "jira-webhook-secret-0123456789";
    let channel = create(
        &server,
        "/api/v1/channels",
        json!({
            "name": "jira", "config": {
                "kind": "jira", "base_url": jira.url, "email": "admin", "api_token": "token",
                "api_version": 2, "project_key": "JIRA820", "issue_type": "Bug",
                "labels": ["crash"], "webhook_secret": secret,
                "summary": "[{fault_class}] {signature} on $os_flavor"
            }
        }),
    )
    .await;
    // The channel test signs in and finds the project.
    let (_, tested) = server
        .admin_post(&format!("/api/v1/channels/{channel}/test"), json!({}))
        .await;
    assert_eq!(tested["delivered"], true, "{tested}");
    assert!(
        tested["response"].as_str().unwrap().contains("JIRA820"),
        "{tested}"
    );
    create(
        &server,
        "/api/v1/alert-rules",
        json!({
            "name": "ticket", "triggers": [{"kind": "new_group"}], "actions": [{"channel": channel}]
        }),
    )
    .await;

    let crash = submit(
        &server,
        "null-write.dmp",
        &[("version", "1.0"), ("os_flavor", "bookworm")],
    )
    .await;
    let group = group_of(&server, &crash).await;
    let done = drained(&server).await;
    assert_eq!(done[0]["state"], "delivered", "{done:?}");
    let found = jira
        .get(&format!(
            "/rest/api/2/search?jql=labels%20%3D%20faultline-group-{group}"
        ))
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let key = found["issues"][0]["key"].as_str().unwrap().to_owned();
    let issue = jira.issue(&key).await;
    let fields = &issue["fields"];
    assert_eq!(
        fields["summary"], "[null-write] crasher on bookworm",
        "{issue}"
    );
    assert!(fields["description"]
        .as_str()
        .unwrap()
        .contains(&format!("https://crashes.example.com/ui/groups/{group}")));
    let labels = fields["labels"].to_string();
    assert!(
        labels.contains("faultline") && labels.contains("crash"),
        "{labels}"
    );
    assert_eq!(fields["issuetype"]["name"], "Bug");

    // Out: resolved and assigned in faultline → the issue is done and assigned.
    patch_group(
        &server,
        group,
        json!({"state": "resolved", "resolved_in": "1.0", "assignee": "admin"}),
    )
    .await;
    drained(&server).await;
    let issue = jira.issue(&key).await;
    assert_eq!(
        issue["fields"]["status"]["statusCategory"]["key"], "done",
        "{issue}"
    );
    assert_eq!(issue["fields"]["assignee"]["name"], "admin");

    // In: Jira's webhook echoing that change changes nothing.
    let sent_before = deliveries(&server, "").await.len();
    let body = jira_update(&issue, "status");
    let signed = |body: &Value, id: &str| {
        vec![
            ("x-hub-signature", sign(secret, body.to_string().as_bytes())),
            ("x-atlassian-webhook-identifier", id.to_owned()),
        ]
    };
    let (status, answer) = hook(&server, "jira", channel, &signed(&body, "echo-1"), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applied"], false, "{answer}");

    // Someone reopens the issue in Jira: the group reopens, and Jira is not told back.
    jira.move_to(&key, "Reopened").await;
    let body = jira_update(&jira.issue(&key).await, "status");
    let (_, answer) = hook(&server, "jira", channel, &signed(&body, "d-2"), &body).await;
    assert_eq!(answer["applied"], true, "{answer}");
    let (_, g) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(g["state"], "open");
    assert_eq!(
        deliveries(&server, "").await.len(),
        sent_before,
        "no ping-pong"
    );
    // The same delivery again: nothing.
    let (_, answer) = hook(&server, "jira", channel, &signed(&body, "d-2"), &body).await;
    assert_eq!(answer["applied"], false);
    assert!(
        answer["why"].as_str().unwrap().contains("before"),
        "{answer}"
    );
    // A wrong signature: refused.
    let (status, _) = hook(
        &server,
        "jira",
        channel,
        &[(
            "x-hub-signature",
            sign("guess", body.to_string().as_bytes()),
        )],
        &body,
    )
    .await;
    assert_eq!(status, 401);

    // Done in Jira: resolved in the group's latest release.
    jira.move_to(&key, "Done").await;
    let body = jira_update(&jira.issue(&key).await, "status");
    let (_, answer) = hook(&server, "jira", channel, &signed(&body, "d-3"), &body).await;
    assert_eq!(answer["applied"], true, "{answer}");
    let (_, g) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(g["state"], "resolved");
    assert_eq!(g["resolved_in"], "1.0");

    // A regression (a crash from 1.1) reopens the ticket.
    submit(&server, "null-write.dmp", &[("version", "1.1")]).await;
    drained(&server).await;
    let issue = jira.issue(&key).await;
    assert_eq!(
        issue["fields"]["status"]["statusCategory"]["key"], "new",
        "{issue}"
    );

    // A muted group stays muted whatever Jira says.
    patch_group(&server, group, json!({"state": "muted"})).await;
    drained(&server).await;
    jira.move_to(&key, "Done").await;
    let body = jira_update(&jira.issue(&key).await, "status");
    hook(&server, "jira", channel, &signed(&body, "d-4"), &body).await;
    jira.move_to(&key, "Reopened").await;
    let body = jira_update(&jira.issue(&key).await, "status");
    let (_, answer) = hook(&server, "jira", channel, &signed(&body, "d-5"), &body).await;
    assert_eq!(answer["applied"], false, "{answer}");
    let (_, g) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(g["state"], "muted");
    // One issue for the group through all of it.
    let found = jira
        .get(&format!(
            "/rest/api/2/search?jql=labels%20%3D%20faultline-group-{group}"
        ))
        .await;
    assert_eq!(found["total"], 1);
}

// ------------------------------------------------ a Jira Cloud stand-in (REST v3) and GitHub

#[derive(Default)]
struct Tracked {
    /// Issues by key: (fields or body, labels, state).
    issues: BTreeMap<String, Value>,
    creates: usize,
    searches: usize,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Tracked>>;

async fn start(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// What Jira Cloud checks that jira820 does not: basic auth, v3 descriptions as documents,
/// a required custom field, rate limiting; and a create that commits and then never answers.
async fn jira_cloud(shared: Shared) -> String {
    fn authorized(headers: &HeaderMap) -> bool {
        use base64_engine::encode;
        headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Basic {}", encode(b"bot@game.test:cloud-token")))
    }
    async fn create(
        State(s): State<Shared>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        if !authorized(&headers) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"errorMessages": ["Client must be authenticated"]})),
            )
                .into_response();
        }
        let fields = &body["fields"];
        if fields["description"]["type"] != "doc" || fields["description"]["version"] != 1 {
            return (StatusCode::BAD_REQUEST, Json(json!({"errors": {"description": "Operation value must be an Atlassian Document"}}))).into_response();
        }
        if fields["customfield_10010"].is_null() {
            return (StatusCode::BAD_REQUEST, Json(json!({"errorMessages": [], "errors": {"customfield_10010": "Customer impact is required."}}))).into_response();
        }
        let key = {
            let mut s = s.lock().unwrap();
            s.creates += 1;
            let key = format!("CLOUD-{}", s.issues.len() + 1);
            s.issues.insert(key.clone(), fields.clone());
            key
        };
        if s.lock().unwrap().creates == 1 {
            // Created, but the answer never comes (the client times out and retries).
            std::future::pending::<()>().await;
        }
        (StatusCode::CREATED, Json(json!({"id": "1", "key": key}))).into_response()
    }
    async fn search(
        State(s): State<Shared>,
        headers: HeaderMap,
        Query(q): Query<BTreeMap<String, String>>,
    ) -> Response {
        if !authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let mut s = s.lock().unwrap();
        s.searches += 1;
        if s.searches == 1 {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response();
        }
        let jql = q.get("jql").cloned().unwrap_or_default();
        let issues: Vec<Value> = s
            .issues
            .iter()
            .filter(|(_, f)| jql.contains(&format!("project = \"{}\"", f["project"]["key"].as_str().unwrap())))
            .filter(|(_, f)| f["labels"].as_array().unwrap().iter().any(|l| jql.contains(&format!("\"{}\"", l.as_str().unwrap()))))
            .map(|(k, _)| json!({"key": k, "fields": {"status": {"statusCategory": {"key": "new"}}, "assignee": null}}))
            .collect();
        Json(json!({"issues": issues})).into_response()
    }
    let app = axum::Router::new()
        .route("/rest/api/3/issue", post(create))
        .route("/rest/api/3/search/jql", get(search))
        .with_state(shared);
    start(app).await
}

/// Base64 for the basic-auth check (the test's own, so it does not trust the client's).
mod base64_engine {
    pub fn encode(input: &[u8]) -> String {
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_cloud_gets_documents_and_required_fields_and_one_issue_despite_a_timeout() {
    let server = server(4, 1).await;
    let shared = Shared::default();
    let url = jira_cloud(Arc::clone(&shared)).await;
    let settings = |project: &str, custom: Value| {
        json!({
            "kind": "jira", "base_url": url, "email": "bot@game.test", "api_token": "cloud-token",
            "project_key": project, "custom_fields": custom,
        })
    };
    let missing = create(
        &server,
        "/api/v1/channels",
        json!({"name": "no impact field", "config": settings("OPS", json!({}))}),
    )
    .await;
    let good = create(&server, "/api/v1/channels", json!({"name": "cloud", "config": settings("CLOUD", json!({"customfield_10010": {"value": "$impact"}}))})).await;
    create(&server, "/api/v1/alert-rules", json!({
        "name": "t", "triggers": [{"kind": "new_group"}], "actions": [{"channel": missing}, {"channel": good}]
    })).await;
    let crash = submit(
        &server,
        "wild-read.dmp",
        &[("impact", "players"), ("version", "2.0")],
    )
    .await;
    submit(&server, "wild-read.dmp", &[("impact", "players")]).await;
    submit(&server, "wild-read.dmp", &[("impact", "studio")]).await;
    let group = group_of(&server, &crash).await;
    let all = drained(&server).await;

    // The channel without the required field: a dead delivery that says why.
    let failed = deliveries(&server, "failed").await;
    assert_eq!(failed.len(), 1, "{failed:?} {all:?}");
    assert_eq!(failed[0]["channel_id"], missing);
    let reason = failed[0]["last_error"].as_str().unwrap();
    assert!(
        reason.contains("customfield_10010: Customer impact is required."),
        "{reason}"
    );
    assert!(reason.contains("custom fields"), "{reason}");

    // The other: one issue, though the first create timed out after Jira made it.
    let delivered: Vec<&Value> = all.iter().filter(|d| d["channel_id"] == good).collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["state"], "delivered", "{all:?}");
    assert!(
        delivered[0]["response"]
            .as_str()
            .unwrap()
            .contains("found CLOUD-1"),
        "{:?}",
        delivered[0]
    );
    let s = shared.lock().unwrap();
    assert_eq!(s.creates, 1, "created once");
    assert!(s.searches >= 2, "a 429 was retried");
    let fields = &s.issues["CLOUD-1"];
    assert_eq!(
        fields["customfield_10010"],
        json!({"value": "players"}),
        "the most common value"
    );
    assert_eq!(fields["description"]["type"], "doc");
    let text = fields["description"].to_string();
    assert!(text.contains(&format!("/ui/groups/{group}")), "{text}");
    assert!(fields["labels"]
        .to_string()
        .contains(&format!("faultline-group-{group}")));
}

/// GitHub's issues API, as far as faultline uses it.
async fn github(shared: Shared) -> String {
    fn authorized(headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer ghp_test")
            && headers.get("x-github-api-version").is_some()
    }
    async fn list(
        State(s): State<Shared>,
        headers: HeaderMap,
        Query(q): Query<BTreeMap<String, String>>,
    ) -> Response {
        if !authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let label = q.get("labels").cloned().unwrap_or_default();
        let s = s.lock().unwrap();
        let mut found: Vec<Value> = s
            .issues
            .values()
            .filter(|i| {
                i["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["name"] == label.as_str())
            })
            .cloned()
            .collect();
        found.reverse();
        Json(Value::Array(found)).into_response()
    }
    async fn open(
        State(s): State<Shared>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        if !authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let mut s = s.lock().unwrap();
        s.creates += 1;
        let number = s.issues.len() as i64 + 1;
        let issue = json!({
            "number": number, "html_url": format!("https://github.com/game/client/issues/{number}"),
            "state": "open", "title": body["title"], "body": body["body"], "assignee": null,
            "labels": body["labels"].as_array().unwrap().iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
        });
        s.issues.insert(format!("{number:04}"), issue.clone());
        (StatusCode::CREATED, Json(issue)).into_response()
    }
    async fn change(
        State(s): State<Shared>,
        headers: HeaderMap,
        Path(n): Path<i64>,
        Json(body): Json<Value>,
    ) -> Response {
        if !authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let mut s = s.lock().unwrap();
        s.requests.push(format!("PATCH {n} {body}"));
        let issue = s.issues.get_mut(&format!("{n:04}")).unwrap();
        if let Some(state) = body.get("state") {
            issue["state"] = state.clone();
        }
        if let Some(who) = body["assignees"].as_array() {
            issue["assignee"] = who.first().map_or(Value::Null, |w| json!({"login": w}));
        }
        Json(issue.clone()).into_response()
    }
    async fn comment(
        State(s): State<Shared>,
        Path(n): Path<i64>,
        Json(body): Json<Value>,
    ) -> Response {
        s.lock()
            .unwrap()
            .requests
            .push(format!("COMMENT {n} {}", body["body"]));
        StatusCode::CREATED.into_response()
    }
    let app = axum::Router::new()
        .route("/repos/game/client/issues", get(list).post(open))
        .route("/repos/game/client/issues/{n}", patch(change))
        .route("/repos/game/client/issues/{n}/comments", post(comment))
        .with_state(shared);
    start(app).await
}

#[tokio::test(flavor = "multi_thread")]
async fn github_issues_close_reopen_and_a_done_one_is_replaced_on_regression() {
    let server = server(4, 1).await;
    let shared = Shared::default();
    let url = github(Arc::clone(&shared)).await;
    let secret = "github-webhook-secret-0123456789";
    let channel = create(
        &server,
        "/api/v1/channels",
        json!({"name": "gh", "config": {
            "kind": "github", "api_url": url, "repo": "game/client", "token": "ghp_test",
            "labels": ["crash"], "on_regression": "new_ticket", "webhook_secret": secret
        }}),
    )
    .await;
    let (_, listed) = server
        .get_json(&format!("/api/v1/channels/{channel}"))
        .await;
    assert!(
        !listed.to_string().contains("ghp_test") && !listed.to_string().contains(secret),
        "{listed}"
    );
    create(
        &server,
        "/api/v1/alert-rules",
        json!({
            "name": "new", "triggers": [{"kind": "new_group"}], "actions": [{"channel": channel}]
        }),
    )
    .await;
    create(&server, "/api/v1/alert-rules", json!({
        "name": "busy", "triggers": [{"kind": "events", "count": 1, "window_secs": 3600}], "actions": [{"channel": channel}]
    })).await;
    let crash = submit(&server, "wild-exec.dmp", &[("version", "3.0")]).await;
    let group = group_of(&server, &crash).await;
    submit(&server, "wild-exec.dmp", &[("version", "3.0")]).await;
    drained(&server).await;
    {
        let s = shared.lock().unwrap();
        assert_eq!(s.creates, 1);
        let issue = &s.issues["0001"];
        assert!(
            issue["body"].as_str().unwrap().contains("wild-exec"),
            "{issue}"
        );
        assert!(
            s.requests.iter().any(|r| r.starts_with("COMMENT 1")),
            "the second alert comments: {:?}",
            s.requests
        );
    }
    // Resolved in faultline: closed on GitHub; then closed on GitHub stays in step.
    patch_group(
        &server,
        group,
        json!({"state": "resolved", "resolved_in": "3.0", "assignee": "octocat"}),
    )
    .await;
    drained(&server).await;
    {
        let s = shared.lock().unwrap();
        assert_eq!(s.issues["0001"]["state"], "closed");
        assert_eq!(s.issues["0001"]["assignee"]["login"], "octocat");
    }
    // GitHub reopens it (a person did): the group reopens; then GitHub assigns someone else.
    let event = |action: &str, state: &str, who: Option<&str>| {
        json!({
            "action": action, "issue": {"number": 1, "state": state, "assignee": who.map(|w| json!({"login": w}))}
        })
    };
    let headers = |body: &Value, id: &str| {
        vec![
            (
                "x-hub-signature-256",
                sign(secret, body.to_string().as_bytes()),
            ),
            ("x-github-delivery", id.to_owned()),
            ("x-github-event", "issues".to_owned()),
        ]
    };
    let body = event("reopened", "open", Some("octocat"));
    let (status, answer) = hook(&server, "github", channel, &headers(&body, "g1"), &body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["applied"], true, "{answer}");
    let body = event("assigned", "open", Some("hubot"));
    let (_, answer) = hook(&server, "github", channel, &headers(&body, "g2"), &body).await;
    assert_eq!(answer["applied"], true, "{answer}");
    let (_, g) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(g["state"], "open");
    assert_eq!(g["assignee"], "hubot");
    assert_eq!(
        g["tickets"][0]["ticket_url"],
        "https://github.com/game/client/issues/1"
    );
    let ui = common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = ui.get(&format!("/ui/groups/{group}")).await;
    assert!(
        page.body.contains(
            r#"<a href="https://github.com/game/client/issues/1" rel="noreferrer">1</a> (open)"#
        ),
        "{}",
        page.body
    );
    // Closed on GitHub: resolved in 3.0. A crash from 3.1 regresses it: with
    // on_regression = new_ticket the closed issue stays closed and a new one opens.
    let body = event("closed", "closed", Some("hubot"));
    hook(&server, "github", channel, &headers(&body, "g3"), &body).await;
    let (_, g) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(g["state"], "resolved");
    submit(&server, "wild-exec.dmp", &[("version", "3.1")]).await;
    drained(&server).await;
    let s = shared.lock().unwrap();
    assert_eq!(s.creates, 2, "{:?}", s.requests);
    assert_eq!(s.issues["0001"]["state"], "closed");
    assert_eq!(s.issues["0002"]["state"], "open");
    let patches = s.requests.iter().filter(|r| r.starts_with("PATCH")).count();
    assert_eq!(
        patches, 2,
        "closed + assigned once each, no ping-pong: {:?}",
        s.requests
    );
}
