//! Upstream symbol sources (`src/upstream/`) when servers misbehave or are slow: 404, 500, no
//! answer, 2 GiB, another module's file, a redirect loop — each shown as its outcome, none
//! stalling the crash; the negative cache, one download for fifty crashes, a failing source
//! skipped then asked again, a crash's time budget kept and the crash processed again when its
//! file arrives, and the missing-symbols list saying what the sources answered. Servers are on
//! loopback (`common::symbol_source`).

use std::time::{Duration, Instant};

use faultline::config::{SourceFileType, SourceLayout};
use serde_json::json;

use crate::common::symbol_source::{
    crash_module, exception_module, from, http, module, process, symbolicate, SymbolSource,
    CRASH_PDB, EXCEPTION_PDB, TEST_APP_SYM,
};
use crate::common::{fixture_bytes, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_sources_each_show_their_outcome_and_none_stalls_the_crash() {
    let upstream = SymbolSource::start().await;
    upstream.put(
        EXCEPTION_PDB,
        &fixture_bytes("debug-files/windows/CrashWithException.pdb"),
    );
    // Another module's Breakpad file, sent for every path.
    upstream.put("liar", &fixture_bytes("debug-files/windows/crash.sym"));
    let mut hanging = http("hanging", upstream.url("hang"), SourceLayout::Symstore);
    hanging.timeouts.first_byte_ms = 300;
    let mut huge = http("huge", upstream.url("huge"), SourceLayout::Native);
    huge.max_download_bytes = 1 << 20;
    // Asked for PDBs only: one failure per crash, too few to be skipped as unhealthy.
    let mut broken = http("broken", upstream.url("broken"), SourceLayout::Native);
    broken.filetypes = Some(vec![SourceFileType::Pdb]);
    let sources = vec![
        http("missing", upstream.url("missing"), SourceLayout::Symstore),
        broken,
        hanging,
        huge,
        http("liar", upstream.url("liar"), SourceLayout::Native),
        http("looping", upstream.url("loop"), SourceLayout::Native),
        http("good", upstream.url("redirect"), SourceLayout::Symstore),
    ];
    let server = TestServer::start_with(|c| {
        c.symbols.sources = sources;
        // Every request reaches the sources (no remembered "missing" module).
        c.caches.missing_ttl_secs = 0;
    })
    .await;

    let started = Instant::now();
    let json = symbolicate(&server, &[exception_module()]).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let module = &json["modules"][0];
    assert_eq!(module["debug_status"], "found", "{module}");
    assert!(json["stacktraces"][0]["frames"][0]["function"]
        .as_str()
        .unwrap()
        .starts_with("printf("));
    assert_eq!(from(module, "missing").0, "not_found");
    assert_eq!(
        from(module, "broken"),
        ("error".into(), "HTTP 500 Internal Server Error".into())
    );
    let (outcome, detail) = from(module, "hanging");
    assert_eq!(outcome, "error");
    assert!(detail.contains("no answer within 300 ms"), "{detail}");
    let (outcome, detail) = from(module, "huge");
    assert_eq!(outcome, "error");
    assert!(
        detail.contains("over max_download_bytes (1048576)"),
        "{detail}"
    );
    let (outcome, detail) = from(module, "liar");
    assert_eq!(outcome, "malformed");
    assert!(detail.contains("not a debug file of f535c5fb"), "{detail}");
    let (outcome, detail) = from(module, "looping");
    assert_eq!(outcome, "error");
    assert!(detail.contains("redirects"), "{detail}");
    assert_eq!(from(module, "good").0, "found");
    assert_eq!(module["symbols_origin"], "good");

    // A module nobody has: every source asked once; the next crash only reads the negative
    // cache (no request reaches any server).
    let nobody = json!({"type": "pe", "debug_id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1",
                        "debug_file": "nobody.pdb", "code_file": "nobody.dll",
                        "image_addr": "0x20000000", "image_size": 0x10000});
    let first = symbolicate(&server, std::slice::from_ref(&nobody)).await;
    assert_eq!(first["modules"][0]["debug_status"], "missing");
    assert_eq!(from(&first["modules"][0], "missing").0, "not_found");
    let requests = upstream.count_under("/");
    let second = symbolicate(&server, &[nobody]).await;
    assert_eq!(
        upstream.count_under("/"),
        requests,
        "the negative cache answered"
    );
    let module = &second["modules"][0];
    assert_eq!(module["debug_status"], "missing");
    let (outcome, detail) = from(module, "missing");
    assert_eq!((outcome.as_str(), detail.as_str()), ("cached", "not_found"));
    let (outcome, detail) = from(module, "broken");
    assert_eq!(outcome, "cached");
    assert!(detail.starts_with("error: HTTP 500"), "{detail}");

    let metrics = server.metrics().await;
    assert!(
        metrics.contains(
            "faultline_symbol_source_requests_total{source=\"missing\",outcome=\"cached\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_crashes_needing_one_file_wait_for_one_download() {
    let upstream = SymbolSource::start().await;
    upstream.put(CRASH_PDB, &fixture_bytes("debug-files/windows/crash.pdb"));
    let server = TestServer::start_with(|c| {
        c.symbols.sources = vec![http(
            "slow",
            upstream.url("slow/300"),
            SourceLayout::Symstore,
        )]
    })
    .await;
    let modules = [crash_module()];
    let crashes = (0..50).map(|_| symbolicate(&server, &modules));
    let results = futures::future::join_all(crashes).await;
    for json in &results {
        assert_eq!(json["modules"][0]["debug_status"], "found", "{json}");
    }
    assert_eq!(upstream.count(&format!("/slow/300/{CRASH_PDB}")), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_source_is_skipped_for_a_while_then_asked_again() {
    let upstream = SymbolSource::start().await;
    let mut broken = http("flaky", upstream.url("broken"), SourceLayout::Unified);
    broken.filetypes = Some(vec![SourceFileType::Pdb]);
    broken.unhealthy_secs = 1;
    broken.error_ttl_secs = 0;
    let server = TestServer::start_with(|c| {
        c.symbols.sources = vec![broken];
        c.caches.missing_ttl_secs = 0;
    })
    .await;
    let module = |n: u32| {
        json!({"type": "pe", "debug_id": format!("{n:032X}1"), "debug_file": format!("m{n}.pdb"),
               "image_addr": "0x20000000", "image_size": 0x10000})
    };
    for n in 1..=3 {
        let json = symbolicate(&server, &[module(n)]).await;
        assert_eq!(from(&json["modules"][0], "flaky").0, "error");
    }
    let asked = upstream.count_under("/broken/");
    let json = symbolicate(&server, &[module(4)]).await;
    let (outcome, detail) = from(&json["modules"][0], "flaky");
    assert_eq!(outcome, "skipped");
    assert!(detail.contains("failed repeatedly"), "{detail}");
    assert_eq!(
        upstream.count_under("/broken/"),
        asked,
        "a skipped source is not asked"
    );
    let (status, sources) = server.get_json("/api/v1/symbols/sources").await;
    assert_eq!(status, 200);
    let flaky = &sources["sources"][0];
    assert_eq!(flaky["id"], "flaky");
    assert_eq!(flaky["health"]["healthy"], false);
    assert!(flaky["health"]["errors"].as_u64().unwrap() >= 3);
    assert_eq!(
        flaky["health"]["requests"].as_u64().unwrap(),
        asked as u64,
        "one request counted per location asked"
    );
    assert_eq!(
        flaky["health"]["last_error"],
        "HTTP 500 Internal Server Error"
    );
    // The symbols page shows the same.
    let ui = crate::common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = ui.get("/ui/symbols").await;
    assert!(page.body.contains("<td>flaky</td>"), "{}", page.body);
    assert!(
        page.body.contains("failing: skipped until"),
        "{}",
        page.body
    );

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let json = symbolicate(&server, &[module(5)]).await;
    assert_eq!(from(&json["modules"][0], "flaky").0, "error");
    assert!(
        upstream.count_under("/broken/") > asked,
        "asked again after the pause"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_slower_than_the_budget_leaves_the_crash_on_time() {
    let upstream = SymbolSource::start().await;
    upstream.put(
        TEST_APP_SYM,
        &fixture_bytes(&format!("symbols/breakpad/{TEST_APP_SYM}")),
    );
    let mut slow = http("slow", upstream.url("slow/2500"), SourceLayout::Native);
    slow.timeouts.first_byte_ms = 10_000;
    slow.filetypes = Some(vec![SourceFileType::Breakpad]);
    slow.path_patterns = Some(vec!["test_app*".into()]);
    let server = TestServer::start_with(|c| {
        c.symbols.sources = vec![slow];
        c.limits.process_time_ms = 1_500;
        c.caches.missing_ttl_secs = 0;
    })
    .await;
    let dump = fixture_bytes("minidumps/rust-minidump/test.dmp");
    let started = Instant::now();
    let json = process(&server, &dump).await;
    assert!(
        started.elapsed() < Duration::from_millis(2_400),
        "{:?}",
        started.elapsed()
    );
    let app = module(&json, "test_app.exe");
    assert_eq!(app["symbol_status"], "missing");
    assert_eq!(
        app["symbol_candidates"][0]["outcome"], "downloading",
        "{app}"
    );

    // The download goes on without the crash; once stored, the next crash has the symbols.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let json = process(&server, &dump).await;
    let app = module(&json, "test_app.exe");
    assert_eq!(app["symbol_status"], "found", "{app}");
    assert_eq!(app["symbols_origin"], "slow");
    assert_eq!(upstream.count(&format!("/slow/2500/{TEST_APP_SYM}")), 1);
    // The path patterns kept the system modules from being asked at all.
    let (outcome, detail) = from(module(&json, "kernel32.dll"), "slow");
    assert_eq!(outcome, "skipped");
    assert!(detail.contains("no path pattern"), "{detail}");
    assert_eq!(upstream.count_under("/slow/"), 1);
}

on_both_databases! {
async fn a_crash_processed_before_its_file_arrived_is_processed_again_with_it(db: Db) {
    let upstream = SymbolSource::start().await;
    let (_, code_id) = crate::common::crasher_ids();
    let code_id = code_id.to_lowercase();
    upstream.put(
        &format!("{}/{}.debug", &code_id[..2], &code_id[2..]),
        &crate::common::generated_bytes("crasher.debug"),
    );
    let mut slow = http("build-ids", upstream.url("slow/6000"), SourceLayout::Native);
    slow.filetypes = Some(vec![SourceFileType::ElfDebug]);
    slow.path_patterns = Some(vec!["crasher*".into()]);
    slow.timeouts.first_byte_ms = 10_000;
    let Some(server) = TestServer::start_on(db, |c| {
        c.symbols.sources = vec![slow];
        c.limits.process_time_ms = 3_000;
    })
    .await
    else {
        return;
    };
    let id = crate::common::submit(&server, "wild-read.dmp", &[]).await;
    let (_, before) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
    assert_eq!(before["crash"]["signature"], "crasher", "processed on time, without symbols");
    let crasher = module(&before["processed"], "crasher");
    assert_eq!(crasher["symbol_candidates"][0]["outcome"], "downloading", "{crasher}");
    let (_, missing) = server.get_json("/api/v1/symbols/missing").await;
    assert!(missing.to_string().contains("crasher"), "{missing}");

    // The download finishes beside the crash; the crash is queued again and gets its frames
    // (budgets with room for a loaded machine: processing 3 s, the download 6 s).
    for _ in 0..600 {
        let (_, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        let signature = crash["crash"]["signature"].as_str().unwrap_or("crasher");
        if crash["state"] == "processed" && signature != "crasher" {
            assert_eq!(
                crash["crash"]["signature"],
                "core::ptr::read_volatile | crasher::linux::wild_read"
            );
            let crasher = module(&crash["processed"], "crasher");
            assert_eq!(crasher["symbols_origin"], "build-ids");
            assert_eq!(upstream.count_under("/slow/"), 1);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
    panic!("the crash was not processed again with the fetched file: {}", &crash.to_string()[..crash.to_string().len().min(1500)]);
}
}

on_both_databases! {
async fn the_missing_symbols_list_says_which_modules_no_source_has(db: Db) {
    let upstream = SymbolSource::start().await;
    let Some(server) = TestServer::start_on(db, |c| {
        c.symbols.sources = vec![http("mirror", upstream.url("missing"), SourceLayout::Native)];
    })
    .await
    else {
        return;
    };
    let id = crate::common::submit(&server, "wild-read.dmp", &[]).await;
    let (status, missing) = server.get_json("/api/v1/symbols/missing").await;
    assert_eq!(status, 200);
    let crasher = missing["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["code_file"] == "crasher")
        .unwrap_or_else(|| panic!("{missing}"));
    assert_eq!(crasher["sources"], "no source has it (asked mirror)");

    let ui = crate::common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = ui.get("/ui/symbols/missing").await;
    assert!(page.body.contains("no source has it (asked mirror)"), "{}", page.body);
    // The crash's page lists, under each module, the locations asked and what they answered.
    let page = ui.get(&format!("/ui/crashes/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("locations asked</summary>"), "{}", page.body);
    let asked = format!(
        "not found</span> mirror <code>{}",
        upstream.url("missing")
    );
    assert!(page.body.contains(&asked), "{}", page.body);
}
}
