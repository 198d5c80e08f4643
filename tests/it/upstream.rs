//! Upstream symbol sources (`src/upstream/`): debug files nobody uploaded, fetched from real
//! servers on loopback — a symstore tree with CAB-compressed PDBs (made with Debian's `gcab`),
//! `file.ptr` and redirects; servers that answer 404, 500, never, 2 GiB, the wrong file or a
//! redirect loop; a Breakpad tree in an S3 bucket (s3s-fs) and in a folder; a real debuginfod
//! server (elfutils') — with the negative cache, one download per file, failing sources
//! skipped, and the time budget of a crash kept.

use std::time::{Duration, Instant};

use faultline::config::{SourceConfig, SourceFileType, SourceKind, SourceLayout, SourceTimeouts};
use serde_json::{json, Value};

use crate::common::s3::S3Server;
use crate::common::symbol_source::SymbolSource;
use crate::common::{fixture, fixture_bytes, services_required, tool_present, TestServer};

const CRASH_PDB: &str = "crash.pdb/3249D99D0C4049318610F4E4FB0B69361/crash.pdb";
const EXCEPTION_PDB: &str =
    "CrashWithException.pdb/F535C5FB2AE84BB8AA206C30BE566C5A1/CrashWithException.pdb";
const TEST_APP_SYM: &str = "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym";

/// An HTTP source with short time limits.
fn http(id: &str, url: String, layout: SourceLayout) -> SourceConfig {
    SourceConfig {
        id: id.into(),
        kind: Some(SourceKind::Http),
        url: Some(url),
        layout: Some(layout),
        timeouts: SourceTimeouts {
            connect_ms: 1_000,
            first_byte_ms: 1_000,
            total_ms: 10_000,
        },
        ..SourceConfig::default()
    }
}

fn crash_module() -> Value {
    json!({"type": "pe", "debug_id": "3249D99D0C4049318610F4E4FB0B69361", "debug_file": "crash.pdb",
           "code_file": "C:\\build\\crash.exe", "image_addr": "0x400000", "image_size": 0x27000})
}

fn exception_module() -> Value {
    json!({"type": "pe", "debug_id": "f535c5fb-2ae8-4bb8-aa20-6c30be566c5a-1",
           "debug_file": "CrashWithException.pdb", "code_file": "CrashWithException.exe",
           "image_addr": "0x140000000", "image_size": 0x9000})
}

