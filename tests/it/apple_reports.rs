//! Apple crash reports: a `.crash` text report and an `.ips` report of ../shared's macOS `crash`
//! binary (symbolic's test program, its dSYM beside it), written here as macOS writes them.
//! Sent to `POST /api/v1/applecrashreport` before and after the dSYM is stored, and read by
//! `faultline process`. What each frame must say comes from the Breakpad file dump_syms made of
//! the same binary (`debug-files/macos/crash.sym`): `main` covers 0xdba0..0xdc63, 0xdc15 is
//! main.cpp line 21 and 0xdc25 line 34.

use crate::common;

use std::time::Duration;

use serde_json::Value;

use common::{fixture, fixture_bytes, multipart, settled, TestServer};

/// The `crash` binary's Mach-O UUID (its debug ID).
pub(crate) const UUID: &str = "67E9247C-814E-392B-A027-DBDE6748FCBF";
/// Where the report says it was loaded.
const BASE: u64 = 0x1_0a5e_1000;

/// A `.crash` report (Report Version 104): a null read 0x88 bytes past a null pointer in
/// `main` (crash.sym: 0xdc15 is main.cpp:21), called from libdyld's `start`; a second thread in
/// the kernel.
pub(crate) fn crash_report() -> String {
    format!(
        "Incident Identifier: 5A3E4E4B-6E1C-4F2B-9E3D-2B1E0C9A7D11
CrashReporter Key:   7c1a9e0f4b2d
Hardware Model:      MacBookPro14,3
Process:             crash [4242]
Path:                /Users/USER/crash
Identifier:          crash
Version:             1.0
Code Type:           X86-64 (Native)
Parent Process:      zsh [4100]

Date/Time:           2026-12-01 10:15:42.123 +0000
OS Version:          Mac OS X 10.15.7 (19H15)
Report Version:      104

Exception Type:      EXC_BAD_ACCESS (SIGSEGV)
Exception Codes:     KERN_INVALID_ADDRESS at 0x0000000000000088
Crashed Thread:      0  Dispatch queue: com.apple.main-thread

Thread 0 Crashed:: Dispatch queue: com.apple.main-thread
0   crash                         \t{f0:#018x} main + 117
1   libdyld.dylib                 \t0x00007fff6f3a6cc9 start + 1

Thread 1:
0   libsystem_kernel.dylib        \t0x00007fff6f4e54ce __workq_kernreturn + 10
1   libsystem_pthread.dylib       \t0x00007fff6f5a4aa1 _pthread_wqthread + 390

Thread 0 crashed with X86 Thread State (64-bit):
  rax: 0x0000000000000000  rbx: 0x0000000000000000  rcx: 0x0000000000000088  rdx: 0x0000000000000000
  rip: {f0:#018x}  rfl: 0x0000000000010246  cr2: 0x0000000000000088

Binary Images:
       {base:#x} -        {end:#x} +crash x86_64 (1.0) <{uuid}> /Users/USER/crash
    0x7fff6f3a3000 -     0x7fff6f3dcfff  libdyld.dylib x86_64 (852.2) <5FB3A4D7-9F3B-3C32-A4B1-9E2B1E0C9A7D> /usr/lib/system/libdyld.dylib
    0x7fff6f4e3000 -     0x7fff6f50dfff  libsystem_kernel.dylib x86_64 (6153.141.2) <2D1E0C9A-7D11-3E4E-9B6E-1C4F2B9E3D2B> /usr/lib/system/libsystem_kernel.dylib
    0x7fff6f5a2000 -     0x7fff6f5adfff  libsystem_pthread.dylib x86_64 (416.100.3) <9E3D2B1E-0C9A-3D11-A5A3-E4E4B6E1C4F2> /usr/lib/system/libsystem_pthread.dylib
",
        f0 = BASE + 0xdc15,
        base = BASE,
        end = BASE + 0xeffff,
        uuid = UUID.to_ascii_lowercase().replace('-', ""),
    )
}

/// An `.ips` report (macOS 12 and later) of an abort: `abort()` from `main` (the return
/// address 0xdc26 is in main.cpp line 34's call), the kernel's `__pthread_kill` on top.
fn ips_report() -> String {
    let header = serde_json::json!({
        "app_name": "crash", "timestamp": "2026-12-01 10:20:00.00 +0000", "app_version": "1.0",
        "bug_type": "309", "os_version": "macOS 12.3 (21E230)", "name": "crash",
        "incident_id": "1B2C3D4E-5F60-4718-92A3-B4C5D6E7F809",
    });
    let body = serde_json::json!({
        "procName": "crash", "procPath": "/Users/USER/crash", "cpuType": "X86-64",
        "modelCode": "MacBookPro18,3", "captureTime": "2026-12-01 10:20:00.0000 +0000",
        "osVersion": {"train": "macOS 12.3", "build": "21E230", "releaseType": "User"},
        "exception": {"codes": "0x0000000000000000, 0x0000000000000000", "rawCodes": [0, 0], "type": "EXC_CRASH", "signal": "SIGABRT"},
        "asi": {"libsystem_c.dylib": ["abort() called"]},
        "faultingThread": 0,
        "threads": [
            {"triggered": true, "id": 88123, "queue": "com.apple.main-thread", "threadState": {
                "rflags": {"value": 582}, "flavor": "x86_THREAD_STATE", "rip": {"value": 0x7ff8_0a5e_ae62u64, "matchesCrashFrame": 1},
                "r8": {"value": 1}, "trap": {"value": 133}, "rax": {"value": 0},
            }, "frames": [
                {"imageOffset": 32_354, "symbol": "__pthread_kill", "symbolLocation": 10, "imageIndex": 1},
                {"imageOffset": 0xdc26, "symbol": "main", "symbolLocation": 134, "imageIndex": 0},
            ]},
            {"id": 88124, "frames": [{"imageOffset": 9_678, "imageIndex": 1}]},
        ],
        "usedImages": [
            {"source": "P", "arch": "x86_64", "base": BASE, "size": 0xf0000, "uuid": UUID.to_ascii_lowercase(), "path": "/Users/USER/crash", "name": "crash", "CFBundleShortVersionString": "1.0"},
            {"source": "P", "arch": "x86_64", "base": 0x7ff8_0a5e_3000u64, "size": 0x37000, "uuid": "2d1e0c9a-7d11-3e4e-9b6e-1c4f2b9e3d2b", "path": "/usr/lib/system/libsystem_kernel.dylib", "name": "libsystem_kernel.dylib"},
        ],
    });
    format!("{header}\n{body}\n")
}

/// `report` as the multipart body symbolicator's route takes (boundary `B`).
fn report_form(report: &[u8]) -> Vec<u8> {
    multipart("B", &[("apple_crash_report", Some("crash.crash"), report)])
}

/// Sends `report` as symbolicator's route takes it; the crash ID.
pub(crate) async fn send(server: &TestServer, report: &[u8]) -> (u16, Value) {
    let auth = format!("Bearer {}", server.admin_token);
    let (status, body) = common::post(
        server,
        "/api/v1/applecrashreport?project=default",
        Some("multipart/form-data; boundary=B"),
        &[("authorization", &auth)],
        report_form(report),
    )
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// The crashed thread's name as the crash shows it.
fn threads_name(done: &Value) -> String {
    done["processed"]["threads"][0]["thread_name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The frames of the crashed thread, innermost first.
fn crashed_frames(done: &Value) -> Vec<Value> {
    let processed = &done["processed"];
    let crashed = processed["crash_info"]["crashing_thread"].as_u64().unwrap() as usize;
    processed["threads"][crashed]["frames"]
        .as_array()
        .unwrap()
        .clone()
}

on_both_databases! {
/// A `.crash` report without its dSYM keeps its addresses and names the dSYM missing; it is
/// still a null read (the codes give the address). Once the dSYM is stored it is processed
/// again: `main` at main.cpp line 21.
async fn a_crash_report_is_symbolicated_with_its_dsym_and_classified_by_its_exception(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let (status, reply) = send(&server, crash_report().as_bytes()).await;
    assert_eq!(status, 200, "{reply}");
    let id = reply["id"].as_str().unwrap().to_owned();
    let done = settled(&server, &id).await;
    assert_eq!(done["state"], "processed", "{done}");
    assert_eq!(done["processed"]["classification"]["fault_class"], "null-read", "{}", done["processed"]["classification"]);
    let frames = crashed_frames(&done);
    assert_eq!(frames[0]["trust"], "missing_symbol", "{}", frames[0]);
    // Without symbols, each frame keeps the function the report names.
    assert_eq!(frames[0]["function"], "main", "{}", frames[0]);
    assert_eq!(frames[1]["function"], "start", "{}", frames[1]);
    let (_, missing) = server.get_json("/api/v1/symbols/missing?project=default").await;
    assert!(missing.to_string().to_ascii_uppercase().contains(&UUID.replace('-', "")), "{missing}");

    let (status, uploaded) = server
        .upload("crash", fixture_bytes("debug-files/macos/crash.dSYM/Contents/Resources/DWARF/crash"))
        .await;
    assert_eq!(status, 200, "{uploaded}");
    let mut after = None;
    for _ in 0..200 {
        let (_, body) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        if body["state"] == "processed" && crashed_frames(&body)[0]["function"] == "main" {
            after = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = after.expect("the report was processed again with its dSYM");
    let frames = crashed_frames(&done);
    let top = &frames[0];
    let at_line_21 = std::iter::once(top)
        .chain(top["inlines"].as_array().into_iter().flatten())
        .any(|f| f["line"] == 21 && f["file"].as_str().unwrap_or_default().ends_with("macos/main.cpp"));
    assert!(at_line_21, "main.cpp:21 at 0xdc15: {top}");
    assert_eq!(frames[1]["trust"], "missing_symbol", "libdyld has no symbols here: {}", frames[1]);
    // Grouped by the function that faulted: inlined into main at that address.
    assert_eq!(done["crash"]["signature"], "(anonymous namespace)::crash", "{done}");
    assert_eq!(threads_name(&done), "thread 0 (com.apple.main-thread)");
    assert_eq!(done["processed"]["classification"]["fault_class"], "null-read");
    assert_eq!(done["processed"]["contexts"]["os"]["name"], "Mac OS X 10.15.7 (19H15)");
    assert_eq!(done["processed"]["contexts"]["device"]["model"], "MacBookPro14,3");
    assert_eq!(done["processed"]["release"], "crash@1.0");
    let threads = done["processed"]["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "both threads");
    // The crashed thread's state, in the CPU's order, on its innermost frame.
    let registers = &done["processed"]["crashing_thread"]["frames"][0]["registers"];
    assert_eq!(registers["rip"], format!("{:#018x}", BASE + 0xdc15), "{registers}");
    assert_eq!(registers["cr2"], "0x0000000000000088");
    let session = common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = session.get(&format!("/ui/crashes/{id}")).await;
    let at: Vec<usize> = ["rax", "rbx", "rcx", "rdx", "rip", "rfl", "cr2"]
        .iter()
        .map(|name| page.body.find(&format!(">{name}<")).unwrap_or_else(|| panic!("{name}: {}", page.body)))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "in the CPU's order: {at:?}");
}
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ips_report_is_read_and_an_abort_is_an_abort() {
    let server = TestServer::start().await;
    let (status, uploaded) = server
        .upload(
            "crash",
            fixture_bytes("debug-files/macos/crash.dSYM/Contents/Resources/DWARF/crash"),
        )
        .await;
    assert_eq!(status, 200, "{uploaded}");
    let (status, reply) = send(&server, ips_report().as_bytes()).await;
    assert_eq!(status, 200, "{reply}");
    let done = settled(&server, reply["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "processed", "{done}");
    let processed = &done["processed"];
    assert_eq!(
        processed["classification"]["fault_class"], "abort",
        "{}",
        processed["classification"]
    );
    assert!(
        processed["exceptions"][0]["value"]
            .as_str()
            .unwrap()
            .contains("abort() called"),
        "{}",
        processed["exceptions"]
    );
    let frames = crashed_frames(&done);
    assert_eq!(
        frames[0]["function"], "__pthread_kill",
        "the report's name: {}",
        frames[0]
    );
    assert_eq!(frames[0]["trust"], "missing_symbol", "{}", frames[0]);
    assert_eq!(frames[1]["function"], "main", "{}", frames[1]);
    assert_eq!(
        frames[1]["line"], 34,
        "the return address 0xdc26 is main.cpp:34's call: {}",
        frames[1]
    );
    assert_eq!(processed["contexts"]["os"]["name"], "macOS 12.3 (21E230)");
    // The crash page reads it like any crash: the exception, the frame in main.cpp.
    let session = common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = session
        .get(&format!("/ui/crashes/{}", reply["id"].as_str().unwrap()))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("EXC_CRASH (SIGABRT)"), "{}", page.body);
    assert!(page.body.contains("main.cpp"), "{}", page.body);
    // Its registers, from the report's `threadState`, in the CPU's order.
    let registers = &processed["crashing_thread"]["frames"][0]["registers"];
    assert_eq!(registers["rip"], "0x00007ff80a5eae62", "{registers}");
    let rows: Vec<usize> = ["rax", "r8", "rip", "rflags", "trap"]
        .iter()
        .map(|name| {
            page.body
                .find(&format!(">{name}<"))
                .unwrap_or_else(|| panic!("{name} on the page"))
        })
        .collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
    assert!(page.body.contains("0x00007ff80a5eae62"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_reports_get_clear_errors() {
    let server = TestServer::start().await;
    let (status, reply) = send(&server, b"this is not a crash report\n").await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("not an Apple crash report"),
        "{reply}"
    );
    let (status, reply) = send(&server, b"{\"bug_type\": \"309\"}\n{\"threads\": [").await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("body"), "{reply}");
    // Another field name: what to send instead.
    let auth = format!("Bearer {}", server.admin_token);
    let (status, body) = common::post(
        &server,
        "/api/v1/applecrashreport?project=default",
        Some("multipart/form-data; boundary=B"),
        &[("authorization", &auth)],
        multipart(
            "B",
            &[(
                "upload_file_minidump",
                Some("a.crash"),
                crash_report().as_bytes(),
            )],
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("apple_crash_report"), "{body}");
    // A token that may not ingest: refused.
    let (reader, _) = server
        .create_token(serde_json::json!({ "scopes": ["symbols:read"] }))
        .await;
    let (status, _) = common::post(
        &server,
        "/api/v1/applecrashreport?project=default",
        Some("multipart/form-data; boundary=B"),
        &[("authorization", &format!("Bearer {reader}"))],
        report_form(crash_report().as_bytes()),
    )
    .await;
    assert_eq!(status, 403);
    // A report past the limit (a thread of a million frames, ~60 MB): 413, nothing stored.
    let frames: String = (0..1_000_000)
        .map(|i| format!("{i}   libsystem_kernel.dylib        \t0x00007fff6f4e54ce __workq_kernreturn + 10\n"))
        .collect();
    let huge = crash_report().replace("Thread 1:\n", &format!("Thread 1:\n{frames}"));
    let (status, reply) = send(&server, huge.as_bytes()).await;
    assert!(status == 413, "{status} {reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_keys_required_a_report_needs_a_key_or_an_ingest_token() {
    let server = TestServer::start_with(|c| c.ingest.require_key = true).await;
    let project = server.create_project("Mac Game").await;
    let slug = project["slug"].as_str().unwrap().to_owned();
    let (_, key) = server
        .admin_post(
            &format!("/api/v1/projects/{slug}/keys"),
            serde_json::json!({}),
        )
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let form = || report_form(crash_report().as_bytes());
    let ct = Some("multipart/form-data; boundary=B");
    let send = |query: String| {
        let (server, body) = (&server, form());
        async move {
            let path = format!("/api/v1/applecrashreport?{query}");
            common::post(server, &path, ct, &[], body).await
        }
    };
    // No token, no key; a key that is nobody's: refused, in JSON.
    for (query, reason) in [
        (format!("project={slug}"), "missing_key"),
        ("key=0123".to_owned(), "unknown_key"),
    ] {
        let (status, body) = send(query).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains(reason), "{body}");
    }
    // The project's key: filed under its project.
    let (status, body) = send(format!("key={key}")).await;
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = settled(&server, &id).await;
    assert_eq!(done["crash"]["project_id"], project["id"], "{done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn faultline_process_reads_both_formats_with_local_dsyms() {
    let dsym = fixture("debug-files/macos/crash.dSYM");
    let dir = tempfile::tempdir().unwrap();
    for (name, report) in [
        ("report.crash", crash_report()),
        ("report.ips", ips_report()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, report).unwrap();
        let mut command = common::faultline();
        command
            .arg("process")
            .arg(&path)
            .arg("--symbols")
            .arg(&dsym)
            .arg("--json")
            .env("FAULTLINE_STORAGE_DATA_DIR", dir.path().join("data"));
        let (code, out, err) = common::run(command).await;
        assert_eq!(code, 0, "{name}: {err}");
        let json: Value = serde_json::from_str(&out).unwrap();
        let frames = &json["threads"][0]["frames"];
        let main = frames
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["function"] == "main");
        assert!(main.is_some(), "{name}: {frames}");
        assert_eq!(json["kind"], "event");
        // The readable report leads with the exception.
        let mut command = common::faultline();
        command
            .arg("process")
            .arg(&path)
            .arg("--symbols")
            .arg(&dsym);
        let (code, out, err) = common::run(command).await;
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains("main"), "{name}: {out}");
    }
    // Neither a minidump nor a report: the minidump's error, exit 1.
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "hello").unwrap();
    let mut command = common::faultline();
    command
        .arg("process")
        .arg(&junk)
        .arg("--symbols")
        .arg(&dsym);
    let (code, _, err) = common::run(command).await;
    assert_eq!(code, 1, "{err}");
}
