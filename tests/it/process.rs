//! Minidump processing on real dumps with real symbols: exact crashing-thread top frames
//! (function, file, line, inlines), thread counts and module statuses. Expected frames were
//! checked against minidump-stackwalk 0.27 run on the same dumps with the same .sym files, and
//! against the crashing programs' sources (line numbers in main.cpp / crash_linux.cpp).

use crate::common;

use std::sync::Arc;

use common::{files_under, fixture, fixture_bytes, symbol_store, TestServer};
use faultline::config::Config;
use faultline::process::{ProcessError, Processor};
use faultline::store::FsStore;
use faultline::symbols::local::LocalSymbols;
use faultline::symbols::unpack::UnpackLimits;
use faultline::symbols::SymbolStore;
use serde_json::Value;

/// A processor over a fresh store holding the given fixture files and folders.
async fn processor_with(symbols: &[&str]) -> (Processor, tempfile::TempDir) {
    let paths: Vec<_> = symbols.iter().map(|rel| fixture(rel)).collect();
    let (store, dir) = symbol_store(&paths).await;
    (Processor::from_config(&Config::default(), store), dir)
}

async fn process(symbols: &[&str], dump: &str) -> Value {
    let (processor, _dir) = processor_with(symbols).await;
    processor
        .process(fixture_bytes(dump).into())
        .await
        .unwrap()
        .to_json()
}

