//! The `faultline` binary: `upload` against a real server on loopback, and `serve` start-up
//! errors.

mod common;

use std::process::Command;

use common::{fixture, TestServer};

fn faultline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faultline"));
    command
        .env_remove("FAULTLINE_URL")
        .env("FAULTLINE_LOG", "error");
    command
}

async fn run(mut command: Command) -> (i32, String, String) {
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_sends_folders_files_and_archives_and_prints_a_table() {
    let server = TestServer::start().await;
    let mut command = faultline();
    command
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
        .arg("--server")
        .arg(server.url(""))
        .arg(fixture("symbols/breakpad"));
    let (code, stdout, _) = run(again).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("0 stored, 2 already present, 0 rejected, 0 skipped"),
        "{stdout}"
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn process_prints_json_or_text_from_native_symbols() {
    let dump = fixture("minidumps/rust-minidump/linux-mini.dmp");
    let mut command = faultline();
    command
        .arg("process")
        .arg(&dump)
        .arg("--symbols")
        .arg(fixture("debug-files/linux/crash.debug"))
        .arg("--json");
    let (code, stdout, stderr) = run(command).await;
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["threads"][0]["frames"][0]["function"], "main");
    assert_eq!(json["threads"][0]["frames"][0]["line"], 35);

    let mut command = faultline();
    command
        .arg("process")
        .arg(&dump)
        .arg("--symbols")
        .arg(fixture("debug-files/linux"));
    let (code, stdout, stderr) = run(command).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Thread 0  (crashed)"), "{stdout}");
    assert!(stdout.contains("crash!crash [main.cpp : 23]"), "{stdout}");
    assert!(stdout.contains("Found by: inlining"), "{stdout}");
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
