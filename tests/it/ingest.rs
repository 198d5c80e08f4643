//! Crash-reporter ingest over real sockets: recorded client requests replayed byte for byte,
//! the request shapes of each client family, malformed requests, size limits, throttling and
//! reprocessing.

use crate::common;

use std::io::Write;
use std::time::Duration;

use common::{
    fixture, fixture_bytes, generated, gzip, multipart, post, replay, settled, TestServer,
};
use serde_json::Value;

fn crash_id(body: &str) -> String {
    body.trim()
        .strip_prefix("CrashID=bp-")
        .unwrap_or(body.trim())
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn recorded_client_requests_replayed_byte_for_byte() {
    let server = TestServer::start().await;
    for (capture, client, product) in [
        (
            "breakpad-minidump_upload-linux.http",
            "breakpad",
            Some("TestApp"),
        ),
        ("crashpad-sentry-native-0.4.9-linux.http", "sentry", None),
        (
            "firefox-esr-153-crashreporter.http",
            "breakpad",
            Some("Firefox"),
        ),
    ] {
        let request = fixture_bytes(&format!("ingest-captures/{capture}"));
        let (status, body) = replay(&server, &request).await;
        assert_eq!(status, 200, "{capture}: {body}");
        if client == "breakpad" {
            assert!(body.starts_with("CrashID=bp-"), "{capture}: {body}");
        }
        let id = crash_id(&body);
        let crash = settled(&server, &id).await;
        assert_eq!(crash["state"], "processed", "{capture}: {crash}");
        assert_eq!(crash["crash"]["product"].as_str(), product, "{capture}");
        assert!(
            crash["processed"]["threads"]
                .as_array()
                .is_some_and(|t| !t.is_empty()),
            "{capture}"
        );
    }
    // Firefox's extra.json annotations were kept.
    let (_, found) = server
        .get_json("/api/v1/crashes?annotation.ReleaseChannel=esr")
        .await;
    assert_eq!(found["crashes"].as_array().unwrap().len(), 1);
    // sentry-native's guid (query string) and attachments.
    let (_, found) = server
        .get_json("/api/v1/crashes?annotation.guid=00b91ea5-c22b-4e5c-bf0b-b3a21f312a61")
        .await;
    assert_eq!(found["crashes"].as_array().unwrap().len(), 1, "{found}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_client_family_is_accepted_and_answered_its_way() {
    let server = TestServer::start().await;
    let dump = std::fs::read(generated("null-write.dmp")).unwrap();
    let ct = "multipart/form-data; boundary=XyZ";

    // Breakpad Linux field set.
    let body = multipart(
        "XyZ",
        &[
            ("prod", None, b"Game"),
            ("ver", None, b"2.0.1"),
            ("guid", None, b"user-1"),
            ("upload_file_minidump", Some("a.dmp"), &dump),
        ],
    );
    let (status, reply) = post(&server, "/submit", Some(ct), &[], body).await;
    assert_eq!(status, 200);
    let breakpad = settled(&server, &crash_id(&reply)).await;
    assert_eq!(
        (
            breakpad["crash"]["product"].as_str(),
            breakpad["crash"]["release"].as_str()
        ),
        (Some("Game"), Some("2.0.1"))
    );
    assert_eq!(breakpad["crash"]["user_id"], "user-1");

    // macOS Breakpad field names, Crashpad-style gzip + chunked, and a second dump (Firefox).
    let body = multipart(
        "XyZ",
        &[
            ("ProductName", None, b"Game"),
            ("Version", None, b"2.0.2"),
            ("upload_file_minidump", Some("a.dmp"), &dump),
            ("upload_file_minidump_browser", Some("b.dmp"), &dump),
            ("logs", Some("log.txt"), b"hello"),
        ],
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        gzip(&body).chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let response = server
        .anonymous
        .post(server.url("/submit?guid=user-2"))
        .header("content-type", ct)
        .header("content-encoding", "gzip")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let crashpad = settled(&server, &crash_id(&response.text().await.unwrap())).await;
    assert_eq!(crashpad["crash"]["annotations"]["guid"], "user-2");
    assert_eq!(crashpad["crash"]["release"], "2.0.2");

    // The same as HTTP/1.0 with chunked transfer encoding, on a raw socket.
    let gz = gzip(&multipart(
        "XyZ",
        &[("upload_file_minidump", Some("a.dmp"), &dump)],
    ));
    let mut request = format!(
        "POST /submit HTTP/1.0\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in gz.chunks(700) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, reply) = replay(&server, &request).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        settled(&server, &crash_id(&reply)).await["state"],
        "processed"
    );

    // Sentry: JSON `sentry` field, flattened sentry[...] fields, a compressed dump part, a raw body.
    let body = multipart(
        "XyZ",
        &[
            (
                "sentry",
                None,
                br#"{"release":"5.1.0","user":{"id":"u-9"},"environment":"prod"}"#,
            ),
            ("upload_file_minidump", Some("a.dmp"), &gzip(&dump)),
        ],
    );
    let (status, id) = post(
        &server,
        "/api/7/minidump/?sentry_key=abc",
        Some(ct),
        &[],
        body,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!id.contains('='), "a bare ID: {id}");
    let sentry = settled(&server, &id).await;
    assert_eq!(
        (
            sentry["crash"]["release"].as_str(),
            sentry["crash"]["user_id"].as_str()
        ),
        (Some("5.1.0"), Some("u-9"))
    );
    assert!(
        sentry["crash"]["annotations"].get("sentry_key").is_none(),
        "credentials are not annotations"
    );
    let body = multipart(
        "XyZ",
        &[
            ("sentry[release]", None, b"5.2.0"),
            ("sentry[user][id]", None, b"u-10"),
            (
                "upload_file_minidump",
                Some("a.dmp"),
                &zstd::encode_all(&dump[..], 3).unwrap(),
            ),
        ],
    );
    let (status, id) = post(&server, "/api/7/minidump/", Some(ct), &[], body).await;
    assert_eq!(status, 200);
    let flat = settled(&server, &id).await;
    assert_eq!(
        (
            flat["crash"]["release"].as_str(),
            flat["crash"]["user_id"].as_str()
        ),
        (Some("5.2.0"), Some("u-10"))
    );
    let (status, id) = post(
        &server,
        "/api/7/minidump/?sentry_key=abc",
        None,
        &[],
        dump.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(settled(&server, &id).await["state"], "processed");

    // Backtrace: raw and multipart with attachments.
    let (status, reply) = post(
        &server,
        "/post?format=minidump&token=t0k&version=9.9",
        None,
        &[],
        dump.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["response"], "ok");
    let raw = settled(&server, reply["_rxid"].as_str().unwrap()).await;
    assert_eq!(raw["crash"]["release"], "9.9");
    let body = multipart(
        "XyZ",
        &[
            ("upload_file_minidump", Some("a.dmp"), &dump),
            ("attachment_log", Some("game.log"), b"boom"),
        ],
    );
    let (status, reply) = post(
        &server,
        "/post?format=minidump&token=t0k",
        Some(ct),
        &[],
        body,
    )
    .await;
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(
        settled(&server, reply["_rxid"].as_str().unwrap()).await["state"],
        "processed"
    );

    // Unreal Engine crash containers.
    for container in ["unreal/unreal_crash", "unreal/unreal_crash_apple"] {
        let (status, id) = post(
            &server,
            "/api/7/unreal/key123/",
            Some("application/octet-stream"),
            &[],
            fixture_bytes(container),
        )
        .await;
        assert_eq!(status, 200, "{container}: {id}");
        let crash = settled(&server, &id).await;
        let stored = crash["crash"]["annotations"].clone();
        if container.ends_with("apple") {
            // An Apple crash report, no minidump: stored and failed with the reason.
            assert_eq!(crash["state"], "failed", "{crash}");
            assert!(crash["error"].as_str().unwrap().contains("no minidump"));
        } else {
            assert_eq!(crash["state"], "processed", "{crash}");
            assert!(
                stored["game_name"].is_string() || stored["crash_guid"].is_string(),
                "{stored}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_antennas_reasons() {
    let server = TestServer::start().await;
    let dump = std::fs::read(generated("null-write.dmp")).unwrap();
    let ct = "multipart/form-data; boundary=XyZ";
    // (route, content type, headers, body, the reason expected)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "/submit",
            None,
            vec![],
            b"x".to_vec(),
            "malformed_no_content_type",
        ),
        (
            "/submit",
            Some("application/json"),
            vec![],
            b"{}".to_vec(),
            "malformed_wrong_content_type",
        ),
        (
            "/submit",
            Some("multipart/form-data"),
            vec![],
            b"x".to_vec(),
            "malformed_no_boundary",
        ),
        (
            "/submit",
            Some(ct),
            vec![("content-encoding", "gzip")],
            b"not gzip at all".to_vec(),
            "malformed_bad_gzip",
        ),
        (
            "/submit",
            Some(ct),
            vec![],
            multipart(
                "XyZ",
                &[
                    ("extra", Some("extra.json"), b"{not json"),
                    ("upload_file_minidump", Some("a"), &dump),
                ],
            ),
            "malformed_invalid_json",
        ),
        (
            "/submit",
            Some(ct),
            vec![],
            multipart(
                "XyZ",
                &[
                    ("extra", Some("extra.json"), b"[1,2]"),
                    ("upload_file_minidump", Some("a"), &dump),
                ],
            ),
            "malformed_invalid_json_value",
        ),
        (
            "/submit",
            Some(ct),
            vec![],
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated".to_vec(),
            "malformed_invalid_payload_structure",
        ),
        (
            "/submit",
            Some(ct),
            vec![],
            multipart("XyZ", &[("prod", None, b"Game")]),
            "malformed_no_dump",
        ),
        (
            "/submit",
            Some(ct),
            vec![],
            multipart(
                "XyZ",
                &[("upload_file_minidump", Some("a"), b"PK\x03\x04 a zip")],
            ),
            "malformed_not_a_minidump",
        ),
        (
            "/api/1/minidump/",
            None,
            vec![],
            b"hello".to_vec(),
            "malformed_not_a_minidump",
        ),
    ];
    for (path, content_type, headers, body, reason) in cases {
        let (status, reply) = post(&server, path, content_type, &headers, body).await;
        assert_eq!(
            (status, reply.trim()),
            (400, format!("Discarded={reason}").as_str()),
            "{path} {reason}"
        );
    }
    // Nothing was queued.
    let (_, groups) = server.get_json("/api/v1/groups").await;
    assert!(groups["groups"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn size_limits_and_gzip_bombs() {
    let server = TestServer::start_with(|c| {
        c.ingest.max_body_bytes = 200_000;
        c.ingest.max_decompressed_bytes = 1_000_000;
    })
    .await;
    let ct = "multipart/form-data; boundary=XyZ";
    let big = vec![0u8; 300_000];
    let (status, _) = post(
        &server,
        "/submit",
        Some(ct),
        &[],
        multipart("XyZ", &[("upload_file_minidump", Some("a"), &big)]),
    )
    .await;
    assert_eq!(status, 413);
    // 50 MB of zeros in a ~50 KB gzip: refused once it expands past the cap, never held whole.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&multipart(
        "XyZ",
        &[("upload_file_minidump", Some("a"), &vec![0u8; 50 << 20])],
    ))
    .unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 200_000);
    let (status, reply) = post(
        &server,
        "/submit",
        Some(ct),
        &[("content-encoding", "gzip")],
        bomb,
    )
    .await;
    assert_eq!(status, 413, "{reply}");
    assert!(reply.contains("max_decompressed_bytes"));
}

/// Bodies and parts past the 4 MiB held in memory spill to unnamed scratch files: a large dump,
/// a large attachment and a compressed dump part that expands past 4 MiB are stored byte for
/// byte, processed, and leave nothing in the scratch folder.
#[tokio::test(flavor = "multi_thread")]
async fn large_parts_spill_and_are_stored_whole() {
    let server = TestServer::start().await;
    let ct = "multipart/form-data; boundary=XyZ";
    // A minidump with trailing bytes is still the same minidump.
    let mut dump = std::fs::read(generated("abort.dmp")).unwrap();
    dump.resize(6 << 20, 0xab);
    let log: Vec<u8> = (0..(5u32 << 20)).map(|i| (i % 251) as u8).collect();
    let body = multipart(
        "XyZ",
        &[
            ("upload_file_minidump", Some("a.dmp"), &dump),
            ("log", Some("game.log"), &log),
        ],
    );
    let (status, reply) = post(&server, "/submit", Some(ct), &[], body).await;
    assert_eq!(status, 200, "{reply}");
    let breakpad = crash_id(&reply);
    assert_eq!(settled(&server, &breakpad).await["state"], "processed");

    let packed = zstd::encode_all(&dump[..], 3).unwrap();
    assert!(packed.len() < 1 << 20);
    let body = multipart("XyZ", &[("upload_file_minidump", Some("a.dmp"), &packed)]);
    let (status, sentry) = post(&server, "/api/7/minidump/", Some(ct), &[], body).await;
    assert_eq!(status, 200, "{sentry}");
    assert_eq!(settled(&server, &sentry).await["state"], "processed");

    let stored = |id: &str, suffix: &str| -> Vec<u8> {
        let file = server
            .stored_files()
            .into_iter()
            .find(|f| f.contains(id) && f.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix} stored for {id}"));
        std::fs::read(server.store_root.join(file)).unwrap()
    };
    assert!(stored(&breakpad, "dump-upload_file_minidump") == dump);
    assert!(stored(&breakpad, "attachment-1") == log);
    assert!(stored(&sentry, "dump-upload_file_minidump") == dump);
    let left: Vec<_> = common::files_under(&server.data_dir.join("tmp"));
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
}

/// Text fields are read into memory (no scratch file each), never past
/// `ingest.max_field_bytes`; a crash with many of them keeps every one as an annotation.
#[tokio::test(flavor = "multi_thread")]
async fn text_fields_are_annotations_within_their_cap() {
    let server = TestServer::start_with(|c| c.ingest.max_field_bytes = 1024).await;
    let ct = "multipart/form-data; boundary=XyZ";
    let dump = std::fs::read(generated("abort.dmp")).unwrap();
    let values: Vec<String> = (0..40).map(|i| format!("value {i}")).collect();
    let names: Vec<String> = (0..40).map(|i| format!("annotation_{i}")).collect();
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = names
        .iter()
        .zip(&values)
        .map(|(n, v)| (n.as_str(), None, v.as_bytes()))
        .collect();
    parts.push(("upload_file_minidump", Some("a.dmp"), &dump));
    let (status, reply) = post(&server, "/submit", Some(ct), &[], multipart("XyZ", &parts)).await;
    assert_eq!(status, 200, "{reply}");
    let crash = settled(&server, &crash_id(&reply)).await;
    let annotations = &crash["crash"]["annotations"];
    assert_eq!(annotations["annotation_0"], "value 0");
    assert_eq!(annotations["annotation_39"], "value 39");

    let long = vec![b'x'; 1025];
    let (status, reply) = post(
        &server,
        "/submit",
        Some(ct),
        &[],
        multipart(
            "XyZ",
            &[
                ("comment", None, &long),
                ("upload_file_minidump", Some("a.dmp"), &dump),
            ],
        ),
    )
    .await;
    assert_eq!(status, 413, "{reply}");
    assert!(reply.contains("max_field_bytes"), "{reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttle_rules_answer_200_discarded_and_count() {
    let server = TestServer::start_with(|c| {
        c.ingest.throttle = vec![
            faultline::config::ThrottleRule {
                name: "no-beta".into(),
                annotation: "channel".into(),
                matches: "^beta$".into(),
                action: "reject".into(),
                percent: None,
                project: None,
            },
            faultline::config::ThrottleRule {
                name: "none-of-dev".into(),
                annotation: "channel".into(),
                matches: "^dev$".into(),
                action: "sample".into(),
                percent: Some(0),
                project: Some("default".into()),
            },
        ];
    })
    .await;
    let dump = std::fs::read(generated("null-write.dmp")).unwrap();
    let ct = "multipart/form-data; boundary=XyZ";
    let send = |channel: &'static str| {
        multipart(
            "XyZ",
            &[
                ("channel", None, channel.as_bytes()),
                ("upload_file_minidump", Some("a"), &dump),
            ],
        )
    };
    let (status, reply) = post(&server, "/submit", Some(ct), &[], send("beta")).await;
    assert_eq!((status, reply.trim()), (200, "Discarded=rule_no-beta"));
    let (status, reply) = post(&server, "/submit", Some(ct), &[], send("dev")).await;
    assert_eq!(
        (status, reply.trim()),
        (200, "Discarded=rule_none-of-dev_sampled")
    );
    let (status, reply) = post(&server, "/submit", Some(ct), &[], send("release")).await;
    assert_eq!(status, 200);
    assert!(reply.starts_with("CrashID=bp-"));
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("faultline_throttle_total{rule=\"no-beta\",verdict=\"reject\"}"),
        "{metrics}"
    );
}

on_both_databases! {
async fn a_reprocess_that_fails_leaves_the_crash_where_it_was(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let id = common::submit(&server, "wild-read.dmp", &[]).await;
    let before = settled(&server, &id).await;
    let group = before["crash"]["group_id"].clone();
    assert!(group.is_i64(), "{before}");
    // The stored minidump goes missing: the new processing cannot succeed.
    let dumps: Vec<String> = server
        .stored_files()
        .into_iter()
        .filter(|f| f.contains(id.as_str()) && !f.ends_with(".json"))
        .collect();
    assert!(!dumps.is_empty(), "{:?}", server.stored_files());
    for dump in &dumps {
        std::fs::remove_file(server.store_root.join(dump)).unwrap();
    }
    let response = server
        .client
        .post(server.url(&format!("/api/v1/crashes/{id}/reprocess")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut after = serde_json::Value::Null;
    for _ in 0..300 {
        let (_, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        if crash["state"] == "failed" {
            after = crash;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(after["state"], "failed", "{after}");
    assert_eq!(after["error"], "the stored minidump is missing", "{after}");
    // Still indexed, in its group, counted once.
    assert_eq!(after["crash"]["group_id"], group, "{after}");
    let (_, groups) = server.get_json("/api/v1/groups").await;
    assert_eq!(groups["groups"][0]["id"], group);
    assert_eq!(groups["groups"][0]["event_count"], 1);
}
}

on_both_databases! {
async fn uploading_missing_symbols_reprocesses_stored_crashes(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let dump = std::fs::read(generated("wild-read.dmp")).unwrap();
    let ct = "multipart/form-data; boundary=XyZ";
    let (status, reply) = post(
        &server,
        "/submit",
        Some(ct),
        &[],
        multipart("XyZ", &[("upload_file_minidump", Some("a"), &dump)]),
    )
    .await;
    assert_eq!(status, 200);
    let id = crash_id(&reply);
    let before = settled(&server, &id).await;
    assert_eq!(
        before["crash"]["signature"], "crasher",
        "no symbols yet: the module name"
    );
    server
        .upload(
            "crasher.debug",
            std::fs::read(generated("crasher.debug")).unwrap(),
        )
        .await;
    // The upload requeued it; wait for the new result.
    for _ in 0..300 {
        let (_, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        if crash["state"] == "processed" && crash["crash"]["signature"] != "crasher" {
            assert_eq!(
                crash["crash"]["signature"],
                "core::ptr::read_volatile | crasher::linux::wild_read"
            );
            assert_eq!(
                crash["processed"]["classification"]["fault_class"],
                "wild-read"
            );
            // Regrouped: the old group was emptied and removed.
            let (_, groups) = server.get_json("/api/v1/groups").await;
            assert_eq!(groups["groups"].as_array().unwrap().len(), 1);
            assert_eq!(groups["groups"][0]["event_count"], 1);
            // Manual reprocessing works too and keeps it indexed once.
            let response = server
                .client
                .post(server.url(&format!("/api/v1/crashes/bp-{id}/reprocess")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let again = settled(&server, &id).await;
            assert_eq!(again["crash"]["signature"], crash["crash"]["signature"]);
            let (_, groups) = server.get_json("/api/v1/groups").await;
            assert_eq!(groups["groups"][0]["event_count"], 1);
            let response = server
                .client
                .get(server.url("/api/v1/crashes/nope/reprocess"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 405, "reprocess is a POST");
            let response = server
                .client
                .post(server.url("/api/v1/crashes/nope/reprocess"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 404);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the crash was not reprocessed after the upload");
}
}

on_both_databases! {
async fn a_dump_that_cannot_be_processed_is_kept_as_failed_with_its_reason(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let ct = "multipart/form-data; boundary=XyZ";
    // A minidump header with nothing behind it: accepted (it is a minidump), fails processing.
    let truncated = fixture_bytes("minidumps/rust-minidump/invalid-range.dmp");
    let (status, reply) = post(
        &server,
        "/submit",
        Some(ct),
        &[],
        multipart("XyZ", &[("upload_file_minidump", Some("a"), &truncated)]),
    )
    .await;
    assert_eq!(status, 200);
    let crash = settled(&server, &crash_id(&reply)).await;
    assert_eq!(crash["state"], "failed");
    assert!(
        crash["error"]
            .as_str()
            .unwrap()
            .contains("corrupt or truncated minidump"),
        "{crash}"
    );
    let _ = fixture("minidumps/rust-minidump/invalid-range.dmp");
}
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_failure_is_503_and_nothing_is_acknowledged() {
    let server = TestServer::start().await;
    let dump = std::fs::read(generated("null-write.dmp")).unwrap();
    let ct = "multipart/form-data; boundary=XyZ";
    // Break the store: a plain file where the crashes folder must go.
    let blocker = server.store_root.join("crashes");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let body = multipart("XyZ", &[("upload_file_minidump", Some("a"), &dump)]);
    let (status, reply) = post(&server, "/submit", Some(ct), &[], body.clone()).await;
    assert_eq!(status, 503, "{reply}");
    assert!(!reply.contains("CrashID"));
    let (_, groups) = server.get_json("/api/v1/groups").await;
    assert!(groups["groups"].as_array().unwrap().is_empty());
    // Repaired: the retry is accepted and processed.
    std::fs::remove_file(&blocker).unwrap();
    let (status, reply) = post(&server, "/submit", Some(ct), &[], body).await;
    assert_eq!(status, 200);
    assert_eq!(
        settled(&server, &crash_id(&reply)).await["state"],
        "processed"
    );
}
