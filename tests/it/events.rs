//! Error events from Sentry SDKs through `/api/{project}/envelope/` and `/store/`: JavaScript
//! frames resolved by debug ID and by release (symbolic's fixtures in ../shared), native frames
//! against ../shared debug files, a native event grouping with the minidump crash of the same
//! frames, message grouping with variable parts normalized, reprocessing when the map arrives
//! after its event, a minidump inside an envelope, refusals, and a real SDK (sentry-sdk for
//! Python) sending through the envelope route.

use crate::common;

use std::time::Duration;

use serde_json::{json, Value};

use common::{
    column_of, generated_bytes, gzip, injected, post, settled, submit, upload_files, TestServer,
};

const WEBPACK_ID: &str = "2f259f80-58b7-44cb-d7cd-ed1e3d26f28a";
const BUNDLE_URL: &str = "http://example.com/static/bundle.js";

/// An envelope holding `event` (and any extra items: header, payload).
fn envelope(event: &Value, extra: &[(Value, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"2026-12-03T10:00:00Z\"}\n".to_vec();
    let payload = serde_json::to_vec(event).unwrap();
    out.extend_from_slice(
        format!("{{\"type\":\"event\",\"length\":{}}}\n", payload.len()).as_bytes(),
    );
    out.extend_from_slice(&payload);
    out.push(b'\n');
    for (header, payload) in extra {
        out.extend_from_slice(header.to_string().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(payload);
        out.push(b'\n');
    }
    out
}

/// Sends an envelope (gzip, `X-Sentry-Auth` as the SDKs do); the crash ID the answer names.
async fn send_envelope(server: &TestServer, body: Vec<u8>) -> String {
    let (status, reply) = post(
        server,
        "/api/1/envelope/",
        Some("application/x-sentry-envelope"),
        &[
            ("content-encoding", "gzip"),
            (
                "x-sentry-auth",
                "Sentry sentry_version=7, sentry_client=sentry.javascript.browser/8.0.0, sentry_key=public",
            ),
        ],
        gzip(&body),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    reply["id"]
        .as_str()
        .expect("the answer names the crash")
        .to_owned()
}

/// The crash once processed: its row and processed JSON.
async fn processed(server: &TestServer, id: &str) -> (Value, Value) {
    let done = settled(server, id).await;
    assert_eq!(done["state"], "processed", "{done}");
    (done["crash"].clone(), done["processed"].clone())
}

/// A browser SDK's event: a TypeError thrown in the webpack fixture's bundle, oldest frame
/// first, naming the bundle's debug ID in `debug_meta` when `with_debug_id`.
fn webpack_event(with_debug_id: bool, release: Option<&str>) -> Value {
    let call = column_of("webpack/bundle.js", "r()}");
    let throw = column_of("webpack/bundle.js", "throw new Error");
    let mut event = json!({
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "platform": "javascript",
        "level": "error",
        "environment": "production",
        "user": {"id": "player-17", "ip_address": "{{auto}}"},
        "tags": {"browser": "Firefox 120"},
        "contexts": {"os": {"name": "Windows", "version": "10"}, "browser": {"name": "Firefox"}},
        "sdk": {"name": "sentry.javascript.browser", "version": "8.0.0"},
        "exception": {"values": [{
            "type": "Error",
            "value": "wat",
            "mechanism": {"type": "onerror", "handled": false},
            "stacktrace": {"frames": [
                {"abs_path": BUNDLE_URL, "filename": BUNDLE_URL, "lineno": 1, "colno": call, "function": "r", "in_app": true},
                {"abs_path": BUNDLE_URL, "filename": BUNDLE_URL, "lineno": 1, "colno": throw, "in_app": true},
            ]},
        }]},
    });
    if with_debug_id {
        event["debug_meta"] = json!({"images": [{"type": "sourcemap", "code_file": BUNDLE_URL, "debug_id": WEBPACK_ID}]});
    }
    if let Some(release) = release {
        event["release"] = json!(release);
    }
    event
}

/// Checks the webpack event's frames came back original, with the raw frames beside them.
fn assert_webpack_resolved(p: &Value, resolved_with: &str) {
    let exception = &p["exceptions"][0];
    let frames = &exception["stacktrace"]["frames"];
    let bar = &frames[0];
    assert_eq!(bar["filename"], "./bar.js", "{p}");
    assert_eq!(bar["function"], "module.exports");
    assert_eq!(
        (bar["lineno"].as_u64(), bar["colno"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(bar["context_line"], "  f();");
    assert_eq!(
        bar["pre_context"],
        json!(["module.exports = function bar(f) {"])
    );
    assert_eq!(bar["status"], "resolved");
    let thrower = &frames[1];
    assert_eq!(thrower["filename"], "./foo.js");
    assert_eq!(thrower["context_line"], "  throw new Error(\"wat\");");
    assert_eq!(thrower["resolved_with"], resolved_with);
    // The frames as received are kept beside.
    let raw = &exception["raw_stacktrace"]["frames"];
    assert_eq!(raw[1]["abs_path"], BUNDLE_URL);
    assert_eq!(
        raw[1]["colno"],
        column_of("webpack/bundle.js", "throw new Error")
    );
    // Exceptions' stacks are not repeated among the threads' stacks.
    assert_eq!(p["thread_stacks"], json!([]));
    assert!(
        p["errors"].as_array().unwrap().is_empty(),
        "{}",
        p["errors"]
    );
    // The crash page's view: innermost frame first.
    assert_eq!(p["threads"][0]["frames"][0]["function"], "module.exports");
    assert_eq!(p["threads"][0]["frames"][0]["file"], "webpack:///./foo.js");
    assert_eq!(p["threads"][0]["thread_name"], "Error: wat");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_event_in_an_envelope_resolves_by_debug_id() {
    let server = TestServer::start().await;
    let (js, map) = injected(
        "webpack/bundle.js",
        "webpack/bundle.js.map",
        WEBPACK_ID,
        "debugId",
    );
    let (status, answer) =
        upload_files(&server, "", &[("bundle.js", js), ("bundle.js.map", map)]).await;
    assert_eq!(status, 200, "{answer}");

    let id = send_envelope(&server, envelope(&webpack_event(true, None), &[])).await;
    let (crash, p) = processed(&server, &id).await;
    assert_eq!(crash["kind"], "event", "{crash}");
    assert_eq!(crash["fault_class"], "exception");
    assert_eq!(crash["platform"], "Windows 10");
    assert_eq!(crash["user_id"], "player-17");
    assert_eq!(crash["annotations"]["environment"], "production");
    assert_eq!(crash["annotations"]["tag.browser"], "Firefox 120");
    assert_eq!(p["kind"], "event");
    assert_eq!(p["event_platform"], "java_script");
    assert_webpack_resolved(&p, "debug-id");
    // Grouped by its in-app frames, innermost first.
    assert_eq!(p["grouping"]["method"], "in_app_frames");
    assert_eq!(
        crash["signature"], "Error | module.exports | module.exports",
        "{}",
        p["grouping"]
    );
    assert!(p["grouping"]["components"][0]
        .as_str()
        .unwrap()
        .contains("throw new Error(\"wat\");"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_event_resolves_by_release_and_url() {
    let server = TestServer::start().await;
    let (status, answer) = upload_files(
        &server,
        "?release=web@2.0&url_prefix=~/static",
        &[
            (
                "bundle.js",
                common::fixture_bytes("sourcemaps/symbolic/webpack/bundle.js"),
            ),
            (
                "bundle.js.map",
                common::fixture_bytes("sourcemaps/symbolic/webpack/bundle.js.map"),
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let body = serde_json::to_vec(&webpack_event(false, Some("web@2.0"))).unwrap();
    let (status, reply) = post(
        &server,
        "/api/1/store/?sentry_key=public&sentry_version=7",
        Some("application/json"),
        &[],
        body,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let id = serde_json::from_str::<Value>(&reply).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (crash, p) = processed(&server, &id).await;
    assert_eq!(crash["kind"], "event");
    assert_eq!(crash["release"], "web@2.0");
    assert_webpack_resolved(&p, "release");
}

/// An event with no stack trace and this exception message.
fn message_event(kind: &str, message: &str) -> Value {
    json!({
        "platform": "node",
        "exception": {"values": [{"type": kind, "value": message}]},
    })
}

on_both_databases! {
/// Events without stack traces group by type and message, numbers, hex, UUIDs and quoted
/// strings ignored.
async fn events_differing_only_in_numbers_group_together(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let a = send_envelope(&server, envelope(&message_event("TimeoutError", "request 8812 to 'https://a.example/x' timed out after 3000 ms (0x7f3a)"), &[])).await;
    let b = send_envelope(&server, envelope(&message_event("TimeoutError", "request 17 to 'https://b.example/y?z=1' timed out after 250 ms (0xdeadbeef)"), &[])).await;
    let c = send_envelope(&server, envelope(&message_event("TimeoutError", "connection refused"), &[])).await;
    let d = send_envelope(&server, envelope(&message_event("RangeError", "request 9 to 'x' timed out after 1 ms (0x1)"), &[])).await;
    let (ca, pa) = processed(&server, &a).await;
    let (cb, _) = processed(&server, &b).await;
    let (cc, _) = processed(&server, &c).await;
    let (cd, _) = processed(&server, &d).await;
    assert_eq!(pa["grouping"]["method"], "message");
    assert_eq!(ca["signature"], "TimeoutError: request <n> to <str> timed out after <n> ms (<hex>)");
    assert_eq!(ca["group_id"], cb["group_id"]);
    assert_ne!(ca["group_id"], cc["group_id"]);
    assert_ne!(ca["group_id"], cd["group_id"]);
    let (_, group) = server
        .get_json(&format!("/api/v1/groups/{}", ca["group_id"]))
        .await;
    assert_eq!(group["event_count"], 2, "{group}");
}
}

on_both_databases! {
/// An event whose map was not there yet stays minified, names what it lacks, and is
/// processed (and regrouped) again when the map is uploaded.
async fn a_map_uploaded_after_its_event_reprocesses_it(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let id = send_envelope(&server, envelope(&webpack_event(true, None), &[])).await;
    let (before, p) = processed(&server, &id).await;
    let frames = &p["exceptions"][0]["stacktrace"]["frames"];
    assert_eq!(frames[0]["status"], "missing_sourcemap", "{frames}");
    assert_eq!(frames[0]["function"], "r");
    assert_eq!(p["errors"][0]["type"], "missing_sourcemap", "{}", p["errors"]);
    // What it lacks shows in the missing-symbols report.
    let (_, missing) = server.get_json("/api/v1/symbols/missing?project=default").await;
    assert!(missing.to_string().contains(BUNDLE_URL), "{missing}");

    let (js, map) = injected("webpack/bundle.js", "webpack/bundle.js.map", WEBPACK_ID, "debugId");
    let (status, answer) =
        upload_files(&server, "", &[("bundle.js", js), ("bundle.js.map", map)]).await;
    assert_eq!(status, 200, "{answer}");
    let mut after = None;
    for _ in 0..200 {
        let (_, body) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        if body["state"] == "processed"
            && body["processed"]["exceptions"][0]["stacktrace"]["frames"][0]["status"] == "resolved"
        {
            after = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = after.expect("the event was reprocessed with its map");
    assert_webpack_resolved(&after["processed"], "debug-id");
    assert_ne!(after["crash"]["signature"], before["signature"]);
    assert_ne!(after["crash"]["group_id"], before["group_id"], "regrouped");
    let (_, missing) = server.get_json("/api/v1/symbols/missing?project=default").await;
    assert!(!missing.to_string().contains(BUNDLE_URL), "{missing}");
}
}

#[tokio::test(flavor = "multi_thread")]
async fn native_event_frames_symbolicate_against_pdbs_with_inlines() {
    let server = TestServer::start().await;
    server.upload_fixture("debug-files/windows/crash.pdb").await;
    server
        .upload_fixture("debug-files/windows/CrashWithException.pdb")
        .await;
    // Oldest frame first, as events order them: the crash is in RequestDump (0x401011), called
    // from the 0x140001012 return address's caller.
    let event = json!({
        "platform": "native",
        "exception": {"values": [{
            "type": "EXCEPTION_ACCESS_VIOLATION_WRITE",
            "value": "Fatal Error: EXCEPTION_ACCESS_VIOLATION_WRITE",
            "mechanism": {"type": "minidump", "handled": false},
            "stacktrace": {"frames": [
                {"instruction_addr": "0x20000010"},
                {"instruction_addr": 5368713234u64},
                {"instruction_addr": "0x401011"},
            ]},
        }]},
        "threads": {"values": [
            {"id": 1, "name": "main", "crashed": true},
            {"id": 2, "name": "worker", "stacktrace": {"frames": [{"instruction_addr": "0x401011"}]}},
        ]},
        "debug_meta": {"images": [
            {"type": "pe", "debug_id": "3249d99d-0c40-4931-8610-f4e4fb0b6936-1", "code_file": "C:\\app\\crash.exe", "image_addr": "0x400000", "image_size": 0x27000},
            {"type": "pe", "debug_id": "f535c5fb-2ae8-4bb8-aa20-6c30be566c5a-1", "code_file": "C:\\app\\CrashWithException.exe", "image_addr": "0x140000000", "image_size": 0x9000},
            {"type": "pe", "debug_id": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa-1", "code_file": "C:\\app\\other.dll", "debug_file": "other.pdb", "image_addr": "0x20000000", "image_size": 0x1000},
        ]},
    });
    let id = send_envelope(&server, envelope(&event, &[])).await;
    let (crash, p) = processed(&server, &id).await;
    assert_eq!(crash["kind"], "event");
    assert_eq!(p["event_platform"], "native");
    let frames = &p["exceptions"][0]["stacktrace"]["frames"];
    let top = &frames[2];
    assert_eq!(top["status"], "symbolicated", "{top}");
    assert!(top["function"]
        .as_str()
        .unwrap()
        .starts_with("google_breakpad::CrashGenerationClient::RequestDump("));
    assert!(top["abs_path"]
        .as_str()
        .unwrap()
        .ends_with("crash_generation_client.cc"));
    assert_eq!(top["lineno"], 324);
    assert_eq!(
        top["inlines"][0]["function"],
        "google_breakpad::CrashGenerationClient::IsRegistered() const"
    );
    // Another thread's stack is symbolicated too, its raw frames beside.
    let worker = &p["thread_stacks"][0];
    assert_eq!(
        worker["label"], "thread 2 (worker)",
        "{}",
        p["thread_stacks"]
    );
    assert_eq!(worker["crashed"], false);
    assert_eq!(worker["frames"][0]["lineno"], 324);
    assert_eq!(worker["raw_frames"][0]["instruction_addr"], "0x401011");
    assert_eq!(
        p["threads"].as_array().unwrap().len(),
        2,
        "both stacks on the crash page"
    );
    // A return address is looked up at the call: line 954.
    assert_eq!(frames[1]["lineno"], 954, "{}", frames[1]);
    assert_eq!(frames[0]["status"], "missing_symbol");
    // Raw frames kept; the module without symbols is reported missing.
    assert_eq!(
        p["exceptions"][0]["raw_stacktrace"]["frames"][2]["instruction_addr"],
        "0x401011"
    );
    let (_, missing) = server
        .get_json("/api/v1/symbols/missing?project=default")
        .await;
    assert!(missing.to_string().contains("other.pdb"), "{missing}");
    assert_eq!(p["grouping"]["method"], "native_frames");
    // Signed by the minidump rules: the crash reporter's own frames (google_breakpad::…) are
    // irrelevant to the signature, so the first frame of it is the inlined printf's.
    assert_eq!(crash["signature"], "printf", "{}", p["grouping"]);
    assert_eq!(crash["fault_class"], "unknown");
}

/// The processed minidump's crashing thread as a native SDK would send it: frames oldest
/// first, with the dump's modules as `debug_meta` images.
fn event_from_processed_dump(p: &Value, signal: &str) -> Value {
    let thread = p["crash_info"]["crashing_thread"].as_u64().unwrap() as usize;
    let mut frames: Vec<Value> = p["threads"][thread]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| json!({"instruction_addr": f["offset"]}))
        .collect();
    frames.reverse();
    let images: Vec<Value> = p["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let base = u64::from_str_radix(
                m["base_addr"].as_str().unwrap().trim_start_matches("0x"),
                16,
            )
            .unwrap();
            let end =
                u64::from_str_radix(m["end_addr"].as_str().unwrap().trim_start_matches("0x"), 16)
                    .unwrap();
            json!({
                "type": "elf",
                "code_file": m["filename"],
                "debug_id": m["debug_id"],
                "code_id": m["code_id"],
                "image_addr": m["base_addr"],
                "image_size": end - base,
            })
        })
        .collect();
    json!({
        "platform": "native",
        "exception": {"values": [{
            "type": signal,
            "mechanism": {"type": "signalhandler", "meta": {"signal": {"name": signal}}},
            "stacktrace": {"frames": frames},
        }]},
        "debug_meta": {"images": images},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_native_event_groups_with_the_minidump_crash_of_the_same_frames() {
    let server = TestServer::start().await;
    let (status, answer) = server
        .upload("crasher.debug", generated_bytes("crasher.debug"))
        .await;
    assert_eq!(status, 200, "{answer}");
    let dump = submit(&server, "abort.dmp", &[]).await;
    let (dump_crash, dump_processed) = processed(&server, &dump).await;
    assert_eq!(dump_crash["fault_class"], "abort", "{dump_crash}");

    let event = event_from_processed_dump(&dump_processed, "SIGABRT");
    let id = send_envelope(&server, envelope(&event, &[])).await;
    let (crash, p) = processed(&server, &id).await;
    assert_eq!(crash["kind"], "event");
    assert_eq!(p["grouping"]["method"], "native_frames");
    assert_eq!(crash["fault_class"], "abort");
    assert_eq!(
        crash["signature"], dump_crash["signature"],
        "{}",
        p["grouping"]
    );
    assert_eq!(crash["fingerprint"], dump_crash["fingerprint"]);
    assert_eq!(crash["group_id"], dump_crash["group_id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minidump_in_an_envelope_goes_down_the_minidump_path() {
    let server = TestServer::start().await;
    let event = json!({"platform": "native", "release": "game@1.4", "user": {"id": "u1"}});
    let dump = generated_bytes("abort.dmp");
    let body = envelope(
        &event,
        &[
            (
                json!({"type": "attachment", "length": dump.len(), "attachment_type": "event.minidump", "filename": "crash.dmp"}),
                dump,
            ),
            (
                json!({"type": "attachment", "length": 5, "filename": "log.txt"}),
                b"hello".to_vec(),
            ),
            (json!({"type": "session"}), b"{\"sid\":\"x\"}".to_vec()),
        ],
    );
    let id = send_envelope(&server, body).await;
    let (crash, p) = processed(&server, &id).await;
    assert_eq!(crash["kind"], "minidump", "{crash}");
    assert_eq!(crash["release"], "game@1.4");
    assert_eq!(crash["user_id"], "u1");
    assert_eq!(crash["fault_class"], "abort");
    assert!(!p["threads"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_envelopes_and_events_get_specific_json_errors() {
    let server = TestServer::start_with(|c| c.ingest.require_key = true).await;
    let project = server.create_project("web").await;
    let (_, key) = server
        .admin_post(
            &format!(
                "/api/v1/projects/{}/keys",
                project["slug"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let path = format!("/api/web/envelope/?sentry_key={key}");
    let send = |path: String, body: Vec<u8>| {
        let server = &server;
        async move {
            post(
                server,
                &path,
                Some("application/x-sentry-envelope"),
                &[],
                body,
            )
            .await
        }
    };
    // No key, and a wrong one.
    let (status, reply) = send("/api/web/envelope/".into(), envelope(&json!({}), &[])).await;
    assert_eq!(
        (status, reply.as_str()),
        (403, r#"{"error":"missing_key"}"#)
    );
    let (status, _) = send(
        "/api/web/envelope/?sentry_key=nope".into(),
        envelope(&json!({}), &[]),
    )
    .await;
    assert_eq!(status, 403);
    // A bearer token instead of a key: it needs the ingest scope, for this project.
    for (scopes, expected) in [
        (
            json!(["triage:read", "symbols:write"]),
            r#"{"error":"invalid_token"}"#,
        ),
        (json!(["ingest"]), ""),
    ] {
        let (token, _) = server.create_token(json!({ "scopes": scopes })).await;
        let bearer = format!("Bearer {token}");
        let (status, reply) = post(
            &server,
            "/api/web/envelope/",
            None,
            &[("authorization", bearer.as_str())],
            envelope(&message_event("Error", "sent with a token"), &[]),
        )
        .await;
        if expected.is_empty() {
            assert_eq!(status, 200, "{reply}");
        } else {
            assert_eq!((status, reply.as_str()), (403, expected));
        }
    }
    // Malformed envelopes say where.
    let (status, reply) = send(path.clone(), b"not json\n".to_vec()).await;
    assert_eq!(status, 400);
    assert!(reply.contains("envelope header"), "{reply}");
    let (status, reply) = send(
        path.clone(),
        b"{}\n{\"type\":\"event\",\"length\":500}\n{}".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(reply.contains("runs past the end"), "{reply}");
    // An event that is not an object; an event too large.
    let (status, reply) = send(path.clone(), b"{}\n{\"type\":\"event\"}\n[1,2]\n".to_vec()).await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply.contains("not JSON") || reply.contains("not a JSON object"),
        "{reply}"
    );
    let huge = json!({"message": "x".repeat(1 << 20)});
    let (status, reply) = send(path.clone(), envelope(&huge, &[])).await;
    assert_eq!(status, 413, "{reply}");
    // A minidump attachment that is not one.
    let body = envelope(
        &json!({}),
        &[(
            json!({"type": "attachment", "attachment_type": "event.minidump", "length": 4}),
            b"NOPE".to_vec(),
        )],
    );
    let (status, reply) = send(path.clone(), body).await;
    assert_eq!(
        (status, reply.as_str()),
        (400, r#"{"error":"malformed_not_a_minidump"}"#)
    );
    // Sessions only: accepted, nothing stored.
    let raw_files = || {
        server
            .stored_files()
            .into_iter()
            .filter(|f| f.ends_with("/raw.json"))
            .count()
    };
    let before = raw_files();
    // Session items are read for release health (tests/it/health.rs): one without a release
    // is refused with the reason when nothing else came with it.
    let (status, reply) = send(
        path.clone(),
        b"{}\n{\"type\":\"session\"}\n{\"sid\":\"a\"}\n".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("attrs"), "{reply}");
    assert_eq!(raw_files(), before, "nothing stored");
    // The store route refuses bodies that are not JSON, saying what to send.
    let (status, reply) = post(
        &server,
        &format!("/api/web/store/?sentry_key={key}"),
        None,
        &[],
        b"eJzLSM3JyVcozy/KSQEAGgQEXQ==".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(reply.contains("not JSON"), "{reply}");
    // And a good one lands under the key's project.
    let (status, reply) = send(path.clone(), envelope(&message_event("Error", "boom"), &[])).await;
    assert_eq!(status, 200, "{reply}");
    let id: Value = serde_json::from_str(&reply).unwrap();
    let (crash, _) = processed(&server, id["id"].as_str().unwrap()).await;
    assert_eq!(crash["project_id"], project["id"]);
}

/// The real Python SDK (sentry-sdk from PyPI, installed by tests/run.sh with brotli, so it
/// compresses with `br`): its envelope (`X-Sentry-Auth`) lands as an event, grouped by its
/// in-app frames.
#[tokio::test(flavor = "multi_thread")]
async fn the_real_python_sdk_sends_an_event_through_the_envelope_route() {
    let present = std::process::Command::new("python3")
        .args(["-c", "import sentry_sdk"])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            !common::services_required(),
            "sentry-sdk (PyPI) is required (tests/run.sh installs it)"
        );
        return eprintln!("skipping: sentry-sdk is not installed");
    }
    let server = TestServer::start().await;
    let script = "import sys, sentry_sdk\n\
sentry_sdk.init(dsn=sys.argv[1], release='py-tool@3.1', environment='ci', default_integrations=False)\n\
sentry_sdk.set_user({'id': 'builder-9'})\n\
def ratio(done, total):\n    return done / total\n\
def report(total):\n    return ratio(5, total)\n\
try:\n    report(0)\n\
except Exception:\n    sentry_sdk.capture_exception()\n\
sentry_sdk.flush(10)\n";
    let dsn = format!("http://public@{}/1", server.addr);
    let output = tokio::process::Command::new("python3")
        .args(["-c", script, &dsn])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id = common::crash_with_annotation(&server, "release=py-tool@3.1").await;
    let (crash, p) = processed(&server, &id).await;
    assert_eq!(crash["kind"], "event");
    assert_eq!(crash["user_id"], "builder-9");
    assert_eq!(crash["annotations"]["environment"], "ci");
    assert_eq!(p["platform"], "python");
    assert_eq!(p["exceptions"][0]["type"], "ZeroDivisionError");
    assert_eq!(p["grouping"]["method"], "in_app_frames");
    assert_eq!(
        crash["signature"],
        "ZeroDivisionError | ratio | report | <module>"
    );
    // Frames as sent, context lines included (the SDK reads its sources).
    let frames = p["exceptions"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap();
    assert_eq!(frames.last().unwrap()["function"], "ratio");
    assert_eq!(frames.last().unwrap()["status"], "as_sent");
}

/// Browser SDKs send from the page's origin: the preflight is answered and the answer carries
/// `Access-Control-Allow-Origin`.
#[tokio::test(flavor = "multi_thread")]
async fn browsers_may_send_events_from_any_origin() {
    let server = TestServer::start().await;
    let preflight = server
        .anonymous
        .request(reqwest::Method::OPTIONS, server.url("/api/1/envelope/"))
        .header("origin", "https://game.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, x-sentry-auth",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-sentry-auth"), "{allowed}");
    let sent = server
        .anonymous
        .post(server.url("/api/1/envelope/?sentry_key=public"))
        .header("origin", "https://game.example")
        .header("content-type", "text/plain;charset=UTF-8")
        .body(envelope(&message_event("Error", "from a page"), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    assert_eq!(sent.headers()["access-control-allow-origin"], "*");
}

/// Sentry SDKs compress envelopes with gzip, deflate, brotli (the Python SDK when brotli is
/// installed) or zstd: each is decoded; an unknown encoding is refused.
#[tokio::test(flavor = "multi_thread")]
async fn envelopes_arrive_in_every_encoding_sdks_use() {
    use async_compression::tokio::bufread::{BrotliEncoder, ZlibEncoder, ZstdEncoder};
    use tokio::io::AsyncReadExt;
    let server = TestServer::start().await;
    let plain = envelope(&message_event("Error", "compressed"), &[]);
    let mut bodies: Vec<(&str, Vec<u8>)> = Vec::new();
    for encoding in ["br", "deflate", "zstd"] {
        let mut out = Vec::new();
        let input = &plain[..];
        match encoding {
            "br" => BrotliEncoder::new(input).read_to_end(&mut out).await,
            "deflate" => ZlibEncoder::new(input).read_to_end(&mut out).await,
            _ => ZstdEncoder::new(input).read_to_end(&mut out).await,
        }
        .unwrap();
        bodies.push((encoding, out));
    }
    for (encoding, body) in bodies {
        let (status, reply) = post(
            &server,
            "/api/1/envelope/",
            None,
            &[("content-encoding", encoding)],
            body,
        )
        .await;
        assert_eq!(status, 200, "{encoding}: {reply}");
        let id: Value = serde_json::from_str(&reply).unwrap();
        let (crash, _) = processed(&server, id["id"].as_str().unwrap()).await;
        assert_eq!(crash["signature"], "Error: compressed", "{encoding}");
    }
    let (status, reply) = post(
        &server,
        "/api/1/envelope/",
        None,
        &[("content-encoding", "lzma")],
        plain,
    )
    .await;
    assert_eq!(
        (status, reply.as_str()),
        (400, r#"{"error":"malformed_bad_content_encoding"}"#)
    );
}
