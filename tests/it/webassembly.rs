//! WebAssembly frames: a WASM module with DWARF (the symbolic test suite's `simple.wasm`, its
//! build ID as code ID), frames given by module-relative address (`addr_mode: "rel:N"`, every
//! module's code starting at 0), through raw symbolication and through a Sentry event whose
//! `debug_meta` image has no load address.

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
    let response = server
        .client
        .post(server.url("/api/v1/symbolicate"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
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
