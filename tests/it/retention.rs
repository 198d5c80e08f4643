//! Retention with a fake clock, on both databases: debug files (and JavaScript files and maps) no
//! crash used within the period go and the ones a crash (or an event) used stay; old crash payloads go while the crash, its counts and its
//! group stay; leftovers of unfinished uploads go; session states past the update age go while
//! the release's counts stay; a dry run reports all of it and deletes nothing. The store and index are opened beside the running server, as `faultline
//! retention` opens them.

use crate::common;

use common::{
    crasher_ids, fixture_bytes, generated_bytes, injected, multipart, post, settled, submit,
    upload_files, TestServer,
};
use faultline::app::App;
use faultline::retention::{
    run as run_retention, RetentionPolicy, RetentionReport, RetentionStores,
};

const DAY: u64 = 86_400;
const WEBPACK_ID: &str = "2f259f80-58b7-44cb-d7cd-ed1e3d26f28a";

/// One retention run at `now` against the server's stores.
async fn retention(
    state: &App,
    symbols_days: Option<u64>,
    payload_days: Option<u64>,
    now: u64,
    dry_run: bool,
) -> RetentionReport {
    let stores = RetentionStores {
        symbols: &state.symbols,
        objects: &*state.objects,
        index: &state.index,
        cluster: &state.cluster,
    };
    let policy = RetentionPolicy {
        symbols_unused_days: symbols_days,
        payload_days,
    };
    run_retention(&stores, policy, now, dry_run).await.unwrap()
}

