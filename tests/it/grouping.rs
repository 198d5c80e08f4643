//! Grouping: the crash index's counts, releases, users, payload budget, regressions and merges
//! (against real SQLite), grouping stability on real dumps, and the triage API over HTTP.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{fixture_bytes, generated, group_query, Db, TestServer};
use faultline::group::index::{
    CrashAttributes, CrashIndex, GroupPatch, GroupSort, GroupState, NewCrash, PayloadBudget,
};
use serde_json::Value;

/// A fresh index on `db` (`None` when Postgres is not configured outside tests/run.sh).
async fn index(db: Db, budget: PayloadBudget) -> Option<(CrashIndex, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(db, dir.path()).await?;
    Some((CrashIndex::open(&url, budget).await.unwrap(), dir))
}

const GENEROUS: PayloadBudget = PayloadBudget {
    per_new_group: 1000,
    per_group_hour: 1000,
};

fn crash(
    n: usize,
    fingerprint: &str,
    at: i64,
    release: Option<&str>,
    user: Option<&str>,
) -> NewCrash {
    let mut annotations = BTreeMap::new();
    if let Some(user) = user {
        annotations.insert("guid".to_owned(), user.to_owned());
    }
    NewCrash {
        attributes: CrashAttributes {
            id: format!("crash-{fingerprint}-{n}"),
            project_id: 1,
            received_at: at,
            product: Some("Game".into()),
            release: release.map(str::to_owned),
            platform: Some("Linux".into()),
            cpu: Some("amd64".into()),
            user_id: user.map(str::to_owned),
            annotations,
            fingerprint: fingerprint.to_owned(),
            signature: format!("sig {fingerprint}"),
            fault_class: faultline::classify::FaultClass::NullRead.into(),
            kind: Default::default(),
        },
        payload_key: format!("crashes/20261121/{fingerprint}-{n}/processed.json"),
        top_frames: Vec::new(),
        replaces_earlier: false,
        facts: Default::default(),
    }
}

const HOUR: i64 = 1_795_240_800; // an hour boundary (2026-11-21 03:00 UTC)

on_both_databases! {
async fn one_group_counts_events_users_and_releases_in_version_order(db: Db) {
    let Some((index, _dir)) = index(db, GENEROUS).await else {
        return;
    };
    let releases = [
        Some("1.9.0"),
        Some("1.10.0"),
        Some("1.2.0"),
        None,
        Some("1.10.0"),
    ];
    let users = [Some("u1"), Some("u2"), Some("u1"), None, Some("u3")];
    let mut group = 0;
    for (n, (release, user)) in releases.iter().zip(users).enumerate() {
        let recorded = index
            .record(&crash(n, "aaa", HOUR + n as i64, *release, user))
            .await
            .unwrap();
        assert_eq!(recorded.new_group, n == 0);
        group = recorded.group_id;
    }
    let g = index.group(group).await.unwrap().unwrap();
    assert_eq!((g.event_count, g.user_count), (5, 3));
    // 1.10.0 is newer than 1.9.0 as a version, though not as a string.
    assert_eq!(
        (g.first_release.as_deref(), g.last_release.as_deref()),
        (Some("1.2.0"), Some("1.10.0"))
    );
    assert_eq!((g.first_seen, g.last_seen), (HOUR, HOUR + 4));
    assert_eq!(g.fingerprints, ["aaa"]);
}
}

