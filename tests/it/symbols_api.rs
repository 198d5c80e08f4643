//! The symbol store over real HTTP on loopback: uploads of every fixture kind, archives,
//! rejections, dedupe, lookups, downloads, the Breakpad layout and derived caches.

use crate::common;

use std::io::Write;

use common::{fixture, fixture_bytes, sym_identity, TestServer};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn statuses(body: &Value) -> Vec<(String, String)> {
    body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default();
        for (name, data) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
    }
    out.into_inner()
}

fn tar_of(entries: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    if !gzip {
        return tar;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_kind_uploads_and_is_found_by_its_ids() {
    let server = TestServer::start().await;
    // (fixture, .sym with the same identity or None, expected format)
    let cases = [
        (
            "debug-files/linux/crash",
            Some("debug-files/linux/crash.sym"),
            "elf",
        ),
        (
            "debug-files/linux/crash.debug",
            Some("debug-files/linux/crash.sym"),
            "elf",
        ),
        (
            "debug-files/macos/crash",
            Some("debug-files/macos/crash.sym"),
            "macho",
        ),
        (
            "debug-files/windows/crash.pdb",
            Some("debug-files/windows/crash.sym"),
            "pdb",
        ),
        (
            "debug-files/windows/crash.exe",
            Some("debug-files/windows/crash.sym"),
            "pe",
        ),
        (
            "debug-files/windows/CrashWithException.pdb",
            Some("debug-files/windows/CrashWithException.pdb.sym"),
            "pdb",
        ),
        (
            "debug-files/breakpad/xul.sym",
            Some("debug-files/breakpad/xul.sym"),
            "breakpad",
        ),
        ("debug-files/wasm/simple.wasm", None, "wasm"),
        ("debug-files/windows/portable.pdb", None, "portablepdb"),
    ];
    for (rel, sym, format) in cases {
        let (status, body) = server.upload_fixture(rel).await;
        assert_eq!(status, 200, "{rel}: {body}");
        let file = &body["files"][0];
        assert_eq!(file["status"], "stored", "{rel}");
        assert_eq!(file["file"]["format"], format, "{rel}");
        let sha = hex::encode(Sha256::digest(fixture_bytes(rel)));
        assert_eq!(file["file"]["sha256"], sha.as_str(), "{rel}");
        let debug_id = file["file"]["debug_id"].as_str().unwrap().to_owned();
        if let Some(sym) = sym {
            let (_, _, breakpad_id, _, code) = sym_identity(sym);
            // Lookup with the Breakpad spelling (uppercase, no hyphens) finds the hyphenated ID.
            let (status, found) = server
                .get_json(&format!("/api/v1/symbols?debug_id={breakpad_id}"))
                .await;
            assert_eq!(status, 200);
            assert!(
                found["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["sha256"] == sha.as_str()),
                "{rel} found by {breakpad_id}"
            );
            if let (Some((code_id, _)), Some(stored_code)) =
                (code, file["file"]["code_id"].as_str())
            {
                assert_eq!(stored_code, code_id.to_lowercase(), "{rel}");
                let (_, found) = server
                    .get_json(&format!("/api/v1/symbols?code_id={code_id}"))
                    .await;
                assert!(found["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["debug_id"] == debug_id.as_str()));
            }
        }
    }
    // By name, case-insensitively.
    let (_, found) = server.get_json("/api/v1/symbols?name=CRASH.PDB").await;
    let formats: Vec<&str> = found["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["format"].as_str().unwrap())
        .collect();
    assert!(
        formats.contains(&"pdb") && formats.contains(&"pe"),
        "{found}"
    );
    let (_, found) = server.get_json("/api/v1/symbols?name=no-such-module").await;
    assert_eq!(found["files"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_content_is_stored_once() {
    let server = TestServer::start().await;
    let rel = "debug-files/linux/crash.debug";
    let (_, first) = server.upload_fixture(rel).await;
    assert_eq!(first["files"][0]["status"], "stored");
    let before = server.stored_files();
    let (status, second) = server.upload(rel, fixture_bytes(rel)).await;
    assert_eq!(status, 200);
    assert_eq!(second["files"][0]["status"], "already_present");
    assert_eq!(second["already_present"], 1);
    let originals: Vec<_> = server
        .stored_files()
        .into_iter()
        .filter(|p| p.ends_with(".elf.zst"))
        .collect();
    assert_eq!(originals.len(), 1, "one original for one content");
    assert_eq!(
        before.iter().filter(|p| p.starts_with("symbols/")).count(),
        server
            .stored_files()
            .iter()
            .filter(|p| p.starts_with("symbols/"))
            .count()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_uploads_report_each_part() {
    let server = TestServer::start().await;
    let form = reqwest::multipart::Form::new()
        .part(
            "a",
            reqwest::multipart::Part::bytes(fixture_bytes("debug-files/windows/crash.pdb"))
                .file_name("crash.pdb"),
        )
        .part(
            "b",
            reqwest::multipart::Part::bytes(fixture_bytes("debug-files/windows/crash.exe"))
                .file_name("crash.exe"),
        )
        .part(
            "c",
            reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("notes.txt"),
        );
    let response = server
        .client
        .post(server.url("/api/v1/symbols"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        statuses(&body),
        [
            ("crash.pdb".to_owned(), "stored".to_owned()),
            ("crash.exe".to_owned(), "stored".to_owned()),
            ("notes.txt".to_owned(), "rejected".to_owned()),
        ]
    );
    assert!(body["files"][2]["reason"]
        .as_str()
        .unwrap()
        .contains("not a debug file"));
    assert_eq!(
        (body["stored"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tecken_zips_are_handled_like_a_symbol_server_should() {
    let server = TestServer::start().await;
    let zip = |name: &str| fixture_bytes(&format!("upload-archives/tecken/{name}"));

    let (status, body) = server.upload("sample.zip", zip("sample.zip")).await;
    assert_eq!(status, 200, "{body}");
    let sym = "xpcshell.dbg/A7D6F1BB18CD4CB48/xpcshell.sym";
    assert_eq!(
        statuses(&body),
        [
            ("build-symbols.txt".to_owned(), "rejected".to_owned()),
            ("flag/deadbeef/flag.jpeg".to_owned(), "rejected".to_owned()),
            (sym.to_owned(), "stored".to_owned()),
        ]
    );
    // The content's MODULE line decides the debug ID, whatever the folder says.
    assert_eq!(
        body["files"][2]["file"]["debug_id"],
        "bbaca09f-d1c1-3f6c-8425-4bfd8732af40"
    );

    let (status, body) = server
        .upload(
            "sample-with-ignorable-files.zip",
            zip("sample-with-ignorable-files.zip"),
        )
        .await;
    assert_eq!(status, 200);
    let skipped: Vec<_> = statuses(&body)
        .into_iter()
        .filter(|(_, s)| s == "skipped")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        skipped,
        ["flag/.DS_Store", "xpcshell.dbg/A7D6F1BB18CD4CB48/.DS_Store"]
    );
    assert_eq!(body["already_present"], 1);

    // Two copies of one file under different names: stored once, then already present.
    let fresh = TestServer::start().await;
    let (status, body) = fresh
        .upload("invalid-characters.zip", zip("invalid-characters.zip"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(&body)
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>(),
        ["stored", "already_present"]
    );

    // A .sym outside the MODULE/DEBUGID tree is still identified by its content.
    let (status, body) = TestServer::start()
        .await
        .upload("invalid.zip", zip("invalid.zip"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["stored"], 1);

    // Two entries under one name: which one is meant is ambiguous, so the archive is refused.
    for name in ["duplicated-same-size.zip", "duplicated-different-size.zip"] {
        let (status, body) = server.upload(name, zip(name)).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("2 entries under only 1 distinct names"),
            "{body}"
        );
    }

    let (status, body) = server
        .upload(
            "notazipdespiteitsname.zip",
            zip("notazipdespiteitsname.zip"),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("not a debug file"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dsym_bundles_and_breakpad_trees_in_tar_archives() {
    let server = TestServer::start().await;
    let dwarf = fixture_bytes("debug-files/macos/crash.dSYM/Contents/Resources/DWARF/crash");
    let plist = fixture_bytes("debug-files/macos/crash.dSYM/Contents/Info.plist");
    let tgz = tar_of(
        &[
            ("crash.dSYM/Contents/Info.plist", &plist),
            ("crash.dSYM/Contents/Resources/DWARF/crash", &dwarf),
        ],
        true,
    );
    let (status, body) = server.upload("crash.dSYM.tar.gz", tgz).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        statuses(&body)
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>(),
        ["skipped", "stored"]
    );
    assert_eq!(
        body["files"][1]["file"]["debug_id"],
        "67e9247c-814e-392b-a027-dbde6748fcbf"
    );
    assert_eq!(body["files"][1]["file"]["role"], "dbg");

    let test_app = "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym";
    let client = "crash-client/509C0610949836F7B70BD88BCF03E5400/crash-client.sym";
    let tar = tar_of(
        &[
            (
                test_app,
                &fixture_bytes(&format!("symbols/breakpad/{test_app}")),
            ),
            (
                client,
                &fixture_bytes(&format!("symbols/breakpad/{client}")),
            ),
        ],
        false,
    );
    let (status, body) = server.upload("symbols.tar", tar).await;
    assert_eq!(status, 200);
    assert_eq!(body["stored"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsafe_archive_paths_are_refused_entry_by_entry() {
    let server = TestServer::start().await;
    let sym = fixture_bytes("debug-files/windows/crash.sym");
    let zip = zip_of(&[
        ("../escape.sym", &sym),
        ("/etc/absolute.sym", &sym),
        ("ctrl\u{1b}[31m.sym", &sym),
        ("ok/crash.sym", &sym),
    ]);
    let (status, body) = server.upload("evil.zip", zip).await;
    assert_eq!(status, 200, "{body}");
    let files = body["files"].as_array().unwrap();
    assert!(files[0]["reason"].as_str().unwrap().contains(".."));
    assert!(files[1]["reason"].as_str().unwrap().contains("absolute"));
    assert!(files[2]["reason"].as_str().unwrap().contains("control"));
    assert_eq!(files[3]["status"], "stored");
    // Nothing landed outside the store or under an entry's own name.
    assert!(server
        .stored_files()
        .iter()
        .all(|p| !p.contains("escape") && !p.contains("absolute")));
    assert!(!server.store_root.join("../escape.sym").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_bombs_are_refused_whole_and_leave_nothing() {
    let server = TestServer::start_with(|config| {
        config.limits.max_archive_entries = 3;
        config.limits.max_archive_unpacked_bytes = 1 << 20;
    })
    .await;
    let sym = fixture_bytes("debug-files/windows/crash.sym");
    let many = zip_of(&[
        ("a.sym", &sym),
        ("b.sym", b"x"),
        ("c.sym", b"x"),
        ("d.sym", b"x"),
        ("e.sym", b"x"),
    ]);
    let (status, body) = server.upload("many.zip", many).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("more than 3 entries"),
        "{body}"
    );

    // 8 MiB of zeros compresses to a few KiB; the real size is counted, not the header's.
    let zeros = vec![0u8; 8 << 20];
    let bomb = zip_of(&[("crash.sym", &sym), ("zeros.bin", &zeros)]);
    assert!(bomb.len() < 100_000);
    let (status, body) = server.upload("bomb.zip", bomb).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("expand past"),
        "{body}"
    );
    let gz_bomb = tar_of(&[("crash.sym", &sym), ("zeros.bin", &zeros)], true);
    let (status, _) = server.upload("bomb.tar.gz", gz_bomb).await;
    assert_eq!(status, 400);
    // The valid .sym listed before the bomb was not stored: the archive is all or nothing.
    assert!(
        server
            .stored_files()
            .iter()
            .all(|p| !p.starts_with("symbols/")),
        "{:?}",
        server.stored_files()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_get_413_with_and_without_content_length() {
    let server = TestServer::start_with(|config| config.limits.max_upload_bytes = 10_000).await;
    let body = vec![7u8; 20_000];
    let (status, json) = server.upload("big", body.clone()).await;
    assert_eq!(status, 413);
    assert!(json["error"].as_str().unwrap().contains("10000-byte limit"));
    // Chunked, so the server only learns the size while reading.
    let stream = futures::stream::iter(
        body.chunks(4096)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = server
        .client
        .post(server.url("/api/v1/symbols?name=big"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let json: Value = response.json().await.unwrap();
    assert!(json["error"].is_string());
    assert!(server.stored_files().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_and_anonymous_files_are_rejected_with_reasons() {
    let server = TestServer::start().await;
    let elf = fixture_bytes("debug-files/linux/crash.debug");
    let (status, body) = server
        .upload("crash.debug", elf[..elf.len() / 3].to_vec())
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("corrupt or truncated elf"),
        "{body}"
    );
    let (status, body) = server
        .upload(
            "cfi-only.sym",
            fixture_bytes("minidumps/symbolic/crash_linux.sym"),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("no debug ID"),
        "{body}"
    );
    let (status, body) = server.upload("empty", Vec::new()).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("not a debug file"));
    assert!(server
        .stored_files()
        .iter()
        .all(|p| !p.starts_with("symbols/")));
}

#[tokio::test(flavor = "multi_thread")]
async fn lookups_validate_their_parameters() {
    let server = TestServer::start().await;
    for query in [
        "",
        "?debug_id=xyz",
        "?code_id=nothex",
        "?debug_id=a&name=b",
        "?name=",
    ] {
        let (status, body) = server.get_json(&format!("/api/v1/symbols{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(body["error"].is_string());
    }
    let (status, body) = server.get_json("/api/v1/symbols/not-an-id/caches").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("not a debug ID"));
    let (status, _) = server.get_json("/no/such/route").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_return_the_original_bytes() {
    let server = TestServer::start().await;
    let rel = "debug-files/windows/crash.pdb";
    let (_, body) = server.upload_fixture(rel).await;
    let file = &body["files"][0]["file"];
    let url = format!(
        "/api/v1/symbols/{}/{}",
        file["debug_id"].as_str().unwrap(),
        file["sha256"].as_str().unwrap()
    );
    let response = server.client.get(server.url(&url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().to_vec(), fixture_bytes(rel));
    let missing = format!(
        "/api/v1/symbols/{}/{}",
        file["debug_id"].as_str().unwrap(),
        "0".repeat(64)
    );
    assert_eq!(server.get_json(&missing).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn breakpad_layout_serves_stored_sym_files() {
    let server = TestServer::start().await;
    let rel = "symbols/breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym";
    server.upload_fixture(rel).await;
    let response = server
        .client
        .get(server.url("/symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().to_vec(), fixture_bytes(rel));
    // Lowercase debug ID spelling works too.
    let response = server
        .client
        .get(server.url("/symbols/test_app.pdb/5a9832e5287241c1838ed98914e9b7ff1/test_app.sym"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = server
        .get_json("/symbols/other.pdb/0000000000000000000000000000000A1/other.sym")
        .await;
    assert_eq!(status, 404);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("no debug files stored"));
}

#[tokio::test(flavor = "multi_thread")]
async fn caches_combine_a_stripped_binary_with_its_debug_file() {
    let server = TestServer::start_with(|config| config.caches.build_on_upload = false).await;
    let id = "c0bcc3f1-9827-fe65-3058-404b2831d9e6";
    let (_, exe) = server.upload_fixture("debug-files/linux/crash").await;
    let exe_sha = exe["files"][0]["file"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();

    // Only the stripped binary: both caches come from it (symbol table + .eh_frame).
    let (status, caches) = server
        .get_json(&format!("/api/v1/symbols/{id}/caches"))
        .await;
    assert_eq!(status, 200, "{caches}");
    assert_eq!(caches["caches"][0]["source"]["sha256"], exe_sha.as_str());
    assert_eq!(caches["caches"][1]["source"]["sha256"], exe_sha.as_str());

    // The debug file arrives: the SymCache is rebuilt from it, the CFI stays with the binary.
    let (_, dbg) = server.upload_fixture("debug-files/linux/crash.debug").await;
    let dbg_sha = dbg["files"][0]["file"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, caches) = server
        .get_json(&format!("/api/v1/symbols/{id}/caches"))
        .await;
    assert_eq!(caches["caches"][0]["kind"], "symcache");
    assert_eq!(caches["caches"][0]["source"]["sha256"], dbg_sha.as_str());
    assert_eq!(caches["caches"][1]["kind"], "cfi");
    assert_eq!(caches["caches"][1]["source"]["sha256"], exe_sha.as_str());
    let stored = server.stored_files();
    assert!(
        stored.contains(&format!("caches/{id}/symcache.v2")),
        "{stored:?}"
    );
    assert!(stored.contains(&format!("caches/{id}/cfi.v1")));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_uploads_and_requests() {
    let server = TestServer::start().await;
    server.upload_fixture("debug-files/windows/crash.sym").await;
    let (status, health) = server.get_json("/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let text = server.metrics().await;
    assert!(
        text.contains("faultline_symbol_files_total{status=\"stored\"}"),
        "{text}"
    );
    assert!(text.contains(
        "faultline_http_requests_total{method=\"POST\",route=\"/api/v1/symbols\",status=\"200\"}"
    ));
    let _ = fixture("debug-files/windows/crash.sym");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_files_rebuilds_caches_from_the_rest_and_leaves_nothing_behind() {
    let server = TestServer::start().await;
    let id = "c0bcc3f1-9827-fe65-3058-404b2831d9e6";
    let sha = |answer: &Value| {
        answer["files"][0]["file"]["sha256"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (_, exe) = server.upload_fixture("debug-files/linux/crash").await;
    let (_, dbg) = server.upload_fixture("debug-files/linux/crash.debug").await;
    let (exe_sha, dbg_sha) = (sha(&exe), sha(&dbg));
    let (_, caches) = server
        .get_json(&format!("/api/v1/symbols/{id}/caches"))
        .await;
    assert_eq!(caches["caches"][0]["source"]["sha256"], dbg_sha.as_str());

    // The debug file goes: the SymCache is rebuilt from the stripped binary that remains.
    let response = server
        .client
        .delete(server.url(&format!("/api/v1/symbols/{id}/{}", dbg_sha.to_uppercase())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["deleted"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["deleted"][0]["sha256"], dbg_sha.as_str());
    let (_, listed) = server
        .get_json(&format!("/api/v1/symbols?debug_id={id}"))
        .await;
    let listed: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [exe_sha.as_str()]);
    let stored = server.stored_files();
    assert!(stored.iter().all(|k| !k.contains(&dbg_sha)), "{stored:?}");
    let cache = server
        .client
        .get(server.url(&format!("/api/v1/symbols/{id}/caches")))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(cache["caches"][0]["source"]["sha256"], exe_sha.as_str());
    // Symbol servers no longer hand out the debug file.
    let (status, _) = server
        .get_json("/buildid/f1c3bcc0279865fe3058404b2831d9e64135386c/debuginfo")
        .await;
    assert_eq!(status, 404);

    // The whole module goes: no record, bytes, index entry or cache is left.
    assert_eq!(server.delete(&format!("/api/v1/symbols/{id}")).await, 200);
    let left: Vec<String> = server
        .stored_files()
        .into_iter()
        .filter(|k| k.contains(id) || k.starts_with("names/") || k.starts_with("code-ids/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let (_, found) = server.get_json("/api/v1/symbols?name=crash").await;
    assert_eq!(found["files"].as_array().unwrap().len(), 0, "{found}");

    // Nothing left to delete; malformed IDs and hashes are refused.
    assert_eq!(server.delete(&format!("/api/v1/symbols/{id}")).await, 404);
    assert_eq!(
        server
            .delete(&format!("/api/v1/symbols/{id}/{exe_sha}"))
            .await,
        404
    );
    assert_eq!(server.delete("/api/v1/symbols/not-an-id").await, 400);
    assert_eq!(
        server.delete(&format!("/api/v1/symbols/{id}/abc")).await,
        400
    );
}
