//! Bitcode builds: the dSYM Apple's build gives back names its functions `__hidden#N_`, and the
//! `.bcsymbolmap` of the build (named by a UUID) holds the real names in order. ../shared's
//! macOS `crash` dSYM is made such a dSYM here: the linkage name of the function that faults,
//! `_ZN12_GLOBAL__N_15crashEv` (`(anonymous namespace)::crash`, inlined into `main` at 0xdc15),
//! overwritten in place with `__hidden#0_`. The map comes either under the dSYM's own UUID or,
//! as App Store builds have it, under the original build's UUID that the dSYM's
//! `Contents/Resources/<dSYM UUID>.plist` names (`DBGOriginalUUID`).

use crate::apple_reports::{crash_report, send, UUID};
use crate::common::{fixture_bytes, settled, TestServer};

/// The linkage name hidden, and the name it is hidden under.
const REAL: &[u8] = b"_ZN12_GLOBAL__N_15crashEv\0";
const HIDDEN: &[u8] = b"__hidden#0_\0";
/// The UUID of the build before Apple recompiled it (made up).
const ORIGINAL_UUID: &str = "3B7E1C0A-5D2F-4E6B-9A81-C4D2E3F4A5B6";

/// The `crash` dSYM with its faulting function's linkage name hidden (the rest of the old
/// string's bytes become NULs: strings are found by their offsets, nothing reads between them).
fn hidden_dsym() -> Vec<u8> {
    let mut dsym = fixture_bytes("debug-files/macos/crash.dSYM/Contents/Resources/DWARF/crash");
    let at = dsym
        .windows(REAL.len())
        .position(|w| w == REAL)
        .expect("the linkage name is in the dSYM");
    dsym[at..at + REAL.len()].fill(0);
    dsym[at..at + HIDDEN.len()].copy_from_slice(HIDDEN);
    dsym
}

/// A BCSymbolMap whose name #0 is the hidden function's.
fn symbol_map() -> Vec<u8> {
    b"BCSymbolMap Version: 2.0\n_ZN12_GLOBAL__N_15crashEv\nmain.cpp\n".to_vec()
}

/// The UUID mapping plist a dSYM of an App Store build carries.
fn uuid_plist(original: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>DBGOriginalUUID</key>
	<string>{original}</string>
	<key>DBGSymbolRichExecutable</key>
	<string>/Users/USER/crash</string>
</dict>
</plist>
"#
    )
    .into_bytes()
}