on_both_databases! {
    async fn retention_deletes_what_is_past_its_age_and_nothing_else(db: Db) {
        let Some(server) = TestServer::start_on(db, |_| {}).await else {
            return;
        };
        let state = App::open(server.config.clone()).await.unwrap();
        // Never used by a crash: ../shared's ELF debug file.
        let (status, _) = server.upload_fixture("debug-files/linux/crash.debug").await;
        assert_eq!(status, 200);
        let (status, _) = server.upload("crasher.debug", generated_bytes("crasher.debug")).await;
        assert_eq!(status, 200);
        // JavaScript: a bundle and map by debug ID that an event will use, and a pair kept by
        // release and URL that nothing uses.
        let (js, map) = injected("webpack/bundle.js", "webpack/bundle.js.map", WEBPACK_ID, "debugId");
        let (status, _) = upload_files(&server, "", &[("bundle.js", js), ("bundle.js.map", map)]).await;
        assert_eq!(status, 200);
        let simple = |name: &str| fixture_bytes(&format!("sourcemaps/symbolic/simple/{name}"));
        let (status, _) = upload_files(
            &server,
            "?release=old@1&url_prefix=~/js",
            &[("minified.js", simple("minified.js")), ("minified.js.map", simple("minified.js.map"))],
        )
        .await;
        assert_eq!(status, 200);
        // The crasher's symbols are used a moment after both uploads.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let crash = submit(&server, "null-write.dmp", &[]).await;
        let (crasher_breakpad, _) = crasher_ids();
        let crasher = faultline::symbols::ids::parse_debug_id(&crasher_breakpad)
            .unwrap()
            .to_string();
        let last_used = state.index.symbol_last_used().await.unwrap();
        let used_at = *last_used
            .get(&crasher)
            .unwrap_or_else(|| panic!("the crasher's use is recorded: {last_used:?}"))
            as u64;
        assert_eq!(last_used.len(), 1, "only the module that symbolicated: {last_used:?}");
        // An event whose frames the bundle's map resolves: its use is recorded too.
        let event = serde_json::json!({
            "platform": "javascript",
            "exception": {"values": [{"type": "Error", "value": "wat", "stacktrace": {"frames": [
                {"abs_path": "http://x/bundle.js", "lineno": 1, "colno": 79}
            ]}}]},
            "debug_meta": {"images": [{"type": "sourcemap", "code_file": "http://x/bundle.js", "debug_id": WEBPACK_ID}]},
        });
        let (status, reply) = post(&server, "/api/1/store/", None, &[], event.to_string().into_bytes()).await;
        assert_eq!(status, 200, "{reply}");
        let event_id: serde_json::Value = serde_json::from_str(&reply).unwrap();
        let event_id = event_id["id"].as_str().unwrap().to_owned();
        let done = settled(&server, &event_id).await;
        assert_eq!(done["processed"]["exceptions"][0]["stacktrace"]["frames"][0]["status"], "resolved", "{done}");
        let last_used = state.index.symbol_last_used().await.unwrap();
        assert!(last_used.contains_key(WEBPACK_ID), "{last_used:?}");

        // Leftovers: a chunk no assemble request used, a symupload upload never completed.
        let chunk = b"a chunk nobody assembles";
        let chunk_sha = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(chunk));
        let response = server
            .client
            .post(server.url("/api/0/organizations/acme/chunk-upload/"))
            .header("content-type", "multipart/form-data; boundary=B")
            .body(multipart("B", &[("file", Some(&chunk_sha), chunk)]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let response = server
            .anonymous
            .post(server.url(&format!("/v1/uploads:create?key={}", server.admin_token)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);

        let before = server.stored_files();
        let count = |prefix: &str| before.iter().filter(|f| f.starts_with(prefix)).count();
        assert_eq!((count("chunks/"), count("uploads/")), (1, 1), "{before:?}");
        assert!(count("crashes/") >= 2, "{before:?}");

        // Ten days on, policies of 30 days: only the leftovers are old enough.
        let report = retention(&state, Some(30), Some(30), used_at + 10 * DAY, true).await;
        assert_eq!(
            (report.symbol_file_count, report.payload_count, report.leftover_count),
            (0, 0, 2),
            "{report:?}"
        );

        // The moment the files' period ends for the unused one but not for the used one.
        let now = used_at + 30 * DAY;
        let dry = retention(&state, Some(30), Some(60), now, true).await;
        let mut aged: Vec<&str> = dry.symbol_files.iter().map(|f| f.name.as_str()).collect();
        aged.sort_unstable();
        assert_eq!(aged, ["crash.debug", "minified.js", "minified.js.map"], "{dry:?}");
        assert_eq!(dry.symbol_files[0].last_used_at, None);
        assert_eq!(dry.symbol_files[0].debug_id, "c0bcc3f1-9827-fe65-3058-404b2831d9e6");
        assert!(dry.symbol_files[1].debug_id.starts_with("url-"), "{dry:?}");
        let expected_bytes = fixture_bytes("debug-files/linux/crash.debug").len() as u64
            + chunk.len() as u64
            + simple("minified.js").len() as u64;
        assert!(dry.bytes >= expected_bytes, "{dry:?}");
        assert_eq!(server.stored_files(), before, "a dry run deletes nothing");

        let done = retention(&state, Some(30), Some(60), now, false).await;
        assert_eq!(done.symbol_file_count, 3);
        let stored = server.stored_files();
        let js: Vec<&String> = stored.iter().filter(|f| f.starts_with("sourcemaps/")).collect();
        assert!(
            js.len() == 4 && js.iter().all(|f| f.starts_with(&format!("sourcemaps/{WEBPACK_ID}/"))),
            "only the used bundle and map stay: {js:?}"
        );
        assert_eq!(done.leftover_count, 2);
        let (_, listed) = server
            .get_json("/api/v1/symbols?debug_id=c0bcc3f1-9827-fe65-3058-404b2831d9e6")
            .await;
        assert_eq!(listed["files"], serde_json::json!([]), "{listed}");
        let (_, listed) = server.get_json(&format!("/api/v1/symbols?debug_id={crasher}")).await;
        assert_eq!(listed["files"].as_array().unwrap().len(), 1, "{listed}");
        let after = server.stored_files();
        assert!(
            !after.iter().any(|f| f.starts_with("chunks/") || f.starts_with("uploads/")),
            "{after:?}"
        );

        // Payloads: a dry run names the crash and the event with their files, then the real
        // run deletes them.
        let (_, group_before) = server.get_json(&format!("/api/v1/crashes/{crash}")).await;
        let group = group_before["crash"]["group_id"].as_i64().unwrap();
        let later = used_at + 61 * DAY;
        let dry = retention(&state, None, Some(60), later, true).await;
        let mut named: Vec<&str> = dry.payloads.iter().map(|p| p.crash_id.as_str()).collect();
        named.sort_unstable();
        let mut expected = [crash.as_str(), event_id.as_str()];
        expected.sort_unstable();
        assert_eq!(named, expected, "{dry:?}");
        assert!(dry.payloads.iter().all(|p| p.files >= 2 && p.bytes > 0), "{dry:?}");
        assert!(server.stored_files().iter().any(|f| f.starts_with("crashes/")));
        let done = retention(&state, None, Some(60), later, false).await;
        assert_eq!(done.payload_count, 2);
        let after = server.stored_files();
        assert!(!after.iter().any(|f| f.starts_with("crashes/")), "{after:?}");
        // The crash, its group and the group's count stay; the payload is no longer kept.
        let (status, crash_after) = server.get_json(&format!("/api/v1/crashes/{crash}")).await;
        assert_eq!(status, 200, "{crash_after}");
        assert_eq!(crash_after["crash"]["group_id"], group);
        assert_eq!(crash_after["processed"], serde_json::Value::Null);
        assert!(
            crash_after["payload_note"].as_str().unwrap().contains("retention.payload_days"),
            "{crash_after}"
        );
        let (status, group_after) = server.get_json(&format!("/api/v1/groups/{group}")).await;
        assert_eq!(status, 200, "{group_after}");
        assert_eq!(group_after["event_count"], 1, "{group_after}");
        // A second run finds nothing more.
        let again = retention(&state, None, Some(60), later, false).await;
        assert_eq!((again.payload_count, again.leftover_count), (0, 0), "{again:?}");
        // Past its own 30 days since the crash used it, the crasher's file is due too.
        let dry = retention(&state, Some(30), None, later, true).await;
        let mut aged: Vec<&str> = dry.symbol_files.iter().map(|f| f.name.as_str()).collect();
        aged.sort_unstable();
        assert_eq!(aged, ["bundle.js", "bundle.js.map", "crasher.debug"], "{dry:?}");
        assert_eq!(dry.symbol_files[0].last_used_at, Some(used_at));
        assert_eq!(dry.symbol_files[0].name, "crasher.debug");
    }
}

/// Rows in `table` of the server's index.
async fn rows(state: &App, table: &str) -> i64 {
    let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(state.index.pool())
        .await
        .unwrap();
    sqlx::Row::try_get(&row, "n").unwrap()
}

/// The missing-symbols report's crash count per debug ID.
async fn missing_counts(server: &TestServer) -> std::collections::BTreeMap<String, i64> {
    let (status, report) = server.get_json("/api/v1/symbols/missing").await;
    assert_eq!(status, 200, "{report}");
    report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["debug_id"].as_str().unwrap().to_owned(),
                m["crashes"].as_i64().unwrap(),
            )
        })
        .collect()
}

