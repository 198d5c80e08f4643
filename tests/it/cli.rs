//! The `faultline` binary: `upload` against a real server on loopback, and `serve` start-up
//! errors.

use crate::common;

use common::{faultline, fixture, run, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn upload_sends_folders_files_and_archives_and_prints_a_table() {
    let server = TestServer::start().await;
    let mut command = faultline();
    command
        .env("FAULTLINE_TOKEN", &server.admin_token)
        .arg("upload")
        .arg("--server")
        .arg(server.url(""))
        .arg(fixture("symbols/breakpad"))
        .arg(fixture("debug-files/macos/crash.dSYM"))
        .arg(fixture("upload-archives/tecken/sample.zip"));
    let (code, stdout, stderr) = run(command).await;
    // sample.zip carries a JPEG and a text file, and the dSYM fixture a file named `invalid`:
    // all three are rejected, and exit 1 says so.
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("3 file(s) rejected"), "{stderr}");
    assert!(stdout.starts_with("FILE"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| {
            l.starts_with("breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym ")
        })
        .expect("a row for test_app.sym");
    let cells: Vec<&str> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells[1..],
        [
            "breakpad x86",
            "5a9832e5-2872-41c1-838e-d98914e9b7ff-1",
            "stored"
        ],
        "{row}"
    );
    assert!(stdout.contains("skipped: bundle metadata"), "{stdout}");
    assert!(
        stdout.contains("crash.dSYM/Contents/Resources/DWARF/invalid"),
        "{stdout}"
    );
    assert!(stdout.contains("flag/deadbeef/flag.jpeg"), "{stdout}");
    assert!(
        stdout.contains("4 stored, 0 already present, 3 rejected, 1 skipped"),
        "{stdout}"
    );
    // The store agrees with the table.
    let (_, found) = server.get_json("/api/v1/symbols?name=crash-client").await;
    assert_eq!(found["files"].as_array().unwrap().len(), 1);

    let mut again = faultline();
    again
        .arg("upload")
        .arg("--token")
        .arg(&server.admin_token)
        .arg("--server")
        .arg(server.url(""))
        .arg(fixture("symbols/breakpad"));
    let (code, stdout, _) = run(again).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("0 stored, 2 already present, 0 rejected, 0 skipped"),
        "{stdout}"
    );

    // Without a token nothing is sent, and the message says what to pass.
    let mut anonymous = faultline();
    anonymous
        .arg("upload")
        .arg("--server")
        .arg(server.url(""))
        .arg(fixture("symbols/breakpad"));
    let (code, stdout, stderr) = run(anonymous).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("symbols:write"), "{stderr}");
}