/// (function, file base name, line) of a frame, and its inlines innermost first.
fn frame(json: &Value, index: usize) -> (String, String, u64, Vec<(String, u64)>) {
    let crashing = json["crash_info"]["crashing_thread"].as_u64().unwrap() as usize;
    let f = &json["threads"][crashing]["frames"][index];
    let base = |v: &Value| {
        v.as_str()
            .unwrap_or("")
            .rsplit(['/', '\\'])
            .next()
            .unwrap()
            .to_owned()
    };
    let inlines = f["inlines"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["function"].as_str().unwrap().to_owned(),
                        i["line"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (
        f["function"].as_str().unwrap_or("").to_owned(),
        base(&f["file"]),
        f["line"].as_u64().unwrap_or(0),
        inlines,
    )
}

fn module<'a>(json: &'a Value, filename: &str) -> &'a Value {
    json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["filename"] == filename)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_x86_test_dmp_with_breakpad_symbols() {
    let json = process(&["symbols/breakpad"], "minidumps/rust-minidump/test.dmp").await;
    assert_eq!(
        json["crash_info"]["type"],
        "EXCEPTION_ACCESS_VIOLATION_WRITE"
    );
    assert_eq!(json["crash_info"]["address"], "0x00000045");
    assert_eq!(json["thread_count"], 2);
    assert_eq!(json["threads"].as_array().unwrap().len(), 2);
    assert_eq!(
        frame(&json, 0),
        (
            "`anonymous namespace'::CrashFunction".into(),
            "test_app.cc".into(),
            58,
            vec![]
        )
    );
    assert_eq!(
        frame(&json, 1),
        ("main".into(), "test_app.cc".into(), 65, vec![])
    );
    assert_eq!(
        frame(&json, 2),
        ("__tmainCRTStartup".into(), "crt0.c".into(), 327, vec![])
    );
    let crashing = &json["threads"][0]["frames"];
    assert_eq!(crashing[1]["trust"], "cfi");
    assert_eq!(crashing[3]["module"], "kernel32.dll");
    let app = module(&json, "test_app.exe");
    assert_eq!(
        (
            app["loaded_symbols"].as_bool(),
            app["symbol_status"].as_str()
        ),
        (Some(true), Some("found"))
    );
    assert!(app["symbols_file"]["uploaded_name"]
        .as_str()
        .unwrap()
        .ends_with("test_app.sym"));
    let kernel32 = module(&json, "kernel32.dll");
    assert_eq!(
        (
            kernel32["missing_symbols"].as_bool(),
            kernel32["symbol_status"].as_str()
        ),
        (Some(true), Some("missing"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn macos_rust_dump_with_inline_frames() {
    let json = process(
        &["symbols/breakpad"],
        "minidumps/rust-minidump/pipeline-inlines-macos-segv.dmp",
    )
    .await;
    assert_eq!(
        json["crash_info"]["type"],
        "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS"
    );
    assert_eq!(
        frame(&json, 0),
        (
            "sadness_generator::raise_segfault".into(),
            "lib.rs".into(),
            133,
            vec![("core::ptr::write_volatile::<u8>".into(), 1574)]
        )
    );
    assert_eq!(
        frame(&json, 1),
        (
            "crash_client::main".into(),
            "main.rs".into(),
            142,
            vec![
                ("crash_client::real_main::{closure#1}".into(), 88),
                ("crash_client::real_main".into(), 132),
            ]
        )
    );
    assert_eq!(json["threads"][0]["thread_name"], "main");
    let client = module(&json, "crash-client");
    assert_eq!(client["symbol_status"], "found");
}

#[tokio::test(flavor = "multi_thread")]
async fn linux_dump_from_native_dwarf_has_inlines() {
    let json = process(
        &["debug-files/linux/crash.debug"],
        "minidumps/rust-minidump/linux-mini.dmp",
    )
    .await;
    assert_eq!(json["crash_info"]["type"], "SIGSEGV");
    // main.cpp: main() calls start() (line 35), which calls crash() (line 27), which writes
    // through a null pointer (line 23); both calls are inlined into main.
    assert_eq!(
        frame(&json, 0),
        (
            "main".into(),
            "main.cpp".into(),
            35,
            vec![("crash".into(), 23), ("start".into(), 27)]
        )
    );
    assert_eq!(module(&json, "crash")["symbol_status"], "found");
    assert!(
        module(&json, "crash")["cfi_file"].is_null(),
        "a --only-keep-debug file has no CFI"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn linux_dump_from_breakpad_sym_and_stripped_binary() {
    // crash.sym was made from the stripped binary: PUBLIC symbols and STACK CFI only.
    let json = process(
        &["debug-files/linux/crash.sym"],
        "minidumps/rust-minidump/linux-mini.dmp",
    )
    .await;
    let top = &json["threads"][0]["frames"][0];
    assert_eq!(
        (top["function"].as_str(), top["function_offset"].as_str()),
        (Some("main"), Some("0x0000000000000102"))
    );
    assert!(top["file"].is_null());
    let caller = &json["threads"][0]["frames"][1];
    assert_eq!(
        (caller["module"].as_str(), caller["trust"].as_str()),
        (Some("libc-2.23.so"), Some("cfi"))
    );
    assert_eq!(caller["module_offset"], "0x000000000002082f");

    // Stripped binary for CFI plus its debug file for lines: the best of both.
    let json = process(
        &["debug-files/linux/crash", "debug-files/linux/crash.debug"],
        "minidumps/rust-minidump/linux-mini.dmp",
    )
    .await;
    assert_eq!(
        frame(&json, 0),
        (
            "main".into(),
            "main.cpp".into(),
            35,
            vec![("crash".into(), 23), ("start".into(), 27)]
        )
    );
    let caller = &json["threads"][0]["frames"][1];
    assert_eq!(
        (caller["module"].as_str(), caller["trust"].as_str()),
        (Some("libc-2.23.so"), Some("cfi"))
    );
    let crash = module(&json, "crash");
    assert_eq!(crash["symbols_file"]["uploaded_name"], "crash.debug");
    assert_eq!(crash["cfi_file"]["uploaded_name"], "crash");
}

#[tokio::test(flavor = "multi_thread")]
async fn symbolic_linux_dump_with_its_elf() {
    let json = process(
        &["minidumps/symbolic/crash_linux"],
        "minidumps/symbolic/crash_linux.dmp",
    )
    .await;
    assert_eq!(
        frame(&json, 0),
        (
            "(anonymous namespace)::crash()".into(),
            "crash_linux.cpp".into(),
            21,
            vec![]
        )
    );
    assert_eq!(
        frame(&json, 1),
        (
            "(anonymous namespace)::start()".into(),
            "crash_linux.cpp".into(),
            25,
            vec![]
        )
    );
    assert_eq!(
        frame(&json, 2),
        ("main".into(), "crash_linux.cpp".into(), 33, vec![])
    );
    assert_eq!(json["threads"][0]["frames"][1]["trust"], "cfi");
}

#[tokio::test(flavor = "multi_thread")]
async fn symbolic_macos_dump_with_its_dsym() {
    let json = process(
        &[
            "minidumps/symbolic/crash_macos.dSYM",
            "minidumps/symbolic/crash_macos",
        ],
        "minidumps/symbolic/crash_macos.dmp",
    )
    .await;
    assert_eq!(
        json["crash_info"]["type"],
        "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS"
    );
    assert_eq!(
        frame(&json, 0),
        (
            "(anonymous namespace)::crash()".into(),
            "crash_macos.cpp".into(),
            19,
            vec![]
        )
    );
    assert_eq!(
        frame(&json, 1),
        (
            "(anonymous namespace)::start()".into(),
            "crash_macos.cpp".into(),
            23,
            vec![]
        )
    );
    assert_eq!(
        frame(&json, 2),
        ("main".into(), "crash_macos.cpp".into(), 29, vec![])
    );
    let main = module(&json, "crash_macos");
    assert_eq!(main["symbols_file"]["format"], "macho");
    assert!(main["symbols_file"]["uploaded_name"]
        .as_str()
        .unwrap()
        .contains("crash_macos"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_symbols_degrade_to_module_offsets() {
    let json = process(&[], "minidumps/rust-minidump/test.dmp").await;
    let top = &json["threads"][0]["frames"][0];
    assert_eq!(top["module"], "test_app.exe");
    assert!(top["function"].is_null());
    assert_eq!(top["missing_symbols"], true);
    assert!(top["module_offset"].as_str().unwrap().starts_with("0x"));
    assert!(json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["symbol_status"] == "missing"));
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_input_gets_specific_errors() {
    let (processor, _dir) = processor_with(&[]).await;
    for name in ["invalid-range", "invalid-record-count"] {
        let err = processor
            .process(fixture_bytes(&format!("minidumps/rust-minidump/{name}.dmp")).into())
            .await
            .err()
            .unwrap_or_else(|| panic!("{name} should fail"));
        assert!(matches!(err, ProcessError::Corrupt(_)), "{name}: {err}");
    }
    let err = processor
        .process(b"PK\x03\x04 not a dump".to_vec().into())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ProcessError::NotAMinidump(_)), "{err}");
    let err = processor.process(Vec::new().into()).await.err().unwrap();
    assert!(err.to_string().contains("minidump"), "{err}");
    let dump = fixture_bytes("minidumps/rust-minidump/linux-mini.dmp");
    let err = processor
        .process(dump[..dump.len() / 4].to_vec().into())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ProcessError::Corrupt(_) | ProcessError::NotAMinidump(_)
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_name_what_was_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let store = SymbolStore::new(
        Arc::new(FsStore::open(dir.path().join("s")).unwrap()),
        dir.path().join("t"),
        UnpackLimits {
            max_entries: 1,
            max_unpacked_bytes: 1,
        },
    )
    .unwrap();
    let mut config = Config::default();
    config.limits.max_threads = 1;
    let store = Arc::new(store);
    let processor = Processor::from_config(&config, Arc::clone(&store));
    let err = processor
        .process(fixture_bytes("minidumps/rust-minidump/test.dmp").into())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ProcessError::Budget {
                budget: faultline::process::BudgetKind::Threads,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("limits.max_threads"), "{err}");

    // A deadline already past: the walk is stopped and the error names the time budget.
    let mut config = Config::default();
    config.limits.process_time_ms = 0;
    let processor = Processor::from_config(&config, Arc::clone(&store));
    let dump = fixture_bytes("minidumps/rust-minidump/test.dmp");
    let err = processor.process(dump.clone().into()).await.err().unwrap();
    assert!(
        matches!(
            err,
            ProcessError::Budget {
                budget: faultline::process::BudgetKind::Time,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("limits.process_time_ms"), "{err}");

    let mut config = Config::default();
    config.limits.max_modules = 3;
    let processor = Processor::from_config(&config, store);
    let err = processor.process(dump.into()).await.err().unwrap();
    assert!(
        matches!(
            err,
            ProcessError::Budget {
                budget: faultline::process::BudgetKind::Modules,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_processes_multipart_and_raw_dumps() {
    let server = TestServer::start().await;
    server.upload_fixture("debug-files/linux/crash.debug").await;
    let dump = fixture_bytes("minidumps/rust-minidump/linux-mini.dmp");
    let form = reqwest::multipart::Form::new()
        .text("product", "crash")
        .part(
            "upload_file_minidump",
            reqwest::multipart::Part::bytes(dump.clone()).file_name("x.dmp"),
        );
    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: Value = response.json().await.unwrap();
    assert_eq!(frame(&json, 0).0, "main");
    assert_eq!(frame(&json, 0).2, 35);
    assert!(json["timings"]["total_ms"].as_f64().unwrap() > 0.0);
    // The same pipeline classifies: a write at 0x45 through a null pointer, blamed on the
    // inlined `crash()`.
    assert_eq!(json["classification"]["fault_class"], "null-write");
    assert_eq!(json["classification"]["fault_frame"]["function"], "crash");

    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .body(dump)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let raw: Value = response.json().await.unwrap();
    assert_eq!(raw["threads"], json["threads"]);

    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let err: Value = response.json().await.unwrap();
    assert!(
        err["error"].as_str().unwrap().starts_with("not a minidump"),
        "{err}"
    );

    let form = reqwest::multipart::Form::new().text("product", "crash");
    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let err: Value = response.json().await.unwrap();
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("upload_file_minidump"),
        "{err}"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("faultline_minidumps_total{outcome=\"processed\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("faultline_minidumps_total{outcome=\"not_a_minidump\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn uploading_missing_symbols_takes_effect_for_the_next_dump() {
    let server = TestServer::start().await;
    let dump = fixture_bytes("minidumps/rust-minidump/linux-mini.dmp");
    let post = || {
        server
            .client
            .post(server.url("/api/v1/minidump"))
            .body(dump.clone())
            .send()
    };
    let before: Value = post().await.unwrap().json().await.unwrap();
    assert_eq!(module(&before, "crash")["symbol_status"], "missing");
    server.upload_fixture("debug-files/linux/crash.debug").await;
    let after: Value = post().await.unwrap().json().await.unwrap();
    assert_eq!(module(&after, "crash")["symbol_status"], "found");
    assert_eq!(frame(&after, 0).0, "main");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_dumps_get_413() {
    let server = TestServer::start_with(|c| c.limits.max_dump_bytes = 1000).await;
    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .body(fixture_bytes("minidumps/rust-minidump/linux-mini.dmp"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let err: Value = response.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("1000-byte limit"));
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_frames_symbolicate_against_native_pdbs_with_inlines() {
    let server = TestServer::start().await;
    server.upload_fixture("debug-files/windows/crash.pdb").await;
    server
        .upload_fixture("debug-files/windows/CrashWithException.pdb")
        .await;
    let request = serde_json::json!({
        "stacktraces": [{
            "frames": [
                // crash.pdb: dump_syms' crash.sym puts 0x1011 in RequestDump at line 324.
                {"instruction_addr": "0x401011"},
                // CrashWithException.pdb: 0x1042 (exact) is printf line 958, inside the
                // inlined _vfprintf_l; 0x1012 is a return address, looked up as 0x1011: line 954.
                {"instruction_addr": "0x140001042", "adjust_instruction_addr": false},
                {"instruction_addr": 5368713234u64},
                {"instruction_addr": "0x7000"},
                {"instruction_addr": "0x20000010"},
                {"instruction_addr": "0x30000010"}
            ]
        }],
        "modules": [
            {"type": "pe", "debug_id": "3249D99D0C4049318610F4E4FB0B69361", "code_file": "crash.exe", "image_addr": "0x400000", "image_size": 0x27000},
            {"type": "pe", "debug_id": "f535c5fb-2ae8-4bb8-aa20-6c30be566c5a-1", "code_file": "CrashWithException.exe", "image_addr": "0x140000000", "image_size": 0x9000},
            {"type": "pe", "debug_id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1", "code_file": "other.dll", "image_addr": "0x20000000", "image_size": 0x1000},
            {"type": "pe", "code_file": "anonymous.dll", "image_addr": "0x30000000", "image_size": 0x1000},
            {"type": "pe", "debug_id": "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB1", "image_addr": "0x50000000", "image_size": 0x1000}
        ]
    });
    let response = server
        .client
        .post(server.url("/api/v1/symbolicate"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: Value = response.json().await.unwrap();
    let frames = json["stacktraces"][0]["frames"].as_array().unwrap();
    let base = |v: &Value| v.as_str().unwrap().rsplit('\\').next().unwrap().to_owned();

    assert_eq!(frames[0]["status"], "symbolicated");
    assert!(frames[0]["function"]
        .as_str()
        .unwrap()
        .starts_with("google_breakpad::CrashGenerationClient::RequestDump("));
    assert_eq!(
        (base(&frames[0]["abs_path"]), frames[0]["lineno"].as_u64()),
        ("crash_generation_client.cc".into(), Some(324))
    );
    assert_eq!(frames[0]["sym_addr"], "0x401000");
    assert_eq!(
        frames[0]["inlines"][0]["function"],
        "google_breakpad::CrashGenerationClient::IsRegistered() const"
    );
    assert_eq!(frames[0]["inlines"][0]["lineno"], 319);

    assert!(frames[1]["function"]
        .as_str()
        .unwrap()
        .starts_with("printf("));
    assert_eq!(
        (base(&frames[1]["abs_path"]), frames[1]["lineno"].as_u64()),
        ("stdio.h".into(), Some(958))
    );
    assert!(frames[1]["inlines"][0]["function"]
        .as_str()
        .unwrap()
        .starts_with("_vfprintf_l("));
    assert_eq!(frames[1]["inlines"][0]["lineno"], 643);
    assert_eq!(frames[1]["package"], "CrashWithException.exe");

    assert_eq!(frames[2]["lineno"], 954, "{}", frames[2]);
    assert_eq!(frames[3]["status"], "unknown_image");
    assert_eq!(frames[4]["status"], "missing_symbol");
    assert_eq!(frames[5]["status"], "malformed");
    let statuses: Vec<&str> = json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["debug_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["found", "found", "missing", "no_debug_id", "unused"]
    );

    for bad in [
        r#"{"stacktraces": []}"#,
        "not json",
        r#"{"stacktraces":[{"frames":[{"instruction_addr":"0xZZ"}]}],"modules":[]}"#,
    ] {
        let response = server
            .client
            .post(server.url("/api/v1/symbolicate"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let err: Value = response.json().await.unwrap();
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid symbolication request"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crashpad_annotations_are_reported() {
    let json = process(&[], "minidumps/rust-minidump/simple-crashpad.dmp").await;
    let annotations = &json["crashpad_annotations"];
    assert_eq!(annotations["simple"]["hello"], "world");
    let modules = annotations["modules"].as_array().unwrap();
    let abort = modules
        .iter()
        .find(|m| m["list"][0] == "abort() called")
        .unwrap();
    // The annotation points at the module it came from.
    let index = abort["module_index"].as_u64().unwrap() as usize;
    assert!(
        json["modules"][index]["filename"]
            .as_str()
            .unwrap()
            .contains("libsystem_c"),
        "{}",
        json["modules"][index]
    );
    // Dumps without a Crashpad stream say so with null.
    let json = process(&[], "minidumps/rust-minidump/linux-mini.dmp").await;
    assert!(json["crashpad_annotations"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_parameter_dmp_is_a_valid_dump_of_an_invalid_parameter_crash() {
    // Despite its name, rust-minidump's invalid-parameter.dmp is well-formed: a Windows process
    // that died with STATUS_INVALID_PARAMETER. It must process, not fail.
    let json = process(&[], "minidumps/rust-minidump/invalid-parameter.dmp").await;
    assert_eq!(json["crash_info"]["type"], "STATUS_INVALID_PARAMETER");
    assert_eq!(json["thread_count"], 6);
    assert_eq!(json["status"], "OK");
}

/// Removes faultline's additions (docs/OUTPUT.md) from a processed-crash JSON, leaving what
/// minidump-stackwalk writes.
fn stackwalk_part(mut json: Value) -> Value {
    let object = json.as_object_mut().unwrap();
    for added in ["crashpad_annotations", "timings"] {
        assert!(object.remove(added).is_some(), "{added} missing");
    }
    for module in json["modules"].as_array_mut().unwrap() {
        let module = module.as_object_mut().unwrap();
        for added in ["symbol_status", "symbols_file", "cfi_file"] {
            assert!(module.remove(added).is_some(), "modules[].{added} missing");
        }
        // Present only when they say something (an error, where symbols came from, the
        // upstream locations asked).
        for optional in ["symbols_error", "symbols_origin", "symbol_candidates"] {
            module.remove(optional);
        }
    }
    // Variables: present on frames where the debug file described some.
    let frames = |json: &mut Value, path: &str| {
        let pointer = format!("{path}/frames");
        if let Some(frames) = json.pointer_mut(&pointer).and_then(Value::as_array_mut) {
            for frame in frames {
                frame.as_object_mut().unwrap().remove("variables");
            }
        }
    };
    let threads = json["threads"].as_array().map_or(0, Vec::len);
    for i in 0..threads {
        frames(&mut json, &format!("/threads/{i}"));
    }
    frames(&mut json, "/crashing_thread");
    json
}

/// The processed-crash JSON is written field by field (not through `print_json`); on every
/// dump we have, with and without symbols, it must hold exactly what minidump-processor's
/// `print_json` writes for the same processing result, plus faultline's fields. Processing a
/// dump a second time (symbol lookups then come from each module's memo) gives the same.
#[tokio::test(flavor = "multi_thread")]
async fn json_holds_exactly_what_print_json_writes() {
    let generated = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/minidumps");
    let mut groups: Vec<(std::path::PathBuf, Vec<std::path::PathBuf>)> = [
        ("symbols/breakpad", "minidumps/rust-minidump/test.dmp"),
        (
            "symbols/breakpad",
            "minidumps/rust-minidump/pipeline-inlines-macos-segv.dmp",
        ),
        (
            "symbols/breakpad",
            "minidumps/rust-minidump/simple-crashpad.dmp",
        ),
        (
            "symbols/breakpad",
            "minidumps/rust-minidump/invalid-parameter.dmp",
        ),
        (
            "debug-files/linux/crash.sym",
            "minidumps/rust-minidump/linux-mini.dmp",
        ),
        (
            "minidumps/symbolic/crash_linux",
            "minidumps/symbolic/crash_linux.dmp",
        ),
        (
            "minidumps/symbolic/crash_macos.dSYM",
            "minidumps/symbolic/crash_macos.dmp",
        ),
    ]
    .iter()
    .map(|(symbols, dump)| (fixture(symbols), vec![fixture(dump)]))
    .collect();
    let own: Vec<_> = std::fs::read_dir(&generated)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "dmp"))
        .collect();
    assert!(own.len() >= 23, "generated dumps missing: {}", own.len());
    groups.push((generated.join("crasher.debug"), own));
    let mut with_bit_flips = 0;
    let mut with_ip_update = 0;
    for (symbols, dumps) in &groups {
        let (store, _dir) = symbol_store(std::slice::from_ref(symbols)).await;
        let processor = Processor::from_config(&Config::default(), store);
        for dump in dumps {
            let crash = processor
                .process(std::fs::read(dump).unwrap().into())
                .await
                .unwrap();
            let ours = stackwalk_part(
                serde_json::from_slice(&serde_json::to_vec(&crash).unwrap()).unwrap(),
            );
            // Again, now with every lookup answered from the module's memo: the same frames.
            let again = processor
                .process(std::fs::read(dump).unwrap().into())
                .await
                .unwrap();
            assert_eq!(stackwalk_part(again.to_json()), ours, "{}", dump.display());
            let mut reference = Vec::new();
            crash.state.print_json(&mut reference, false).unwrap();
            let mut reference: Value = serde_json::from_slice(&reference).unwrap();
            // print_json lists process limits in hash order; faultline sorts them by name.
            if let Some(limits) = reference
                .pointer_mut("/proc_limits/limits")
                .and_then(Value::as_array_mut)
            {
                limits.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            }
            if let Some(difference) = first_difference(&ours, &reference, String::new()) {
                panic!("{}: {difference}", dump.display());
            }
            with_bit_flips += usize::from(!ours["crash_info"]["possible_bit_flips"].is_null());
            with_ip_update +=
                usize::from(!ours["crash_info"]["instruction_pointer_update"].is_null());
        }
    }
    // The rarer fields were really compared, not only null against null.
    assert!(
        with_bit_flips > 0 && with_ip_update > 0,
        "bit flips in {with_bit_flips} dumps, IP updates in {with_ip_update}"
    );
}

/// Where two JSON values first differ (path, ours, reference), if they do.
fn first_difference(ours: &Value, reference: &Value, path: String) -> Option<String> {
    match (ours, reference) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys()) {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                if a.contains_key(key) != b.contains_key(key) {
                    return Some(format!("{path}.{key}: only one side has it ({x} / {y})"));
                }
                if let Some(d) = first_difference(x, y, format!("{path}.{key}")) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, format!("{path}[{i}]"))),
        _ if ours == reference => None,
        _ => Some(format!("{path}: {ours} / {reference}")),
    }
}

/// `faultline process --symbols` reads a Breakpad file in place, parsed whole, where the store
/// builds a SymCache from it: every thread of every dump must come out the same both ways
/// (functions, files, lines, inlines, trust, and the unwinding that CFI decides).
#[tokio::test(flavor = "multi_thread")]
async fn breakpad_files_read_in_place_give_the_stored_frames() {
    let limits = UnpackLimits {
        max_entries: 1000,
        max_unpacked_bytes: 1 << 30,
    };
    for (symbols, dump) in [
        ("symbols/breakpad", "minidumps/rust-minidump/test.dmp"),
        (
            "symbols/breakpad",
            "minidumps/rust-minidump/pipeline-inlines-macos-segv.dmp",
        ),
        (
            "debug-files/linux/crash.sym",
            "minidumps/rust-minidump/linux-mini.dmp",
        ),
    ] {
        let stored = process(&[symbols], dump).await;
        let scratch = tempfile::tempdir().unwrap();
        let mut local = LocalSymbols::default();
        for path in files_under(&fixture(symbols)) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            local.add(&path, &name, || Ok(scratch.path().to_owned()), None, limits);
        }
        // Every module with symbols has its .sym read whole, not turned into a SymCache.
        let with_symbols: Vec<_> = stored["modules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["loaded_symbols"] == true)
            .map(|m| m["debug_id"].as_str().unwrap().to_owned())
            .collect();
        assert!(!with_symbols.is_empty(), "{dump}");
        for id in with_symbols {
            let id = symbolic::common::DebugId::from_breakpad(&id).unwrap();
            assert!(local.breakpad(&id).unwrap().is_some(), "{dump}: {id}");
        }
        let read = Processor::from_config(&Config::default(), local)
            .process(fixture_bytes(dump).into())
            .await
            .unwrap()
            .to_json();
        let frames = |json: &Value| json["threads"][0]["frames"].as_array().map(Vec::len);
        assert!(frames(&stored).unwrap_or(0) > 1, "{dump}: {stored}");
        assert_eq!(read["threads"], stored["threads"], "{dump}");
        assert_eq!(read["crashing_thread"], stored["crashing_thread"], "{dump}");
        let loaded = |json: &Value| {
            json["modules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["filename"].clone(), m["loaded_symbols"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(loaded(&read), loaded(&stored), "{dump}");
    }
}

/// The crash view reads back what was written: for every fixture dump, the stored JSON (written
/// as the server writes it, equal to serde_json's) read as a `CrashView` shows the same
/// threads, rows, modules, verdict and signature as the view of the report in hand (what the
/// CLI renders), and its rows are the classifier's own count.
#[tokio::test(flavor = "multi_thread")]
async fn the_crash_view_reads_back_what_was_written() {
    use faultline::classify::frames::{thread_frames, view_frames};
    use faultline::pipeline::{CrashView, Pipeline};
    for (symbols, dump) in [
        ("symbols/breakpad", "minidumps/rust-minidump/test.dmp"),
        (
            "symbols/breakpad",
            "minidumps/rust-minidump/pipeline-inlines-macos-segv.dmp",
        ),
        (
            "debug-files/linux/crash.debug",
            "minidumps/rust-minidump/linux-mini.dmp",
        ),
        (
            "minidumps/symbolic/crash_macos.dSYM",
            "minidumps/symbolic/crash_macos.dmp",
        ),
    ] {
        let (store, _dir) = symbol_store(&[fixture(symbols)]).await;
        let pipeline = Pipeline::from_config(&Config::default(), store).unwrap();
        let report = pipeline
            .run(
                fixture_bytes(dump).into(),
                &Default::default(),
                Default::default(),
            )
            .await
            .unwrap();
        // The server writes with sonic-rs (`ingest::processed_json`): the same JSON as
        // serde_json's, value for value.
        let json = sonic_rs::to_vec(&report).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
            serde_json::from_slice::<serde_json::Value>(&serde_json::to_vec(&report).unwrap())
                .unwrap(),
            "{dump}"
        );
        let read = CrashView::read(&json).unwrap_or_else(|e| panic!("{dump}: {e}"));
        let live = report.view();
        assert!(
            !read.parts.threads.is_empty() && !read.parts.modules.is_empty(),
            "{dump}"
        );
        assert_eq!(read.crashing_index(), live.crashing_index(), "{dump}");
        assert_eq!(
            read.parts.threads.len(),
            report.processed.state.threads.len()
        );
        for (i, thread) in read.parts.threads.iter().enumerate() {
            let rows = view_frames(thread);
            assert_eq!(
                rows,
                view_frames(&live.parts.threads[i]),
                "{dump} thread {i}"
            );
            assert_eq!(rows, thread_frames(&report.processed.state.threads[i]));
        }
        let names = |v: &CrashView<'_>| -> Vec<(String, String, Option<String>)> {
            v.parts
                .modules
                .iter()
                .map(|m| {
                    (
                        m.filename.to_string(),
                        m.debug_id.clone(),
                        m.symbols
                            .as_ref()
                            .map(|s| s.symbol_status.as_str().to_owned()),
                    )
                })
                .collect()
        };
        assert_eq!(names(&read), names(&live), "{dump}");
        assert!(names(&read).iter().all(|(_, _, status)| status.is_some()));
        assert_eq!(read.registers(), live.registers(), "{dump}");
        assert!(
            !read.registers().is_empty(),
            "{dump}: the crashing frame's registers"
        );
        let (a, b) = (read.classification.unwrap(), live.classification.unwrap());
        assert_eq!(a.fault_frame, b.fault_frame, "{dump}");
        assert_eq!(a.evidence.summary(), b.evidence.summary());
        assert_eq!(a.signals.sentences(), b.signals.sentences());
        assert_eq!(read.grouping.unwrap().signature, report.signature.text);
    }
}

/// What the correlations compare besides annotations, read from a real Windows dump: its OS
/// version and CPU vendor as the processed JSON reports them, and the version of every module
/// with one on the crashing thread's stack (and of no other module).
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_gives_its_os_cpu_and_crashing_module_versions_as_facts() {
    use faultline::group::ProcessedReport;
    use faultline::pipeline::Pipeline;
    let (store, _dir) = symbol_store(&[fixture("symbols/breakpad")]).await;
    let pipeline = Pipeline::from_config(&Config::default(), store).unwrap();
    let report = pipeline
        .run(
            fixture_bytes("minidumps/rust-minidump/test.dmp").into(),
            &Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let facts = report.facts();
    let json = report.to_json();
    assert_eq!(
        facts.get("os version").map(String::as_str),
        json["system_info"]["os_ver"].as_str(),
        "{facts:?}"
    );
    let cpu_info = json["system_info"]["cpu_info"].as_str().unwrap();
    assert_eq!(
        Some(facts["cpu vendor"].as_str()),
        cpu_info.split_whitespace().next(),
        "{cpu_info}"
    );
    assert!(
        cpu_info.contains(&format!("family {}", facts["cpu family"])),
        "{cpu_info}"
    );
    // Modules on the crashing thread, with the version the JSON gives them.
    let crashing = json["crash_info"]["crashing_thread"].as_u64().unwrap() as usize;
    let on_stack: std::collections::BTreeSet<&str> = json["threads"][crashing]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["module"].as_str())
        .collect();
    let mut expected = std::collections::BTreeMap::new();
    for module in json["modules"].as_array().unwrap() {
        let name = module["filename"].as_str().unwrap();
        if let (true, Some(version)) = (on_stack.contains(name), module["version"].as_str()) {
            expected.insert(format!("module {name}"), version.to_owned());
        }
    }
    let modules: std::collections::BTreeMap<String, String> = facts
        .iter()
        .filter(|(k, _)| k.starts_with("module "))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(!modules.is_empty(), "{facts:?}");
    assert_eq!(modules, expected);
    assert!(modules.len() < json["modules"].as_array().unwrap().len());
}
