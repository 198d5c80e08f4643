//! From frame to code, end to end with real git, a real program and the real sentry-cli: a
//! repository with a known history (`common::repository`), a program built from it with
//! Windows-style paths that crashes on the line a known commit introduced, releases, commits
//! and deploys recorded by sentry-cli, then the group's suspect commits (the bug commit first,
//! with its reasons; every other commit excluded for the right reason), the derived code
//! mapping, the source context, and a `Fixes FAULTLINE-n` commit resolving the group.

use crate::common;

use serde_json::{json, Value};

use common::repository::{commit, crash, Scenario, RELEASED_1_1_0};
use common::{sentry_cli_in, settled, tool_present, TestServer};

/// A native event of the crash: frames oldest first, the program as its one image.
fn crash_event(debug_id: &str, code_id: &str, base: u64, pc: u64, caller: u64) -> Value {
    json!({
        "platform": "native",
        "release": "1.1.0",
        "exception": {"values": [{
            "type": "SIGSEGV",
            "value": "Segfault",
            "mechanism": {"type": "signalhandler", "handled": false},
            "stacktrace": {"frames": [
                {"instruction_addr": format!("{caller:#x}")},
                {"instruction_addr": format!("{pc:#x}")},
            ]},
        }]},
        "debug_meta": {"images": [{
            "type": "elf", "debug_id": debug_id, "code_id": code_id,
            "code_file": "/opt/game/game", "image_addr": format!("{base:#x}"), "image_size": 0x10_0000,
        }]},
    })
}

