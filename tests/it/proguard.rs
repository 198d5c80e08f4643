//! Android's obfuscated Java and Kotlin: an R8 mapping written here (a class whose `crash()`
//! R8 inlined into `onCreate`, a helper class, an exception class), uploaded by the real
//! `sentry-cli upload-proguard`, then obfuscated frames de-obfuscated through
//! `POST /api/v1/symbolicate-jvm` (symbolicator's shape) and through a Java event. What each
//! frame must become is read off the mapping by hand: `startline:endline:method:origstart:origend
//! -> obfuscated`, an obfuscated line `n` in `start..=end` being `origstart + (n - start)`, and
//! lines sharing one obfuscated range listing an inlined call innermost first.

use crate::common;

use std::time::Duration;

use serde_json::{json, Value};

use common::{settled, TestServer};

const MAPPING: &str = "\
# compiler: R8
# compiler_version: 8.2.42
# min_api: 24
io.sentry.samples.MainActivity -> a.a:
# {\"id\":\"sourceFile\",\"fileName\":\"MainActivity.kt\"}
    1:1:void <init>():12:12 -> <init>
    1:4:void onCreate(android.os.Bundle):20:23 -> a
    5:5:void crash():30:30 -> a
    5:5:void onCreate(android.os.Bundle):24 -> a
    6:6:void bar(java.lang.String):41:41 -> b
io.sentry.samples.Util -> a.b:
# {\"id\":\"sourceFile\",\"fileName\":\"Util.java\"}
    1:1:java.lang.String format(int):7:7 -> a
io.sentry.samples.CrashException -> a.c:
";

/// Uploads the mapping with `sentry-cli upload-proguard`; its UUID as sentry-cli printed it.
async fn upload_mapping(server: &TestServer, mapping: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mapping.txt");
    std::fs::write(&path, mapping).unwrap();
    let out = common::sentry_cli_upload(server, &["upload-proguard"], &path).await;
    // sentry-cli names the mapping by the UUID it computes (v5 of its bytes).
    let uuid = out
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|w| w.len() == 36 && w.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("no UUID in sentry-cli's output: {out}"))
        .to_owned();
    let (status, files) = server
        .get_json(&format!("/api/v1/symbols?debug_id={uuid}"))
        .await;
    assert_eq!(status, 200, "{files}");
    assert_eq!(files["files"][0]["format"], "proguard", "{files}");
    uuid
}