/// `faultline token` and `faultline project` work on the data folder directly: the token they
/// print is accepted by a server started on the same folder afterwards, and revoking it there
/// reaches the running server.
#[tokio::test(flavor = "multi_thread")]
async fn token_and_project_commands_manage_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cli = |args: &[&str]| {
        let mut command = faultline();
        command.env("FAULTLINE_STORAGE_DATA_DIR", &data).args(args);
        command
    };
    let (code, slug, stderr) = run(cli(&["project", "create", "Space Game"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(slug.trim(), "space-game");
    let (code, _, stderr) = run(cli(&["project", "create", "Space Game"])).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, list, _) = run(cli(&["project", "list"])).await;
    assert_eq!(code, 0);
    assert!(
        list.contains("default") && list.contains("space-game"),
        "{list}"
    );

    let (code, key, stderr) = run(cli(&["project", "key", "space-game"])).await;
    assert_eq!(code, 0, "{stderr}");
    let key = key.trim().to_owned();
    assert_eq!(key.len(), 40, "{key}");
    let (_, keys, _) = run(cli(&["project", "key", "space-game", "--list"])).await;
    let key_id = keys
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(key_id.starts_with("key_"), "{keys}");

    let (code, token, stderr) = run(cli(&[
        "token",
        "create",
        "--scope",
        "triage:read",
        "--project",
        "space-game",
        "--name",
        "ci",
        "--expires",
        "30",
    ]))
    .await;
    assert_eq!(code, 0, "{stderr}");
    let token = token.trim().to_owned();
    assert!(token.starts_with("flt_") && !token.contains(char::is_whitespace));
    let (code, _, stderr) = run(cli(&["token", "create", "--scope", "triage"])).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("triage:read"), "{stderr}");
    let (code, _, stderr) = run(cli(&[
        "token",
        "create",
        "--scope",
        "admin",
        "--project",
        "nope",
    ]))
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no project \"nope\""), "{stderr}");
    let (_, tokens, _) = run(cli(&["token", "list"])).await;
    assert!(!tokens.contains(&token), "the list never shows a token");
    let row = tokens
        .lines()
        .find(|l| l.contains(" ci "))
        .expect("the ci token is listed");
    assert!(
        row.contains("triage:read") && row.contains("space-game") && row.contains("active"),
        "{row}"
    );
    let token_id = row.split_whitespace().next().unwrap().to_owned();

    // A server on the same folder accepts the token for its project only.
    let server = TestServer::start_with(|c| c.storage.data_dir = data.clone()).await;
    let get = |path: String| {
        server
            .anonymous
            .get(server.url(&path))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(
        get("/api/v1/groups?project=space-game".into())
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get("/api/v1/groups".into()).await.unwrap().status(), 403);

    let (code, _, _) = run(cli(&["token", "revoke", &token_id])).await;
    assert_eq!(code, 0);
    // A running server trusts a checked token for up to 2 s (faultline::auth::TOKEN_RECHECK).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let revoked = loop {
        let response = get("/api/v1/groups?project=space-game".into())
            .await
            .unwrap();
        if response.status() != 200 || std::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(revoked.status(), 401);
    assert!(revoked.headers().contains_key("www-authenticate"));
    let (code, _, stderr) = run(cli(&["token", "revoke", &token_id])).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no active token"), "{stderr}");
    let (code, _, _) = run(cli(&["project", "key", "space-game", "--revoke", &key_id])).await;
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_explains_an_unreachable_server_and_missing_paths() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let mut command = faultline();
    command
        .arg("upload")
        .arg("--server")
        .arg(format!("http://{closed}"))
        .arg(fixture("debug-files/windows/crash.sym"));
    let (code, _, stderr) = run(command).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot reach the faultline server"),
        "{stderr}"
    );

    let mut command = faultline();
    command.arg("upload").arg("/no/such/file.sym");
    let (code, _, stderr) = run(command).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read /no/such/file.sym"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_bad_configuration_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faultline.toml");
    std::fs::write(&config, "[server]\nlisten = \"not an address\"\n").unwrap();
    let mut command = faultline();
    command.arg("serve").arg("--config").arg(&config);
    let (code, _, stderr) = run(command).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("invalid configuration") && stderr.contains("listen"),
        "{stderr}"
    );

    // A port already taken is named, with what to do.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut command = faultline();
    command
        .current_dir(dir.path())
        .arg("serve")
        .arg("--listen")
        .arg(taken.local_addr().unwrap().to_string());
    let (code, _, stderr) = run(command).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

/// `faultline process DUMP --symbols SYMBOLS ARGS…`, run.
async fn process(
    dump: &std::path::Path,
    symbols: &std::path::Path,
    args: &[&str],
) -> (i32, String, String) {
    let mut command = faultline();
    command
        .arg("process")
        .arg(dump)
        .arg("--symbols")
        .arg(symbols)
        .args(args);
    run(command).await
}

