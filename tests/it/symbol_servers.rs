//! The symbol store as the team's symbol server, spoken to by the real clients that run here
//! (elfutils' `debuginfod-find` and gdb fetch uploaded ELF debug files by build ID), in
//! Microsoft's symbol-server layout, and the missing-symbols report that says what to upload.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{crasher_ids, fixture, fixture_bytes, submit, tool_present, TestServer};

/// The GNU build ID of ../shared's `debug-files/linux/crash` and `crash.debug`.
const BUILD_ID: &str = "f1c3bcc0279865fe3058404b2831d9e64135386c";

/// `debuginfod-find ARGS` against `server`, with its own empty cache; stdout and stderr on
/// success (the fetched file's path is stdout), the error text otherwise.
fn debuginfod_find(
    server: &TestServer,
    cache: &Path,
    headers: Option<&Path>,
    args: &[&str],
) -> Result<String, String> {
    let mut command = Command::new("debuginfod-find");
    command
        .args(args)
        .env("DEBUGINFOD_URLS", server.url(""))
        .env("DEBUGINFOD_CACHE_PATH", cache)
        .env("DEBUGINFOD_TIMEOUT", "20")
        .env_remove("DEBUGINFOD_HEADERS_FILE");
    if let Some(headers) = headers {
        command.env("DEBUGINFOD_HEADERS_FILE", headers);
    }
    let output = command.output().expect("debuginfod-find runs");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout} {stderr}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn debuginfod_find_fetches_uploaded_elf_files_by_build_id() {
    if !tool_present("debuginfod-find") {
        return;
    }
    let server = TestServer::start().await;
    server.upload_fixture("debug-files/linux/crash").await;
    server.upload_fixture("debug-files/linux/crash.debug").await;
    let cache = tempfile::tempdir().unwrap();

    // The separate debug file answers `debuginfo`, the stripped binary `executable`.
    let path = debuginfod_find(&server, cache.path(), None, &["debuginfo", BUILD_ID]).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        fixture_bytes("debug-files/linux/crash.debug")
    );
    let path = debuginfod_find(&server, cache.path(), None, &["executable", BUILD_ID]).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        fixture_bytes("debug-files/linux/crash")
    );
    // The client can also name the binary instead of its build ID.
    let binary = fixture("debug-files/linux/crash");
    let fresh = tempfile::tempdir().unwrap();
    let path = debuginfod_find(
        &server,
        fresh.path(),
        None,
        &["debuginfo", binary.to_str().unwrap()],
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        fixture_bytes("debug-files/linux/crash.debug")
    );

    // What the protocol's headers say, and build IDs in capitals.
    let response = server
        .anonymous
        .get(server.url(&format!("/buildid/{}/debuginfo", BUILD_ID.to_uppercase())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let size = fixture_bytes("debug-files/linux/crash.debug")
        .len()
        .to_string();
    assert_eq!(response.headers()["x-debuginfod-size"], size.as_str());
    assert_eq!(response.headers()["x-debuginfod-file"], "/crash.debug");

    // Unknown, malformed and unserved requests.
    let unknown = "00112233445566778899aabbccddeeff00112233";
    let error = debuginfod_find(&server, cache.path(), None, &["debuginfo", unknown]).unwrap_err();
    assert!(
        error.contains("No such file") || error.contains("404"),
        "{error}"
    );
    for (path, status, words) in [
        (
            format!("/buildid/{unknown}/executable"),
            404,
            "no ELF executable",
        ),
        (
            "/buildid/not-hex/debuginfo".to_owned(),
            400,
            "not a code ID",
        ),
        (
            format!("/buildid/{BUILD_ID}/source/usr/src/crash.c"),
            404,
            "no stored sources",
        ),
        (
            format!("/buildid/{BUILD_ID}/section/.debug_info"),
            404,
            "\"section\" requests are not served",
        ),
    ] {
        let (got, body) = server.get_json(&path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains(words), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn debuginfod_needs_a_token_when_symbol_reads_are_private() {
    if !tool_present("debuginfod-find") {
        return;
    }
    let server = TestServer::start_with(|config| config.auth.public_symbol_reads = false).await;
    server.upload_fixture("debug-files/linux/crash.debug").await;
    let cache = tempfile::tempdir().unwrap();
    // Without a token the client is refused (elfutils reports any refusal as "No such file").
    let refused = debuginfod_find(&server, cache.path(), None, &["debuginfo", BUILD_ID]);
    assert!(refused.is_err(), "{refused:?}");
    let response = server
        .anonymous
        .get(server.url(&format!("/buildid/{BUILD_ID}/debuginfo")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // A token with symbols:read, sent the way elfutils sends extra headers.
    let (token, _) = server
        .create_token(serde_json::json!({"name": "gdb", "scopes": ["symbols:read"]}))
        .await;
    // (A fresh cache: elfutils remembers a miss for ten minutes.)
    let fresh = tempfile::tempdir().unwrap();
    let headers = fresh.path().join("headers");
    std::fs::write(&headers, format!("Authorization: Bearer {token}\n")).unwrap();
    let path = debuginfod_find(
        &server,
        &fresh.path().join("cache"),
        Some(&headers),
        &["debuginfo", BUILD_ID],
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        fixture_bytes("debug-files/linux/crash.debug")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gdb_finds_source_lines_of_a_stripped_binary_through_faultline() {
    if !tool_present("gdb") {
        return;
    }
    let server = TestServer::start().await;
    let cache = tempfile::tempdir().unwrap();
    // The binary alone in a folder: next to its `crash.debug` in ../shared, gdb would find
    // the debug file through the binary's debug link without asking anyone.
    let alone = tempfile::tempdir().unwrap();
    let binary = alone.path().join("crash");
    std::fs::copy(fixture("debug-files/linux/crash"), &binary).unwrap();
    let ask = |server: &TestServer| {
        let output = Command::new("gdb")
            .args(["-nx", "-batch", "-iex", "set debuginfod enabled on"])
            .args([
                "-ex",
                "info line google_breakpad::ThreadInfo::GetInstructionPointer",
            ])
            .arg(&binary)
            .env("DEBUGINFOD_URLS", server.url(""))
            .env("DEBUGINFOD_CACHE_PATH", cache.path())
            .env("HOME", cache.path())
            .output()
            .expect("gdb runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    // Before the upload gdb has only the stripped binary: no line for the function.
    let before = ask(&server);
    assert!(!before.contains("thread_info.cc"), "{before}");
    server.upload_fixture("debug-files/linux/crash.debug").await;
    // gdb remembers a miss for a while; a fresh cache makes it ask again.
    std::fs::remove_dir_all(cache.path()).unwrap();
    std::fs::create_dir_all(cache.path()).unwrap();
    let after = ask(&server);
    assert!(
        after.contains("Line 12") && after.contains("thread_info.cc\" starts at address"),
        "{after}"
    );
}

/// Microsoft's symbol-server layout and its SSQP keys, as WinDbg, Visual Studio and `symchk`
/// request them (`srv*cache*http://faultline/symbols`), compared without case.
#[tokio::test(flavor = "multi_thread")]
async fn symbol_server_keys_find_pdbs_pes_elves_and_mach_os() {
    let server = TestServer::start().await;
    let dwarf = "debug-files/macos/crash.dSYM/Contents/Resources/DWARF/crash";
    for rel in [
        "debug-files/windows/crash.pdb",
        "debug-files/windows/crash.exe",
        "debug-files/linux/crash",
        "debug-files/linux/crash.debug",
        "debug-files/macos/crash",
        dwarf,
    ] {
        let (status, body) = server.upload_fixture(rel).await;
        assert_eq!(status, 200, "{rel}: {body}");
    }
    let get = |path: String| {
        let server = &server;
        async move {
            let response = server
                .anonymous
                .get(server.url(&path))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap().to_vec())
        }
    };
    for (path, rel) in [
        (
            "/symbols/crash.pdb/3249D99D0C4049318610F4E4FB0B69361/crash.pdb",
            "debug-files/windows/crash.pdb",
        ),
        (
            "/symbols/CRASH.PDB/3249d99d0c4049318610f4e4fb0b69361/Crash.Pdb",
            "debug-files/windows/crash.pdb",
        ),
        (
            "/symbols/crash.exe/5AB380779000/crash.exe",
            "debug-files/windows/crash.exe",
        ),
        (
            "/symbols/crash/elf-buildid-f1c3bcc0279865fe3058404b2831d9e64135386c/crash",
            "debug-files/linux/crash",
        ),
        (
            "/symbols/_.debug/elf-buildid-sym-F1C3BCC0279865FE3058404B2831D9E64135386C/_.debug",
            "debug-files/linux/crash.debug",
        ),
        (
            "/symbols/crash/mach-uuid-67e9247c814e392ba027dbde6748fcbf/crash",
            "debug-files/macos/crash",
        ),
        (
            "/symbols/_.dwarf/mach-uuid-sym-67e9247c814e392ba027dbde6748fcbf/_.dwarf",
            dwarf,
        ),
    ] {
        let (status, body) = get(path.to_owned()).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(body == fixture_bytes(rel), "{path} is not {rel}");
    }
    // Tecken's code-ID fallback: a Windows module's code file and code ID redirect to the
    // debug-ID path of its stored .sym.
    server.upload_fixture("debug-files/windows/crash.sym").await;
    let response = server
        .anonymous
        .get(server.url("/symbols/crash.exe/5AB380779000/crash.sym"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.url().path(),
        "/symbols/crash.pdb/3249D99D0C4049318610F4E4FB0B69361/crash.sym"
    );
    assert!(response.bytes().await.unwrap() == fixture_bytes("debug-files/windows/crash.sym"));
    let (status, _) = get("/symbols/other.exe/5AB380779000/other.sym".to_owned()).await;
    assert_eq!(status, 404);

    // The debug ID names the module: asked under another name (a renamed build, a file
    // uploaded without one), its one PDB is the answer.
    let (status, body) =
        get("/symbols/other.pdb/3249D99D0C4049318610F4E4FB0B69361/other.pdb".to_owned()).await;
    assert_eq!(status, 200);
    assert!(body == fixture_bytes("debug-files/windows/crash.pdb"));

    // Compressed names are not found (clients then ask for the plain one); a key for nothing
    // stored is not found either; a malformed key is a 400.
    for (path, status) in [
        (
            "/symbols/crash.pdb/3249D99D0C4049318610F4E4FB0B69361/crash.pd_",
            404,
        ),
        ("/symbols/crash.exe/5AB380779000/file.ptr", 404),
        ("/symbols/crash.exe/0000000012345/crash.exe", 404),
        ("/symbols/crash.pdb/not-an-id/crash.pdb", 400),
    ] {
        let (got, body) = get(path.to_owned()).await;
        assert_eq!(got, status, "{path}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
}

on_both_databases! {
    /// The missing-symbols report: every debug file the project's crashes lacked, with what a
    /// build engineer needs to find and upload it, as JSON and CSV.
    async fn missing_symbols_report_names_what_to_upload(db: Db) {
        let Some(server) = TestServer::start_on(db, |_| {}).await else {
            return;
        };
        submit(&server, "wild-read.dmp", &[]).await;
        submit(&server, "null-write.dmp", &[]).await;
        let (debug_id, code_id) = crasher_ids();
        let (status, report) = server.get_json("/api/v1/symbols/missing").await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["project"], "default");
        let row = report["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["debug_id"] == debug_id.as_str())
            .unwrap_or_else(|| panic!("the crasher is not listed: {report}"))
            .clone();
        assert_eq!(row["code_id"], code_id.to_lowercase().as_str(), "{row}");
        assert_eq!(row["code_file"], "crasher", "{row}");
        assert_eq!(row["crashes"], 2, "{row}");
        assert!(row["last_seen"].as_i64().unwrap() > 1_700_000_000, "{row}");

        let response = server
            .client
            .get(server.url("/api/v1/symbols/missing?format=csv&limit=50"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let csv = response.text().await.unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("debug_file,debug_id,code_file,code_id,crashes,last_seen,sources")
        );
        let line = lines
            .find(|l| l.contains(&debug_id))
            .unwrap_or_else(|| panic!("{csv}"));
        assert!(
            line.contains(&format!(",crasher,{},2,", code_id.to_lowercase())),
            "{line}"
        );

        for path in [
            "/api/v1/symbols/missing?format=xml",
            "/api/v1/symbols/missing?limit=0",
            "/api/v1/symbols/missing?colour=red",
        ] {
            let (status, body) = server.get_json(path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body["error"].is_string(), "{body}");
        }
        let (status, _) = server.get_json("/api/v1/symbols/missing?project=nope").await;
        assert_eq!(status, 404);
        // A project with nothing missing: no rows, and the CSV still names its columns.
        server.create_project("Quiet").await;
        let (_, quiet) = server.get_json("/api/v1/symbols/missing?project=quiet").await;
        assert_eq!(quiet["modules"], serde_json::json!([]), "{quiet}");
        let csv = server
            .client
            .get(server.url("/api/v1/symbols/missing?project=quiet&format=csv"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(csv, "debug_file,debug_id,code_file,code_id,crashes,last_seen,sources\n");
    }
}

/// A source bundle for the generated crasher holding `examples/crasher.rs` under the absolute
/// path its DWARF names (the checkout the fixtures were generated in); returns the bundle and
/// that path.
fn crasher_source_bundle(debug_id: &str) -> (Vec<u8>, String) {
    use symbolic::debuginfo::sourcebundle::{SourceBundleWriter, SourceFileInfo, SourceFileType};
    use symbolic::debuginfo::Object;
    let debug = common::generated_bytes("crasher.debug");
    let object = Object::parse(&debug).unwrap();
    let session = object.debug_session().unwrap();
    let path = session
        .files()
        .filter_map(Result::ok)
        .map(|f| f.abs_path_str())
        .find(|p| p.ends_with("examples/crasher.rs"))
        .expect("the crasher's DWARF names its source file");
    let source =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/crasher.rs")).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = SourceBundleWriter::start(&mut out).unwrap();
    writer.set_attribute("debug_id", debug_id);
    writer.set_attribute("object_name", "crasher");
    let mut info = SourceFileInfo::new();
    info.set_ty(SourceFileType::Source);
    info.set_path(path.clone());
    writer
        .add_file(format!("files{path}"), &source[..], info)
        .unwrap();
    writer.finish().unwrap();
    (out.into_inner(), path)
}

/// debuginfod's `source` requests: `debuginfod-find source BUILD_ID /abs/path` fetches a file
/// from the source bundle stored for the module.
#[tokio::test(flavor = "multi_thread")]
async fn debuginfod_find_fetches_sources_from_a_stored_source_bundle() {
    if !tool_present("debuginfod-find") {
        return;
    }
    let server = TestServer::start().await;
    let (breakpad_id, build_id) = crasher_ids();
    let debug_id = faultline::symbols::ids::parse_debug_id(&breakpad_id)
        .unwrap()
        .to_string();
    let (status, _) = server
        .upload("crasher.debug", common::generated_bytes("crasher.debug"))
        .await;
    assert_eq!(status, 200);
    let cache = tempfile::tempdir().unwrap();
    let (bundle, path) = crasher_source_bundle(&debug_id);
    let before = debuginfod_find(&server, cache.path(), None, &["source", &build_id, &path]);
    assert!(before.is_err(), "no sources before the bundle: {before:?}");

    let (status, body) = server.upload("crasher.src.zip", bundle).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["files"][0]["file"]["format"], "sourcebundle", "{body}");
    let fresh = tempfile::tempdir().unwrap();
    let fetched = debuginfod_find(&server, fresh.path(), None, &["source", &build_id, &path])
        .unwrap_or_else(|e| panic!("debuginfod-find source: {e}"));
    assert_eq!(
        std::fs::read(fetched).unwrap(),
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/crasher.rs")).unwrap()
    );
    // A path the bundle does not hold.
    let response = server
        .anonymous
        .get(server.url(&format!("/buildid/{build_id}/source/etc/passwd")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// A raw upload without `?name=` (`curl --data-binary @crasher.debug …/api/v1/symbols`) is
/// found by the name a Breakpad client asks for: the debug ID names the module, whatever the
/// file was uploaded under; and a shared library sent without a name is named by its SONAME.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_uploaded_without_a_name_is_found_by_its_debug_id_and_its_own_name() {
    let server = TestServer::start().await;
    let response = server
        .client
        .post(server.url("/api/v1/symbols"))
        .body(common::generated_bytes("crasher.debug"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (debug_id, _) = crasher_ids();
    let sym = server
        .anonymous
        .get(server.url(&format!("/symbols/crasher/{debug_id}/crasher.sym")))
        .send()
        .await
        .unwrap();
    assert_eq!(sym.status(), 200);
    let text = sym.text().await.unwrap();
    assert!(
        text.starts_with(&format!("MODULE Linux x86_64 {debug_id} ")),
        "{}",
        &text[..text.len().min(200)]
    );

    // A shared library built here, with a SONAME, sent without a name.
    if !tool_present("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("tiny.c");
    std::fs::write(&source, "int tiny(int x) { return x * 3; }\n").unwrap();
    let library = dir.path().join("out.so");
    let built = Command::new("gcc")
        .args([
            "-shared",
            "-fPIC",
            "-g",
            "-Wl,--build-id",
            "-Wl,-soname,libtiny.so.1",
            "-o",
        ])
        .arg(&library)
        .arg(&source)
        .status()
        .unwrap();
    assert!(built.success());
    let response = server
        .client
        .post(server.url("/api/v1/symbols"))
        .body(std::fs::read(&library).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let file = &body["files"][0]["file"];
    assert_eq!(file["debug_file"], "libtiny.so.1", "{body}");
    assert_eq!(file["code_file"], "libtiny.so.1");
}