#[tokio::test(flavor = "multi_thread")]
async fn sentry_cli_uploads_a_mapping_and_symbolicate_jvm_deobfuscates_with_inlines() {
    if !common::tool_present("sentry-cli") {
        return;
    }
    let server = TestServer::start().await;
    let uuid = upload_mapping(&server, MAPPING).await;
    let request = json!({
        "exceptions": [{"type": "c", "module": "a"}],
        "stacktraces": [{
            "exception": {"type": "c", "module": "a"},
            // Caller first, as events list them: bar -> onCreate (inlined crash) -> format.
            "frames": [
                {"function": "b", "module": "a.a", "lineno": 6, "index": 0},
                {"function": "a", "module": "a.a", "lineno": 5, "index": 1},
                {"function": "a", "module": "a.b", "lineno": 1, "index": 2},
                {"function": "run", "module": "android.os.Handler", "lineno": 99, "index": 3},
            ],
        }],
        "modules": [{"uuid": uuid, "type": "proguard"}],
        "classes": ["a.a", "zz.zz"],
    });
    let (status, answer) = server.admin_post("/api/v1/symbolicate-jvm", request).await;
    assert_eq!(status, 200, "{answer}");
    let frames = answer["stacktraces"][0]["frames"].as_array().unwrap();
    let seen: Vec<(String, String, u64, Option<&str>)> = frames
        .iter()
        .map(|f| {
            (
                f["module"].as_str().unwrap().to_owned(),
                f["function"].as_str().unwrap().to_owned(),
                f["lineno"].as_u64().unwrap_or(0),
                f["filename"].as_str(),
            )
        })
        .collect();
    let main = "io.sentry.samples.MainActivity";
    assert_eq!(
        seen,
        vec![
            (main.into(), "bar".into(), 41, Some("MainActivity.kt")),
            // Caller first: the outer onCreate, then the crash() inlined into it.
            (main.into(), "onCreate".into(), 24, Some("MainActivity.kt")),
            (main.into(), "crash".into(), 30, Some("MainActivity.kt")),
            (
                "io.sentry.samples.Util".into(),
                "format".into(),
                7,
                Some("Util.java")
            ),
            ("android.os.Handler".into(), "run".into(), 99, None),
        ],
        "{answer}"
    );
    assert_eq!(frames[1]["index"], 1);
    assert_eq!(
        frames[2]["index"], 1,
        "both come from the request's frame 1"
    );
    let exception = json!({"type": "CrashException", "module": "io.sentry.samples"});
    assert_eq!(answer["exceptions"][0], exception);
    assert_eq!(answer["stacktraces"][0]["exception"], exception);
    assert_eq!(answer["classes"], json!({"a.a": main}));
    assert_eq!(answer["errors"], json!([]));

    // A mapping nobody uploaded: named, frames as sent.
    let (status, answer) = server
        .admin_post(
            "/api/v1/symbolicate-jvm",
            json!({"stacktraces": [{"frames": [{"function": "a", "module": "a.a", "lineno": 5}]}],
                   "modules": [{"uuid": "8b2f6e9c-1d3a-5b4c-9e7f-0a1b2c3d4e5f", "type": "proguard"}]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["errors"][0]["type"], "missing", "{answer}");
    assert_eq!(answer["stacktraces"][0]["frames"][0]["module"], "a.a");
    // Not a request: a 400 that says what to send.
    let (status, answer) = server
        .admin_post("/api/v1/symbolicate-jvm", json!({"stacktraces": 3}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("proguard"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mapping_claiming_endless_inlines_expands_a_frame_boundedly() {
    let server = TestServer::start().await;
    // One obfuscated line said to be 10,000 nested inlined calls of the same two methods.
    let mut mapping = String::from("com.example.Loop -> a.a:\n");
    for i in 0..10_000 {
        let method = if i % 2 == 0 { "ping" } else { "pong" };
        mapping.push_str(&format!(
            "    1:1:void {method}():{}:{} -> a\n",
            i + 1,
            i + 1
        ));
    }
    let (status, uploaded) = server.upload("mapping.txt", mapping.into_bytes()).await;
    assert_eq!(status, 200, "{uploaded}");
    let uuid = uploaded["files"][0]["file"]["debug_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, answer) = server
        .admin_post(
            "/api/v1/symbolicate-jvm",
            json!({"stacktraces": [{"frames": [{"function": "a", "module": "a.a", "lineno": 1}]}],
                   "modules": [{"uuid": uuid, "type": "proguard"}]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let frames = answer["stacktraces"][0]["frames"].as_array().unwrap();
    assert!(
        (1..=64).contains(&frames.len()),
        "bounded: {}",
        frames.len()
    );
    assert_eq!(frames[0]["module"], "com.example.Loop");
}

/// A Java event as the Android SDK sends it: obfuscated frames, oldest first, and the
/// mapping's UUID as a `proguard` image.
fn java_event(uuid: &str) -> Value {
    json!({
        "platform": "java",
        "release": "io.sentry.samples@1.0+1",
        "exception": {"values": [{
            "type": "c",
            "module": "a",
            "value": "boom",
            "mechanism": {"type": "UncaughtExceptionHandler", "handled": false},
            "stacktrace": {"frames": [
                {"function": "run", "module": "android.os.Handler", "lineno": 99, "in_app": false},
                {"function": "b", "module": "a.a", "lineno": 6, "in_app": true},
                {"function": "a", "module": "a.a", "lineno": 5, "in_app": true},
            ]},
        }]},
        "debug_meta": {"images": [{"type": "proguard", "uuid": uuid}]},
    })
}

on_both_databases! {
/// A Java event whose mapping is not stored yet stays obfuscated and names the mapping
/// missing; once the mapping is uploaded it is processed again: frames de-obfuscated and
/// expanded, the exception's class remapped, grouped by the real names.
async fn a_java_event_is_deobfuscated_once_its_mapping_arrives(db: Db) {
    if !common::tool_present("sentry-cli") {
        return;
    }
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    // The UUID sentry-cli will give the mapping: v5 of its bytes, as the SDK's build plugin
    // computes it.
    let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, b"guardsquare.com");
    let uuid = uuid::Uuid::new_v5(&namespace, MAPPING.as_bytes()).to_string();
    let (status, reply) = common::send_envelope_items(&server, &[("event", java_event(&uuid))]).await;
    assert_eq!(status, 200, "{reply}");
    let id = serde_json::from_str::<Value>(&reply).unwrap()["id"].as_str().unwrap().to_owned();
    let before = settled(&server, &id).await;
    assert_eq!(before["state"], "processed", "{before}");
    let frames = &before["processed"]["exceptions"][0]["stacktrace"]["frames"];
    assert_eq!(frames[2]["status"], "missing_mapping", "{frames}");
    // The crash page's thread (innermost first) marks it as lacking its symbols.
    let top = &before["processed"]["threads"][0]["frames"][0];
    assert_eq!(top["missing_symbols"], true, "{top}");
    let (_, missing) = server.get_json("/api/v1/symbols/missing?project=default").await;
    let breakpad_id = format!("{}0", uuid.replace('-', "").to_ascii_uppercase());
    assert!(missing.to_string().contains(&breakpad_id), "{missing}");

    assert_eq!(upload_mapping(&server, MAPPING).await, uuid);
    let mut after = None;
    for _ in 0..200 {
        let (_, body) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        if body["state"] == "processed" && body["processed"]["exceptions"][0]["type"] == "CrashException" {
            after = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = after.expect("the event was processed again with its mapping");
    let processed = &after["processed"];
    assert_eq!(processed["exceptions"][0]["module"], "io.sentry.samples");
    let frames: Vec<(String, String, u64, String)> = processed["exceptions"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["module"].as_str().unwrap().to_owned(),
                f["function"].as_str().unwrap().to_owned(),
                f["lineno"].as_u64().unwrap(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let main = "io.sentry.samples.MainActivity";
    assert_eq!(
        frames,
        vec![
            ("android.os.Handler".into(), "run".into(), 99, "as_sent".into()),
            (main.into(), "bar".into(), 41, "deobfuscated".into()),
            (main.into(), "onCreate".into(), 24, "deobfuscated".into()),
            (main.into(), "crash".into(), 30, "deobfuscated".into()),
        ]
    );
    // The raw frames are kept beside.
    assert_eq!(processed["exceptions"][0]["raw_stacktrace"]["frames"][2]["module"], "a.a");
    let signature = after["crash"]["signature"].as_str().unwrap();
    assert!(signature.starts_with("CrashException | crash"), "{signature}");
    let (_, missing) = server.get_json("/api/v1/symbols/missing?project=default").await;
    assert!(!missing.to_string().contains(&breakpad_id), "{missing}");
}
}
