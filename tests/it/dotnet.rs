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

/// An assembly built with `<DebugType>embedded</DebugType>`, laid out as Roslyn writes one: a
/// 32-bit DLL whose debug directory has a CodeView entry naming `pdb`'s PDB ID (the portable
/// form: minor version `PM`, the ID's stamp as the entry's time stamp) and an Embedded Portable
/// PDB entry (type 17: `MPDB`, the PDB's size, the PDB deflated).
fn assembly_with_embedded_pdb(pdb: &[u8], pdb_name: &str) -> Vec<u8> {
    use object::pe;
    use object::write::pe::{NtHeaders, Writer};
    use std::io::Write;

    let id = symbolic::debuginfo::Object::parse(pdb).unwrap().debug_id();
    let mut codeview = b"RSDS".to_vec();
    codeview.extend_from_slice(&id.uuid().to_bytes_le());
    codeview.extend_from_slice(&1u32.to_le_bytes());
    codeview.extend_from_slice(pdb_name.as_bytes());
    codeview.push(0);
    let mut embedded = b"MPDB".to_vec();
    embedded.extend_from_slice(&(pdb.len() as u32).to_le_bytes());
    let mut deflate = flate2::write::DeflateEncoder::new(embedded, flate2::Compression::best());
    deflate.write_all(pdb).unwrap();
    let embedded = deflate.finish().unwrap();

    // The section: two debug directory entries (28 bytes each), then their data.
    let entries = 2 * 28;
    let section_len = entries + codeview.len() + embedded.len();
    let mut out = Vec::new();
    let mut writer = Writer::new(false, 0x2000, 0x200, &mut out);
    writer.reserve_dos_header_and_stub();
    writer.reserve_nt_headers(pe::IMAGE_NUMBEROF_DIRECTORY_ENTRIES);
    writer.reserve_section_headers(1);
    let text = writer.reserve_text_section(section_len as u32);
    writer.set_data_directory(
        pe::IMAGE_DIRECTORY_ENTRY_DEBUG,
        text.virtual_address,
        entries as u32,
    );
    let mut section = Vec::with_capacity(section_len);
    let mut offset = entries as u32;
    for (kind, minor, stamp, data) in [
        (
            pe::IMAGE_DEBUG_TYPE_CODEVIEW,
            0x504d_u16,
            id.appendix(),
            &codeview,
        ),
        (17, 0x0100, 0, &embedded),
    ] {
        for field in [0, stamp] {
            section.extend_from_slice(&field.to_le_bytes());
        }
        section.extend_from_slice(&0x0100_u16.to_le_bytes());
        section.extend_from_slice(&minor.to_le_bytes());
        for field in [
            kind,
            data.len() as u32,
            text.virtual_address + offset,
            text.file_offset + offset,
        ] {
            section.extend_from_slice(&field.to_le_bytes());
        }
        offset += data.len() as u32;
    }
    section.extend_from_slice(&codeview);
    section.extend_from_slice(&embedded);
    writer.write_dos_header_and_stub().unwrap();
    writer.write_nt_headers(NtHeaders {
        machine: pe::IMAGE_FILE_MACHINE_I386,
        time_date_stamp: 0xE8BF_6A96,
        characteristics: pe::IMAGE_FILE_EXECUTABLE_IMAGE
            | pe::IMAGE_FILE_32BIT_MACHINE
            | pe::IMAGE_FILE_DLL,
        major_linker_version: 48,
        minor_linker_version: 0,
        address_of_entry_point: 0,
        image_base: 0x1000_0000,
        major_operating_system_version: 4,
        minor_operating_system_version: 0,
        major_image_version: 0,
        minor_image_version: 0,
        major_subsystem_version: 4,
        minor_subsystem_version: 0,
        subsystem: pe::IMAGE_SUBSYSTEM_WINDOWS_CUI,
        dll_characteristics: pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE
            | pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT,
        size_of_stack_reserve: 0x10_0000,
        size_of_stack_commit: 0x1000,
        size_of_heap_reserve: 0x10_0000,
        size_of_heap_commit: 0x1000,
    });
    writer.write_section_headers();
    writer.write_section(text.file_offset, &section);
    out
}

