//! The MCP server with the official MCP Python SDK's client (PyPI `mcp`), over both transports:
//! streamable HTTP at `/mcp` with a bearer token, and `faultline mcp` over stdio. The tools are
//! listed and each is called; a tool needing `triage:write` is refused for a reader; a project
//! the token does not cover is invisible; no token is a 401.

use crate::common;

use serde_json::{json, Value};

use common::{submit, TestServer};

/// The client: connects over `transport` (`http URL` or `stdio COMMAND`), lists the tools,
/// calls each with the arguments given, prints what came back as JSON.
const CLIENT: &str = r#"
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

async def run(session, calls):
    await session.initialize()
    tools = await session.list_tools()
    out = {"tools": sorted(t.name for t in tools.tools), "calls": []}
    for name, arguments in calls:
        result = await session.call_tool(name, arguments)
        text = "".join(c.text for c in result.content if getattr(c, "text", None) is not None)
        error = getattr(result, "is_error", None)
        if error is None:
            error = getattr(result, "isError", False)
        out["calls"].append({"tool": name, "error": bool(error), "text": text})
    return out

async def main():
    transport, target, token, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    if transport == "http":
        http = create_mcp_http_client(headers={"Authorization": "Bearer " + token})
        async with streamable_http_client(target, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                print(json.dumps(await run(session, calls)))
    else:
        env = dict(os.environ, FAULTLINE_TOKEN=token)
        params = StdioServerParameters(command=target, args=["mcp"], env=env)
        async with stdio_client(params) as (r, w):
            async with ClientSession(r, w) as session:
                print(json.dumps(await run(session, calls)))

asyncio.run(main())
"#;

/// Runs the client; what it printed.
async fn client(
    transport: &str,
    target: &str,
    token: &str,
    calls: &Value,
    env: &[(&str, String)],
) -> Value {
    let mut command = tokio::process::Command::new("python3");
    command.args(["-c", CLIENT, transport, target, token, &calls.to_string()]);
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .env("FAULTLINE_LOG", "error")
        .env_remove("FAULTLINE_CONFIG");
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn call(out: &Value, i: usize) -> (&str, bool) {
    let c = &out["calls"][i];
    (
        c["text"].as_str().unwrap_or_default(),
        c["error"].as_bool().unwrap_or(true),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assistant_investigates_through_both_transports() {
    let present = std::process::Command::new("python3")
        .args(["-c", "import mcp"])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            !common::services_required(),
            "the MCP Python SDK (PyPI mcp) is required (tests/run.sh installs it)"
        );
        return;
    }
    let server = TestServer::start().await;
    let (status, _) = server
        .upload("crasher.debug", common::generated_bytes("crasher.debug"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = server.upload_fixture("debug-files/windows/crash.pdb").await;
    assert_eq!(status, 200);
    let crash = submit(
        &server,
        "null-write.dmp",
        &[("ver", "2.0"), ("gpu_driver", "31.0")],
    )
    .await;
    let (_, body) = server.get_json(&format!("/api/v1/crashes/{crash}")).await;
    let group = body["crash"]["group_id"].as_i64().unwrap();
    let (reader, _) = server
        .create_token(json!({"name": "assistant", "scopes": ["triage:read", "symbols:read"]}))
        .await;
    let (writer, _) = server
        .create_token(json!({"name": "fixer", "scopes": ["triage:read", "triage:write"]}))
        .await;
    server.create_project("other").await;
    let (outsider, _) = server.create_token(json!({"name": "outsider", "scopes": ["triage:read", "triage:write"], "projects": ["other"]})).await;
    let calls = json!([
        ["find_groups", {"project": "default"}],
        ["group_evidence", {"group_id": group}],
        ["group_evidence", {"group_id": group, "markdown": true}],
        ["get_crash", {"crash_id": crash}],
        ["find_crashes", {"annotation": "gpu_driver", "value": "31.0"}],
        ["list_releases", {}],
        ["update_group", {"group_id": group, "state": "in_progress", "assignee": "ana@acme.test"}],
        ["symbolicate_frames", {
            "stacktraces": [{"frames": [{"instruction_addr": "0x401011"}]}],
            "modules": [{"type": "pe", "debug_id": "3249D99D0C4049318610F4E4FB0B69361", "code_file": "crash.exe", "image_addr": "0x400000", "image_size": 0x27000}],
        }],
        ["find_groups", {"sort": "random"}],
        ["group_evidence", {"group_id": 999_999}],
    ]);
    let expect_tools = json!([
        "find_crashes",
        "find_groups",
        "get_crash",
        "group_evidence",
        "list_releases",
        "symbolicate_frames",
        "update_group"
    ]);

    // Streamable HTTP, a reader: everything but the change.
    let url = server.url("/mcp");
    let out = client("http", &url, &reader, &calls, &[]).await;
    assert_eq!(out["tools"], expect_tools);
    let (groups, error) = call(&out, 0);
    assert!(
        !error && groups.contains(&format!("\"id\":{group}")),
        "{groups}"
    );
    let (evidence, error) = call(&out, 1);
    let evidence: Value = serde_json::from_str(evidence).unwrap();
    assert!(!error);
    assert_eq!(
        evidence["verdict"]["fault_frame"]["function"], "crasher::linux::null_write",
        "{evidence}"
    );
    let (markdown, _) = call(&out, 2);
    assert!(
        markdown.starts_with(&format!("## Group {group}: ")),
        "{markdown}"
    );
    let (crash_text, error) = call(&out, 3);
    assert!(
        !error && crash_text.contains("crasher::linux::null_write"),
        "{crash_text}"
    );
    let (found, _) = call(&out, 4);
    assert!(found.contains(&crash), "{found}");
    let (releases, error) = call(&out, 5);
    assert!(!error && releases.contains("\"releases\""), "{releases}");
    let (refusal, error) = call(&out, 6);
    assert!(error && refusal.contains("triage:write"), "{refusal}");
    // Bad arguments are refusals that say what is wrong.
    let (refusal, error) = call(&out, 8);
    assert!(error && refusal.contains("sort by events"), "{refusal}");
    let (refusal, error) = call(&out, 9);
    assert!(error && refusal.contains("no group 999999"), "{refusal}");
    let (symbolicated, error) = call(&out, 7);
    assert!(
        !error && symbolicated.contains("google_breakpad::CrashGenerationClient::RequestDump("),
        "{symbolicated}"
    );

    // Over stdio (`faultline mcp` on the server's stores), a writer: the change goes through.
    let env = [
        (
            "FAULTLINE_STORAGE_DATA_DIR",
            server.data_dir.display().to_string(),
        ),
        (
            "FAULTLINE_STORAGE_ROOT",
            server.store_root.display().to_string(),
        ),
        ("FAULTLINE_INDEX_URL", server.config.index_url()),
    ];
    let out = client(
        "stdio",
        env!("CARGO_BIN_EXE_faultline"),
        &writer,
        &calls,
        &env,
    )
    .await;
    assert_eq!(out["tools"], expect_tools);
    let (evidence, error) = call(&out, 1);
    assert!(
        !error && evidence.contains("crasher::linux::null_write"),
        "{evidence}"
    );
    let (changed, error) = call(&out, 6);
    assert!(!error, "{changed}");
    let (_, now) = server.get_json(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(now["state"], "in_progress", "{now}");
    assert_eq!(now["assignee"], "ana@acme.test");

    // Another project's token sees nothing of this one, on either transport.
    let out = client("http", &url, &outsider, &calls, &[]).await;
    let (refusal, error) = call(&out, 0);
    assert!(
        error && refusal.contains("not valid for project"),
        "{refusal}"
    );
    let (refusal, error) = call(&out, 1);
    assert!(
        error && refusal.contains(&format!("no group {group}")),
        "{refusal}"
    );
    let (refusal, error) = call(&out, 3);
    assert!(error && refusal.contains("no crash"), "{refusal}");
    let (refusal, error) = call(&out, 7);
    assert!(error && refusal.contains("symbols:read"), "{refusal}");

    // No token, a bad one: 401 before any MCP; a bad token for stdio: a refusal and exit 1.
    let response = reqwest::Client::new()
        .post(&url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth("fl_nope")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A request past the body limit (1 MiB) is refused before the MCP server reads it.
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&reader)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let mut cli = common::faultline();
    cli.args(["mcp", "--token", "fl_nope"])
        .env("FAULTLINE_STORAGE_DATA_DIR", &server.data_dir)
        .env("FAULTLINE_INDEX_URL", server.config.index_url());
    let (code, _, err) = common::run(cli).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error:"), "{err}");
}