/// Sends the `.crash` report and returns its signature once processed.
async fn signature(server: &TestServer) -> String {
    let (status, reply) = send(server, crash_report().as_bytes()).await;
    assert_eq!(status, 200, "{reply}");
    let done = settled(server, reply["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "processed", "{done}");
    done["crash"]["signature"].as_str().unwrap().to_owned()
}

async fn upload_ok(server: &TestServer, name: &str, body: Vec<u8>) -> serde_json::Value {
    let (status, reply) = server.upload(name, body).await;
    assert_eq!(status, 200, "{name}: {reply}");
    reply
}

#[tokio::test(flavor = "multi_thread")]
async fn hidden_names_are_read_through_the_symbol_map_of_the_dsyms_uuid() {
    let server = TestServer::start().await;
    upload_ok(&server, "crash", hidden_dsym()).await;
    assert_eq!(
        signature(&server).await,
        "__hidden#0_",
        "without its map, the name is hidden"
    );

    let reply = upload_ok(
        &server,
        &format!("BCSymbolMaps/{UUID}.bcsymbolmap"),
        symbol_map(),
    )
    .await;
    assert!(reply.to_string().contains("bcsymbolmap"), "{reply}");
    assert_eq!(signature(&server).await, "(anonymous namespace)::crash");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_store_dsym_finds_its_map_through_the_original_uuid() {
    let server = TestServer::start().await;
    upload_ok(&server, "crash", hidden_dsym()).await;
    upload_ok(
        &server,
        &format!("crash.dSYM/Contents/Resources/{UUID}.plist"),
        uuid_plist(ORIGINAL_UUID),
    )
    .await;
    assert_eq!(signature(&server).await, "__hidden#0_");
    // The map arrives last, under the other UUID: the dSYM's module is read again.
    upload_ok(
        &server,
        &format!("{ORIGINAL_UUID}.bcsymbolmap"),
        symbol_map(),
    )
    .await;
    assert_eq!(signature(&server).await, "(anonymous namespace)::crash");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symbol_map_or_uuid_mapping_without_a_uuid_in_its_name_is_refused() {
    let server = TestServer::start().await;
    for (name, body) in [
        ("symbols.bcsymbolmap", symbol_map()),
        ("Info.plist", uuid_plist(ORIGINAL_UUID)),
    ] {
        let (status, reply) = server.upload(name, body).await;
        assert_eq!(status, 400, "{name}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains("UUID"), "{name}: {error}");
    }
    let (status, reply) = server
        .upload(&format!("{UUID}.plist"), uuid_plist("not a uuid"))
        .await;
    assert_eq!(status, 400, "{reply}");
    // Hostile: a map that is not text, a mapping past 64 KiB, a mapping that defines entities
    // expanding to a billion names: each refused, nothing stored.
    let mut binary = b"BCSymbolMap Version: 2.0\n".to_vec();
    binary.extend([0xff, 0xfe, 0x00, 0x80]);
    let mut huge = uuid_plist(ORIGINAL_UUID);
    huge.extend(std::iter::repeat_n(b' ', 70 * 1024));
    let entities: String = (b'b'..=b'i')
        .map(|c| {
            format!(
                "<!ENTITY {} \"{}\">",
                c as char,
                format!("&{};", (c - 1) as char).repeat(10)
            )
        })
        .collect();
    let laughs = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE plist [<!ENTITY a \"aaaaaaaaaa\">{entities}]>\n<plist version=\"1.0\"><dict><key>DBGOriginalUUID</key><string>&i;</string></dict></plist>\n"
    );
    for (name, body) in [
        (format!("{UUID}.bcsymbolmap"), binary),
        (format!("{UUID}.plist"), huge),
        (format!("{UUID}.plist"), laughs.into_bytes()),
    ] {
        let (status, reply) = server.upload(&name, body).await;
        assert_eq!(status, 400, "{name}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: {reply}"
        );
    }
    let (_, listed) = server
        .get_json(&format!(
            "/api/v1/symbols?debug_id={}",
            UUID.to_ascii_lowercase()
        ))
        .await;
    assert_eq!(listed["files"], serde_json::json!([]), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn faultline_process_reads_hidden_names_through_local_maps() {
    // The map named by the dSYM's UUID, and the map of an original build its plist names.
    let own = vec![(format!("{UUID}.bcsymbolmap"), symbol_map())];
    let mapped = vec![
        (format!("{UUID}.plist"), uuid_plist(ORIGINAL_UUID)),
        (format!("{ORIGINAL_UUID}.bcsymbolmap"), symbol_map()),
    ];
    for (case, maps) in [
        ("own UUID", own),
        ("UUID mapping", mapped),
        ("no map", Vec::new()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let symbols = dir.path().join("symbols");
        std::fs::create_dir(&symbols).unwrap();
        std::fs::write(symbols.join("crash"), hidden_dsym()).unwrap();
        let has_map = !maps.is_empty();
        for (name, body) in maps {
            std::fs::write(symbols.join(name), body).unwrap();
        }
        let report = dir.path().join("report.crash");
        std::fs::write(&report, crash_report()).unwrap();
        let mut command = crate::common::faultline();
        command
            .arg("process")
            .arg(&report)
            .arg("--symbols")
            .arg(&symbols)
            .arg("--json")
            .env("FAULTLINE_STORAGE_DATA_DIR", dir.path().join("data"));
        let (code, out, err) = crate::common::run(command).await;
        assert_eq!(code, 0, "{case}: {err}");
        let expected = if has_map {
            "(anonymous namespace)::crash"
        } else {
            "__hidden#0_"
        };
        assert!(out.contains(expected), "{case}: {out}");
        assert_eq!(!out.contains("__hidden#0_"), has_map, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_sentry_cli_uploads_a_bitcode_builds_maps() {
    if !crate::common::tool_present("sentry-cli") {
        return;
    }
    let server = TestServer::start().await;
    // An App Store dSYM (its UUID mapping beside its DWARF file) and the archive's BCSymbolMaps.
    let dir = tempfile::tempdir().unwrap();
    let resources = dir.path().join("crash.dSYM/Contents/Resources");
    std::fs::create_dir_all(resources.join("DWARF")).unwrap();
    std::fs::write(resources.join("DWARF/crash"), hidden_dsym()).unwrap();
    std::fs::write(
        resources.join(format!("{UUID}.plist")),
        uuid_plist(ORIGINAL_UUID),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("BCSymbolMaps")).unwrap();
    std::fs::write(
        dir.path()
            .join(format!("BCSymbolMaps/{ORIGINAL_UUID}.bcsymbolmap")),
        symbol_map(),
    )
    .unwrap();
    let (ok, out) =
        crate::sentry_cli::sentry_cli_upload(&server, &server.admin_token, dir.path()).await;
    assert!(ok, "{out}");
    for id in [UUID, ORIGINAL_UUID] {
        let (status, body) = server
            .get_json(&format!(
                "/api/v1/symbols?debug_id={}",
                id.to_ascii_lowercase()
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        let formats: Vec<&str> = body["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["format"].as_str())
            .collect();
        assert!(formats.contains(&"uuidmap"), "{id}: {body}\n{out}");
    }
    assert_eq!(
        signature(&server).await,
        "(anonymous namespace)::crash",
        "{out}"
    );
}
