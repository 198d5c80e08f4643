//! Upstream symbol sources (`src/upstream/`) of every kind, real servers on loopback: a
//! symstore tree with CAB-compressed PDBs (made with Debian's `gcab`) and `file.ptr`, a Breakpad
//! tree in a folder and in an S3 bucket (s3s-fs), elfutils' debuginfod server; the
//! symbol-server routes as a caching proxy over them, and `faultline process --symbols-source`.

use std::time::{Duration, Instant};

use faultline::config::{SourceConfig, SourceKind, SourceLayout};
use serde_json::Value;

use crate::common::s3::S3Server;
use crate::common::symbol_source::{
    crash_module, exception_module, http, module, process, symbolicate, SymbolSource, CRASH_PDB,
    EXCEPTION_PDB, TEST_APP_SYM,
};
use crate::common::{fixture, fixture_bytes, services_required, tool_present, TestServer};

/// `path` compressed into a cabinet by gcab, as Microsoft's symstore keeps `.pd_` files.
fn cab_of(path: &std::path::Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.cab");
    let status = std::process::Command::new("gcab")
        .arg("-c")
        .arg("-n")
        .arg("-z")
        .arg(&out)
        .arg(path)
        .status()
        .expect("gcab runs");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symstore_server_gives_cab_compressed_pdbs_and_files_behind_file_ptr() {
    if !tool_present("gcab") {
        return;
    }
    let upstream = SymbolSource::start().await;
    let compressed = format!("{}_", &CRASH_PDB[..CRASH_PDB.len() - 1]);
    upstream.put(
        &compressed,
        &cab_of(&fixture("debug-files/windows/crash.pdb")),
    );
    let folder = EXCEPTION_PDB.rsplit_once('/').unwrap().0;
    upstream.put(
        &format!("{folder}/file.ptr"),
        b"PATH:elsewhere\\CrashWithException.pdb",
    );
    upstream.put(
        "elsewhere/CrashWithException.pdb",
        &fixture_bytes("debug-files/windows/CrashWithException.pdb"),
    );
    let source = http("ms-mirror", upstream.url("store"), SourceLayout::Symstore);
    let server = TestServer::start_with(|c| c.symbols.sources = vec![source]).await;

    let json = symbolicate(&server, &[crash_module(), exception_module()]).await;
    let frames = json["stacktraces"][0]["frames"].as_array().unwrap();
    assert!(
        frames[0]["function"]
            .as_str()
            .unwrap()
            .starts_with("google_breakpad::CrashGenerationClient::RequestDump("),
        "{json}"
    );
    assert_eq!(frames[0]["lineno"], 324);
    assert!(
        frames[1]["function"]
            .as_str()
            .unwrap()
            .starts_with("printf("),
        "{json}"
    );
    for module in json["modules"].as_array().unwrap() {
        assert_eq!(module["debug_status"], "found", "{module}");
        assert_eq!(module["symbols_origin"], "ms-mirror");
    }
    // The location that answered: the compressed file, and the one `file.ptr` points to.
    let answered = |m: &Value| -> String {
        let found = m["candidates"].as_array().unwrap().iter();
        let found = found
            .filter(|c| c["outcome"] == "found")
            .collect::<Vec<_>>();
        assert_eq!(found.len(), 1, "{m}");
        assert_eq!(found[0]["source"], "ms-mirror");
        found[0]["location"].as_str().unwrap().to_owned()
    };
    assert!(answered(&json["modules"][0]).ends_with("/crash.pd_"));
    assert!(answered(&json["modules"][1]).ends_with("/store/elsewhere/CrashWithException.pdb"));

    // Kept in the store, marked with the source: the next crash asks nobody.
    let asked = upstream.count_under("/store/");
    let (status, listed) = server
        .get_json("/api/v1/symbols?debug_id=3249D99D0C4049318610F4E4FB0B69361")
        .await;
    assert_eq!(status, 200);
    assert!(
        listed.to_string().contains("\"origin\":\"ms-mirror\""),
        "{listed}"
    );
    let ui = crate::common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = ui
        .get("/ui/symbols?q=3249D99D0C4049318610F4E4FB0B69361")
        .await;
    assert!(
        page.body.contains("(fetched from ms-mirror)"),
        "{}",
        page.body
    );
    let again = symbolicate(&server, &[crash_module()]).await;
    assert_eq!(again["modules"][0]["debug_status"], "found");
    assert_eq!(upstream.count_under("/store/"), asked);
}

/// Processes test.dmp against a server whose only source is `source`, and checks the crashing
/// frame was named from the source's `.sym`.
async fn symbolicated_from(source: SourceConfig) {
    let id = source.id.clone();
    let server = TestServer::start_with(|c| c.symbols.sources = vec![source]).await;
    let json = process(&server, &fixture_bytes("minidumps/rust-minidump/test.dmp")).await;
    let app = module(&json, "test_app.exe");
    assert_eq!(app["symbol_status"], "found", "{app}");
    assert_eq!(app["symbols_origin"], id.as_str());
    let function = json["crashing_thread"]["frames"][0]["function"]
        .as_str()
        .unwrap();
    assert!(function.contains("CrashFunction"), "{function}");
    // Windows system modules are asked for too, and reported as missing from this source.
    let kernel32 = module(&json, "kernel32.dll");
    assert_eq!(kernel32["symbol_status"], "missing");
    assert_eq!(
        kernel32["symbol_candidates"][0]["outcome"], "not_found",
        "{kernel32}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_breakpad_tree_in_a_folder_is_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join(TEST_APP_SYM);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(fixture(&format!("symbols/breakpad/{TEST_APP_SYM}")), target).unwrap();
    symbolicated_from(SourceConfig {
        id: "team-share".into(),
        kind: Some(SourceKind::Filesystem),
        url: Some(dir.path().to_str().unwrap().into()),
        layout: Some(SourceLayout::Native),
        ..SourceConfig::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_breakpad_tree_in_an_s3_bucket_is_a_source() {
    let Some(s3) = S3Server::start().await else {
        assert!(!services_required(), "no S3 server");
        return;
    };
    let bucket = faultline::store::S3Store::connect(&s3.config)
        .await
        .unwrap();
    let key = faultline::store::ObjectKey::new(format!("breakpad/{TEST_APP_SYM}")).unwrap();
    use faultline::store::ObjectStore;
    bucket
        .put(
            &key,
            faultline::store::PutBody::Bytes(
                fixture_bytes(&format!("symbols/breakpad/{TEST_APP_SYM}")).into(),
            ),
        )
        .await
        .unwrap();
    symbolicated_from(SourceConfig {
        id: "team-bucket".into(),
        kind: Some(SourceKind::S3),
        layout: Some(SourceLayout::Native),
        bucket: s3.config.bucket.clone(),
        prefix: format!("{}/breakpad", s3.config.prefix),
        endpoint: s3.config.endpoint.clone(),
        access_key: s3.config.access_key.clone(),
        secret_key: s3.config.secret_key.clone(),
        ..SourceConfig::default()
    })
    .await;
}

/// A real debuginfod server (elfutils') indexing `dir`, on a free port; stopped when dropped.
struct Debuginfod {
    child: std::process::Child,
    url: String,
    _db: tempfile::TempDir,
}

impl Drop for Debuginfod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Debuginfod {
    /// Starts it and waits until `build_id`'s debug file is indexed.
    async fn start(dir: &std::path::Path, build_id: &str) -> Debuginfod {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let db = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("debuginfod")
            .arg("-p")
            .arg(port.to_string())
            .arg("-d")
            .arg(db.path().join("index.sqlite"))
            .arg("-F")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("debuginfod starts");
        let server = Debuginfod {
            child,
            url: format!("http://127.0.0.1:{port}/"),
            _db: db,
        };
        let probe = format!("{}buildid/{build_id}/debuginfo", server.url);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(&probe).await {
                if r.status() == 200 {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "debuginfod did not index {dir:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The GNU build ID of an ELF file.
fn build_id(path: &std::path::Path) -> String {
    use object::Object;
    let bytes = std::fs::read(path).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    hex::encode(file.build_id().unwrap().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linux_crash_gets_symbols_from_a_real_debuginfod_server() {
    if !tool_present("debuginfod") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("crash_linux");
    std::fs::copy(fixture("minidumps/symbolic/crash_linux"), &binary).unwrap();
    let id = build_id(&binary);
    let debuginfod = Debuginfod::start(dir.path(), &id).await;
    let server = TestServer::start_with(|c| {
        c.symbols.sources = vec![SourceConfig {
            id: "distro".into(),
            kind: Some(SourceKind::Debuginfod),
            url: Some(debuginfod.url.clone()),
            ..SourceConfig::default()
        }]
    })
    .await;
    let json = process(
        &server,
        &fixture_bytes("minidumps/symbolic/crash_linux.dmp"),
    )
    .await;
    let app = module(&json, "crash_linux");
    assert_eq!(app["symbol_status"], "found", "{app}");
    assert_eq!(app["symbols_origin"], "distro");
    let located = app["symbol_candidates"][0]["location"].as_str().unwrap();
    assert_eq!(located, format!("{}buildid/{id}/debuginfo", debuginfod.url));
    let frames = json["crashing_thread"]["frames"].as_array().unwrap();
    assert!(
        frames
            .iter()
            .any(|f| f["function"].as_str().is_some_and(|n| n.contains("crash"))),
        "{frames:?}"
    );

    // faultline is now a debuginfod proxy: gdb and debuginfod-find may ask it for files it
    // fetched, or for files not fetched yet (the source serves).
    let response = server
        .anonymous
        .get(server.url(&format!("/buildid/{id}/executable")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.unwrap().len(),
        std::fs::metadata(&binary).unwrap().len() as usize
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_symbol_server_routes_fetch_what_is_not_stored_from_serving_sources() {
    let upstream = SymbolSource::start().await;
    upstream.put(CRASH_PDB, &fixture_bytes("debug-files/windows/crash.pdb"));
    upstream.put(
        TEST_APP_SYM,
        &fixture_bytes(&format!("symbols/breakpad/{TEST_APP_SYM}")),
    );
    let mut private = http("private", upstream.url("store"), SourceLayout::Symstore);
    private.serve = false;
    let server = TestServer::start_with(|c| c.symbols.sources = vec![private]).await;
    let status = |path: String| {
        let server = &server;
        async move {
            server
                .anonymous
                .get(server.url(&path))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        status(format!("/symbols/{CRASH_PDB}")).await,
        404,
        "serve = false"
    );
    assert_eq!(upstream.count_under("/store/"), 0);

    let public = http("public", upstream.url("store"), SourceLayout::Native);
    let server = TestServer::start_with(|c| c.symbols.sources = vec![public]).await;
    let response = server
        .anonymous
        .get(server.url(&format!("/symbols/{CRASH_PDB}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.unwrap(),
        fixture_bytes("debug-files/windows/crash.pdb")
    );
    let response = server
        .anonymous
        .get(server.url(&format!("/symbols/{TEST_APP_SYM}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .starts_with("MODULE windows x86 5A9832E5287241C1838ED98914E9B7FF1 test_app.pdb"));
}

/// `faultline process ARGS` (the real binary): exit code, stdout, stderr.
async fn faultline_process(args: Vec<String>) -> (i32, String, String) {
    let mut command = crate::common::faultline();
    command.arg("process").args(args);
    crate::common::run(command).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_asks_sources_offline_and_keeps_what_they_send_in_a_cache_folder() {
    let upstream = SymbolSource::start().await;
    upstream.put(
        TEST_APP_SYM,
        &fixture_bytes(&format!("symbols/breakpad/{TEST_APP_SYM}")),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faultline.toml");
    std::fs::write(
        &config,
        format!(
            "[[symbols.sources]]\nid = \"team\"\ntype = \"http\"\nurl = \"{}\"\nlayout = \"native\"\n",
            upstream.url("store")
        ),
    )
    .unwrap();
    let args = |source: &str| -> Vec<String> {
        vec![
            fixture("minidumps/rust-minidump/test.dmp")
                .to_str()
                .unwrap()
                .into(),
            "--config".into(),
            config.to_str().unwrap().into(),
            "--symbols-source".into(),
            source.into(),
            "--symbols-cache".into(),
            dir.path().join("cache").to_str().unwrap().into(),
            "--json".into(),
        ]
    };
    let (code, out, err) = faultline_process(args("team")).await;
    assert_eq!(code, 0, "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let function = json["crashing_thread"]["frames"][0]["function"]
        .as_str()
        .unwrap();
    assert!(function.contains("CrashFunction"), "{function}");
    assert_eq!(module(&json, "test_app.exe")["symbols_origin"], "team");
    let asked = upstream.count(&format!("/store/{TEST_APP_SYM}"));
    assert_eq!(asked, 1);

    // The second run reads the cache folder: no request for the file.
    let (code, out, _) = faultline_process(args("team")).await;
    assert_eq!(code, 0);
    assert!(out.contains("CrashFunction"));
    assert_eq!(upstream.count(&format!("/store/{TEST_APP_SYM}")), asked);

    let (code, _, err) = faultline_process(args("microsfot")).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no preset named \"microsfot\""), "{err}");
}

/// `bytes` as a zip archive holding one file named `name`.
fn zipped(name: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    archive
        .start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    archive.write_all(bytes).unwrap();
    archive.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_wrapped_in_gzip_zstd_or_zip_are_unpacked() {
    let pdb = fixture_bytes("debug-files/windows/crash.pdb");
    let wrapped = [
        ("gzip", crate::common::gzip(&pdb)),
        ("zstd", zstd::encode_all(&pdb[..], 3).unwrap()),
        ("zip", zipped("crash.pdb", &pdb)),
    ];
    for (wrapping, bytes) in wrapped {
        let upstream = SymbolSource::start().await;
        upstream.put(CRASH_PDB, &bytes);
        let source = http(wrapping, upstream.url("store"), SourceLayout::Symstore);
        let server = TestServer::start_with(|c| c.symbols.sources = vec![source]).await;
        let json = symbolicate(&server, &[crash_module()]).await;
        assert_eq!(
            json["modules"][0]["debug_status"], "found",
            "{wrapping}: {json}"
        );
        assert!(json["stacktraces"][0]["frames"][0]["function"]
            .as_str()
            .unwrap()
            .starts_with("google_breakpad::CrashGenerationClient::RequestDump("));
    }
    // A small answer that unpacks past the cap (a decompression bomb) is refused, not unpacked.
    let upstream = SymbolSource::start().await;
    upstream.put(CRASH_PDB, &crate::common::gzip(&vec![0u8; 8 << 20]));
    let mut bomb = http("bomb", upstream.url("store"), SourceLayout::Symstore);
    bomb.max_download_bytes = 1 << 20;
    let server = TestServer::start_with(|c| c.symbols.sources = vec![bomb]).await;
    let json = symbolicate(&server, &[crash_module()]).await;
    let module = &json["modules"][0];
    assert_eq!(module["debug_status"], "missing");
    let (outcome, detail) = crate::common::symbol_source::from(module, "bomb");
    assert_eq!(outcome, "malformed");
    assert!(
        detail.contains("unpacks to more than 1048576 bytes"),
        "{detail}"
    );
}
