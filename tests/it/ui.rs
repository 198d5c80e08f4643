//! The web UI at the HTML level over real HTTP: sign-in sessions (on both databases), what the
//! pages show for real processed crashes, escaping of hostile crash text, anti-forgery tokens,
//! and scope and project filtering.

use crate::common;

use common::ui::{no_redirects, post_sign_in, UiSession};
use common::{crasher_ids, generated_bytes, settled, submit, TestServer};
use serde_json::json;

async fn with_symbols(server: &TestServer) {
    let (status, answer) = server
        .upload("crasher.debug", generated_bytes("crasher.debug"))
        .await;
    assert_eq!(status, 200, "{answer}");
}

const HOSTILE: &str = "<script>alert(1)</script>";

on_both_databases! {
async fn a_token_signs_in_and_its_session_ends_with_it(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    // No session: pages send the browser to sign in and back.
    let client = no_redirects();
    let page = client.get(server.url("/ui/groups/7?x=1")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(
        page.headers()["location"],
        "/ui/sign-in?next=%2Fui%2Fgroups%2F7%3Fx%3D1"
    );
    let form = client.get(server.url("/ui/sign-in?next=%2Fui%2Fgroups%2F7")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("value=\"/ui/groups/7\""));

    // A wrong token is refused on the form; a right one gets a cookie and goes back.
    let refused = post_sign_in(&server, "flt_0000", "/ui/").await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("unknown token"), "{}", refused.body);
    assert!(!refused.headers.contains_key("set-cookie"));
    let (secret, token_id) = server
        .create_token(json!({"name": "ana", "scopes": ["triage:read", "triage:write"]}))
        .await;
    let accepted = post_sign_in(&server, &secret, "https://evil.example/").await;
    assert_eq!(accepted.status, 303);
    assert_eq!(accepted.location.as_deref(), Some("/ui/"), "never another site");
    let cookie = accepted.headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/ui", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains(&secret), "the cookie is not the token");

    let session = UiSession::sign_in(&server, &secret).await;
    let home = session.get("/ui/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains(">ana</span>"), "who is signed in");
    assert!(!session.csrf.is_empty());
    for header in ["content-security-policy", "x-frame-options", "x-content-type-options"] {
        assert!(home.headers.contains_key(header), "{header}");
    }
    assert!(home.headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));

    // Sign-out needs the form's token, then ends the session for good.
    let forged = session.post("/ui/sign-out", &[("csrf", "0")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(session.get("/ui/").await.status, 200, "still signed in");
    let out = session.post("/ui/sign-out", &[("csrf", &session.csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(session.get("/ui/").await.status, 303, "the old cookie is dead");

    // Revoking the token ends its sessions at once.
    let second = UiSession::sign_in(&server, &secret).await;
    assert_eq!(second.get("/ui/").await.status, 200);
    assert_eq!(server.delete(&format!("/api/v1/tokens/{token_id}")).await, 204);
    assert_eq!(second.get("/ui/").await.status, 303);
    let refused = post_sign_in(&server, &secret, "/ui/").await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("revoked"));
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_show_the_crash_and_escape_what_it_carries() {
    let server = TestServer::start().await;
    with_symbols(&server).await;
    let id = submit(
        &server,
        "wild-read.dmp",
        &[
            ("ProductName", HOSTILE),
            ("Version", "1.2.0"),
            ("note\"><b>", "<img src=x onerror=alert(2)>"),
        ],
    )
    .await;
    submit(&server, "null-write.dmp", &[("Version", "1.3.0")]).await;
    let session = UiSession::sign_in(&server, &server.admin_token).await;

    // Groups: both signatures, newest first, counts and a sparkline; nothing hostile raw.
    let groups = session.get("/ui/").await;
    assert_eq!(groups.status, 200);
    let wild = groups
        .body
        .find("core::ptr::read_volatile | crasher::linux::wild_read")
        .expect("the wild read's group");
    let null = groups
        .body
        .find("crasher::linux::null_write")
        .expect("the null write's group");
    assert!(null < wild, "sorted by last seen");
    assert!(groups.body.contains("wild-read") && groups.body.contains("null-write"));
    assert_eq!(groups.body.matches("<svg class=\"spark\"").count(), 2);
    assert_eq!(
        groups.body.matches("badge new").count(),
        2,
        "both groups are new"
    );

    // Filtering by text and by class; a hostile filter value is escaped where it is shown.
    let filtered = session.get("/ui/?q=WILD_READ").await;
    assert!(filtered.body.contains("crasher::linux::wild_read"));
    assert!(!filtered.body.contains("null_write"), "any-case text match");
    let filtered = session.get("/ui/?fault_class=null-write").await;
    assert!(filtered.body.contains("null_write") && !filtered.body.contains("wild_read"));
    let reflected = session
        .get("/ui/?q=%22%3E%3Cscript%3Ealert(3)%3C%2Fscript%3E")
        .await;
    assert_eq!(reflected.status, 200);
    assert!(!reflected.body.contains("<script>alert(3)"));
    assert!(reflected
        .body
        .contains("value=\"&#34;&#62;&#60;script&#62;alert(3)&#60;/script&#62;\""));
    let bad = session.get("/ui/?sort=drop").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("sort by events"));

    // The crash: verdict, the fault frame marked, the inlined call as its own row.
    let page = session.get(&format!("/ui/crashes/{id}")).await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains("SIGSEGV / SEGV_MAPERR"), "the evidence");
    assert!(body.contains("exploitability: low"));
    let fault_row = body
        .find("<tr id=\"fault\" class=\"fault\">")
        .expect("the fault frame");
    let fault_fn = &body[fault_row..fault_row + 400];
    assert!(fault_fn.contains("crasher::linux::wild_read"), "{fault_fn}");
    assert!(fault_fn.contains("crasher.rs:127"), "{fault_fn}");
    let inlined = body.find("class=\"inlined\"").expect("an inlined row");
    assert!(body[inlined..].contains("core::ptr::read_volatile"));
    assert!(inlined < fault_row, "the inlined call sits above its frame");
    assert!(body.contains("<dt>rip</dt>"), "registers");
    assert!(
        body.contains(">found<") || body.contains("found"),
        "module symbol status"
    );
    // Hostile annotations are text.
    assert!(!body.contains(HOSTILE));
    assert!(!body.contains("<img src=x"));
    assert!(!body.contains("note\"><b>"));
    assert!(body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    // Full stack shows more rows than most relevant.
    let relevant_rows = body.matches("<td class=\"num\">").count();
    let full = session.get(&format!("/ui/crashes/{id}?frames=full")).await;
    assert!(full.body.matches("<td class=\"num\">").count() > relevant_rows);
    assert!(full.body.contains("Showing every frame"));
    // Files: the minidump downloads as received.
    let dump = session
        .get(&format!("/ui/crashes/{id}/files/upload_file_minidump"))
        .await;
    assert_eq!(dump.status, 200);
    assert!(dump.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(dump.bytes, generated_bytes("wild-read.dmp"));
    let missing = session
        .get(&format!("/ui/crashes/{id}/files/..%2Fraw.json"))
        .await;
    assert_eq!(missing.status, 404, "names only select stored entries");
    let json = session
        .get(&format!("/ui/crashes/{id}/processed.json"))
        .await;
    let processed: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(processed["classification"]["fault_class"], "wild-read");

    // The group: facts, chart, breakdowns by release and by any annotation, its crash.
    let group = session.get("/ui/groups/1").await;
    let group = if group.body.contains("wild_read") {
        group
    } else {
        session.get("/ui/groups/2").await
    };
    assert!(group.body.contains("<svg class=\"bars\""));
    assert!(group.body.contains("1.2.0"));
    assert!(group.body.contains("100.0 %"));
    assert!(group.body.contains("<caption>CPU</caption>"));
    assert!(group.body.contains("<td>amd64</td>"), "the dump's CPU");
    assert!(group.body.contains(&format!("/ui/crashes/{id}")));
    assert!(
        group.body.contains("SIGSEGV / SEGV_MAPERR"),
        "the latest evidence"
    );
    let by = session.get("/ui/groups/1?by=ProductName").await;
    let by = if by.body.contains("wild_read") {
        by
    } else {
        session.get("/ui/groups/2?by=ProductName").await
    };
    assert!(by.body.contains("<caption>ProductName</caption>"));
    assert!(by.body.contains("&#60;script&#62;"));
    assert!(!by.body.contains(HOSTILE));

    assert_eq!(session.get("/ui/crashes/nope").await.status, 404);
    assert_eq!(session.get("/ui/groups/999").await.status, 404);
    assert_eq!(session.get("/ui/groups/x").await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_need_the_sessions_form_token_and_the_write_scope() {
    let server = TestServer::start().await;
    let id = submit(&server, "abort.dmp", &[("Version", "2.0.0")]).await;
    let crash = settled(&server, &id).await;
    let group = crash["crash"]["group_id"].as_i64().unwrap();
    let path = format!("/ui/groups/{group}/triage");
    let session = UiSession::sign_in(&server, &server.admin_token).await;
    let change = [
        ("state", "resolved"),
        ("resolved_in", "2.0.1"),
        ("assignee", "ana"),
    ];

    // No token, a wrong token, no session: nothing changes.
    for csrf in [None, Some("0".repeat(64))] {
        let mut form = change.to_vec();
        if let Some(csrf) = &csrf {
            form.push(("csrf", csrf));
        }
        let answer = session.post(&path, &form).await;
        assert!([400, 403].contains(&answer.status), "{}", answer.status);
    }
    let anonymous = no_redirects()
        .post(server.url(&path))
        .form(&[("csrf", session.csrf.as_str()), ("state", "resolved")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let (_, listed) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(listed["state"], "open", "{listed}");

    // With it: resolved in 2.0.1, assigned.
    let mut form = change.to_vec();
    form.push(("csrf", &session.csrf));
    let answer = session.post(&path, &form).await;
    assert_eq!(answer.status, 303);
    let (_, listed) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(listed["state"], "resolved");
    assert_eq!(listed["resolved_in"], "2.0.1");
    assert_eq!(listed["assignee"], "ana");
    let page = session.get(&format!("/ui/groups/{group}")).await;
    assert!(page.body.contains("resolved in 2.0.1"));
    assert!(session
        .get("/ui/?assignee=ana")
        .await
        .body
        .contains(&format!("/ui/groups/{group}\"")));
    assert!(!session
        .get("/ui/?assignee=bob")
        .await
        .body
        .contains(&format!("/ui/groups/{group}\"")));

    // Muted for two more crashes, or until a date; a date that is not one is refused.
    let mute = [
        ("state", "muted"),
        ("mute_for_events", "2"),
        ("csrf", session.csrf.as_str()),
    ];
    assert_eq!(session.post(&path, &mute).await.status, 303);
    let page = session.get(&format!("/ui/groups/{group}")).await;
    assert!(
        page.body.contains("muted for 2 more crashes"),
        "{}",
        page.body
    );
    let bad = [
        ("state", "muted"),
        ("muted_until", "soon"),
        ("csrf", session.csrf.as_str()),
    ];
    let refused = session.post(&path, &bad).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("YYYY-MM-DD"));
    let dated = [
        ("state", "muted"),
        ("muted_until", "2031-02-03"),
        ("csrf", session.csrf.as_str()),
    ];
    assert_eq!(session.post(&path, &dated).await.status, 303);
    let (_, listed) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(listed["muted_until"], 1_927_843_200, "2031-02-03 00:00 UTC");
    assert!(
        listed["mute_until_events"].is_null(),
        "a new mute replaces the old one"
    );

    // A read-only token sees no forms and cannot post them.
    let (reader, _) = server
        .create_token(json!({"scopes": ["triage:read"]}))
        .await;
    let reader = UiSession::sign_in(&server, &reader).await;
    let page = reader.get(&format!("/ui/groups/{group}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/triage\""), "no triage form");
    assert!(!reader
        .get(&format!("/ui/crashes/{id}"))
        .await
        .body
        .contains("Reprocess"));
    let mut form = change.to_vec();
    form[0] = ("state", "muted");
    form.push(("csrf", &reader.csrf));
    let answer = reader.post(&path, &form).await;
    assert_eq!(answer.status, 403);
    assert!(answer.body.contains("triage:write"));

    // Reprocessing from the crash page requeues it.
    let answer = session
        .post(
            &format!("/ui/crashes/{id}/reprocess"),
            &[("csrf", &session.csrf)],
        )
        .await;
    assert_eq!(answer.status, 303);
    assert_eq!(
        answer.location.as_deref(),
        Some(format!("/ui/crashes/{id}").as_str())
    );
    let again = settled(&server, &id).await;
    assert_eq!(again["state"], "processed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_sees_only_its_projects() {
    let server = TestServer::start().await;
    let id = submit(&server, "null-read.dmp", &[]).await;
    let crash = settled(&server, &id).await;
    let group = crash["crash"]["group_id"].as_i64().unwrap();
    server.create_project("Other").await;
    let (other, _) = server
        .create_token(json!({"scopes": ["triage:read", "triage:write"], "projects": ["other"]}))
        .await;
    let session = UiSession::sign_in(&server, &other).await;
    let home = session.get("/ui/").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains("No crashes yet"),
        "the other project is empty"
    );
    assert!(
        !home.body.contains("value=\"default\""),
        "the default project is not offered"
    );
    assert_eq!(session.get("/ui/?project=default").await.status, 404);
    assert_eq!(
        session.get(&format!("/ui/groups/{group}")).await.status,
        404
    );
    assert_eq!(session.get(&format!("/ui/crashes/{id}")).await.status, 404);
    let post = session
        .post(
            &format!("/ui/groups/{group}/triage"),
            &[("csrf", &session.csrf), ("state", "muted")],
        )
        .await;
    assert_eq!(post.status, 404);
    let (symbols_only, _) = server
        .create_token(json!({"scopes": ["symbols:write"]}))
        .await;
    let session = UiSession::sign_in(&server, &symbols_only).await;
    let home = session.get("/ui/").await;
    assert_eq!(home.status, 403);
    assert!(home.body.contains("triage:read"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_symbols_are_listed_with_their_upload_command_until_uploaded() {
    let server = TestServer::start().await;
    let first = submit(&server, "wild-read.dmp", &[]).await;
    submit(&server, "null-write.dmp", &[]).await;
    let (debug_id, _) = crasher_ids();
    let session = UiSession::sign_in(&server, &server.admin_token).await;
    let page = session.get("/ui/symbols/missing").await;
    assert_eq!(page.status, 200);
    let row = page
        .body
        .split("<tr>")
        .find(|row| row.contains(&debug_id))
        .unwrap_or_else(|| panic!("the crasher is not listed: {}", page.body));
    assert!(row.contains("<strong>crasher</strong>"), "{row}");
    assert!(
        row.contains("<td class=\"num\">2</td>"),
        "two crashes lacked it: {row}"
    );
    let host = server.addr.to_string();
    assert!(
        row.contains(&format!(
            "faultline upload --server http://{host} --token $FAULTLINE_TOKEN crasher"
        )),
        "{row}"
    );
    // The crash page flags the module with the same command.
    let crash = session.get(&format!("/ui/crashes/{first}")).await;
    assert!(crash
        .body
        .contains(&format!("with debug ID <code>{debug_id}</code>")));

    // The page's upload form (files chosen or dropped on it): refused without the form's
    // token; with it, stored, and both crashes are reprocessed: the row goes away.
    assert!(page.body.contains("enctype=\"multipart/form-data\""));
    let file = [("crasher.debug", generated_bytes("crasher.debug"))];
    // Refusals come before the body is read: a small body, so the answer is not lost to a
    // reset while the client is still sending.
    let small = [("crasher.debug", b"\x7fELF".to_vec())];
    let forged = session
        .post_files("/ui/symbols/upload?csrf=0", &small)
        .await;
    assert_eq!(forged.status, 403);
    let (reader, _) = server
        .create_token(json!({"scopes": ["triage:read"]}))
        .await;
    let reader = UiSession::sign_in(&server, &reader).await;
    assert!(!reader
        .get("/ui/symbols/missing")
        .await
        .body
        .contains("multipart/form-data"));
    let refused = reader
        .post_files(&format!("/ui/symbols/upload?csrf={}", reader.csrf), &small)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let uploaded = session
        .post_files(&format!("/ui/symbols/upload?csrf={}", session.csrf), &file)
        .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    assert!(uploaded.body.contains("1 stored"), "{}", uploaded.body);
    assert!(uploaded.body.contains(&debug_id));
    let junk = session
        .post_files(
            &format!("/ui/symbols/upload?csrf={}", session.csrf),
            &[("notes.txt", b"<b>not a debug file</b>".to_vec())],
        )
        .await;
    assert_eq!(junk.status, 200, "the answer is a page");
    assert!(
        junk.body.contains("1 rejected") || junk.body.contains("1 skipped"),
        "{}",
        junk.body
    );
    assert!(
        !junk.body.contains("<b>not"),
        "nothing of the upload is markup"
    );
    for _ in 0..300 {
        let page = session.get("/ui/symbols/missing").await;
        if !page.body.contains(&debug_id) {
            return symbols_page_finds_the_file_and_its_caches(&server, &session).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the uploaded module is still listed as missing");
}

/// The symbols page after the crasher's debug file was uploaded and used: found by debug ID,
/// code ID and name, with the caches built from it.
async fn symbols_page_finds_the_file_and_its_caches(server: &TestServer, session: &UiSession) {
    let (debug_id, code_id) = crasher_ids();
    for q in [debug_id.as_str(), code_id.as_str(), "crasher"] {
        let page = session.get(&format!("/ui/symbols?q={q}")).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("<td>crasher.debug</td>"),
            "{q}: {}",
            page.body
        );
        assert!(page.body.contains("<td>elf</td>"), "{q}");
    }
    // The upload builds its caches in the background: they show up built from the file.
    let mut symcache = String::new();
    for _ in 0..300 {
        let page = session.get(&format!("/ui/symbols?q={debug_id}")).await;
        symcache = page
            .body
            .split("<tr>")
            .find(|row| row.contains("<td>symcache</td>"))
            .expect("a symcache row")
            .to_owned();
        if symcache.contains("crasher.debug (elf, sha256 ") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        symcache.contains("crasher.debug (elf, sha256 "),
        "{symcache}"
    );
    let nothing = session.get("/ui/symbols?q=%3Cb%3Enone.pdb").await;
    assert!(
        nothing
            .body
            .contains("Nothing stored answers to the name &#60;b&#62;none.pdb"),
        "{}",
        nothing.body
    );
    let (reader, _) = server
        .create_token(json!({"scopes": ["triage:read"]}))
        .await;
    let reader = UiSession::sign_in(server, &reader).await;
    let refused = reader.get("/ui/symbols?q=crasher").await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("symbols:read"));
}

/// Every UI route refuses a request without a session (pages send the browser to sign in,
/// changes are 401) and a session whose token lacks the route's scope (403).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_wants_a_session_and_its_scope() {
    let server = TestServer::start().await;
    let id = submit(&server, "abort.dmp", &[]).await;
    let group = settled(&server, &id).await["crash"]["group_id"]
        .as_i64()
        .unwrap();
    let pages = [
        "/ui/".to_owned(),
        format!("/ui/groups/{group}"),
        format!("/ui/crashes/{id}"),
        format!("/ui/crashes/{id}/processed.json"),
        format!("/ui/crashes/{id}/files/upload_file_minidump"),
        "/ui/symbols/missing".to_owned(),
        "/ui/symbols?q=x".to_owned(),
        "/ui/alerts".to_owned(),
        format!("/ui/groups/{group}/evidence.md"),
        "/ui/releases?project=default".to_owned(),
        "/ui/releases/1.0?project=default".to_owned(),
    ];
    let changes = [
        format!("/ui/groups/{group}/triage"),
        format!("/ui/groups/{group}/merge"),
        format!("/ui/crashes/{id}/reprocess"),
        "/ui/symbols/upload".to_owned(),
        "/ui/sign-out".to_owned(),
    ];
    let client = no_redirects();
    for path in &pages {
        let answer = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 303, "{path}");
        let to = answer.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.starts_with("/ui/sign-in?next="), "{path}: {to}");
    }
    for path in &changes {
        let answer = client
            .post(server.url(path))
            .form(&[("csrf", "x"), ("state", "open"), ("other", "1")])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "{path}");
    }

    // A token with neither triage scope nor symbols:read: 403 naming what is missing.
    let (ingest_only, _) = server.create_token(json!({"scopes": ["ingest"]})).await;
    let session = UiSession::sign_in(&server, &ingest_only).await;
    for path in &pages {
        let answer = session.get(path).await;
        assert_eq!(answer.status, 403, "{path}");
        assert!(
            answer.body.contains("triage:read")
                || answer.body.contains("symbols:read")
                || answer.body.contains("admin"),
            "{path}: {}",
            answer.body
        );
    }
    // Changes need the write scopes even with a valid form token.
    let (reader, _) = server
        .create_token(json!({"scopes": ["triage:read"]}))
        .await;
    let reader = UiSession::sign_in(&server, &reader).await;
    for path in &changes[..3] {
        let answer = reader
            .post(
                path,
                &[("csrf", &reader.csrf), ("state", "open"), ("other", "1")],
            )
            .await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
        assert!(answer.body.contains("triage:write"), "{path}");
    }
    let upload = reader
        .post_files(
            &format!("/ui/symbols/upload?csrf={}", reader.csrf),
            &[("a.sym", b"MODULE".to_vec())],
        )
        .await;
    assert_eq!(upload.status, 403);
    assert!(upload.body.contains("symbols:write"));
}

/// An SDK's error event shows as a crash: marked as an event, its exception as the evidence
/// and the stack's title, its frames (innermost first), its JSON downloadable; everything it
/// carries escaped.
#[tokio::test(flavor = "multi_thread")]
async fn an_error_event_shows_as_a_crash_with_its_frames_escaped() {
    let server = TestServer::start().await;
    let event = json!({
        "platform": "node",
        "release": "web@1.0",
        "exception": {"values": [{
            "type": "TypeError",
            "value": HOSTILE,
            "stacktrace": {"frames": [
                {"function": "outer<img src=x onerror=alert(4)>", "filename": "app/outer.js", "abs_path": "app/outer.js", "lineno": 3, "colno": 1, "context_line": "outer();"},
                {"function": "inner", "filename": "app/inner.js", "abs_path": "app/inner.js", "lineno": 7, "colno": 5, "context_line": "x.y.z"},
            ]},
        }]},
    });
    let (status, reply) = common::post(
        &server,
        "/api/1/store/",
        Some("application/json"),
        &[],
        serde_json::to_vec(&event).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let id = serde_json::from_str::<serde_json::Value>(&reply).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(settled(&server, &id).await["state"], "processed");
    let session = UiSession::sign_in(&server, &server.admin_token).await;
    let page = session.get(&format!("/ui/crashes/{id}")).await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains("error event"), "marked as an event");
    assert!(body.contains("TypeError"), "the exception");
    let full = session.get(&format!("/ui/crashes/{id}?frames=full")).await;
    let table = &full.body[full
        .body
        .find("<table class=\"frames\"")
        .expect("the frames")..];
    let inner = table.find(">inner<").expect("the innermost frame");
    let outer = table
        .find("outer&#60;img")
        .expect("the calling frame, escaped");
    assert!(inner < outer, "innermost first");
    assert!(body.contains("app/inner.js:7"), "{body}");
    assert!(!body.contains(HOSTILE) && !body.contains("<img src=x"));
    let file = session
        .get(&format!("/ui/crashes/{id}/files/event.json"))
        .await;
    assert_eq!(file.status, 200);
    let sent: serde_json::Value = serde_json::from_slice(&file.bytes).unwrap();
    assert_eq!(sent["exception"]["values"][0]["value"], HOSTILE);
}

/// A crash's variables under its frames: the fault frame's list open, the callers' closed,
/// values escaped as all crash text is; the verdict names the variable behind the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_crash_page_shows_each_frames_variables_open_under_the_fault_frame() {
    let server = TestServer::start().await;
    with_symbols(&server).await;
    let id = submit(&server, "variables/c-O2.dmp", &[]).await;
    let session = UiSession::sign_in(&server, &server.admin_token).await;
    let page = session.get(&format!("/ui/crashes/{id}")).await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    let fault = body
        .find("<tr id=\"fault\" class=\"fault\">")
        .expect("the fault frame");
    let after = &body[fault..];
    let open = after
        .find("<details open><summary>Variables (7)</summary>")
        .expect("the fault frame's variables, open");
    let listed = &after[open..after[open..].find("</details>").unwrap() + open];
    for name in ["buf", "len", "node", "first", "share", "shade", "checked"] {
        assert!(
            listed.contains(&format!("<code>{name}</code>")),
            "{name}: {listed}"
        );
    }
    // `buf` points at "FL\x7f": the quotes escaped, the byte written as \x7f.
    assert!(listed.contains("(stack) &#34;FL\\x7f&#34;"), "{listed}");
    assert!(listed.contains("<code>BLUE</code>"), "{listed}");
    assert!(
        after.contains("<details><summary>Variables (11)</summary>"),
        "the caller's variables, closed"
    );
    assert!(body.contains("0x10 = `node-&#62;next` (0x0) + 0x10, field `name`"));
}
