//! .NET frames: a method (metadata token) and an IL offset resolved to file and line through the
//! assembly's portable PDB (../shared's `portable.pdb` and `Sentry.Samples.Console.Basic.pdb`,
//! the latter with its sources embedded), by raw symbolication and through a Sentry .NET event
//! (`debug_meta` image of type `pe_dotnet`), the PDB uploaded by the real sentry-cli.

use crate::common;

use std::time::Duration;

use serde_json::{json, Value};

use common::{fixture_bytes, settled, TestServer};

/// `portable.pdb`'s debug ID (the PDB ID stamped in the assembly's CodeView record).
const PORTABLE_ID: &str = "1d6929b4-468b-4db8-9389-9a12bd257e1b-ab8cf31e";
/// `Sentry.Samples.Console.Basic.pdb`'s.
const SAMPLE_ID: &str = "526f365f-4d8d-4fa8-b370-eae9a9136de4-a39453e5";
/// Where `portable.pdb` says each (method row, IL offset) is in Program.cs: symbolic-ppdb's own
/// test of this file (`tests/test_caches.rs`, `test_integration`), innermost frame first.
const PORTABLE_LINES: [(u64, u64, u32); 5] =
    [(7, 10, 81), (5, 6, 37), (3, 0, 30), (2, 0, 25), (1, 45, 20)];

#[tokio::test(flavor = "multi_thread")]
async fn il_offsets_resolve_to_lines_through_the_portable_pdb() {
    let server = TestServer::start().await;
    let (status, uploaded) = server
        .upload(
            "portable.pdb",
            fixture_bytes("debug-files/windows/portable.pdb"),
        )
        .await;
    assert_eq!(status, 200, "{uploaded}");
    assert_eq!(
        uploaded["files"][0]["file"]["debug_id"], PORTABLE_ID,
        "{uploaded}"
    );
    let frames: Vec<Value> = PORTABLE_LINES
        .iter()
        .map(|(method, il, _)| json!({"function_id": method, "instruction_addr": il, "addr_mode": "rel:0"}))
        .chain([
            // A full MethodDef token (0x06 in the top byte) names the same row.
            json!({"function_id": "0x06000007", "instruction_addr": "0xa", "addr_mode": "rel:0"}),
            // A method the PDB has no sequence points for; a token of another table.
            json!({"function_id": 4000, "instruction_addr": 0, "addr_mode": "rel:0"}),
            json!({"function_id": "0x02000001", "instruction_addr": 0, "addr_mode": "rel:0"}),
        ])
        .collect();
    let request = json!({
        "stacktraces": [{"frames": frames}],
        "modules": [{"type": "pe_dotnet", "debug_id": PORTABLE_ID, "debug_file": "integration.pdb", "code_file": "integration.dll", "image_addr": "0x0"}],
    });
    let (status, answer) = server.admin_post("/api/v1/symbolicate", request).await;
    assert_eq!(status, 200, "{answer}");
    let out = answer["stacktraces"][0]["frames"].as_array().unwrap();
    for (i, (method, il, line)) in PORTABLE_LINES.iter().enumerate() {
        let frame = &out[i];
        assert_eq!(frame["status"], "symbolicated", "{frame}");
        assert_eq!(frame["lineno"], *line, "method {method} IL {il}: {frame}");
        assert_eq!(
            frame["abs_path"],
            "/Users/swatinem/Coding/sentry-dotnet/samples/foo/Program.cs"
        );
        assert_eq!(frame["lang"], "csharp", "{frame}");
        assert_eq!(frame["function_id"], format!("{method:#x}"), "{frame}");
    }
    assert_eq!(out[5]["lineno"], 81, "the full token: {}", out[5]);
    assert_eq!(out[6]["status"], "missing_symbol", "{}", out[6]);
    assert_eq!(out[7]["status"], "missing_symbol", "{}", out[7]);
    assert_eq!(answer["modules"][0]["debug_status"], "found", "{answer}");
}

