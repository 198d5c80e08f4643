//! sentry-cli's chunked debug-file upload: the real `sentry-cli debug-files upload` (PyPI's
//! package, installed by tests/run.sh) pointed at faultline, and the protocol's edges (bad
//! chunks, missing chunks, a wrong checksum, a file that is not a debug file) spoken directly.

use crate::common;

use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use common::{
    fixture_bytes, fixture_dir, gzip, multipart, symbolicate_js, tool_present, TestServer,
};

/// The debug ID of ../shared's `debug-files/linux/crash.debug`.
const ELF_ID: &str = "c0bcc3f1-9827-fe65-3058-404b2831d9e6";
/// The debug ID of ../shared's `debug-files/windows/crash.pdb`.
const PDB_ID: &str = "3249d99d-0c40-4931-8610-f4e4fb0b6936-1";

/// `sentry-cli --url SERVER --auth-token TOKEN debug-files upload … DIR`; success and output.
pub(crate) async fn sentry_cli_upload(
    server: &TestServer,
    token: &str,
    dir: &std::path::Path,
) -> (bool, String) {
    let dir = dir.to_string_lossy();
    sentry_cli(
        server,
        token,
        &[
            "debug-files",
            "upload",
            "--org",
            "acme",
            "--project",
            "default",
            &dir,
        ],
    )
    .await
}

/// `sentry-cli --url SERVER --auth-token TOKEN ARGS`; success and output.
async fn sentry_cli(server: &TestServer, token: &str, args: &[&str]) -> (bool, String) {
    common::sentry_cli_in(server, token, None, args).await
}