on_both_databases! {
async fn payload_budget_keeps_new_groups_whole_then_caps_per_hour_with_exact_counts(db: Db) {
    let Some((index, _dir)) = index(db, PayloadBudget {
        per_new_group: 3,
        per_group_hour: 2,
    })
    .await else {
        return;
    };
    let mut kept = Vec::new();
    for n in 0..10 {
        kept.push(
            index
                .record(&crash(n, "bbb", HOUR + n as i64, Some("1.0"), None))
                .await
                .unwrap()
                .keep_payload,
        );
    }
    // The first three (a new group), then nothing more this hour (3 already kept ≥ 2).
    assert_eq!(
        kept,
        [true, true, true, false, false, false, false, false, false, false]
    );
    let mut next_hour = Vec::new();
    for n in 10..13 {
        next_hour.push(
            index
                .record(&crash(n, "bbb", HOUR + 3600 + n as i64, Some("1.0"), None))
                .await
                .unwrap()
                .keep_payload,
        );
    }
    assert_eq!(next_hour, [true, true, false]);
    let detail = index.group_detail(1).await.unwrap().unwrap();
    assert_eq!(detail.group.event_count, 13);
    assert_eq!(
        (detail.group.payloads_kept, detail.group.payloads_dropped),
        (5, 8)
    );
    assert_eq!(detail.hourly, [(HOUR, 10), (HOUR + 3600, 3)]);
    assert_eq!(detail.samples.len(), 5, "samples are crashes with payloads");
    assert_eq!(detail.by_release[0].count, 13);
    assert!(index
        .crash("crash-bbb-5")
        .await
        .unwrap()
        .unwrap()
        .payload_key
        .is_none());
    assert!(index
        .crash("crash-bbb-1")
        .await
        .unwrap()
        .unwrap()
        .payload_key
        .is_some());
}
}

on_both_databases! {
async fn a_mute_ends_at_its_date_or_after_its_count(db: Db) {
    let Some((index, _dir)) = index(db, GENEROUS).await else {
        return;
    };
    let by_count = index.record(&crash(0, "mute-n", HOUR, None, None)).await.unwrap().group_id;
    let by_date = index.record(&crash(1, "mute-d", HOUR, None, None)).await.unwrap().group_id;
    let forever = index.record(&crash(2, "mute-f", HOUR, None, None)).await.unwrap().group_id;
    let mute = |until: Option<i64>, events: Option<i64>| GroupPatch {
        state: Some(GroupState::Muted),
        muted_until: Some(until),
        mute_for_events: Some(events),
        ..GroupPatch::default()
    };
    let g = index.update_group(by_count, &mute(None, Some(3))).await.unwrap().unwrap();
    assert_eq!((g.state.as_str(), g.mute_until_events), ("muted", Some(4)), "1 + 3 more");
    index.update_group(by_date, &mute(Some(HOUR + 100), None)).await.unwrap();
    index.update_group(forever, &mute(None, None)).await.unwrap();
    assert!(index.update_group(forever, &mute(None, Some(0))).await.is_err());

    // Two more crashes: still muted; the third wakes it, and says so once.
    for n in 1..=2 {
        let r = index.record(&crash(10 + n, "mute-n", HOUR + n as i64, None, None)).await.unwrap();
        assert!(!r.woke);
    }
    assert_eq!(index.group(by_count).await.unwrap().unwrap().state.as_str(), "muted");
    let r = index.record(&crash(13, "mute-n", HOUR + 3, None, None)).await.unwrap();
    assert!(r.woke && !r.regressed);
    let g = index.group(by_count).await.unwrap().unwrap();
    assert_eq!((g.state.as_str(), g.mute_until_events), ("open", None));
    let r = index.record(&crash(14, "mute-n", HOUR + 4, None, None)).await.unwrap();
    assert!(!r.woke, "already awake");

    // Before its date: muted; at it: awake.
    let r = index.record(&crash(20, "mute-d", HOUR + 99, None, None)).await.unwrap();
    assert!(!r.woke);
    let r = index.record(&crash(21, "mute-d", HOUR + 100, None, None)).await.unwrap();
    assert!(r.woke);
    let g = index.group(by_date).await.unwrap().unwrap();
    assert_eq!((g.state.as_str(), g.muted_until), ("open", None));

    // A mute without an end stays; leaving the mute by hand clears its end.
    for n in 0..5 {
        index.record(&crash(30 + n, "mute-f", HOUR + 10 * 3600, None, None)).await.unwrap();
    }
    assert_eq!(index.group(forever).await.unwrap().unwrap().state.as_str(), "muted");
    index.update_group(forever, &mute(Some(HOUR), Some(5))).await.unwrap();
    let progress = GroupPatch {
        state: Some(GroupState::InProgress),
        ..GroupPatch::default()
    };
    let g = index.update_group(forever, &progress).await.unwrap().unwrap();
    assert_eq!((g.state.as_str(), g.muted_until, g.mute_until_events), ("in_progress", None, None));
}
}