/// Symbolicates one frame in each of `modules` (at its image address + `0x1011`).
async fn symbolicate(server: &TestServer, modules: &[Value]) -> Value {
    let frames: Vec<Value> = modules
        .iter()
        .map(|m| {
            let base = u64::from_str_radix(
                m["image_addr"].as_str().unwrap().trim_start_matches("0x"),
                16,
            )
            .unwrap();
            json!({"instruction_addr": format!("{:#x}", base + 0x1012)})
        })
        .collect();
    let response = server
        .client
        .post(server.url("/api/v1/symbolicate"))
        .json(&json!({"stacktraces": [{"frames": frames}], "modules": modules}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `(source, outcome, detail)` of every candidate of a module (`candidates` of a symbolicate
/// answer, `symbol_candidates` of a processed dump).
fn candidates(module: &Value) -> Vec<(String, String, String)> {
    module
        .get("candidates")
        .or(module.get("symbol_candidates"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| {
                    (
                        c["source"].as_str().unwrap().to_owned(),
                        c["outcome"].as_str().unwrap().to_owned(),
                        c["detail"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first candidate from `source`.
fn from(module: &Value, source: &str) -> (String, String) {
    candidates(module)
        .into_iter()
        .find(|(s, ..)| s == source)
        .map(|(_, outcome, detail)| (outcome, detail))
        .unwrap_or_else(|| panic!("no candidate from {source}: {module}"))
}

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
    let found = |m: &Value| {
        candidates(m)
            .into_iter()
            .find(|(_, outcome, _)| outcome == "found")
            .unwrap()
    };
    let crash = &json["modules"][0];
    let answered = crash["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["outcome"] == "found")
        .unwrap()["location"]
        .clone();
    assert!(
        answered.as_str().unwrap().ends_with("/crash.pd_"),
        "{crash}"
    );
    assert_eq!(found(crash).0, "ms-mirror");
    let exception = json["modules"][1]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["outcome"] == "found")
        .unwrap()["location"]
        .clone();
    assert!(
        exception
            .as_str()
            .unwrap()
            .ends_with("/store/elsewhere/CrashWithException.pdb"),
        "{exception}"
    );

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
    let again = symbolicate(&server, &[crash_module()]).await;
    assert_eq!(again["modules"][0]["debug_status"], "found");
    assert_eq!(upstream.count_under("/store/"), asked);
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_sources_each_show_their_outcome_and_none_stalls_the_crash() {
    let upstream = SymbolSource::start().await;
    upstream.put(
        EXCEPTION_PDB,
        &fixture_bytes("debug-files/windows/CrashWithException.pdb"),
    );
    // Another module's Breakpad file, sent for every path.
    upstream.put("liar", &fixture_bytes("debug-files/windows/crash.sym"));
    let mut hanging = http("hanging", upstream.url("hang"), SourceLayout::Symstore);
    hanging.timeouts.first_byte_ms = 300;
    let mut huge = http("huge", upstream.url("huge"), SourceLayout::Native);
    huge.max_download_bytes = 1 << 20;
    // Asked for PDBs only: one failure per crash, too few to be skipped as unhealthy.
    let mut broken = http("broken", upstream.url("broken"), SourceLayout::Native);
    broken.filetypes = Some(vec![SourceFileType::Pdb]);
    let sources = vec![
        http("missing", upstream.url("missing"), SourceLayout::Symstore),
        broken,
        hanging,
        huge,
        http("liar", upstream.url("liar"), SourceLayout::Native),
        http("looping", upstream.url("loop"), SourceLayout::Native),
        http("good", upstream.url("redirect"), SourceLayout::Symstore),
    ];
    let server = TestServer::start_with(|c| {
        c.symbols.sources = sources;
        // Every request reaches the sources (no remembered "missing" module).
        c.caches.missing_ttl_secs = 0;
    })
    .await;

    let started = Instant::now();
    let json = symbolicate(&server, &[exception_module()]).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let module = &json["modules"][0];
    assert_eq!(module["debug_status"], "found", "{module}");
    assert!(json["stacktraces"][0]["frames"][0]["function"]
        .as_str()
        .unwrap()
        .starts_with("printf("));
    assert_eq!(from(module, "missing").0, "not_found");
    assert_eq!(
        from(module, "broken"),
        ("error".into(), "HTTP 500 Internal Server Error".into())
    );
    let (outcome, detail) = from(module, "hanging");
    assert_eq!(outcome, "error");
    assert!(detail.contains("no answer within 300 ms"), "{detail}");
    let (outcome, detail) = from(module, "huge");
    assert_eq!(outcome, "error");
    assert!(
        detail.contains("over max_download_bytes (1048576)"),
        "{detail}"
    );
    let (outcome, detail) = from(module, "liar");
    assert_eq!(outcome, "malformed");
    assert!(detail.contains("not a debug file of f535c5fb"), "{detail}");
    let (outcome, detail) = from(module, "looping");
    assert_eq!(outcome, "error");
    assert!(detail.contains("redirects"), "{detail}");
    assert_eq!(from(module, "good").0, "found");
    assert_eq!(module["symbols_origin"], "good");

    // A module nobody has: every source asked once; the next crash only reads the negative
    // cache (no request reaches any server).
    let nobody = json!({"type": "pe", "debug_id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1",
                        "debug_file": "nobody.pdb", "code_file": "nobody.dll",
                        "image_addr": "0x20000000", "image_size": 0x10000});
    let first = symbolicate(&server, std::slice::from_ref(&nobody)).await;
    assert_eq!(first["modules"][0]["debug_status"], "missing");
    assert_eq!(from(&first["modules"][0], "missing").0, "not_found");
    let requests = upstream.count_under("/");
    let second = symbolicate(&server, &[nobody]).await;
    assert_eq!(
        upstream.count_under("/"),
        requests,
        "the negative cache answered"
    );
    let module = &second["modules"][0];
    assert_eq!(module["debug_status"], "missing");
    let (outcome, detail) = from(module, "missing");
    assert_eq!((outcome.as_str(), detail.as_str()), ("cached", "not_found"));
    let (outcome, detail) = from(module, "broken");
    assert_eq!(outcome, "cached");
    assert!(detail.starts_with("error: HTTP 500"), "{detail}");

    let metrics = server.metrics().await;
    assert!(
        metrics.contains(
            "faultline_symbol_source_requests_total{source=\"missing\",outcome=\"cached\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_crashes_needing_one_file_wait_for_one_download() {
    let upstream = SymbolSource::start().await;
    upstream.put(CRASH_PDB, &fixture_bytes("debug-files/windows/crash.pdb"));
    let server = TestServer::start_with(|c| {
        c.symbols.sources = vec![http(
            "slow",
            upstream.url("slow/300"),
            SourceLayout::Symstore,
        )]
    })
    .await;
    let modules = [crash_module()];
    let crashes = (0..50).map(|_| symbolicate(&server, &modules));
    let results = futures::future::join_all(crashes).await;
    for json in &results {
        assert_eq!(json["modules"][0]["debug_status"], "found", "{json}");
    }
    assert_eq!(upstream.count(&format!("/slow/300/{CRASH_PDB}")), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_source_is_skipped_for_a_while_then_asked_again() {
    let upstream = SymbolSource::start().await;
    let mut broken = http("flaky", upstream.url("broken"), SourceLayout::Unified);
    broken.filetypes = Some(vec![SourceFileType::Pdb]);
    broken.unhealthy_secs = 1;
    broken.error_ttl_secs = 0;
    let server = TestServer::start_with(|c| {
        c.symbols.sources = vec![broken];
        c.caches.missing_ttl_secs = 0;
    })
    .await;
    let module = |n: u32| {
        json!({"type": "pe", "debug_id": format!("{n:032X}1"), "debug_file": format!("m{n}.pdb"),
               "image_addr": "0x20000000", "image_size": 0x10000})
    };
    for n in 1..=3 {
        let json = symbolicate(&server, &[module(n)]).await;
        assert_eq!(from(&json["modules"][0], "flaky").0, "error");
    }
    let asked = upstream.count_under("/broken/");
    let json = symbolicate(&server, &[module(4)]).await;
    let (outcome, detail) = from(&json["modules"][0], "flaky");
    assert_eq!(outcome, "skipped");
    assert!(detail.contains("failed repeatedly"), "{detail}");
    assert_eq!(
        upstream.count_under("/broken/"),
        asked,
        "a skipped source is not asked"
    );
    let (status, sources) = server.get_json("/api/v1/symbols/sources").await;
    assert_eq!(status, 200);
    let flaky = &sources["sources"][0];
    assert_eq!(flaky["id"], "flaky");
    assert_eq!(flaky["health"]["healthy"], false);
    assert!(flaky["health"]["errors"].as_u64().unwrap() >= 3);
    assert_eq!(
        flaky["health"]["last_error"],
        "HTTP 500 Internal Server Error"
    );

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let json = symbolicate(&server, &[module(5)]).await;
    assert_eq!(from(&json["modules"][0], "flaky").0, "error");
    assert!(
        upstream.count_under("/broken/") > asked,
        "asked again after the pause"
    );
}

/// Processes `dump` through `POST /api/v1/minidump`.
async fn process(server: &TestServer, dump: &[u8]) -> Value {
    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .body(dump.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The processed module named `name`.
fn module<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["filename"] == name)
        .unwrap_or_else(|| panic!("no module {name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_slower_than_the_budget_leaves_the_crash_on_time() {
    let upstream = SymbolSource::start().await;
    upstream.put(
        TEST_APP_SYM,
        &fixture_bytes(&format!("symbols/breakpad/{TEST_APP_SYM}")),
    );
    let mut slow = http("slow", upstream.url("slow/2500"), SourceLayout::Native);
    slow.timeouts.first_byte_ms = 10_000;
    slow.filetypes = Some(vec![SourceFileType::Breakpad]);
    slow.path_patterns = Some(vec!["test_app*".into()]);
    let server = TestServer::start_with(|c| {
        c.symbols.sources = vec![slow];
        c.limits.process_time_ms = 1_500;
        c.caches.missing_ttl_secs = 0;
    })
    .await;
    let dump = fixture_bytes("minidumps/rust-minidump/test.dmp");
    let started = Instant::now();
    let json = process(&server, &dump).await;
    assert!(
        started.elapsed() < Duration::from_millis(2_400),
        "{:?}",
        started.elapsed()
    );
    let app = module(&json, "test_app.exe");
    assert_eq!(app["symbol_status"], "missing");
    assert_eq!(
        app["symbol_candidates"][0]["outcome"], "downloading",
        "{app}"
    );

    // The download goes on without the crash; once stored, the next crash has the symbols.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let json = process(&server, &dump).await;
    let app = module(&json, "test_app.exe");
    assert_eq!(app["symbol_status"], "found", "{app}");
    assert_eq!(app["symbols_origin"], "slow");
    assert_eq!(upstream.count(&format!("/slow/2500/{TEST_APP_SYM}")), 1);
    // The path patterns kept the system modules from being asked at all.
    let (outcome, detail) = from(module(&json, "kernel32.dll"), "slow");
    assert_eq!(outcome, "skipped");
    assert!(detail.contains("no path pattern"), "{detail}");
    assert_eq!(upstream.count_under("/slow/"), 1);
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

on_both_databases! {
async fn a_crash_processed_before_its_file_arrived_is_processed_again_with_it(db: Db) {
    let upstream = SymbolSource::start().await;
    let (_, code_id) = crate::common::crasher_ids();
    let code_id = code_id.to_lowercase();
    upstream.put(
        &format!("{}/{}.debug", &code_id[..2], &code_id[2..]),
        &crate::common::generated_bytes("crasher.debug"),
    );
    let mut slow = http("build-ids", upstream.url("slow/1500"), SourceLayout::Native);
    slow.filetypes = Some(vec![SourceFileType::ElfDebug]);
    slow.path_patterns = Some(vec!["crasher*".into()]);
    slow.timeouts.first_byte_ms = 10_000;
    let Some(server) = TestServer::start_on(db, |c| {
        c.symbols.sources = vec![slow];
        c.limits.process_time_ms = 800;
    })
    .await
    else {
        return;
    };
    let dump = crate::common::generated_bytes("wild-read.dmp");
    let (status, reply) = crate::common::post(
        &server,
        "/submit",
        Some("multipart/form-data; boundary=XyZ"),
        &[],
        crate::common::multipart("XyZ", &[("upload_file_minidump", Some("a"), &dump)]),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let id = reply.trim().strip_prefix("CrashID=bp-").unwrap().to_owned();
    let before = crate::common::settled(&server, &id).await;
    assert_eq!(before["crash"]["signature"], "crasher", "processed on time, without symbols");
    let crasher = module(&before["processed"], "crasher");
    assert_eq!(crasher["symbol_candidates"][0]["outcome"], "downloading", "{crasher}");
    let (_, missing) = server.get_json("/api/v1/symbols/missing").await;
    assert!(missing.to_string().contains("crasher"), "{missing}");

    // The download finishes beside the crash; the crash is queued again and gets its frames.
    for _ in 0..200 {
        let (_, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        if crash["state"] == "processed" && crash["crash"]["signature"] != "crasher" {
            assert_eq!(
                crash["crash"]["signature"],
                "core::ptr::read_volatile | crasher::linux::wild_read"
            );
            let crasher = module(&crash["processed"], "crasher");
            assert_eq!(crasher["symbols_origin"], "build-ids");
            assert_eq!(upstream.count_under("/slow/"), 1);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the crash was not processed again with the fetched file");
}
}

on_both_databases! {
async fn the_missing_symbols_list_says_which_modules_no_source_has(db: Db) {
    let upstream = SymbolSource::start().await;
    let Some(server) = TestServer::start_on(db, |c| {
        c.symbols.sources = vec![http("mirror", upstream.url("missing"), SourceLayout::Native)];
    })
    .await
    else {
        return;
    };
    let id = crate::common::submit(&server, "wild-read.dmp", &[]).await;
    let (status, missing) = server.get_json("/api/v1/symbols/missing").await;
    assert_eq!(status, 200);
    let crasher = missing["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["code_file"] == "crasher")
        .unwrap_or_else(|| panic!("{missing}"));
    assert_eq!(crasher["sources"], "no source has it (asked mirror)");

    let ui = crate::common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = ui.get("/ui/symbols/missing").await;
    assert!(page.body.contains("no source has it (asked mirror)"), "{}", page.body);
    // The crash's page lists, under each module, the locations asked and what they answered.
    let page = ui.get(&format!("/ui/crashes/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("locations asked</summary>"), "{}", page.body);
    let asked = format!(
        "not found</span> mirror <code>{}",
        upstream.url("missing")
    );
    assert!(page.body.contains(&asked), "{}", page.body);
}
}

/// `faultline process` (the real binary) with `args`: exit code, stdout, stderr.
async fn faultline_process(args: Vec<String>) -> (i32, String, String) {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("process")
            .args(args)
            .env_remove("FAULTLINE_CONFIG")
            .env("FAULTLINE_LOG", "error")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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