/// Waits until the event `id` is processed with its frame on line 6, and returns it.
async fn processed_with_line(server: &TestServer, id: &str) -> Value {
    for _ in 0..200 {
        let (_, body) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        if body["state"] == "processed" && body["processed"]["threads"][0]["frames"][0]["line"] == 6
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the event {id} was not processed again with its PDB");
}

on_both_databases! {
/// An assembly carrying its PDB inside, uploaded as it is (`curl --data-binary @App.dll`): the
/// PDB is taken out and stored under the assembly's debug ID, so the waiting .NET event gets
/// its line and the source embedded in the PDB. The real sentry-cli, given the same assembly,
/// takes the same PDB out and uploads it: the server already holds it.
async fn an_assembly_with_its_pdb_embedded_gives_the_event_its_line(db: Db) {
    let Some(server) = TestServer::start_on(db, |_| {}).await else {
        return;
    };
    let pdb = fixture_bytes("debug-files/windows/Sentry.Samples.Console.Basic.pdb");
    let dll = assembly_with_embedded_pdb(&pdb, "Sentry.Samples.Console.Basic.pdb");
    let (status, reply) = common::send_envelope_items(&server, &[("event", sample_event())]).await;
    assert_eq!(status, 200, "{reply}");
    let id = serde_json::from_str::<Value>(&reply).unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(settled(&server, &id).await["processed"]["threads"][0]["frames"][0]["line"], Value::Null);

    let (status, uploaded) = server.upload("Sentry.Samples.Console.Basic.dll", dll.clone()).await;
    assert_eq!(status, 200, "{uploaded}");
    let files = uploaded["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "the assembly and the PDB it carries: {uploaded}");
    assert_eq!(files[0]["file"]["format"], "pe", "{uploaded}");
    assert_eq!(files[0]["file"]["debug_id"], SAMPLE_ID, "{uploaded}");
    assert_eq!(files[1]["name"], "Sentry.Samples.Console.Basic.dll#Sentry.Samples.Console.Basic.pdb", "{uploaded}");
    assert_eq!(files[1]["status"], "stored", "{uploaded}");
    assert_eq!(files[1]["file"]["format"], "portablepdb", "{uploaded}");
    assert_eq!(files[1]["file"]["debug_id"], SAMPLE_ID, "{uploaded}");
    assert_eq!(files[1]["file"]["debug_file"], "Sentry.Samples.Console.Basic.pdb", "{uploaded}");
    assert_eq!(files[1]["file"]["size"], pdb.len(), "the PDB inflated whole: {uploaded}");

    let done = processed_with_line(&server, &id).await;
    let frame = &done["processed"]["threads"][0]["frames"][0];
    assert_eq!(frame["file"], "C:\\dev\\sentry-dotnet\\samples\\Sentry.Samples.Console.Basic\\Program.cs", "{frame}");
    let (status, context) = server.get_json(&format!("/api/v1/crashes/{id}/source-context")).await;
    assert_eq!(status, 200, "{context}");
    assert_eq!(context["context"]["frames"][0]["context_line"], "    throw null;", "{context}");

    if common::tool_present("sentry-cli") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Sentry.Samples.Console.Basic.dll"), &dll).unwrap();
        let out = common::sentry_cli_upload(&server, &["debug-files", "upload"], dir.path()).await;
        assert!(
            out.contains(&format!("OK {SAMPLE_ID} (Sentry.Samples.Console.Basic.pdb;")),
            "sentry-cli took the same PDB out: {out}"
        );
    }
}
}

/// A damaged embedded PDB (its deflate stream cut short) is reported as such; the assembly
/// itself is still stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_embedded_pdb_is_refused_with_the_reason() {
    let server = TestServer::start().await;
    let pdb = fixture_bytes("debug-files/windows/Sentry.Samples.Console.Basic.pdb");
    let mut dll = assembly_with_embedded_pdb(&pdb, "App.pdb");
    let at = dll.windows(4).position(|w| w == b"MPDB").unwrap();
    // Corrupt the deflate stream past its first block header.
    for byte in &mut dll[at + 8..at + 4000] {
        *byte = 0xff;
    }
    let (status, uploaded) = server.upload("App.dll", dll).await;
    assert_eq!(status, 200, "{uploaded}");
    let files = uploaded["files"].as_array().unwrap();
    assert_eq!(files[0]["file"]["format"], "pe", "{uploaded}");
    assert_eq!(files[1]["status"], "rejected", "{uploaded}");
    assert!(
        files[1]["reason"]
            .as_str()
            .unwrap()
            .contains("embedded portable PDB"),
        "{uploaded}"
    );
}

/// Where the Source Link written into the sample's PDB puts its files.
const SOURCE_LINK_ROOT: &str =
    "https://raw.githubusercontent.com/getsentry/sentry-dotnet/4f2c1d0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d/";