/// Sends an event in an envelope; the crash ID.
async fn send_event(server: &TestServer, event: &Value) -> String {
    let (status, reply) = common::send_envelope_items(server, &[("event", event.clone())]).await;
    assert_eq!(status, 200, "{reply}");
    serde_json::from_str::<Value>(&reply).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// sentry-cli in `dir`, asserting success.
async fn cli(server: &TestServer, token: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let (ok, out) = sentry_cli_in(server, token, Some(dir), args).await;
    assert!(ok, "sentry-cli {args:?}: {out}");
    out
}

/// The stored suspect report, once the background job has written it.
async fn stored_report(server: &TestServer, group: i64) -> Value {
    for _ in 0..400 {
        let (status, body) = server
            .get_json(&format!("/api/v1/groups/{group}/suspects"))
            .await;
        assert_eq!(status, 200, "{body}");
        if !body["report"].is_null() {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the suspects of group {group} were not computed in time");
}

on_both_databases! {
/// The whole path from a crashing line to the commit that wrote it.
async fn the_commit_that_wrote_the_crashing_line_is_the_suspect(db: Db) {
    if !tool_present("sentry-cli") || !tool_present("gcc") {
        return;
    }
    let Some(server) = TestServer::start_on(db, |c| c.code.suspects_interval_secs = 1).await else {
        return;
    };
    let repo = Scenario::build();
    let out = tempfile::tempdir().unwrap();
    let binary = repo.build_program(out.path());
    let addresses = crash(&binary);

    // The repository, registered by its folder; CI's token may only write releases.
    let (status, answer) = server
        .admin_post("/api/v1/repositories", json!({"name": "acme/game", "url": repo.path()}))
        .await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer.get("token").is_none() && answer["credential"].is_null(), "{answer}");
    let (ci, _) = server
        .create_token(json!({"name": "ci", "scopes": ["releases:write"]}))
        .await;
    let dir = repo.path();
    cli(&server, &ci, dir, &["releases", "--org", "acme", "new", "1.0.0", "-p", "default"]).await;
    let spec = format!("acme/game@{}", repo.initial);
    cli(&server, &ci, dir, &["releases", "--org", "acme", "set-commits", "1.0.0", "--commit", &spec]).await;
    cli(&server, &ci, dir, &["releases", "--org", "acme", "new", "1.1.0", "-p", "default"]).await;
    let spec = format!("acme/game@{}..{}", repo.initial, repo.late);
    cli(&server, &ci, dir, &["releases", "--org", "acme", "set-commits", "1.1.0", "--commit", &spec]).await;
    let released = RELEASED_1_1_0.to_string();
    cli(&server, &ci, dir, &["releases", "--org", "acme", "finalize", "1.1.0", "--released", &released]).await;
    cli(&server, &ci, dir, &["releases", "--org", "acme", "deploys", "1.1.0", "new", "-e", "production"]).await;
    let unknown = format!("nope/nope@{}", repo.late);
    let (ok, said) = sentry_cli_in(&server, &ci, Some(dir), &["releases", "--org", "acme", "set-commits", "1.1.0", "--commit", &unknown]).await;
    assert!(!ok && said.contains("Unknown repo"), "{said}");

    // What the release holds: the range's seven commits, its head, the deploy.
    let (status, release) = server.get_json("/api/v1/releases/1.1.0?project=default").await;
    assert_eq!(status, 200, "{release}");
    let shas: Vec<&str> = release["commits"].as_array().unwrap().iter().map(|c| c["sha"].as_str().unwrap()).collect();
    assert_eq!(shas, [&repo.late, &repo.bot, &repo.revert, &repo.retry, &repo.ignore, &repo.reformat, &repo.bug].map(String::as_str), "{release}");
    assert_eq!(release["heads"][0]["head_commit"], repo.late.as_str());
    assert_eq!(release["heads"][0]["previous_commit"], repo.initial.as_str());
    assert_eq!(release["deploys"][0]["environment"], "production");
    assert_eq!(release["release"]["released_at"], RELEASED_1_1_0);
    let (_, list) = server.get_json("/api/v1/releases?project=default").await;
    assert_eq!(list["releases"][0]["version"], "1.1.0", "{list}");
    assert_eq!(list["releases"][0]["commits"], 7);
    assert_eq!(list["releases"][1]["commits"], 1);

    // A webhook hears about the new group, with its suspect commits.
    let receiver = common::alerting::new_group_webhook(&server).await;

    // The crash, symbolicated with the program's own debug information.
    let (status, uploaded) = server.upload("game", std::fs::read(&binary).unwrap()).await;
    assert_eq!(status, 200, "{uploaded}");
    let file = &uploaded["files"][0]["file"];
    let (debug_id, code_id) = (file["debug_id"].as_str().unwrap(), file["code_id"].as_str().unwrap());
    let id = send_event(&server, &crash_event(debug_id, code_id, addresses.base, addresses.pc, addresses.returns[0])).await;
    let done = settled(&server, &id).await;
    assert_eq!(done["state"], "processed", "{done}");
    let group = done["crash"]["group_id"].as_i64().unwrap();

    let heard = receiver.wait_for(1, std::time::Duration::from_secs(30)).await;
    let alert = heard[0].json();
    let line = alert["suspect_commits"][0].as_str().unwrap_or_default();
    assert!(line.starts_with(&repo.bug[..10]) && line.contains("Ana Dev"), "{alert}");

    // Suspects, computed by the background job (or for the alert).
    let body = stored_report(&server, group).await;
    let report = &body["report"];
    assert_eq!(report["release"], "1.1.0", "{report}");
    let suspects = report["suspects"].as_array().unwrap();
    assert_eq!(suspects.len(), 1, "one commit is clearly the cause: {report}");
    let top = &suspects[0];
    assert_eq!(top["sha"], repo.bug.as_str(), "{report}");
    assert_eq!(top["author_name"], "Ana Dev");
    let features: Vec<&str> = top["reasons"].as_array().unwrap().iter().map(|r| r["feature"].as_str().unwrap()).collect();
    assert!(features.contains(&"changed_line") && features.contains(&"pickaxe"), "{top}");
    let words = top["reasons"][0]["words"].as_str().unwrap();
    assert!(words.contains(&format!("line {} of conn.c", repo.bug_line)), "{words}");
    let excluded: std::collections::HashMap<String, String> = report["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["sha"].as_str().unwrap().to_owned(), e["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(excluded.get(&repo.reformat).map(String::as_str), Some("ignored_revision"), "{report}");
    assert_eq!(excluded.get(&repo.retry).map(String::as_str), Some("reverted"));
    assert_eq!(excluded.get(&repo.revert).map(String::as_str), Some("revert"));
    assert_eq!(excluded.get(&repo.bot).map(String::as_str), Some("bot"));
    assert_eq!(excluded.get(&repo.late).map(String::as_str), Some("after_release"));
    assert_eq!(excluded.get(&repo.initial).map(String::as_str), Some("too_old"), "main.c's line is from 2024");
    assert!(!excluded.contains_key(&repo.bug) && !excluded.contains_key(&repo.ignore));

    // The Windows path mapped through a derived code mapping.
    let frame = report["frames"].as_array().unwrap().iter().find(|f| f["path"] == "src/net/conn.c").expect("the conn.c frame");
    assert!(frame["file"].as_str().unwrap().starts_with("C:\\b"), "{frame}");
    assert_eq!(frame["line"], repo.bug_line);
    let (_, mappings) = server.get_json("/api/v1/code-mappings?project=default").await;
    assert_eq!(mappings["mappings"][0]["stack_root"], "C:/b/", "{mappings}");
    assert_eq!(mappings["mappings"][0]["origin"], "derived");

    // Source context: the file at the release's commit.
    let (status, context) = server.get_json(&format!("/api/v1/crashes/{id}/source-context")).await;
    assert_eq!(status, 200, "{context}");
    let conn = context["context"]["frames"].as_array().unwrap().iter().find(|f| f["source"]["path"] == "src/net/conn.c").expect("context for conn.c");
    let at_release: Vec<String> = repo.show(&repo.late, "src/net/conn.c").lines().map(str::to_owned).collect();
    let line = repo.bug_line as usize;
    assert_eq!(conn["context_line"], at_release[line - 1].as_str(), "{conn}");
    assert_eq!(conn["pre_context"], json!(at_release[line - 6..line - 1]));
    assert_eq!(conn["post_context"], json!(at_release[line..(line + 5).min(at_release.len())]));
    assert_eq!(conn["source"]["kind"], "repository");
    assert_eq!(conn["source"]["commit"], repo.late.as_str());
    assert_eq!(conn["source"]["mapping"], "derived");

    // The pages: the suspect with its reasons and the offer to assign its author; the source
    // lines under the fault frame, escaped, with the link to the line at the commit.
    let session = common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = session.get(&format!("/ui/groups/{group}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&repo.bug[..10]), "the suspect's SHA on the group page");
    assert!(page.body.contains("Read the header length from the packet"));
    assert!(page.body.contains(&format!("last changed line {} of conn.c", repo.bug_line)));
    assert!(page.body.contains("listed in .git-blame-ignore-revs"));
    assert!(page.body.contains("Assign to Ana Dev"));
    let page = session.get(&format!("/ui/crashes/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("<span class=\"current\"><span class=\"ln\">{}</span>     total += p-&#62;length;</span>", repo.bug_line)), "the crashing line, escaped: {}", &page.body[page.body.find("id=\"frames\"").unwrap_or(0)..]);
    assert!(page.body.contains(&format!("src/net/conn.c in acme/game at {}", &repo.late[..10])));
    assert!(page.body.contains("<details open><summary>Source: src/net/conn.c"), "the first frame with lines is open");
    let page = session.get("/ui/releases?project=default").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(">1.1.0</a>") && page.body.contains("<code>C:/b/</code>"), "{}", page.body);
    assert!(page.body.contains(">Confirm</button>"));
    let page = session.get("/ui/releases/1.1.0?project=default").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Deploys: production"), "{}", page.body);
    assert!(page.body.contains("<line class=\"deploy\"") && page.body.contains("<title>deploy to production, "), "the deploy marked on the chart: {}", page.body);
    let confirmed = session
        .post("/ui/code-mappings", &[("csrf", &session.csrf), ("project", "default"), ("repository", "acme/game"), ("stack_root", "C:/b/"), ("source_root", "")])
        .await;
    assert_eq!(confirmed.status, 303);
    let (_, mappings) = server.get_json("/api/v1/code-mappings?project=default").await;
    assert_eq!(mappings["mappings"].as_array().unwrap().len(), 1, "{mappings}");
    assert_eq!(mappings["mappings"][0]["origin"], "user", "confirmed by a person");
    // The same mapping set eight times at once (as the suspects job and an alert may derive
    // one together): every write succeeds, one mapping remains.
    let body = json!({"repository": "acme/game", "stack_root": "C:/b/", "source_root": ""});
    let writes = (0..8).map(|_| server.admin_post("/api/v1/code-mappings?project=default", body.clone()));
    for (status, answer) in futures::future::join_all(writes).await {
        assert_eq!(status, 201, "{answer}");
    }
    let (_, mappings) = server.get_json("/api/v1/code-mappings?project=default").await;
    assert_eq!(mappings["mappings"].as_array().unwrap().len(), 1, "{mappings}");
    let assigned = session
        .post(&format!("/ui/groups/{group}/triage"), &[("csrf", &session.csrf), ("state", "open"), ("assignee", "ana@acme.test")])
        .await;
    assert!(assigned.status < 400, "{}", assigned.status);
    let (_, group_now) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(group_now["assignee"], "ana@acme.test");

    // A later release whose commit says it fixes the group resolves it (set-commits --local).
    let fixed = std::fs::read_to_string(dir.join("src/net/conn.c")).unwrap().replace("    total += p->length;", "    if (p)\n        total += p->length;");
    std::fs::write(dir.join("src/net/conn.c"), fixed).unwrap();
    let fix = commit(dir, &format!("Check the packet before reading it\n\nFixes FAULTLINE-{group}"), "2026-12-01T09:00:00Z", ("Ana Dev", "ana@acme.test"));
    cli(&server, &ci, dir, &["releases", "--org", "acme", "new", "1.2.0", "-p", "default"]).await;
    cli(&server, &ci, dir, &["releases", "--org", "acme", "set-commits", "1.2.0", "--local"]).await;
    let (_, group_now) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(group_now["state"], "resolved", "{group_now}");
    assert_eq!(group_now["resolved_in"], "1.2.0");
    let (_, body) = server.get_json(&format!("/api/v1/groups/{group}/suspects")).await;
    assert_eq!(body["fixed_by"][0]["commit"]["sha"], fix.as_str(), "{body}");
    assert_eq!(body["fixed_by"][0]["release"], "1.2.0");

    // 1.3.0 undoes the check (and changes a file no frame is in); the crash comes back: the
    // evidence names the two releases and the commit between them that touched conn.c.
    let undone = std::fs::read_to_string(dir.join("src/net/conn.c")).unwrap().replace("    if (p)\n        total += p->length;", "    total += p->length;");
    std::fs::write(dir.join("src/net/conn.c"), undone).unwrap();
    let back = commit(dir, "Simplify the read loop", "2026-12-02T09:00:00Z", ("Bo Dev", "bo@acme.test"));
    std::fs::write(dir.join("NOTES.md"), "notes\n").unwrap();
    commit(dir, "Add notes", "2026-12-02T10:00:00Z", ("Bo Dev", "bo@acme.test"));
    cli(&server, &ci, dir, &["releases", "--org", "acme", "new", "1.3.0", "-p", "default"]).await;
    cli(&server, &ci, dir, &["releases", "--org", "acme", "set-commits", "1.3.0", "--local"]).await;
    let mut again = crash_event(debug_id, code_id, addresses.base, addresses.pc, addresses.returns[0]);
    again["release"] = json!("1.3.0");
    let id = send_event(&server, &again).await;
    settled(&server, &id).await;
    let (status, evidence) = server.get_json(&format!("/api/v1/groups/{group}/evidence")).await;
    assert_eq!(status, 200, "{evidence}");
    let regression = &evidence["regression"];
    assert_eq!(regression["resolved_in"], "1.2.0", "{evidence}");
    assert_eq!(regression["came_back_in"], "1.3.0");
    let commits = regression["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 1, "only the commit that touched a frame's file: {regression}");
    assert_eq!(commits[0]["sha"], back.as_str());
    assert_eq!(commits[0]["files"], json!(["src/net/conn.c"]));
    let markdown = server.client.get(server.url(&format!("/api/v1/groups/{group}/evidence?format=markdown"))).send().await.unwrap().text().await.unwrap();
    assert!(markdown.contains("Resolved in 1.2.0, back in 1.3.0") && markdown.contains(&back[..10]), "{markdown}");
}
}

on_both_databases! {
/// The release routes refuse what they cannot do, and check scopes: a read-only token cannot
/// create releases, an unknown repository or commit is a 400 naming it.
async fn release_requests_are_checked(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let (reader, _) = server.create_token(json!({"name": "r", "scopes": ["triage:read"]})).await;
    let response = reqwest::Client::new()
        .post(server.url("/api/0/organizations/acme/releases/"))
        .bearer_auth(&reader)
        .json(&json!({"version": "1.0", "projects": ["default"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // Reading releases back takes `releases:write` (sentry-cli in CI) or `triage:read`: every
    // read route refuses no token (401) and a token with neither (403).
    let (status, _) = server
        .admin_post("/api/0/organizations/acme/releases/", json!({"version": "1.0", "projects": ["default"]}))
        .await;
    assert_eq!(status, 201);
    let (ingest, _) = server.create_token(json!({"name": "i", "scopes": ["ingest"]})).await;
    for path in [
        "/api/0/organizations/acme/releases/",
        "/api/0/organizations/acme/releases/1.0/",
        "/api/0/organizations/acme/releases/1.0/commits/",
        "/api/0/organizations/acme/releases/1.0/previous-with-commits/",
        "/api/0/organizations/acme/releases/1.0/deploys/",
        "/api/0/organizations/acme/repos/",
        "/api/0/projects/acme/default/releases/",
    ] {
        for (token, expected) in [(None, 401), (Some(&ingest), 403), (Some(&reader), 200)] {
            let mut request = reqwest::Client::new().get(server.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), expected, "{path} with {token:?}");
        }
    }
    let (status, answer) = server
        .admin_post("/api/0/organizations/acme/releases/", json!({"version": "1.0", "projects": ["default"], "refs": [{"repository": "acme/none", "commit": "abc"}]}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("acme/none"), "{answer}");
    let (status, answer) = server
        .admin_post("/api/0/organizations/acme/releases/", json!({"version": "a/b", "projects": ["default"]}))
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = server
        .admin_post("/api/v1/repositories", json!({"name": "x", "url": "https://user:secret@example.com/x.git"}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(!answer.to_string().contains("secret@"), "{answer}");
    let (status, answer) = server
        .admin_post("/api/v1/repositories", json!({"name": "private", "url": "https://example.com/p.git", "token": "tok-123"}))
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["credential"], "https_token");
    let (_, listed) = server.get_json("/api/v1/repositories").await;
    assert!(!listed.to_string().contains("tok-123"), "{listed}");
    let (status, _) = server.get_json("/api/v1/releases/9.9?project=default").await;
    assert_eq!(status, 404);
}
}

/// `faultline repo add` registers a repository in the data folder's database (the running
/// server sees it); `faultline release` creates a release with a commit range, finalizes it and
/// records a deploy; a malformed `--commit` is refused with a message.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_registers_repositories_and_records_releases() {
    let server = TestServer::start().await;
    let repo = Scenario::build();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "tok-from-a-file\n").unwrap();
    let cli = |args: Vec<String>| {
        let mut command = common::faultline();
        command
            .env("FAULTLINE_STORAGE_DATA_DIR", &server.data_dir)
            .env("FAULTLINE_INDEX_URL", server.config.index_url())
            .args(args);
        common::run(command)
    };
    let path = repo.path().display().to_string();
    let (code, _, err) = cli(vec![
        "repo".into(),
        "add".into(),
        "acme/game".into(),
        "--path".into(),
        path,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(vec![
        "repo".into(),
        "add".into(),
        "acme/private".into(),
        "--url".into(),
        "https://git.example.com/p.git".into(),
        "--token-file".into(),
        secret.path().display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cli(vec!["repo".into(), "list".into()]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("acme/game") && out.contains("https_token"),
        "{out}"
    );
    assert!(!out.contains("tok-from-a-file"), "{out}");

    let (token, _) = server
        .create_token(json!({"name": "ci", "scopes": ["releases:write"]}))
        .await;
    let release = |args: &[&str]| {
        let mut all = vec![
            "release".to_owned(),
            "--server".into(),
            server.url(""),
            "--token".into(),
            token.clone(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        cli(all)
    };
    let range = format!("acme/game@{}..{}", repo.initial, repo.late);
    let (code, _, err) = release(&["new", "1.1.0", "--commit", &range, "--finalize"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1.1.0: 7 commits"), "{err}");
    let (code, _, err) = release(&["deploy", "1.1.0", "-e", "production"]).await;
    assert_eq!(code, 0, "{err}");
    let (_, got) = server
        .get_json("/api/v1/releases/1.1.0?project=default")
        .await;
    assert_eq!(got["commits"].as_array().unwrap().len(), 7, "{got}");
    assert_eq!(got["deploys"][0]["environment"], "production");
    assert!(got["release"]["released_at"].is_i64());
    let (code, _, err) = release(&["new", "2.0", "--commit", "no-at-sign"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("REPO@COMMIT"), "{err}");
    let (code, _, err) = release(&["new", "2.0", "--commit", "acme/game@0000000..1111111"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("has no commit"), "{err}");
}

/// Sources stored with the module (a source bundle made by the real `sentry-cli debug-files
/// bundle-sources`) give a frame's lines even with no release or repository.
#[tokio::test(flavor = "multi_thread")]
async fn a_source_bundle_gives_a_frames_lines_without_a_repository() {
    if !tool_present("sentry-cli") || !tool_present("gcc") {
        return;
    }
    let server = TestServer::start().await;
    let repo = Scenario::build();
    let out = tempfile::tempdir().unwrap();
    let binary = repo.build_program_here(out.path());
    let addresses = crash(&binary);
    let (ok, said) = sentry_cli_in(
        &server,
        &server.admin_token,
        Some(out.path()),
        &[
            "debug-files",
            "bundle-sources",
            &binary.display().to_string(),
        ],
    )
    .await;
    assert!(ok, "{said}");
    let bundle = std::fs::read(out.path().join("game.src.zip")).unwrap();
    let (status, uploaded) = server.upload("game", std::fs::read(&binary).unwrap()).await;
    assert_eq!(status, 200, "{uploaded}");
    let (status, stored) = server.upload("game.src.zip", bundle).await;
    assert_eq!(status, 200, "{stored}");
    let file = &uploaded["files"][0]["file"];
    let (debug_id, code_id) = (
        file["debug_id"].as_str().unwrap(),
        file["code_id"].as_str().unwrap(),
    );
    let id = send_event(
        &server,
        &crash_event(
            debug_id,
            code_id,
            addresses.base,
            addresses.pc,
            addresses.returns[0],
        ),
    )
    .await;
    assert_eq!(settled(&server, &id).await["state"], "processed");
    let (status, context) = server
        .get_json(&format!("/api/v1/crashes/{id}/source-context"))
        .await;
    assert_eq!(status, 200, "{context}");
    let top = &context["context"]["frames"][0];
    assert_eq!(top["source"]["kind"], "stored_sources", "{context}");
    assert_eq!(top["source"]["debug_id"], debug_id);
    let at_head: Vec<String> = repo
        .show("HEAD", "src/net/conn.c")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        top["context_line"],
        at_head[repo.bug_line as usize - 1].as_str(),
        "{top}"
    );
    assert!(top["link"].is_null(), "no repository, no link");
}
