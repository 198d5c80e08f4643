//! Access control over real HTTP: every route against no token, the wrong scope, the right
//! scope, a revoked token, an expired token and a token of another project; secrets never
//! stored; the first start's admin token; Tecken's `Auth-Token` header; ingest keys for every
//! client family, with `ingest.require_key` off and on.

use crate::common;

use std::path::PathBuf;

use common::{crash_form, fixture_bytes, generated_bytes, post, replay, settled, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const SCOPES: [&str; 7] = [
    "ingest",
    "symbols:read",
    "symbols:write",
    "triage:read",
    "triage:write",
    "releases:write",
    "admin",
];

async fn ingest_key(server: &TestServer, project: &str) -> (String, String) {
    let path = format!("/api/v1/projects/{project}/keys");
    let (status, answer) = server.admin_post(&path, json!({})).await;
    assert_eq!(status, 201, "{answer}");
    (
        answer["key"].as_str().unwrap().to_owned(),
        answer["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_admin_requests_get_specific_errors() {
    let server = TestServer::start().await;
    server.create_project("Game").await;
    for (path, body, expected, says) in [
        (
            "/api/v1/tokens",
            json!({"scopes": ["triage"]}),
            400,
            "triage:read",
        ),
        (
            "/api/v1/tokens",
            json!({"scopes": []}),
            400,
            "at least one scope",
        ),
        (
            "/api/v1/tokens",
            json!({"scopes": ["admin"], "projects": ["nope"]}),
            400,
            "no project \"nope\"",
        ),
        (
            "/api/v1/tokens",
            json!({"scope": ["admin"]}),
            400,
            "invalid request",
        ),
        (
            "/api/v1/projects",
            json!({"name": "Game"}),
            400,
            "already exists",
        ),
        (
            "/api/v1/projects",
            json!({"name": "日本"}),
            400,
            "cannot make a project slug",
        ),
        (
            "/api/v1/projects/nope/keys",
            json!({}),
            404,
            "no project \"nope\"",
        ),
    ] {
        let (status, answer) = server.admin_post(path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{path} {body}: {answer}"
        );
    }
    let (status, answer) = server.get_json("/api/v1/groups?project=nope").await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"], "no project \"nope\"");
    assert_eq!(server.delete("/api/v1/tokens/tok_nope").await, 404);
}

/// One route: method, path, body, the scope it needs (`None`: any valid token), and whether it
/// acts inside a project (`Some(true)` lists a project, `Some(false)` finds an object by ID).
struct Route {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    scope: Option<&'static str>,
    project: Option<bool>,
}

fn route(
    method: Method,
    path: impl Into<String>,
    body: Option<&[u8]>,
    scope: Option<&'static str>,
    project: Option<bool>,
) -> Route {
    Route {
        method,
        path: path.into(),
        body: body.map(<[u8]>::to_vec),
        scope,
        project,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_checks_its_scope_and_project() {
    let server = TestServer::start_with(|c| c.auth.public_symbol_reads = false).await;
    server.create_project("Other").await;
    // A crash (and so a group) in the default project, for the routes that find one by ID.
    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .body(generated_bytes("null-write.dmp"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let crash: Value = response.json().await.unwrap();
    let crash_id = crash["crash_id"].as_str().unwrap().to_owned();
    let group = crash["group_id"].as_i64().unwrap();
    let debug_id = "5a9832e5-2872-41c1-838e-d98914e9b7ff-1";
    let sha = "0".repeat(64);
    // A channel and a rule of the default project, for the alert routes.
    let receiver = common::receiver::Receiver::start().await;
    let (status, channel) = server
        .admin_post(
            "/api/v1/channels",
            json!({"name": "hook", "config": {"kind": "webhook", "url": receiver.url, "secret": "0123456789abcdef"}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel = channel["id"].as_i64().unwrap();
    let rule_body = format!(
        r#"{{"name":"r","triggers":[{{"kind":"new_group"}}],"actions":[{{"channel":{channel}}}]}}"#
    );
    let (status, rule) = server
        .admin_post(
            "/api/v1/alert-rules",
            serde_json::from_str(&rule_body).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let rule = rule["id"].as_i64().unwrap();

    use Method as M;
    let routes = [
        route(
            M::GET,
            "/api/v1/symbols?name=x",
            None,
            Some("symbols:read"),
            None,
        ),
        route(
            M::GET,
            "/api/v1/symbols/sources",
            None,
            Some("symbols:read"),
            None,
        ),
        route(
            M::GET,
            format!("/api/v1/symbols/{debug_id}/caches"),
            None,
            Some("symbols:read"),
            None,
        ),
        route(
            M::GET,
            format!("/api/v1/symbols/{debug_id}/{sha}"),
            None,
            Some("symbols:read"),
            None,
        ),
        route(
            M::DELETE,
            format!("/api/v1/symbols/{debug_id}/{sha}"),
            None,
            Some("admin"),
            None,
        ),
        route(
            M::DELETE,
            format!("/api/v1/symbols/{debug_id}"),
            None,
            Some("admin"),
            None,
        ),
        route(
            M::GET,
            format!("/symbols/a.pdb/{debug_id}/a.sym"),
            None,
            Some("symbols:read"),
            None,
        ),
        route(
            M::GET,
            "/buildid/f1c3bcc0279865fe3058404b2831d9e64135386c/debuginfo",
            None,
            Some("symbols:read"),
            None,
        ),
        route(
            M::POST,
            "/api/v1/symbols?name=a.sym",
            Some(b"junk"),
            Some("symbols:write"),
            None,
        ),
        route(
            M::POST,
            "/upload/",
            Some(b"junk"),
            Some("symbols:write"),
            None,
        ),
        route(
            M::GET,
            "/api/0/organizations/acme/chunk-upload/",
            None,
            Some("symbols:write"),
            None,
        ),
        route(
            M::POST,
            "/api/0/organizations/acme/chunk-upload/",
            Some(b"junk"),
            Some("symbols:write"),
            None,
        ),
        route(
            M::POST,
            "/api/0/organizations/acme/artifactbundle/assemble/",
            Some(b"{}"),
            Some("symbols:write"),
            None,
        ),
        route(
            M::POST,
            "/api/0/projects/acme/default/files/difs/assemble/",
            Some(b"{}"),
            Some("symbols:write"),
            Some(true),
        ),
        route(
            M::POST,
            "/api/v1/symbolicate",
            Some(b"{}"),
            Some("symbols:read"),
            None,
        ),
        route(
            M::POST,
            "/api/v1/symbolicate-jvm",
            Some(br#"{"modules":[]}"#),
            Some("symbols:read"),
            None,
        ),
        route(
            M::POST,
            "/api/v1/symbolicate-js",
            Some(b"{\"stacktraces\": []}"),
            Some("symbols:read"),
            Some(true),
        ),
        route(
            M::POST,
            "/api/v1/minidump",
            Some(b"not a dump"),
            Some("ingest"),
            Some(true),
        ),
        route(
            M::GET,
            "/api/v1/groups",
            None,
            Some("triage:read"),
            Some(true),
        ),
        route(
            M::GET,
            "/api/v1/symbols/missing",
            None,
            Some("triage:read"),
            Some(true),
        ),
        route(
            M::GET,
            format!("/api/v1/groups/{group}"),
            None,
            Some("triage:read"),
            Some(false),
        ),
        route(
            M::PATCH,
            format!("/api/v1/groups/{group}"),
            Some(br#"{"assignee":"ana"}"#),
            Some("triage:write"),
            Some(false),
        ),
        route(
            M::POST,
            format!("/api/v1/groups/{group}/merge"),
            Some(br#"{"groups":[999]}"#),
            Some("triage:write"),
            Some(false),
        ),
        route(
            M::GET,
            "/api/v1/crashes?annotation.a=b",
            None,
            Some("triage:read"),
            Some(true),
        ),
        route(
            M::GET,
            format!("/api/v1/crashes/{crash_id}"),
            None,
            Some("triage:read"),
            Some(false),
        ),
        route(
            M::POST,
            "/api/v1/crashes/nope/reprocess",
            None,
            Some("triage:write"),
            None,
        ),
        route(M::GET, "/api/v1/projects", None, Some("admin"), None),
        route(
            M::POST,
            "/api/v1/projects",
            Some(b"{}"),
            Some("admin"),
            None,
        ),
        route(
            M::GET,
            "/api/v1/projects/default/keys",
            None,
            Some("admin"),
            None,
        ),
        route(
            M::POST,
            "/api/v1/projects/nope/keys",
            None,
            Some("admin"),
            None,
        ),
        route(
            M::DELETE,
            "/api/v1/projects/default/keys/nope",
            None,
            Some("admin"),
            None,
        ),
        route(M::GET, "/api/v1/tokens", None, Some("admin"), None),
        route(M::POST, "/api/v1/tokens", Some(b"{}"), Some("admin"), None),
        route(M::DELETE, "/api/v1/tokens/nope", None, Some("admin"), None),
        route(
            M::GET,
            "/api/v1/alert-rules",
            None,
            Some("admin"),
            Some(true),
        ),
        route(
            M::POST,
            "/api/v1/alert-rules",
            Some(rule_body.as_bytes()),
            Some("admin"),
            Some(true),
        ),
        route(
            M::GET,
            format!("/api/v1/alert-rules/{rule}"),
            None,
            Some("admin"),
            Some(false),
        ),
        route(
            M::PUT,
            format!("/api/v1/alert-rules/{rule}"),
            Some(rule_body.as_bytes()),
            Some("admin"),
            Some(false),
        ),
        route(
            M::DELETE,
            "/api/v1/alert-rules/nope",
            None,
            Some("admin"),
            None,
        ),
        route(M::GET, "/api/v1/channels", None, Some("admin"), Some(true)),
        route(
            M::POST,
            "/api/v1/channels",
            Some(b"{}"),
            Some("admin"),
            None,
        ),
        route(
            M::GET,
            format!("/api/v1/channels/{channel}"),
            None,
            Some("admin"),
            Some(false),
        ),
        route(
            M::POST,
            format!("/api/v1/channels/{channel}/test"),
            None,
            Some("admin"),
            Some(false),
        ),
        route(
            M::DELETE,
            "/api/v1/channels/nope",
            None,
            Some("admin"),
            None,
        ),
        route(
            M::GET,
            "/api/v1/alert-fires",
            None,
            Some("admin"),
            Some(true),
        ),
        route(
            M::GET,
            "/api/v1/deliveries",
            None,
            Some("admin"),
            Some(true),
        ),
        route(
            M::POST,
            "/api/0/organizations/acme/releases/",
            Some(br#"{"version":"1","projects":["default"]}"#),
            Some("releases:write"),
            Some(true),
        ),
        route(
            M::PUT,
            "/api/0/organizations/acme/releases/1/",
            Some(b"{}"),
            Some("releases:write"),
            None,
        ),
        route(
            M::POST,
            "/api/0/organizations/acme/releases/1/deploys/",
            Some(br#"{"environment":"production"}"#),
            Some("releases:write"),
            None,
        ),
        route(
            M::GET,
            "/api/v1/releases?project=default",
            None,
            Some("triage:read"),
            Some(true),
        ),
        route(
            M::GET,
            "/api/v1/releases/1?project=default",
            None,
            Some("triage:read"),
            Some(true),
        ),
        route(M::GET, "/api/v1/repositories", None, Some("admin"), None),
        route(
            M::POST,
            "/api/v1/repositories",
            Some(b"{}"),
            Some("admin"),
            None,
        ),
        route(
            M::DELETE,
            "/api/v1/repositories/999",
            None,
            Some("admin"),
            None,
        ),
        route(
            M::POST,
            "/api/v1/repositories/999/fetch",
            None,
            Some("admin"),
            None,
        ),
        route(
            M::GET,
            "/api/v1/code-mappings?project=default",
            None,
            Some("triage:read"),
            Some(true),
        ),
        route(
            M::POST,
            "/api/v1/code-mappings?project=default",
            Some(br#"{"repository":"none","stack_root":"/b/"}"#),
            Some("triage:write"),
            Some(true),
        ),
        route(
            M::DELETE,
            "/api/v1/code-mappings/999?project=default",
            None,
            Some("triage:write"),
            Some(true),
        ),
        route(
            M::GET,
            format!("/api/v1/groups/{group}/suspects"),
            None,
            Some("triage:read"),
            Some(false),
        ),
        route(
            M::GET,
            format!("/api/v1/crashes/{crash_id}/source-context"),
            None,
            Some("triage:read"),
            Some(false),
        ),
        route(
            M::POST,
            "/api/v1/usage?project=default",
            Some(br#"{"usage":[]}"#),
            Some("ingest"),
            Some(true),
        ),
        route(
            M::GET,
            "/api/v1/releases/1/health?project=default",
            None,
            Some("triage:read"),
            Some(true),
        ),
        route(
            M::GET,
            "/api/0/organizations/acme/sessions/?project=default&field=sum(session)",
            None,
            Some("triage:read"),
            Some(true),
        ),
        route(M::GET, "/api/v1/token", None, None, None),
    ];

    let mut checked = 0;
    for r in &routes {
        let send = |token: Option<String>| {
            let mut request = server
                .anonymous
                .request(r.method.clone(), server.url(&r.path));
            if let Some(body) = &r.body {
                request = request.body(body.clone());
                if body.starts_with(b"{") {
                    request = request.header("content-type", "application/json");
                }
            }
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let what = format!("{} {}", r.method, r.path);

        // No token: 401 with a challenge.
        let response = send(None).await.unwrap();
        assert_eq!(response.status(), 401, "{what} without a token");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"faultline\"",
            "{what}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{what}: {body}");

        // A token that is not a token.
        let response = send(Some("flt_0000000000000000000000000000000000000000".into()))
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{what} with an unknown token");

        let Some(scope) = r.scope else {
            let (right, _) = server.create_token(json!({"scopes": ["ingest"]})).await;
            assert_eq!(send(Some(right)).await.unwrap().status(), 200, "{what}");
            continue;
        };
        // Every other scope, but not this one: 403 naming it.
        let others: Vec<&str> = SCOPES.iter().copied().filter(|s| *s != scope).collect();
        let (wrong, _) = server.create_token(json!({ "scopes": others })).await;
        let response = send(Some(wrong)).await.unwrap();
        assert_eq!(response.status(), 403, "{what} with the wrong scope");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(scope),
            "{what}: {body}"
        );

        // Only this scope: through the door (whatever the route then says of the request).
        let (right, right_id) = server.create_token(json!({ "scopes": [scope] })).await;
        let status = send(Some(right.clone())).await.unwrap().status().as_u16();
        assert!(
            status != 401 && status != 403 && status < 500,
            "{what} with the right scope: {status}"
        );

        // Revoked: 401 at once.
        assert_eq!(
            server.delete(&format!("/api/v1/tokens/{right_id}")).await,
            204
        );
        let response = send(Some(right)).await.unwrap();
        assert_eq!(response.status(), 401, "{what} with a revoked token");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "this token was revoked", "{what}");

        // Expired (0 days: expired on creation).
        let (expired, _) = server
            .create_token(json!({ "scopes": [scope], "expires_in_days": 0 }))
            .await;
        let response = send(Some(expired)).await.unwrap();
        assert_eq!(response.status(), 401, "{what} with an expired token");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "this token has expired", "{what}");

        // Limited to another project.
        if let Some(listing) = r.project {
            let (elsewhere, _) = server
                .create_token(json!({ "scopes": [scope], "projects": ["other"] }))
                .await;
            let status = send(Some(elsewhere)).await.unwrap().status();
            let expected = if listing { 403 } else { 404 };
            assert_eq!(status, expected, "{what} with another project's token");
        }
        checked += 1;
    }
    assert_eq!(checked, routes.len() - 1);

    // Public symbol reads on by default: downloads need no token, uploads still do.
    let open = TestServer::start().await;
    let (status, _) = post(
        &open,
        "/api/v1/symbols?name=a.sym",
        None,
        &[],
        b"junk".to_vec(),
    )
    .await;
    assert_eq!(status, 401);
    let response = open
        .anonymous
        .get(open.url(&format!("/symbols/a.pdb/{debug_id}/a.sym")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "public, and simply not there");
    // /metrics is public by default, admin-only when configured so.
    assert_eq!(
        open.anonymous
            .get(open.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let closed = TestServer::start_with(|c| c.auth.public_metrics = false).await;
    assert_eq!(
        closed
            .anonymous
            .get(closed.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        closed
            .client
            .get(closed.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Every file under `dir`, as bytes.
fn all_files(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    common::files_under(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_stored_only_as_hashes() {
    let server = TestServer::start().await;
    let (secret, _) = server
        .create_token(json!({"scopes": ["triage:read"], "name": "reader"}))
        .await;
    let (key, _) = ingest_key(&server, "default").await;
    // Use both, so last-used times and crash rows are written too.
    assert_eq!(
        server
            .anonymous
            .get(server.url("/api/v1/groups"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let body = crash_form(&generated_bytes("null-write.dmp"));
    let ct = "multipart/form-data; boundary=B";
    let (status, reply) = post(&server, &format!("/submit?key={key}"), Some(ct), &[], body).await;
    assert_eq!(status, 200, "{reply}");
    let crash = settled(&server, reply.trim().trim_start_matches("CrashID=bp-")).await;
    assert!(
        !crash["crash"]["annotations"].to_string().contains(&key),
        "the key is not an annotation"
    );
    // A web UI session's cookie is a secret too.
    let session = common::ui::UiSession::sign_in(&server, &secret).await;
    assert_eq!(session.get("/ui/").await.status, 200);
    let cookie = session.cookie.clone();
    // No secret appears in any file the server wrote (database, WAL, stored crashes), except
    // the admin token in its own file.
    let admin = server.admin_token.clone();
    for (path, bytes) in all_files(&server.data_dir)
        .into_iter()
        .chain(all_files(&server.store_root))
    {
        let text = String::from_utf8_lossy(&bytes);
        for s in [&secret, &key, &admin, &cookie] {
            if s == &admin && path.ends_with("admin-token") {
                continue;
            }
            assert!(
                !text.contains(s.as_str()),
                "{} holds a secret",
                path.display()
            );
        }
    }
    // The listing shows what a token is, never the token.
    let (_, tokens) = server.get_json("/api/v1/tokens").await;
    assert!(!tokens.to_string().contains(&secret));
    let reader = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "reader")
        .unwrap();
    assert_eq!(reader["scopes"], json!(["triage:read"]));
    assert!(
        reader["last_used_at"].is_i64(),
        "last use is kept: {reader}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_start_writes_a_private_admin_token_and_logs_only_its_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let start = || common::serve_process(dir.path(), &[]);
    let (mut child, url, log) = start().await;
    let log = log.lock().unwrap().clone();
    let path = dir.path().join("data/admin-token");
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(log.contains("admin-token"), "the path is logged: {log}");
    assert!(!log.contains(&token), "the token is not logged");
    // Where to go, and how to read the token, said once at start.
    assert!(
        log.contains(&format!("the web UI is at {url}/ui/")),
        "{log}"
    );
    assert!(log.contains(&format!("`cat {}`", path.display())), "{log}");
    let client = reqwest::Client::new();
    let me: Value = client
        .get(format!("{url}/api/v1/token"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["scopes"].as_array().unwrap().len(), SCOPES.len(), "{me}");
    assert!(me["scopes"].as_array().unwrap().contains(&json!("admin")));
    child.kill().await.unwrap();

    // A restart keeps the token it made.
    let (mut child, url, log) = start().await;
    let log = log.lock().unwrap().clone();
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
    assert!(!log.contains("created an admin token"), "{log}");
    let status = client
        .get(format!("{url}/api/v1/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn symbol_uploads_take_teckens_auth_token_header() {
    let server = TestServer::start().await;
    let (writer, _) = server
        .create_token(json!({"scopes": ["symbols:write"]}))
        .await;
    let sym = fixture_bytes(
        "symbols/breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym",
    );
    let upload = |header: &'static str, value: String| {
        server
            .anonymous
            .post(server.url("/api/v1/symbols?name=test_app.sym"))
            .header(header, value)
            .body(sym.clone())
            .send()
    };
    let response = upload("auth-token", writer.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["stored"], 1, "{answer}");
    let response = upload("auth-token", "flt_nope".into()).await.unwrap();
    assert_eq!(response.status(), 401);
    let (reader, _) = server
        .create_token(json!({"scopes": ["symbols:read"]}))
        .await;
    let response = upload("auth-token", reader).await.unwrap();
    assert_eq!(response.status(), 403);
}

/// A crash upload: path, content type, headers, body.
type Case<'a> = (String, Option<&'a str>, Vec<(&'a str, &'a str)>, Vec<u8>);

#[tokio::test(flavor = "multi_thread")]
async fn ingest_keys_file_crashes_under_their_project_for_every_client() {
    let server = TestServer::start().await;
    let game = server.create_project("Game").await;
    let game_id = game["id"].as_i64().unwrap();
    let (key, key_id) = ingest_key(&server, "game").await;
    let dump = generated_bytes("null-write.dmp");
    let ct = "multipart/form-data; boundary=B";
    let form = || crash_form(&dump);
    let sentry_auth = format!("Sentry sentry_key={key}, sentry_version=7");
    let unreal = fixture_bytes("unreal/unreal_crash");

    let id_of = |reply: &str| {
        let reply = reply.trim();
        if let Some(id) = reply.strip_prefix("CrashID=bp-") {
            return id.to_owned();
        }
        if reply.starts_with('{') {
            let v: Value = serde_json::from_str(reply).unwrap();
            return v["_rxid"].as_str().or(v["id"].as_str()).unwrap().to_owned();
        }
        reply.to_owned()
    };
    let cases: Vec<Case> = vec![
        (format!("/submit?key={key}"), Some(ct), vec![], form()),
        (
            format!("/api/{game_id}/minidump/?sentry_key={key}"),
            Some(ct),
            vec![],
            form(),
        ),
        (
            "/api/game/minidump/".to_owned(),
            Some(ct),
            vec![("x-sentry-auth", sentry_auth.as_str())],
            form(),
        ),
        (
            format!("/api/game/unreal/{key}/"),
            None,
            vec![],
            unreal.clone(),
        ),
        (
            format!("/post?format=minidump&token={key}"),
            None,
            vec![],
            dump.clone(),
        ),
        (
            format!("/api/{game_id}/envelope/?sentry_key={key}"),
            None,
            vec![],
            b"{}\n{\"type\":\"event\"}\n{\"message\":\"from the envelope route\"}\n".to_vec(),
        ),
        (
            "/api/game/store/".to_owned(),
            Some("application/json"),
            vec![("x-sentry-auth", sentry_auth.as_str())],
            b"{\"message\":\"from the store route\"}".to_vec(),
        ),
    ];
    for (path, content_type, headers, body) in &cases {
        let (status, reply) = post(&server, path, *content_type, headers, body.clone()).await;
        assert_eq!(status, 200, "{path}: {reply}");
        let crash = settled(&server, &id_of(&reply)).await;
        assert_eq!(crash["crash"]["project_id"], game_id, "{path}: {crash}");
    }
    let (_, groups) = server.get_json("/api/v1/groups?project=game").await;
    let events: i64 = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["event_count"].as_i64().unwrap())
        .sum();
    assert_eq!(events, cases.len() as i64, "{groups}");
    let (_, default) = server.get_json("/api/v1/groups").await;
    assert!(
        default["groups"].as_array().unwrap().is_empty(),
        "nothing landed in default"
    );

    // A multipart crash with the given path and Authorization header: where it was filed
    // (the project's number) or the refusal.
    let submit = |path: String, authorization: Option<String>| {
        let server = &server;
        let body = form();
        async move {
            let headers: Vec<(&str, &str)> = authorization
                .as_deref()
                .map(|a| ("authorization", a))
                .into_iter()
                .collect();
            let (status, reply) = post(server, &path, Some(ct), &headers, body).await;
            if status != 200 {
                return Err((status, reply.trim().to_owned()));
            }
            let crash = settled(server, &id_of(&reply)).await;
            Ok(crash["crash"]["project_id"].as_i64().unwrap())
        }
    };
    let refused = |reason: &str| Err((403, format!("Discarded={reason}")));

    // A key names its project: using it under another project's route is refused.
    assert_eq!(
        submit(format!("/api/default/minidump/?sentry_key={key}"), None).await,
        refused("key_not_for_project")
    );
    // Keyless and unknown-key crashes land in the default project while keys are optional.
    assert_eq!(submit("/submit?key=nope".into(), None).await, Ok(1));

    // A bearer token with `ingest` can send crashes too; other scopes cannot.
    let (ingest, _) = server
        .create_token(json!({"scopes": ["ingest"], "projects": ["game"]}))
        .await;
    let bearer = Some(format!("Bearer {ingest}"));
    assert_eq!(
        submit("/submit?project=game".into(), bearer.clone()).await,
        Ok(game_id)
    );
    assert_eq!(
        submit("/submit".into(), bearer).await,
        refused("token_not_for_project")
    );
    let (reader, _) = server
        .create_token(json!({"scopes": ["triage:read"]}))
        .await;
    assert_eq!(
        submit("/submit".into(), Some(format!("Bearer {reader}"))).await,
        refused("invalid_token")
    );

    // A revoked key no longer files anything under its project.
    assert_eq!(
        server
            .delete(&format!("/api/v1/projects/game/keys/{key_id}"))
            .await,
        204
    );
    assert_eq!(submit(format!("/submit?key={key}"), None).await, Ok(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn required_keys_refuse_crashes_without_one() {
    let server = TestServer::start_with(|c| c.ingest.require_key = true).await;
    server.create_project("Game").await;
    let (key, _) = ingest_key(&server, "game").await;
    let dump = generated_bytes("null-write.dmp");
    let ct = "multipart/form-data; boundary=B";
    let form = || crash_form(&dump);
    for (path, reason) in [
        ("/submit".to_owned(), "missing_key"),
        ("/submit?key=0123".to_owned(), "unknown_key"),
        ("/api/game/minidump/".to_owned(), "missing_key"),
        ("/api/game/unreal/wrong/".to_owned(), "unknown_key"),
        ("/post?format=minidump".to_owned(), "missing_key"),
    ] {
        let (status, reply) = post(&server, &path, Some(ct), &[], form()).await;
        assert_eq!(
            (status, reply.trim()),
            (403, format!("Discarded={reason}").as_str()),
            "{path}"
        );
    }
    let (status, reply) = post(
        &server,
        &format!("/submit?key={key}"),
        Some(ct),
        &[],
        form(),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    // The recorded clients carry no key of ours: refused, in the text they expect.
    for capture in [
        "breakpad-minidump_upload-linux.http",
        "crashpad-sentry-native-0.4.9-linux.http",
        "firefox-esr-153-crashreporter.http",
    ] {
        let (status, reply) = replay(
            &server,
            &fixture_bytes(&format!("ingest-captures/{capture}")),
        )
        .await;
        assert_eq!(status, 403, "{capture}: {reply}");
        assert!(reply.starts_with("Discarded="), "{capture}: {reply}");
    }
    let (_, metrics) = (0, server.metrics().await);
    assert!(
        metrics
            .contains(r#"faultline_ingest_received_total{client="breakpad",result="forbidden"}"#),
        "refusals are counted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_logs_a_token_or_key_even_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, log) =
        common::serve_process(dir.path(), &[("FAULTLINE_LOG", "debug")]).await;
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let admin = admin.trim();
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{url}/api/v1/projects/default/keys"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let body = crash_form(&generated_bytes("null-write.dmp"));
    for path in [
        format!("/submit?key={key}"),
        format!("/post?format=minidump&token={key}"),
    ] {
        let response = client
            .post(format!("{url}{path}"))
            .header("content-type", "multipart/form-data; boundary=B")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let wrong = client
        .get(format!("{url}/api/v1/groups"))
        .bearer_auth("flt_wrongwrongwrongwrongwrongwrongwrongwrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    child.kill().await.unwrap();
    let log = log.lock().unwrap().clone();
    assert!(log.contains("/submit"), "debug logging is on: {log:.2000}");
    for secret in [admin, key.as_str(), "flt_wrongwrong"] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_admin_token_file_fails_the_start_and_leaves_no_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = faultline::config::Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.root = dir.path().join("store");
    config.storage.data_dir = dir.path().join("data");
    // A folder where the token file should go: the write fails.
    std::fs::create_dir_all(dir.path().join("data/admin-token")).unwrap();
    let err = match faultline::server::BoundServer::bind(config.clone()).await {
        Ok(_) => panic!("the start fails when the admin token cannot be written"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("cannot write the first admin token"), "{err}");
    // Once the way is clear, the next start makes a token that works.
    std::fs::remove_dir(dir.path().join("data/admin-token")).unwrap();
    let server = faultline::server::BoundServer::bind(config).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(server.serve());
    let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let status = reqwest::Client::new()
        .get(format!("{url}/api/v1/tokens"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

/// A crash index on `db` in `dir` and a registry over it, as the server builds them; `None`
/// when that database is not available here.
async fn registry_on(
    db: common::Db,
    dir: &std::path::Path,
) -> Option<(
    faultline::group::index::CrashIndex,
    faultline::auth::Registry,
)> {
    use faultline::group::index::{CrashIndex, PayloadBudget};
    let url = common::database_url(db, dir).await?;
    let budget = PayloadBudget {
        per_new_group: 0,
        per_group_hour: 0,
    };
    let index = CrashIndex::open(&url, budget).await.unwrap();
    let events = std::sync::Arc::new(faultline::cluster::ClusterEvents::new(&index, "test"));
    let registry = faultline::auth::Registry::new(index.pool().clone(), events);
    Some((index, registry))
}

on_both_databases! {
    /// Every API request presents a token: a token checked a moment ago is taken from memory,
    /// not asked of the database again (a revocation written behind the registry's back, as
    /// another process does, reaches it when the memory is forgotten: within TOKEN_RECHECK, or
    /// at once when another node announces it); an expired one stays expired.
    async fn a_checked_token_is_remembered_until_forgotten(db: Db) {
        use faultline::auth::{AuthFailure, NewToken, Scope};
        let dir = tempfile::tempdir().unwrap();
        let Some((index, registry)) = registry_on(db, dir.path()).await else {
            return;
        };
        let new = |days| NewToken {
            name: "ci".into(),
            scopes: vec![Scope::Ingest],
            projects: Vec::new(),
            expires_in_days: days,
        };
        let (secret, token) = registry.create_token(&new(None)).await.unwrap();
        assert_eq!(registry.authenticate(&secret).await.unwrap().unwrap().id, token.id);

        sqlx::query("UPDATE api_tokens SET revoked_at = 1 WHERE id = $1")
            .bind(token.id.as_str())
            .execute(index.pool())
            .await
            .unwrap();
        let remembered = registry.authenticate(&secret).await.unwrap();
        assert_eq!(remembered.unwrap().id, token.id, "taken from memory");
        registry.forget_cached();
        assert_eq!(
            registry.authenticate(&secret).await.unwrap().unwrap_err(),
            AuthFailure::Revoked
        );

        let (expired, _) = registry.create_token(&new(Some(0))).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                registry.authenticate(&expired).await.unwrap().unwrap_err(),
                AuthFailure::Expired
            );
        }
    }
}

on_both_databases! {
    /// A secret no token or ingest key has is remembered as unknown too (an SDK sending a
    /// DSN's public key to an open server presents the same unknown key with every envelope,
    /// and a flood of wrong secrets should not ask the database once each): a row written
    /// behind the registry's back is seen only once the memory is forgotten.
    async fn an_unknown_secret_is_remembered_until_forgotten(db: Db) {
        use faultline::auth::{digest, AuthFailure};
        let dir = tempfile::tempdir().unwrap();
        let Some((index, registry)) = registry_on(db, dir.path()).await else {
            return;
        };
        let project = registry.project("default").await.unwrap().unwrap();

        let (key, secret) = ("0123456789abcdef", "flt_not_yet_a_token");
        assert!(registry.project_of_key(key).await.unwrap().is_none());
        assert_eq!(
            registry.authenticate(secret).await.unwrap().unwrap_err(),
            AuthFailure::Unknown
        );
        sqlx::query(
            "INSERT INTO ingest_keys (id, project_id, key_digest, created_at) VALUES ($1, $2, $3, 1)",
        )
        .bind("key_behind")
        .bind(project.id)
        .bind(digest(key))
        .execute(index.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_digest, scopes, created_at) \
             VALUES ($1, 'behind', $2, 'ingest', 1)",
        )
        .bind("tok_behind")
        .bind(digest(secret))
        .execute(index.pool())
        .await
        .unwrap();
        assert!(
            registry.project_of_key(key).await.unwrap().is_none(),
            "the unknown answer is taken from memory"
        );
        assert_eq!(
            registry.authenticate(secret).await.unwrap().unwrap_err(),
            AuthFailure::Unknown
        );

        registry.forget_cached();
        let found = registry.project_of_key(key).await.unwrap();
        assert_eq!(found.map(|p| p.id), Some(project.id));
        assert_eq!(
            registry.authenticate(secret).await.unwrap().unwrap().id,
            "tok_behind"
        );
    }
}