on_both_databases! {
    /// Crashes that lacked the same modules share one stored set of them; a crash reprocessed
    /// with a module's symbols moves to a smaller set, and retention sweeps a set once no
    /// crash points at it and no batch used it for a day.
    async fn crashes_lacking_the_same_modules_share_one_set_until_retention_sweeps_it(db: Db) {
        let Some(server) = TestServer::start_on(db, |_| {}).await else {
            return;
        };
        let state = App::open(server.config.clone()).await.unwrap();
        let first = submit(&server, "wild-read.dmp", &[]).await;
        let second = submit(&server, "null-write.dmp", &[]).await;
        let counts = missing_counts(&server).await;
        let (crasher, _) = crasher_ids();
        assert_eq!(counts.get(&crasher), Some(&2), "{counts:?}");
        assert!(counts.len() > 1 && counts.values().all(|&n| n == 2), "{counts:?}");
        assert_eq!(rows(&state, "missing_symbol_sets").await, 1, "one set for both crashes");
        assert_eq!(rows(&state, "crash_missing_symbol_sets").await, 2);
        assert_eq!(rows(&state, "missing_symbol_set_modules").await, counts.len() as i64);

        // The crasher's symbols arrive: both crashes are reprocessed and now lack one module
        // fewer, a set of their own; the first set is left to retention.
        let (status, _) = server.upload("crasher.debug", generated_bytes("crasher.debug")).await;
        assert_eq!(status, 200);
        for id in [&first, &second] {
            let mut reprocessed = false;
            for _ in 0..300 {
                let (_, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
                if crash["state"] == "processed" && crash["crash"]["signature"] != "crasher" {
                    reprocessed = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            assert!(reprocessed, "{id} was not reprocessed after the upload");
        }
        let after = missing_counts(&server).await;
        let mut expected = counts.clone();
        expected.remove(&crasher);
        assert_eq!(after, expected);
        assert_eq!(rows(&state, "missing_symbol_sets").await, 2);
        assert_eq!(rows(&state, "crash_missing_symbol_sets").await, 2);

        // Retention: a set used within the day stays even unreferenced; a day later it goes
        // with its modules, and the set the crashes point at stays.
        let now = common::now() as u64;
        retention(&state, None, None, now, false).await;
        assert_eq!(rows(&state, "missing_symbol_sets").await, 2);
        retention(&state, None, None, now + 2 * DAY, true).await;
        assert_eq!(rows(&state, "missing_symbol_sets").await, 2, "a dry run deletes nothing");
        retention(&state, None, None, now + 2 * DAY, false).await;
        assert_eq!(rows(&state, "missing_symbol_sets").await, 1);
        assert_eq!(rows(&state, "missing_symbol_set_modules").await, expected.len() as i64);
        assert_eq!(missing_counts(&server).await, expected);

        // Their payloads expire: the crashes leave the report, and the last set goes.
        let expired = retention(&state, None, Some(60), now + 61 * DAY, false).await;
        assert_eq!(expired.payload_count, 2, "{expired:?}");
        assert_eq!(missing_counts(&server).await, Default::default());
        assert_eq!(rows(&state, "crash_missing_symbol_sets").await, 0);
        assert_eq!(rows(&state, "missing_symbol_sets").await, 0);
        assert_eq!(rows(&state, "missing_symbol_set_modules").await, 0);
    }
}

on_both_databases! {
    /// Updates and aggregates of sessions that started more than five days ago (or start more
    /// than a day from now) are dropped as they arrive (the envelope still accepted); retention deletes a session's state once its
    /// hour is past that age, and the release's counts stay.
    async fn old_sessions_are_dropped_and_their_states_pruned(db: Db) {
        let Some(server) = TestServer::start_on(db, |_| {}).await else {
            return;
        };
        let state = App::open(server.config.clone()).await.unwrap();
        let session = |sid: &str, days: i64, status: &str| {
            ("session", serde_json::json!({"sid": sid, "did": sid, "init": true, "started": common::days_ago_at_ten(days).0, "status": status, "attrs": {"release": "3.0.0"}}))
        };
        let old_bucket = serde_json::json!({"attrs": {"release": "3.0.0"}, "aggregates": [{"started": common::days_ago_at_ten(6).0, "exited": 5}]});
        let items = [session("fresh", 1, "exited"), session("four", 4, "crashed"), session("six", 6, "crashed"), session("ahead", -2, "crashed"), ("sessions", old_bucket)];
        let (status, reply) = common::send_envelope_items(&server, &items).await;
        assert_eq!(status, 200, "{reply}");
        let counts = || async {
            let (status, h) = server.get_json("/api/v1/releases/3.0.0/health?project=default").await;
            assert_eq!(status, 200, "{h}");
            (h["sessions"].as_i64(), h["crashed"].as_i64(), h["users"].as_i64())
        };
        assert_eq!(counts().await, (Some(2), Some(1), Some(2)), "the six-day-old session and bucket, and the one two days ahead, are not counted");
        assert!(server.metrics().await.contains("faultline_ingest_items_dropped_total{type=\"session_out_of_time\"}"));

        // A day and a half from now, the four-day-old session's hour is past the limit; the
        // fresh one's is not.
        let later = common::now() as u64 + DAY * 3 / 2;
        assert_eq!(retention(&state, None, None, later, true).await.session_state_count, 1, "dry run");
        assert_eq!(retention(&state, None, None, later, false).await.session_state_count, 1);
        assert_eq!(retention(&state, None, None, later, true).await.session_state_count, 0, "pruned");
        assert_eq!(counts().await, (Some(2), Some(1), Some(2)), "the release's counts stay");
        // Which state went: today (the real clock) an update of each is still accepted; the
        // pruned one counts again, the kept one does not.
        let (status, reply) = common::send_envelope_items(&server, &[session("fresh", 1, "exited"), session("four", 4, "exited")]).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(counts().await.0, Some(3), "only the pruned session was counted again");
    }
}