/// The SHA-256s of the files stored for `debug_id`.
async fn stored_sha256s(server: &TestServer, debug_id: &str) -> Vec<String> {
    let (status, body) = server
        .get_json(&format!("/api/v1/symbols?debug_id={debug_id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["sha256"].as_str().unwrap().to_owned())
        .collect()
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[tokio::test(flavor = "multi_thread")]
async fn real_sentry_cli_uploads_debug_files_in_chunks() {
    if !tool_present("sentry-cli") {
        return;
    }
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let elf = fixture_bytes("debug-files/linux/crash.debug");
    let pdb = fixture_bytes("debug-files/windows/crash.pdb");
    std::fs::write(dir.path().join("crash.debug"), &elf).unwrap();
    std::fs::write(dir.path().join("crash.pdb"), &pdb).unwrap();
    // Past one 8 MiB chunk: the same ELF with padding after it (ELF readers ignore it), so the
    // file travels as two chunks and is put back together in order.
    let mut padded = elf.clone();
    padded.extend((0..9u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(dir.path().join("padded.debug"), &padded).unwrap();

    let (ok, out) = sentry_cli_upload(&server, &server.admin_token, dir.path()).await;
    assert!(ok, "{out}");
    assert!(out.contains(&format!("OK {ELF_ID}")), "{out}");
    assert!(out.contains(&format!("OK {PDB_ID}")), "{out}");
    let mut elf_files = stored_sha256s(&server, ELF_ID).await;
    elf_files.sort();
    let mut expected = vec![sha256(&elf), sha256(&padded)];
    expected.sort();
    assert_eq!(elf_files, expected, "both ELF files, byte for byte");
    assert_eq!(stored_sha256s(&server, PDB_ID).await, vec![sha256(&pdb)]);
    let stored = server.stored_files();
    assert!(
        !stored.iter().any(|f| f.starts_with("chunks/")),
        "chunks are dropped once assembled: {stored:?}"
    );
    // Again: the server knows every file by its checksum, nothing is sent.
    let (ok, out) = sentry_cli_upload(&server, &server.admin_token, dir.path()).await;
    assert!(ok, "{out}");
    assert!(out.contains("Nothing to upload"), "{out}");

    // A deleted file is no longer known: the next run sends it again.
    assert_eq!(
        server.delete(&format!("/api/v1/symbols/{PDB_ID}")).await,
        200
    );
    let (ok, out) = sentry_cli_upload(&server, &server.admin_token, dir.path()).await;
    assert!(ok, "{out}");
    assert!(out.contains("Uploaded 1 missing"), "{out}");
    assert_eq!(stored_sha256s(&server, PDB_ID).await, vec![sha256(&pdb)]);

    // A token that may only read symbols cannot upload.
    let (reader, _) = server
        .create_token(json!({ "scopes": ["symbols:read"] }))
        .await;
    let (ok, out) = sentry_cli_upload(&server, &reader, dir.path()).await;
    assert!(!ok, "{out}");
}

/// POSTs chunk parts (field name, file name, bytes); returns status and JSON answer.
async fn send_chunks(server: &TestServer, parts: &[(&str, Option<&str>, &[u8])]) -> (u16, Value) {
    let response = server
        .client
        .post(server.url("/api/0/organizations/acme/chunk-upload/"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(multipart("B", parts))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// POSTs an assemble request for project `project`; returns status and JSON answer.
async fn assemble(server: &TestServer, project: &str, body: &Value) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(&format!(
            "/api/0/projects/acme/{project}/files/difs/assemble/"
        )))
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn sha1(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

#[tokio::test(flavor = "multi_thread")]
async fn chunk_protocol_checks_every_chunk_and_every_file() {
    let server = TestServer::start().await;
    let (status, options) = server
        .get_json("/api/0/organizations/acme/chunk-upload/")
        .await;
    assert_eq!(status, 200);
    assert_eq!(options["hashAlgorithm"], "sha1");
    assert_eq!(options["url"], "organizations/acme/chunk-upload/");
    let chunk_size = options["chunkSize"].as_u64().unwrap() as usize;
    assert_eq!(chunk_size, 8 << 20);

    let file = fixture_bytes("debug-files/linux/crash.sym");
    let (first, second) = file.split_at(file.len() / 2);
    let (c1, c2, whole) = (sha1(first), sha1(second), sha1(&file));
    let request = json!({ whole.clone(): { "name": "crash.sym", "chunks": [c1, c2] } });

    // Nothing sent yet: both chunks are missing, in order.
    let (status, answer) = assemble(&server, "default", &request).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer[&whole]["state"], "not_found");
    assert_eq!(answer[&whole]["missingChunks"], json!([c1, c2]));

    // A chunk whose bytes do not match its name is refused, and not kept.
    let (status, answer) = send_chunks(&server, &[("file", Some(&c1), second)]).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("SHA-1"),
        "{answer}"
    );
    // Not gzip in a gzip part; a part of another name; a name that is no SHA-1.
    let (status, answer) = send_chunks(&server, &[("file_gzip", Some(&c1), first)]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("gzip"),
        "{answer}"
    );
    let (status, _) = send_chunks(&server, &[("chunk", Some(&c1), first)]).await;
    assert_eq!(status, 400);
    let (status, answer) = send_chunks(&server, &[("file", Some("../../x"), first)]).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("not a SHA-1"),
        "{answer}"
    );
    let response = server
        .client
        .post(server.url("/api/0/organizations/acme/chunk-upload/"))
        .body(first.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // The first chunk, gzip-compressed as sentry-cli sends it: only the second is missing.
    let (status, answer) = send_chunks(&server, &[("file_gzip", Some(&c1), &gzip(first))]).await;
    assert_eq!(status, 200, "{answer}");
    let (_, answer) = assemble(&server, "default", &request).await;
    assert_eq!(answer[&whole]["missingChunks"], json!([c2]));

    // All here, but in the wrong order: the result does not hash to the file's SHA-1.
    let (status, _) = send_chunks(&server, &[("file", Some(&c2), second)]).await;
    assert_eq!(status, 200);
    let swapped = json!({ whole.clone(): { "name": "crash.sym", "chunks": [c2, c1] } });
    let (_, answer) = assemble(&server, "default", &swapped).await;
    assert_eq!(answer[&whole]["state"], "error");
    assert!(
        answer[&whole]["detail"].as_str().unwrap().contains("SHA-1"),
        "{answer}"
    );

    // In order: stored, and described as Sentry describes a debug file.
    let (_, answer) = assemble(&server, "default", &request).await;
    assert_eq!(answer[&whole]["state"], "ok", "{answer}");
    let dif = &answer[&whole]["dif"];
    assert_eq!(dif["sha1"], whole);
    assert_eq!(dif["objectName"], "crash");
    assert_eq!(dif["cpuName"], "x86_64");
    assert_eq!(dif["debugId"], ELF_ID);
    assert_eq!(stored_sha256s(&server, ELF_ID).await, vec![sha256(&file)]);

    // A file that is no debug file: an error with the reason, nothing stored.
    let junk = b"this is not a debug file at all".to_vec();
    let junk_sha = sha1(&junk);
    send_chunks(&server, &[("file", Some(&junk_sha), &junk)]).await;
    let (_, answer) = assemble(
        &server,
        "default",
        &json!({ junk_sha.clone(): { "name": "notes.txt", "chunks": [junk_sha] } }),
    )
    .await;
    assert_eq!(answer[&junk_sha]["state"], "error");
    assert!(
        answer[&junk_sha]["detail"]
            .as_str()
            .unwrap()
            .starts_with("notes.txt: "),
        "{answer}"
    );

    // Malformed requests and unknown projects.
    let (status, answer) = assemble(&server, "default", &json!({ "x": 1 })).await;
    assert_eq!(status, 400, "{answer}");
    let (_, answer) = assemble(
        &server,
        "default",
        &json!({ whole.clone(): { "name": "crash.sym", "chunks": [] } }),
    )
    .await;
    assert_eq!(answer[&whole]["state"], "error");
    let (status, answer) = assemble(&server, "nope", &request).await;
    assert_eq!(status, 404, "{answer}");
}

/// The webpack fixture in a temporary folder, given a debug ID by `sentry-cli sourcemaps inject`
/// and uploaded by `sentry-cli sourcemaps upload` (an artifact bundle).
async fn injected_webpack_uploaded(server: &TestServer) -> tempfile::TempDir {
    let dist = fixture_dir(
        "sourcemaps/symbolic/webpack",
        &["bundle.js", "bundle.js.map"],
    );
    let dir = dist.path().to_string_lossy().into_owned();
    let upload = [
        "sourcemaps",
        "upload",
        "--org",
        "acme",
        "--project",
        "default",
        &dir,
    ];
    for args in [&["sourcemaps", "inject", &dir][..], &upload[..]] {
        let (ok, out) = sentry_cli(server, &server.admin_token, args).await;
        assert!(ok, "{out}");
        assert!(
            args[1] != "upload" || out.contains("artifact bundle"),
            "{out}"
        );
    }
    dist
}

/// `sentry-cli sourcemaps inject` then `sourcemaps upload` (an artifact bundle through the
/// chunk upload): frames of the injected bundle resolve by debug ID; files uploaded without
/// debug IDs under `--release` and `--url-prefix` resolve by release and URL.
#[tokio::test(flavor = "multi_thread")]
async fn real_sentry_cli_uploads_source_maps_as_artifact_bundles() {
    if !tool_present("sentry-cli") {
        return;
    }
    let server = TestServer::start().await;
    let dist = injected_webpack_uploaded(&server).await;
    let injected = std::fs::read_to_string(dist.path().join("bundle.js")).unwrap();
    let debug_id = injected
        .lines()
        .find_map(|l| l.strip_prefix("//# debugId="))
        .expect("sentry-cli injected a debug ID")
        .trim()
        .to_owned();

    // `inject` puts a snippet before the code: find the throw where it now is.
    let (throw_line, throw_column) = injected
        .lines()
        .enumerate()
        .find_map(|(i, l)| Some((i + 1, l.find("throw new Error")? + 1)))
        .unwrap();
    let url = "https://example.com/static/bundle.js";
    let answer = symbolicate_js(
        &server,
        json!({
            "stacktraces": [{"frames": [{"abs_path": url, "lineno": throw_line, "colno": throw_column}]}],
            "modules": [{"type": "sourcemap", "code_file": url, "debug_id": debug_id}],
        }),
    )
    .await;
    let frame = &answer["stacktraces"][0]["frames"][0];
    assert_eq!(frame["filename"], "./foo.js", "{answer}");
    assert_eq!(frame["lineno"], 2);
    assert_eq!(frame["data"]["resolved_with"], "debug-id");

    // Without debug IDs, under a release.
    let plain = fixture_dir(
        "sourcemaps/symbolic/simple",
        &["minified.js", "minified.js.map"],
    );
    let plain_dir = plain.path().to_string_lossy().into_owned();
    let (ok, out) = sentry_cli(
        &server,
        &server.admin_token,
        &[
            "sourcemaps",
            "upload",
            "--org",
            "acme",
            "--project",
            "default",
            "--release",
            "app@1.0",
            "--url-prefix",
            "~/static/js",
            &plain_dir,
        ],
    )
    .await;
    assert!(ok, "{out}");
    let answer = symbolicate_js(
        &server,
        json!({
            "stacktraces": [{"frames": [{"abs_path": "https://example.com/static/js/minified.js", "lineno": 1, "colno": 10}]}],
            "release": "app@1.0",
        }),
    )
    .await;
    let frame = &answer["stacktraces"][0]["frames"][0];
    assert_eq!(frame["function"], "abcd", "{answer}");
    assert_eq!(frame["data"]["resolved_with"], "release");
}

/// The real JavaScript SDK end to end: the webpack fixture's bundle, injected and uploaded with
/// sentry-cli, run by Node with `@sentry/node`; the SDK's event (its `debug_meta` naming the
/// bundle's debug ID) comes in through the envelope route and its frames come out original.
#[tokio::test(flavor = "multi_thread")]
async fn real_sentry_node_sdk_events_resolve_through_injected_debug_ids() {
    if !tool_present("sentry-cli") || !tool_present("node") {
        return;
    }
    let Some(sdk) = common::sentry_node_module() else {
        assert!(
            !common::services_required(),
            "@sentry/node is required (tests/run.sh installs it; FAULTLINE_TEST_SENTRY_NODE)"
        );
        return eprintln!("skipping: @sentry/node is not installed");
    };
    let server = TestServer::start().await;
    let dist = injected_webpack_uploaded(&server).await;
    // The app: loads the bundle (which throws) and reports what it threw.
    let runner = dist.path().join("run.js");
    std::fs::write(
        &runner,
        "const Sentry = require(process.env.SENTRY_NODE);\n\
         Sentry.init({ dsn: process.argv[2], release: 'node-app@1.0', environment: 'test' });\n\
         try { require(process.argv[3]); } catch (e) { Sentry.captureException(e); }\n\
         Sentry.flush(10000).then((ok) => process.exit(ok ? 0 : 3));\n",
    )
    .unwrap();
    let dsn = format!("http://public@{}/1", server.addr);
    let output = tokio::process::Command::new("node")
        .arg(&runner)
        .arg(&dsn)
        .arg(dist.path().join("bundle.js"))
        .env("SENTRY_NODE", &sdk)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id = common::crash_with_annotation(&server, "release=node-app@1.0").await;
    let done = common::settled(&server, &id).await;
    let p = &done["processed"];
    assert_eq!(done["crash"]["kind"], "event", "{done}");
    assert_eq!(p["platform"], "node");
    assert_eq!(p["sdk"]["name"], "sentry.javascript.node");
    let frames = p["exceptions"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap();
    let resolved: Vec<&Value> = frames
        .iter()
        .filter(|f| f["status"] == "resolved")
        .collect();
    assert!(resolved.len() >= 2, "{frames:?}");
    let throw = resolved.last().unwrap();
    assert_eq!(throw["filename"], "./foo.js", "{throw}");
    assert_eq!(throw["lineno"], 2);
    assert_eq!(throw["context_line"], "  throw new Error(\"wat\");");
    assert!(resolved.iter().any(|f| f["filename"] == "./bar.js"));
    // Grouped by in-app frames; the signature starts with what was thrown.
    assert_eq!(p["grouping"]["method"], "in_app_frames");
    assert!(
        done["crash"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("Error | module.exports"),
        "{}",
        done["crash"]
    );
}