on_both_databases! {
async fn a_crash_from_a_newer_release_reopens_a_resolved_group(db: Db) {
    let Some((index, _dir)) = index(db, GENEROUS).await else {
        return;
    };
    let g = index
        .record(&crash(0, "ccc", HOUR, Some("1.9.0"), None))
        .await
        .unwrap()
        .group_id;
    let patch = GroupPatch {
        state: Some(GroupState::Resolved),
        resolved_in: Some(Some("2.0.0".into())),
        assignee: Some(Some("ana".into())),
        ..GroupPatch::default()
    };
    let resolved = index.update_group(g, &patch).await.unwrap().unwrap();
    assert_eq!(
        (resolved.state.as_str(), resolved.assignee.as_deref()),
        ("resolved", Some("ana"))
    );

    // Older and same releases, and releases that cannot be ordered, do not regress it.
    for (n, release) in [(1, "1.9.5"), (2, "2.0.0"), (3, "abc1234")].into_iter() {
        let r = index
            .record(&crash(n, "ccc", HOUR + n as i64, Some(release), None))
            .await
            .unwrap();
        assert!(!r.regressed, "{release}");
    }
    assert_eq!(index.group(g).await.unwrap().unwrap().state.as_str(), "resolved");

    let r = index
        .record(&crash(4, "ccc", HOUR + 4, Some("2.0.1"), None))
        .await
        .unwrap();
    assert!(r.regressed);
    let g2 = index.group(g).await.unwrap().unwrap();
    assert_eq!((g2.state.as_str(), g2.regressed), ("open", true));

    // A patch changes only what it names; `Some(None)` clears; no such group is `None`.
    let unassign = GroupPatch {
        assignee: Some(None),
        ..GroupPatch::default()
    };
    let g3 = index.update_group(g, &unassign).await.unwrap().unwrap();
    assert_eq!(
        (g3.state.as_str(), g3.regressed, g3.assignee.as_deref()),
        ("open", true, None)
    );
    assert_eq!(g3.resolved_in.as_deref(), Some("2.0.0"));
    assert!(index.update_group(g + 1000, &unassign).await.unwrap().is_none());

    // A state nobody may set never reaches the index: it is refused where it is named.
    assert!(GroupState::settable("done")
        .unwrap_err()
        .to_string()
        .contains("open, in_progress, resolved, muted"));
}
}

on_both_databases! {
async fn merging_moves_fingerprints_crashes_and_users(db: Db) {
    let Some((index, _dir)) = index(db, GENEROUS).await else {
        return;
    };
    let a = index
        .record(&crash(0, "ddd", HOUR, Some("1.0"), Some("u1")))
        .await
        .unwrap()
        .group_id;
    index
        .record(&crash(1, "ddd", HOUR + 1, Some("1.1"), Some("u2")))
        .await
        .unwrap();
    let b = index
        .record(&crash(2, "eee", HOUR + 2, Some("0.9"), Some("u2")))
        .await
        .unwrap()
        .group_id;
    index
        .record(&crash(3, "eee", HOUR + 3, Some("1.2"), Some("u3")))
        .await
        .unwrap();
    assert_ne!(a, b);
    let merged = index.merge(a, &[b]).await.unwrap().unwrap();
    assert_eq!(merged.fingerprints, ["ddd", "eee"]);
    assert_eq!((merged.event_count, merged.user_count), (4, 3));
    assert_eq!(
        (
            merged.first_release.as_deref(),
            merged.last_release.as_deref()
        ),
        (Some("0.9"), Some("1.2"))
    );
    assert!(index.group(b).await.unwrap().is_none());
    assert_eq!(index.merged_into(b).await.unwrap(), Some(a));
    // The merged group's fingerprint now leads to the target: the group keeps every hash.
    assert_eq!(
        index
            .record(&crash(4, "eee", HOUR + 4, None, None))
            .await
            .unwrap()
            .group_id,
        a
    );
    assert_eq!(
        index.crash("crash-eee-2").await.unwrap().unwrap().group_id,
        a
    );
    assert!(index.merge(a, &[a]).await.is_err());
}
}

