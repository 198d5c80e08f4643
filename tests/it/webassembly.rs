//! WebAssembly frames: a WASM module with DWARF (the symbolic test suite's `simple.wasm`, its
//! build ID as code ID), frames given by module-relative address (`addr_mode: "rel:N"`, every
//! module's code starting at 0), through raw symbolication and through a Sentry event whose
//! `debug_meta` image has no load address; and a stripped module (an `external_debug_info` section
//! where its DWARF was) beside its debug file.

use crate::common;

use serde_json::{json, Value};

use common::{fixture_bytes, settled, TestServer};

/// What the module's DWARF says: `internal_func` starts at 0x8b (module-relative), and 0x8c is
/// line 19 of lib.rs (symbolic's own reading of the file, `symbolic-debuginfo`'s wasm tests).
const IN_INTERNAL_FUNC: &str = "0x8c";

async fn uploaded_wasm(server: &TestServer) -> (String, String) {
    let (status, uploaded) = server
        .upload("simple.wasm", fixture_bytes("debug-files/wasm/simple.wasm"))
        .await;
    assert_eq!(status, 200, "{uploaded}");
    let file = &uploaded["files"][0]["file"];
    (
        file["debug_id"].as_str().unwrap().to_owned(),
        file["code_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn relative_frames_find_their_module_among_modules_that_all_start_at_zero() {
    let server = TestServer::start().await;
    let (debug_id, code_id) = uploaded_wasm(&server).await;
    let request = json!({
        "stacktraces": [{"frames": [
            {"instruction_addr": IN_INTERNAL_FUNC, "addr_mode": "rel:1"},
            {"instruction_addr": IN_INTERNAL_FUNC, "addr_mode": "rel:0"},
            {"instruction_addr": IN_INTERNAL_FUNC, "addr_mode": "rel:7"},
        ]}],
        "modules": [
            {"type": "wasm", "debug_id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0", "code_file": "other.wasm", "image_addr": "0x0"},
            {"type": "wasm", "debug_id": debug_id, "code_id": code_id, "code_file": "simple.wasm", "image_addr": "0x0"},
        ]
    });
    let (status, json) = server
        .admin_post("/api/v1/symbolicate", request.clone())
        .await;
    assert_eq!(status, 200, "{json}");
    let frames = json["stacktraces"][0]["frames"].as_array().unwrap();
    assert_eq!(frames[0]["status"], "symbolicated", "{json}");
    assert_eq!(frames[0]["module_index"], 1);
    assert_eq!(frames[0]["function"], "internal_func");
    assert_eq!(frames[0]["lineno"], 19);
    assert!(
        frames[0]["abs_path"].as_str().unwrap().ends_with("lib.rs"),
        "{}",
        frames[0]
    );
    assert_eq!(frames[0]["sym_addr"], "0x8b");
    // The same address in the other module: that module, which has no symbols.
    assert_eq!(frames[1]["module_index"], 0);
    assert_eq!(frames[1]["status"], "missing_symbol", "{}", frames[1]);
    assert_eq!(json["modules"][0]["debug_status"], "missing", "{json}");
    assert_eq!(frames[2]["status"], "unknown_image", "no module 7");
    assert_eq!(json["modules"][1]["debug_status"], "found", "{json}");

    // A spelling symbolicator does not know is refused, naming the field.
    let mut bad = request.clone();
    bad["stacktraces"][0]["frames"][0]["addr_mode"] = json!("relative:1");
    let (status, error) = server.admin_post("/api/v1/symbolicate", bad).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("addr_mode"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webassembly_event_is_symbolicated_and_grouped_by_its_function() {
    let server = TestServer::start().await;
    let (debug_id, code_id) = uploaded_wasm(&server).await;
    let event = json!({
        "platform": "native",
        "exception": {"values": [{
            "type": "RuntimeError",
            "value": "unreachable executed",
            "stacktrace": {"frames": [
                {"instruction_addr": IN_INTERNAL_FUNC, "addr_mode": "rel:1"},
            ]},
        }]},
        "debug_meta": {"images": [
            {"type": "sourcemap", "code_file": "app.js", "debug_id": "c941d872-af1f-4f0c-a7ff-ad3d295fe153"},
            {"type": "wasm", "debug_id": debug_id, "code_id": code_id, "code_file": "http://localhost/simple.wasm"},
        ]},
    });
    let (status, reply) = common::send_envelope_items(&server, &[("event", event)]).await;
    assert_eq!(status, 200, "{reply}");
    let id = serde_json::from_str::<Value>(&reply).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = settled(&server, &id).await;
    assert_eq!(done["state"], "processed", "{done}");
    assert!(
        done["crash"]["signature"]
            .as_str()
            .unwrap()
            .contains("internal_func"),
        "{done}"
    );
    let frame = &done["processed"]["threads"][0]["frames"][0];
    assert_eq!(frame["function"], "internal_func", "{frame}");
    assert_eq!(frame["line"], 19, "{frame}");
}

/// `simple.wasm` as a build ships it to the browser: its DWARF sections stripped, an
/// `external_debug_info` section naming the debug file in their place (same `build_id`).
fn stripped_wasm() -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn read_leb(data: &[u8], at: &mut usize) -> usize {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let byte = data[*at];
            *at += 1;
            n |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return n;
            }
            shift += 7;
        }
    }
    let full = fixture_bytes("debug-files/wasm/simple.wasm");
    let mut out = full[..8].to_vec();
    let mut at = 8;
    let mut dropped = 0;
    while at < full.len() {
        let start = at;
        let id = full[at];
        at += 1;
        let size = read_leb(&full, &mut at);
        let body = at;
        at += size;
        if id == 0 {
            let mut name_at = body;
            let len = read_leb(&full, &mut name_at);
            if full[name_at..name_at + len].starts_with(b".debug_") {
                dropped += 1;
                continue;
            }
        }
        out.extend_from_slice(&full[start..at]);
    }
    assert!(dropped > 0, "simple.wasm has DWARF sections");
    let (name, url) = (
        b"external_debug_info".as_slice(),
        b"http://localhost/simple.debug.wasm".as_slice(),
    );
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    leb(url.len(), &mut payload);
    payload.extend_from_slice(url);
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// The stripped module a browser loads has the debug file's build ID: alone, it names functions
/// (its name section) without lines; uploaded after the debug file, it does not hide it (frames
/// keep their file and line).
#[tokio::test(flavor = "multi_thread")]
async fn a_stripped_module_shares_its_debug_files_id_without_hiding_it() {
    let stripped = stripped_wasm();
    let request = |debug_id: &str| {
        json!({
            "stacktraces": [{"frames": [{"instruction_addr": IN_INTERNAL_FUNC, "addr_mode": "rel:0"}]}],
            "modules": [{"type": "wasm", "debug_id": debug_id, "image_addr": "0x0"}],
        })
    };
    // Alone: the same ID, no functions.
    let alone = TestServer::start().await;
    let (status, uploaded) = alone.upload("simple.wasm", stripped.clone()).await;
    assert_eq!(status, 200, "{uploaded}");
    let stripped_id = uploaded["files"][0]["file"]["debug_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, json) = alone
        .admin_post("/api/v1/symbolicate", request(&stripped_id))
        .await;
    assert_eq!(status, 200, "{json}");
    let frame = &json["stacktraces"][0]["frames"][0];
    assert_eq!(
        frame["function"], "internal_func",
        "its name section names it: {json}"
    );
    assert!(
        frame["lineno"].is_null() && frame["abs_path"].is_null(),
        "no line without DWARF: {json}"
    );
    // After the debug file: the debug file answers.
    let server = TestServer::start().await;
    let (debug_id, _) = uploaded_wasm(&server).await;
    assert_eq!(
        stripped_id, debug_id,
        "the build_id section gives both the same ID"
    );
    let (status, uploaded) = server.upload("simple.wasm", stripped).await;
    assert_eq!(status, 200, "{uploaded}");
    let (status, json) = server
        .admin_post("/api/v1/symbolicate", request(&debug_id))
        .await;
    assert_eq!(status, 200, "{json}");
    let frame = &json["stacktraces"][0]["frames"][0];
    assert_eq!(
        (frame["function"].as_str(), frame["lineno"].as_u64()),
        (Some("internal_func"), Some(19)),
        "{json}"
    );
}