/// The sample's PDB with a Source Link, as `<PublishRepositoryUrl>` / SourceLink.GitHub writes
/// one: a module-level custom debug information row of kind Source Link whose blob is the
/// JSON map. Roslyn's CompilationOptions row (on the module, kind B5FEEC05-…) is turned into
/// it: its kind's GUID is rewritten in the #GUID heap and its blob's bytes replaced by the
/// JSON, padded with spaces to the blob's length. `embedded: false` also turns the embedded
/// sources' kind into an unknown one, as a PDB built without `<EmbedAllSources>` has none.
fn sample_pdb_with_source_link(embedded: bool) -> Vec<u8> {
    use symbolic::common::Uuid;
    let mut pdb = fixture_bytes("debug-files/windows/Sentry.Samples.Console.Basic.pdb");
    let mut rewrite_guid = |from: &str, to: &str| {
        let from = Uuid::parse_str(from).unwrap().to_bytes_le();
        let at = pdb
            .windows(16)
            .position(|w| w == from)
            .expect("the kind is in the #GUID heap");
        pdb[at..at + 16].copy_from_slice(&Uuid::parse_str(to).unwrap().to_bytes_le());
    };
    rewrite_guid(
        "B5FEEC05-8CD0-4A83-96DA-466284BB4BD8",
        "CC110556-A091-4D38-9FEC-25AB9A351A6A",
    );
    if !embedded {
        rewrite_guid(
            "0E8A571B-6926-466E-B4AD-8AB04611F5FE",
            "00000000-0000-0000-0000-0000000000ee",
        );
    }
    // The CompilationOptions blob starts with its first key; a two-byte length precedes it.
    let first_key = b"version\x002\x00compiler-version\x00";
    let start = pdb
        .windows(first_key.len())
        .position(|w| w == first_key)
        .unwrap();
    assert_eq!(pdb[start - 2] & 0xc0, 0x80, "a two-byte blob length");
    let len = (((pdb[start - 2] & 0x3f) as usize) << 8) | pdb[start - 1] as usize;
    let json = format!(r#"{{"documents":{{"C:\\dev\\sentry-dotnet\\*":"{SOURCE_LINK_ROOT}*"}}}}"#);
    assert!(json.len() <= len, "{} > {len}", json.len());
    let mut blob = json.into_bytes();
    blob.resize(len, b' ');
    pdb[start..start + len].copy_from_slice(&blob);
    pdb
}

/// Sends the sample's event to `server` with `pdb` stored, and returns its source context once
/// the frame has its line.
async fn sample_source_context(server: &TestServer, pdb: Vec<u8>) -> (String, Value) {
    let (status, uploaded) = server.upload("Sentry.Samples.Console.Basic.pdb", pdb).await;
    assert_eq!(status, 200, "{uploaded}");
    assert_eq!(
        uploaded["files"][0]["file"]["features"]["sources"], true,
        "{uploaded}"
    );
    let (status, reply) = common::send_envelope_items(server, &[("event", sample_event())]).await;
    assert_eq!(status, 200, "{reply}");
    let id = serde_json::from_str::<Value>(&reply).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    processed_with_line(server, &id).await;
    let (status, context) = server
        .get_json(&format!("/api/v1/crashes/{id}/source-context"))
        .await;
    assert_eq!(status, 200, "{context}");
    (id, context)
}

/// The crash page of crash `id`, as the admin sees it.
async fn crash_page(server: &TestServer, id: &str) -> String {
    let session = common::ui::UiSession::sign_in(server, &server.admin_token).await;
    session.get(&format!("/ui/crashes/{id}")).await.body
}

/// A PDB with Source Link and embedded sources: the frame's lines come from the PDB and its
/// link is the Source Link URL of its file (the file at the commit it was built from), in the
/// API and on the crash page. A PDB with Source Link alone: no lines, the link and why.
#[tokio::test(flavor = "multi_thread")]
async fn source_link_gives_the_frame_its_file_at_the_commit() {
    let program = format!("{SOURCE_LINK_ROOT}samples/Sentry.Samples.Console.Basic/Program.cs");
    let server = TestServer::start().await;
    let (id, context) = sample_source_context(&server, sample_pdb_with_source_link(true)).await;
    let frame = &context["context"]["frames"][0];
    assert_eq!(frame["context_line"], "    throw null;", "{context}");
    assert_eq!(frame["source"]["kind"], "stored_sources", "{context}");
    assert_eq!(frame["link"], program.as_str(), "{context}");
    let page = crash_page(&server, &id).await;
    assert!(page.contains(&format!("href=\"{program}\"")), "{page}");

    let linked_only = TestServer::start().await;
    let (id, context) =
        sample_source_context(&linked_only, sample_pdb_with_source_link(false)).await;
    assert_eq!(context["context"]["frames"], json!([]), "{context}");
    let missing = &context["context"]["missing"][0];
    assert_eq!(missing["link"], program.as_str(), "{context}");
    assert!(
        missing["reason"].as_str().unwrap().contains("Source Link"),
        "{context}"
    );
    let page = crash_page(&linked_only, &id).await;
    assert!(page.contains(&format!("href=\"{program}\"")), "{page}");
    assert!(
        !page.contains("throw null;"),
        "no lines without the embedded source"
    );
}