on_both_databases! {
async fn listing_filters_sorts_and_pages(db: Db) {
    let Some((index, _dir)) = index(db, GENEROUS).await else {
        return;
    };
    // Group sizes 1..=5, one crash of group 5 with another product and a user annotation.
    for (g, fp) in ["g1", "g2", "g3", "g4", "g5"].iter().enumerate() {
        for n in 0..=g {
            let mut c = crash(n, fp, HOUR + (g * 10 + n) as i64, Some("1.0"), None);
            if g == 4 && n == 0 {
                c.attributes.product = Some("Editor".into());
                c.attributes
                    .annotations
                    .insert("guid".into(), "player-7".into());
                c.attributes.fault_class = faultline::classify::FaultClass::Abort.into();
            }
            index.record(&c).await.unwrap();
        }
    }
    let first = index
        .groups(&group_query(GroupSort::Events, 2, None))
        .await
        .unwrap();
    let counts: Vec<i64> = first.items.iter().map(|g| g.event_count).collect();
    assert_eq!(counts, [5, 4]);
    let second = index
        .groups(&group_query(
            GroupSort::Events,
            2,
            first.next_cursor.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(
        second
            .items
            .iter()
            .map(|g| g.event_count)
            .collect::<Vec<_>>(),
        [3, 2]
    );
    let third = index
        .groups(&group_query(
            GroupSort::Events,
            2,
            second.next_cursor.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(
        third
            .items
            .iter()
            .map(|g| g.event_count)
            .collect::<Vec<_>>(),
        [1]
    );
    assert!(third.next_cursor.is_none());

    let newest = index
        .groups(&group_query(GroupSort::FirstSeen, 1, None))
        .await
        .unwrap();
    assert_eq!(newest.items[0].fingerprints, ["g5"]);

    let mut q = group_query(GroupSort::LastSeen, 10, None);
    q.product = Some("Editor".into());
    assert_eq!(index.groups(&q).await.unwrap().items.len(), 1);
    let mut q = group_query(GroupSort::LastSeen, 10, None);
    q.annotation = Some(("guid".into(), "player-7".into()));
    assert_eq!(
        index.groups(&q).await.unwrap().items[0].fingerprints,
        ["g5"]
    );
    let mut q = group_query(GroupSort::LastSeen, 10, None);
    q.since = Some(HOUR + 20);
    q.until = Some(HOUR + 31);
    let fps: Vec<String> = index
        .groups(&q)
        .await
        .unwrap()
        .items
        .iter()
        .map(|g| g.fingerprints[0].clone())
        .collect();
    assert_eq!(fps, ["g4", "g3"]);
    let mut q = group_query(GroupSort::LastSeen, 10, None);
    q.state = Some(GroupState::Resolved);
    assert!(index.groups(&q).await.unwrap().items.is_empty());
    assert!(index
        .groups(&group_query(GroupSort::Events, 2, Some("garbage".into())))
        .await
        .is_err());

    let page = index
        .crashes_by_annotation(1, "guid", "player-7", 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].attributes.product.as_deref(), Some("Editor"));
}
}

/// Posts a generated dump with annotations; returns the response JSON.
async fn post_dump(server: &TestServer, dump: &PathBuf, fields: &[(&str, &str)]) -> Value {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form = form.part(
        "upload_file_minidump",
        reqwest::multipart::Part::bytes(std::fs::read(dump).unwrap()).file_name("x.dmp"),
    );
    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_bug_groups_across_processes_and_releases_and_different_bugs_do_not() {
    let server = TestServer::start().await;
    server
        .upload(
            "crasher.debug",
            std::fs::read(generated("crasher.debug")).unwrap(),
        )
        .await;
    let first = post_dump(
        &server,
        &generated("null-read.dmp"),
        &[("product", "Crasher"), ("version", "1.0.0"), ("guid", "u1")],
    )
    .await;
    let again = post_dump(
        &server,
        &generated("rerun/null-read.dmp"),
        &[("product", "Crasher"), ("version", "1.1.0"), ("guid", "u2")],
    )
    .await;
    // Another process: other load addresses, same bug, same group.
    assert_ne!(
        first["modules"][1]["base_addr"],
        again["modules"][1]["base_addr"]
    );
    assert_eq!(
        first["grouping"]["fingerprint"],
        again["grouping"]["fingerprint"]
    );
    assert_eq!(first["group_id"], again["group_id"]);
    assert_eq!(
        first["grouping"]["signature"],
        "core::ptr::read_volatile | crasher::linux::null_read"
    );

    let write = post_dump(
        &server,
        &generated("wild-write.dmp"),
        &[("product", "Crasher"), ("version", "1.1.0")],
    )
    .await;
    let write_again = post_dump(
        &server,
        &generated("rerun/wild-write.dmp"),
        &[("product", "Crasher"), ("version", "1.2.0")],
    )
    .await;
    assert_ne!(
        write["group_id"], first["group_id"],
        "a different fault frame is a different group"
    );
    assert_eq!(write["group_id"], write_again["group_id"]);
    let panic = post_dump(&server, &generated("rust-panic.dmp"), &[]).await;
    assert_eq!(
        panic["grouping"]["signature"],
        "core::panicking::panic_fmt | crasher::linux::rust_panic"
    );

    let (status, groups) = server.get_json("/api/v1/groups?sort=events").await;
    assert_eq!(status, 200);
    let groups = groups["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    let id = first["group_id"].as_i64().unwrap();
    let null_reads = groups.iter().find(|g| g["id"] == id).unwrap();
    assert_eq!(
        (
            null_reads["event_count"].as_i64(),
            null_reads["user_count"].as_i64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(groups.last().unwrap()["event_count"], 1, "sorted by events");
    let (_, detail) = server.get_json(&format!("/api/v1/groups/{id}")).await;
    assert_eq!(detail["fault_class"], "null-read");
    assert_eq!(detail["by_release"].as_array().unwrap().len(), 2);
    assert_eq!(detail["by_platform"][0]["value"], "Linux");
    assert_eq!(detail["by_cpu"][0]["value"], "amd64", "the dump's CPU");
    assert_eq!(detail["by_cpu"][0]["count"], 2);
    assert_eq!(detail["samples"].as_array().unwrap().len(), 2);

    // The crash and its processed result.
    let crash_id = first["crash_id"].as_str().unwrap();
    let (status, crash) = server
        .get_json(&format!("/api/v1/crashes/{crash_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(crash["crash"]["group_id"], id);
    assert_eq!(
        crash["processed"]["classification"]["fault_class"],
        "null-read"
    );
    assert_eq!(
        crash["processed"]["threads"][0]["frames"][0]["function"],
        "crasher::linux::null_read"
    );
    let (_, by_user) = server.get_json("/api/v1/crashes?annotation.guid=u2").await;
    assert_eq!(by_user["crashes"][0]["id"], again["crash_id"]);
}

on_both_databases! {
async fn triage_api_resolves_detects_regressions_merges_and_validates(db: Db) {
    let Some(server) = TestServer::start_on(db, |c| {
        c.group.payloads_per_new_group = 1;
        c.group.payloads_per_group_hour = 1;
    })
    .await
    else {
        return;
    };
    server
        .upload(
            "crasher.debug",
            std::fs::read(generated("crasher.debug")).unwrap(),
        )
        .await;
    let dump = generated("abort.dmp");
    let one = post_dump(&server, &dump, &[("version", "3.1.0")]).await;
    let id = one["group_id"].as_i64().unwrap();
    assert_eq!(one["payload_kept"], true);

    let patch = |body: Value| {
        let url = server.url(&format!("/api/v1/groups/{id}"));
        let client = server.client.clone();
        async move { client.patch(url).json(&body).send().await.unwrap() }
    };
    let resolved: Value = patch(serde_json::json!({"state": "resolved", "resolved_in": "3.2.0"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (resolved["state"].as_str(), resolved["resolved_in"].as_str()),
        (Some("resolved"), Some("3.2.0"))
    );

    // 3.1.5 is older than the fix: still resolved. The budget (1 payload) is spent: counted only.
    let older = post_dump(&server, &dump, &[("version", "3.1.5")]).await;
    assert_eq!(older["payload_kept"], false);
    let (_, crash) = server
        .get_json(&format!(
            "/api/v1/crashes/{}",
            older["crash_id"].as_str().unwrap()
        ))
        .await;
    assert!(crash["processed"].is_null());
    assert!(crash["payload_note"].as_str().unwrap().contains("budget"));
    let (_, group) = server.get_json(&format!("/api/v1/groups/{id}")).await;
    assert_eq!(
        (group["state"].as_str(), group["event_count"].as_i64()),
        (Some("resolved"), Some(2))
    );

    post_dump(&server, &dump, &[("version", "3.10.0")]).await;
    let (_, group) = server.get_json(&format!("/api/v1/groups/{id}")).await;
    assert_eq!(
        (group["state"].as_str(), group["regressed"].as_bool()),
        (Some("open"), Some(true))
    );
    let (_, regressions) = server
        .get_json("/api/v1/groups?state=open&fault_class=abort")
        .await;
    assert_eq!(regressions["groups"][0]["id"], id);
    // Text in the signature, in any case; LIKE's wildcards are plain characters.
    let (_, found) = server.get_json("/api/v1/groups?q=ABORT").await;
    assert_eq!(found["groups"][0]["id"], id);
    for wildcard in ["%25", "_", "%5C"] {
        let (status, found) = server.get_json(&format!("/api/v1/groups?q={wildcard}")).await;
        assert_eq!(status, 200);
        assert_eq!(found["groups"].as_array().unwrap().len(), 0, "{wildcard}");
    }

    // Merge another group into this one.
    let other = post_dump(&server, &generated("assertion.dmp"), &[]).await;
    let other_id = other["group_id"].as_i64().unwrap();
    let merged: Value = server
        .client
        .post(server.url(&format!("/api/v1/groups/{id}/merge")))
        .json(&serde_json::json!({"groups": [other_id]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(merged["event_count"], 4, "{merged}");
    assert_eq!(merged["fingerprints"].as_array().unwrap().len(), 2);
    let (status, gone) = server.get_json(&format!("/api/v1/groups/{other_id}")).await;
    assert_eq!(status, 404);
    assert!(gone["error"]
        .as_str()
        .unwrap()
        .contains(&format!("merged into group {id}")));

    // Bad input: clear 4xx messages.
    for (path, expect) in [
        ("/api/v1/groups?sort=random", "sort by events, users"),
        ("/api/v1/groups?limit=ten", "limit must be an integer"),
        ("/api/v1/groups?colour=red", "unknown parameter"),
        ("/api/v1/groups?cursor=zz", "invalid cursor"),
        ("/api/v1/groups/abc", "must be an integer"),
        ("/api/v1/crashes", "annotation"),
    ] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, 400, "{path}");
        assert!(
            body["error"].as_str().unwrap().contains(expect),
            "{path}: {body}"
        );
    }
    let response = patch(serde_json::json!({"state": "fixed"})).await;
    assert_eq!(response.status(), 400);
    let response = patch(serde_json::json!({"colour": "red"})).await;
    assert_eq!(response.status(), 400);
    assert_eq!(server.get_json("/api/v1/groups/999").await.0, 404);
    assert_eq!(server.get_json("/api/v1/crashes/nope").await.0, 404);
    let _ = fixture_bytes("minidumps/rust-minidump/test.dmp");
}
}

/// Per fingerprint: the group as triage sees it, minus what depends on arrival order (its ID,
/// which crashes are the samples).
async fn groups_by_fingerprint(
    index: &CrashIndex,
    ids: impl IntoIterator<Item = i64>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for id in ids {
        let detail = index.group_detail(id).await.unwrap().unwrap();
        let mut json = serde_json::to_value(&detail).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("id");
        object.remove("samples");
        out.insert(detail.group.fingerprints.join(","), json);
    }
    out
}

on_both_databases! {
/// Many crashes recorded at once are written in batches (group commit); the index must end up
/// exactly as if they had been recorded one at a time: counts, distinct users, releases,
/// hourly counts and payload budget, with a crash sent twice counted once.
async fn concurrent_recording_counts_exactly_as_one_at_a_time(db: Db) {
    // Budgets whose outcome does not depend on arrival order: per hour only over 3 hours, and
    // per new group within one hour.
    for (budget, hours) in [
        (
            PayloadBudget {
                per_new_group: 0,
                per_group_hour: 2,
            },
            3,
        ),
        (
            PayloadBudget {
                per_new_group: 3,
                per_group_hour: 2,
            },
            1,
        ),
    ] {
        let releases = [
            Some("1.2.0"),
            Some("1.10.0"),
            None,
            Some("1.9.1"),
            Some("0.9"),
        ];
        let mut crashes: Vec<NewCrash> = (0..240)
            .map(|n| {
                let user = format!("u{}", n % 7);
                crash(
                    n,
                    &format!("fp{}", n % 6),
                    HOUR + (n as i64 / 6 % hours) * 3600 + n as i64 % 60,
                    releases[n % releases.len()],
                    (n % 5 != 0).then_some(user.as_str()),
                )
            })
            .collect();
        // Clients retry: some crashes arrive twice.
        let again: Vec<NewCrash> = crashes.iter().step_by(11).cloned().collect();
        crashes.extend(again);

        let Some((one_by_one, _a)) = index(db, budget).await else {
        return;
    };
        let mut sequential_groups = std::collections::BTreeSet::new();
        for c in &crashes {
            sequential_groups.insert(one_by_one.record(c).await.unwrap().group_id);
        }
        let Some((at_once, _b)) = index(db, budget).await else {
        return;
    };
        let at_once = std::sync::Arc::new(at_once);
        let tasks: Vec<_> = crashes
            .iter()
            .cloned()
            .map(|c| {
                let index = at_once.clone();
                tokio::spawn(
                    async move { (c.attributes.id.clone(), index.record(&c).await.unwrap()) },
                )
            })
            .collect();
        let mut concurrent_groups = std::collections::BTreeSet::new();
        let mut decided: BTreeMap<String, (i64, bool)> = BTreeMap::new();
        for task in tasks {
            let (id, recorded) = task.await.unwrap();
            concurrent_groups.insert(recorded.group_id);
            // Both deliveries of a crash report the same group and payload decision.
            let first = *decided
                .entry(id)
                .or_insert((recorded.group_id, recorded.keep_payload));
            assert_eq!(first, (recorded.group_id, recorded.keep_payload));
        }
        assert_eq!(decided.len(), 240);
        let expected = groups_by_fingerprint(&one_by_one, sequential_groups).await;
        let got = groups_by_fingerprint(&at_once, concurrent_groups).await;
        assert_eq!(expected.len(), 6);
        assert_eq!(got, expected, "budget {budget:?}");
        let kept: i64 = expected
            .values()
            .map(|g| g["payloads_kept"].as_i64().unwrap())
            .sum();
        assert_eq!(kept, if hours == 3 { 6 * 3 * 2 } else { 6 * 3 });
        assert_eq!(expected["fp1"]["event_count"], 40);
    }
}
}

on_both_databases! {
/// A caller that goes away while its crash is queued or being written (a client hanging up)
/// must not lose or half-write anyone else's crash: every caller still waiting gets its answer,
/// and the counts match the crash rows.
async fn callers_going_away_mid_batch_lose_nothing_for_the_others(db: Db) {
    let Some((index, _dir)) = index(db, GENEROUS).await else {
        return;
    };
    let index = std::sync::Arc::new(index);
    let tasks: Vec<_> = (0..300)
        .map(|n| {
            let index = index.clone();
            let crash = crash(
                n,
                &format!("fp{}", n % 4),
                HOUR + n as i64,
                Some("1.0"),
                None,
            );
            tokio::spawn(async move { index.record(&crash).await.unwrap() })
        })
        .collect();
    // Abort every fifth caller at some point of its life: queued, writing or done.
    let mut kept = Vec::new();
    for (n, task) in tasks.into_iter().enumerate() {
        if n % 5 == 0 {
            tokio::task::yield_now().await;
            task.abort();
        } else {
            kept.push((n, task));
        }
    }
    for (n, task) in kept {
        let recorded = tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .unwrap_or_else(|_| panic!("caller {n} never got an answer"))
            .unwrap();
        assert!(recorded.group_id > 0);
        // Its crash is in the index.
        let id = format!("crash-fp{}-{n}", n % 4);
        assert!(index.crash(&id).await.unwrap().is_some(), "{id} lost");
    }
    // Whatever the aborted callers left behind is whole: each group counts exactly its rows.
    let mut rows: BTreeMap<String, i64> = BTreeMap::new();
    for n in 0..300 {
        if let Some(row) = index
            .crash(&format!("crash-fp{}-{n}", n % 4))
            .await
            .unwrap()
        {
            *rows.entry(row.attributes.fingerprint).or_default() += 1;
        }
    }
    let groups = index
        .groups(&group_query(GroupSort::Events, 100, None))
        .await
        .unwrap();
    assert_eq!(groups.items.len(), 4);
    for group in &groups.items {
        assert_eq!(
            group.event_count, rows[&group.fingerprints[0]],
            "group {}",
            group.id
        );
    }
    let counted: i64 = rows.values().sum();
    assert!(counted >= 240, "only {counted} crashes recorded");
}
}

on_both_databases! {
/// A writer cancelled at any point while it opens its transaction leaves no connection behind
/// inside a transaction: every later writer can still begin, write and commit.
async fn writers_cancelled_while_beginning_leave_no_transaction_open(db: Db) {
    let Some((index, _dir)) = index(db, GENEROUS).await else {
        return;
    };
    let index = std::sync::Arc::new(index);
    for yields in 0..400 {
        let task = {
            let index = index.clone();
            tokio::spawn(async move {
                let tx = index.begin_write().await.unwrap();
                drop(tx);
            })
        };
        for _ in 0..yields % 40 {
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        let crash = crash(yields, "fp", HOUR, Some("1.0"), None);
        let recorded = tokio::time::timeout(std::time::Duration::from_secs(30), index.record(&crash))
            .await
            .expect("a writer after a cancelled one never got the write lock")
            .unwrap_or_else(|e| panic!("writer after cancellation {yields}: {e}"));
        assert!(recorded.group_id > 0);
    }
}
}