/// A Sentry .NET SDK's event for the sample's crash (`throw null;` in top-level statements,
/// compiled to `<Main>$`, MethodDef row 1, the throw at IL offset 0xb).
fn sample_event() -> Value {
    json!({
        "platform": "csharp",
        "release": "sample@1.0.0",
        "exception": {"values": [{
            "type": "System.NullReferenceException",
            "value": "Object reference not set to an instance of an object.",
            "module": "System.Private.CoreLib",
            "mechanism": {"type": "AppDomain.UnhandledException", "handled": false},
            "stacktrace": {"frames": [{
                "function": "<Main>$",
                "module": "Program",
                "package": "Sentry.Samples.Console.Basic, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null",
                "in_app": true,
                "function_id": "0x06000001",
                "instruction_addr": "0xc",
                "addr_mode": "rel:0",
            }]},
        }]},
        "debug_meta": {"images": [{
            "type": "pe_dotnet",
            "debug_id": SAMPLE_ID,
            "debug_file": "Sentry.Samples.Console.Basic.pdb",
            "code_id": "E8BF6A96A000",
            "code_file": "C:\\dev\\sentry-dotnet\\samples\\Sentry.Samples.Console.Basic\\bin\\Release\\net6.0\\Sentry.Samples.Console.Basic.dll",
        }]},
    })
}

on_both_databases! {
/// An event whose PDB is not stored keeps its methods and names the PDB missing; once the real
/// sentry-cli uploads the PDB, the event is processed again: its frame gets the line, and the
/// crash's source context the line's text from the source embedded in the PDB.
async fn a_dotnet_event_gets_its_line_and_embedded_source_once_sentry_cli_uploads_the_pdb(db: Db) {
    if !common::tool_present("sentry-cli") {
        return;
    }
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let (status, reply) = common::send_envelope_items(&server, &[("event", sample_event())]).await;
    assert_eq!(status, 200, "{reply}");
    let id = serde_json::from_str::<Value>(&reply).unwrap()["id"].as_str().unwrap().to_owned();
    let done = settled(&server, &id).await;
    assert_eq!(done["state"], "processed", "{done}");
    let frame = &done["processed"]["threads"][0]["frames"][0];
    assert_eq!(frame["function"], "<Main>$", "{frame}");
    assert_eq!(frame["line"], Value::Null, "{frame}");
    let (status, missing) = server.get_json("/api/v1/symbols/missing?project=default").await;
    assert_eq!(status, 200, "{missing}");
    assert!(missing.to_string().contains("Sentry.Samples.Console.Basic.pdb"), "{missing}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Sentry.Samples.Console.Basic.pdb"),
        fixture_bytes("debug-files/windows/Sentry.Samples.Console.Basic.pdb"),
    )
    .unwrap();
    let out = common::sentry_cli_upload(&server, &["debug-files", "upload"], dir.path()).await;
    assert!(out.contains(&format!("OK {SAMPLE_ID}")), "{out}");

    let mut after = None;
    for _ in 0..200 {
        let (_, body) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        if body["state"] == "processed" && body["processed"]["threads"][0]["frames"][0]["line"] == 6 {
            after = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = after.expect("the event was processed again with its PDB");
    let frame = &done["processed"]["threads"][0]["frames"][0];
    assert_eq!(frame["function"], "<Main>$", "the event's method name stays: {frame}");
    assert_eq!(
        frame["file"],
        "C:\\dev\\sentry-dotnet\\samples\\Sentry.Samples.Console.Basic\\Program.cs"
    );
    assert!(
        done["crash"]["signature"].as_str().unwrap().contains("<Main>$"),
        "{done}"
    );
    let (_, missing) = server.get_json("/api/v1/symbols/missing?project=default").await;
    assert!(!missing.to_string().contains("Sentry.Samples.Console.Basic.pdb"), "{missing}");
    // The line itself, from the source embedded in the PDB.
    let (status, context) = server
        .get_json(&format!("/api/v1/crashes/{id}/source-context"))
        .await;
    assert_eq!(status, 200, "{context}");
    let lines = &context["context"]["frames"][0];
    assert_eq!(lines["context_line"], "    throw null;", "{context}");
    assert_eq!(lines["pre_context"][4], "    // The following exception is captured and sent to Sentry", "{context}");
    assert_eq!(lines["source"]["kind"], "stored_sources", "{context}");
    assert_eq!(lines["source"]["debug_id"], SAMPLE_ID, "{context}");
}
}