/// A Breakpad `.sym` whose last line has no newline (older tools write them so) gives the same
/// frames through `--symbols DIR` (the file parsed in place) as the same file with one.
#[tokio::test(flavor = "multi_thread")]
async fn a_sym_file_without_a_final_newline_reads_the_same() {
    let dump = fixture("minidumps/rust-minidump/linux-mini.dmp");
    let sym = std::fs::read(fixture("debug-files/linux/crash.sym")).unwrap();
    assert_eq!(sym.last(), Some(&b'\n'));
    let mut frames = Vec::new();
    for text in [&sym[..], sym.trim_ascii_end()] {
        let tree = tempfile::tempdir().unwrap();
        let dir = tree.path().join("crash/C0BCC3F19827FE653058404B2831D9E60");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("crash.sym"), text).unwrap();
        let (code, stdout, stderr) = process(&dump, tree.path(), &["--json"]).await;
        assert_eq!(code, 0, "{stderr}");
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            json["threads"][0]["frames"][0]["function"], "main",
            "{stderr}"
        );
        frames.push(json["threads"].clone());
    }
    assert_eq!(frames[0], frames[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn process_prints_json_or_text_from_native_symbols() {
    let dump = fixture("minidumps/rust-minidump/linux-mini.dmp");
    let (code, stdout, stderr) = process(
        &dump,
        &fixture("debug-files/linux/crash.debug"),
        &["--json"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["threads"][0]["frames"][0]["function"], "main");
    assert_eq!(json["threads"][0]["frames"][0]["line"], 35);

    let (code, stdout, stderr) = process(&dump, &fixture("debug-files/linux"), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    // The verdict first, then the crashing thread with inlined calls as their own rows.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("Crash:          null-write: SIGSEGV"),
        "{stdout}"
    );
    assert_eq!(lines[1], "Exploitability: none", "{stdout}");
    assert!(
        stdout.contains("Fault frame:    #0 crash in crash at /work/linux/main.cpp:23"),
        "{stdout}"
    );
    assert!(
        stdout.contains("▶   0  crash           ↳ crash  /work/linux/main.cpp:23  [inlined]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("main  /work/linux/main.cpp:35  [context]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("libc-2.23.so  451A38B5067979D2073822A5CEB24C4B0"),
        "missing symbols say what to upload: {stdout}"
    );
    assert!(!stdout.contains('\x1b'), "no color when not a terminal");

    let (_, colored, _) =
        process(&dump, &fixture("debug-files/linux"), &["--color", "always"]).await;
    assert!(colored.contains("\x1b["), "{colored}");

    let (code, markdown, stderr) =
        process(&dump, &fixture("debug-files/linux"), &["--markdown"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        markdown.starts_with("### null-write: exploitability none\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains(
            "| **0** | crash | **↳ `crash` (inlined)** | /work/linux/main.cpp:23 | inlined |"
        ),
        "{markdown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn process_reads_only_the_symbols_the_dump_needs() {
    // A Breakpad tree for this dump and another, plus a native file for a third module.
    let tree = tempfile::tempdir().unwrap();
    for (module, id, file) in [
        (
            "test_app.pdb",
            "5A9832E5287241C1838ED98914E9B7FF1",
            "test_app.sym",
        ),
        (
            "crash-client",
            "509C0610949836F7B70BD88BCF03E5400",
            "crash-client.sym",
        ),
    ] {
        let dir = tree.path().join(module).join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            fixture(&format!("symbols/breakpad/{module}/{id}/{file}")),
            dir.join(file),
        )
        .unwrap();
    }
    let mut command = faultline();
    command
        .env("FAULTLINE_LOG", "faultline::cli=debug")
        .arg("process")
        .arg(fixture("minidumps/rust-minidump/test.dmp"))
        .arg("--symbols")
        .arg(tree.path())
        .arg("--symbols")
        .arg(fixture("debug-files/linux/crash.debug"))
        .arg("--json");
    let (code, stdout, stderr) = run(command).await;
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let frame = &json["crashing_thread"]["frames"][0];
    assert_eq!(frame["function"], "`anonymous namespace'::CrashFunction");
    assert!(stderr.contains("test_app.sym status=Stored"), "{stderr}");
    // The other dump's tree entry is never opened; the native file is identified, not kept.
    assert!(!stderr.contains("crash-client.sym"), "{stderr}");
    assert!(
        stderr.contains("crash.debug status=Skipped reason=Some(\"c0bcc3f1-9827-fe65-3058-404b2831d9e6 is not wanted\")"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn process_reads_debug_files_inside_an_archive_in_place() {
    // A zip of the dump's debug file: unpacked into the run's scratch folder and read there.
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("symbols.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    zip.start_file(
        "linux/crash.debug",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    std::io::Write::write_all(
        &mut zip,
        &std::fs::read(fixture("debug-files/linux/crash.debug")).unwrap(),
    )
    .unwrap();
    zip.finish().unwrap();
    let dump = fixture("minidumps/rust-minidump/linux-mini.dmp");
    let (code, stdout, stderr) = process(&dump, &archive, &["--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["threads"][0]["frames"][0]["function"], "main");
    assert_eq!(json["threads"][0]["frames"][0]["line"], 35);
    let module = json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["debug_file"] == "crash")
        .expect("the crash module");
    assert_eq!(module["loaded_symbols"], true, "{module}");
    // Read in place: no stored copy, so no symbol URL and no hash.
    assert_eq!(module["symbol_url"], serde_json::Value::Null, "{module}");
    assert_eq!(module["symbols_file"]["uploaded_name"], "linux/crash.debug");
    assert!(module["symbols_file"].get("sha256").is_none(), "{module}");
}

#[tokio::test(flavor = "multi_thread")]
async fn process_shows_other_threads_when_asked() {
    let dump = fixture("minidumps/rust-minidump/test.dmp");
    let mut command = faultline();
    command.arg("process").arg(&dump);
    let (code, crashing, stderr) = run(command).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        crashing.contains("Crashing thread 0 (tid 3060)"),
        "{crashing}"
    );
    assert!(!crashing.contains("Thread 1 "), "{crashing}");

    let mut command = faultline();
    command.arg("process").arg(&dump).args(["--threads", "all"]);
    let (code, all, stderr) = run(command).await;
    assert_eq!(code, 0, "{stderr}");
    let crashing_at = all.find("Crashing thread 0").expect("crashing thread");
    let other_at = all.find("Thread 1 (tid 4544)").expect("the other thread");
    assert!(crashing_at < other_at, "the crashing thread comes first");
}

#[tokio::test(flavor = "multi_thread")]
async fn process_refuses_what_is_not_a_minidump() {
    let mut command = faultline();
    command
        .arg("process")
        .arg(fixture("debug-files/linux/crash.sym"));
    let (code, stdout, stderr) = run(command).await;
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("not a minidump"), "{stderr}");

    let mut command = faultline();
    command
        .arg("process")
        .arg(fixture("minidumps/rust-minidump/invalid-range.dmp"));
    let (code, _, stderr) = run(command).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("corrupt or truncated minidump"), "{stderr}");

    let mut command = faultline();
    command.arg("process").arg("/no/such.dmp");
    let (code, _, stderr) = run(command).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read the minidump /no/such.dmp"),
        "{stderr}"
    );
}

/// `faultline retention` runs once on the configured stores: a dry run names what would go
/// (here: a file uploaded just now is not past any period) and `--json` is the same report.
#[tokio::test(flavor = "multi_thread")]
async fn retention_command_reports_and_respects_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let mut command = faultline();
        command
            .env("FAULTLINE_STORAGE_DATA_DIR", dir.path().join("data"))
            .env("FAULTLINE_STORAGE_ROOT", dir.path().join("store"))
            .args(args);
        command
    };
    let (code, out, stderr) = run(cli(&["retention", "--dry-run"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("dry run: nothing was deleted"), "{out}");
    assert!(
        out.contains("debug files: kept (retention.symbols_unused_days is 0)"),
        "{out}"
    );
    let (code, out, stderr) = run(cli(&[
        "retention",
        "--dry-run",
        "--json",
        "--symbols-unused-days",
        "30",
        "--payload-days",
        "90",
    ]))
    .await;
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["symbols_unused_days"], 30);
    assert_eq!(report["payload_days"], 90);
    assert_eq!(report["symbol_file_count"], 0);
    let (code, _, stderr) = run(cli(&["retention", "--payload-days", "soon"])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--payload-days"), "{stderr}");
}

/// `faultline upload` sends JavaScript too: a build folder's files under `--release` and
/// `--url-prefix` (named from inside the folder, as sentry-cli does) resolve by release and
/// URL; files with debug IDs need no release; the table says what each file became.
#[tokio::test(flavor = "multi_thread")]
async fn upload_sends_javascript_files_and_maps_by_release_or_debug_id() {
    let server = TestServer::start().await;
    let build = tempfile::tempdir().unwrap();
    let js_dir = build.path().join("dist/static/js");
    std::fs::create_dir_all(&js_dir).unwrap();
    for name in ["minified.js", "minified.js.map"] {
        std::fs::copy(
            fixture(&format!("sourcemaps/symbolic/simple/{name}")),
            js_dir.join(name),
        )
        .unwrap();
    }
    let mut command = faultline();
    command
        .env("FAULTLINE_TOKEN", &server.admin_token)
        .args([
            "upload",
            "--server",
            &server.url(""),
            "--release",
            "app@2.0",
        ])
        .args(["--url-prefix", "~/"])
        .arg(build.path().join("dist"));
    let (code, stdout, stderr) = run(command).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("static/js/minified.js.map "))
        .unwrap_or_else(|| panic!("a row named from inside the folder: {stdout}"));
    assert!(
        row.contains("source map") && row.contains("~/static/js/minified.js.map"),
        "{row}"
    );
    assert!(stdout.contains("2 stored"), "{stdout}");
    let answer = common::symbolicate_js(
        &server,
        serde_json::json!({
            "stacktraces": [{"frames": [{"abs_path": "https://example.com/static/js/minified.js", "lineno": 1, "colno": 10}]}],
            "release": "app@2.0",
        }),
    )
    .await;
    let frame = &answer["stacktraces"][0]["frames"][0];
    assert_eq!(frame["function"], "abcd", "{answer}");
    assert_eq!(frame["data"]["resolved_with"], "release");

    // With debug IDs, no release is needed.
    let id = "5b65abfb-2338-4f0b-b3b9-64c8f734d43f";
    let (js, map) = common::injected("webpack/bundle.js", "webpack/bundle.js.map", id, "debug_id");
    let injected = tempfile::tempdir().unwrap();
    std::fs::write(injected.path().join("bundle.js"), js).unwrap();
    std::fs::write(injected.path().join("bundle.js.map"), map).unwrap();
    let mut command = faultline();
    command
        .env("FAULTLINE_TOKEN", &server.admin_token)
        .args(["upload", "--server", &server.url("")])
        .arg(injected.path());
    let (code, stdout, stderr) = run(command).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("minified source") && stdout.contains(id),
        "{stdout}"
    );
}
