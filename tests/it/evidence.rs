//! A group's evidence end to end: crashes whose annotations make one GPU driver stand out, a
//! release deployed just before the group appeared, an earlier resolved group failing in the
//! same function; the evidence (JSON, Markdown, the CLI) names them all; both databases.

use crate::common;

use serde_json::{json, Value};

use common::{generated_bytes, submit, TestServer};

const DRIVER: &str = "31.0.15.3623";

/// Submits `count` copies of a generated dump in `release`, the first `with_driver` of them
/// annotated with the driver, the rest with an older one; a few at a time.
async fn crashes(
    server: &TestServer,
    dump: &str,
    release: &str,
    count: usize,
    with_driver: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    let indices: Vec<usize> = (0..count).collect();
    for wave in indices.chunks(8) {
        let sends = wave.iter().map(|&i| {
            let driver = if i < with_driver { DRIVER } else { "30.0.1" };
            async move { submit(server, dump, &[("ver", release), ("gpu_driver", driver)]).await }
        });
        ids.extend(futures::future::join_all(sends).await);
    }
    ids
}

/// The group's evidence once `ready` says so. Up to two minutes: when the job computed the
/// group while its crashes were still arriving (a slow machine), less than a quarter short of
/// them, it computes it again only once the group has been quiet for a minute
/// (`correlations::QUIET_SECS`).
async fn evidence_when(server: &TestServer, group: i64, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1200 {
        let (status, body) = server
            .get_json(&format!("/api/v1/groups/{group}/evidence"))
            .await;
        assert_eq!(status, 200, "{body}");
        if ready(&body) {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the evidence of group {group} was not complete in time");
}

on_both_databases! {
async fn the_evidence_names_the_driver_the_deploy_and_the_earlier_group(db: Db) {
    let Some(server) = TestServer::start_on(db, |c| c.evidence.correlations_interval_secs = 1).await else {
        return;
    };
    let (status, _) = server.upload("crasher.debug", generated_bytes("crasher.debug")).await;
    assert_eq!(status, 200);
    // Release 1.0 had a wild read, resolved in 1.0.
    let earlier = crashes(&server, "wild-read.dmp", "1.0", 2, 0).await;
    let (_, crash) = server.get_json(&format!("/api/v1/crashes/{}", earlier[0])).await;
    let earlier_group = crash["crash"]["group_id"].as_i64().unwrap();
    let resolved = server.client.patch(server.url(&format!("/api/v1/groups/{earlier_group}"))).json(&json!({"state": "resolved", "resolved_in": "1.0"})).send().await.unwrap();
    assert_eq!(resolved.status(), 200);
    // Release 2.0, deployed to production fourteen minutes ago.
    let (status, release) = server.admin_post("/api/0/organizations/o/releases/", json!({"version": "2.0", "projects": ["default"]})).await;
    assert_eq!(status, 201, "{release}");
    let finished = std::process::Command::new("date").args(["-u", "-d", &format!("@{}", common::now() - 14 * 60), "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
    let finished = String::from_utf8(finished.stdout).unwrap().trim().to_owned();
    let (status, deploy) = server.admin_post("/api/0/organizations/o/releases/2.0/deploys/", json!({"environment": "production", "name": "prod-eu-2", "dateFinished": finished})).await;
    assert_eq!(status, 201, "{deploy}");
    // The others of 2.0: 3 of 80 crashes on the driver; then the new group: 30 of its 40.
    crashes(&server, "abort.dmp", "2.0", 40, 2).await;
    crashes(&server, "assertion.dmp", "2.0", 40, 1).await;
    // A webhook hears of the new group with its evidence in a few lines.
    let receiver = common::alerting::new_group_webhook(&server).await;
    let mine = crashes(&server, "null-read.dmp", "2.0", 40, 30).await;
    let heard = receiver.wait_for(1, std::time::Duration::from_secs(30)).await;
    let alert = heard[0].json();
    let summary = alert["evidence"].as_str().unwrap_or_default();
    assert!(summary.contains("First seen in 2.0, ") && summary.contains(" minutes after its deploy to production finished"), "{alert}");
    assert!(summary.contains(&format!("Failed the same way before: group {earlier_group} (resolved, resolved in 1.0)")), "{alert}");
    let (_, crash) = server.get_json(&format!("/api/v1/crashes/{}", mine[0])).await;
    let group = crash["crash"]["group_id"].as_i64().unwrap();

    // Computed by the job as the group grew; complete once it read all 40.
    let e = evidence_when(&server, group, |e| e["correlations"]["group_crashes"] == 40).await;
    // Correlations: the driver, 75 % of the group against 33 of the 122 crashes of the window.
    let top = &e["correlations"]["deviations"][0];
    assert_eq!(top["items"], json!([["annotation.gpu_driver", DRIVER]]), "{}", e["correlations"]);
    assert_eq!((top["group_count"].as_u64(), top["reference_count"].as_u64()), (Some(30), Some(33)), "{top}");
    assert_eq!(e["correlations"]["group_crashes"], 40);
    assert_eq!(e["correlations"]["reference_crashes"], 120, "the window's crashes of the group's releases");
    assert_eq!(e["correlations"]["stale"], false);
    // The verdict, the timeline, the history.
    assert_eq!(e["verdict"]["fault_frame"]["function"], "crasher::linux::null_read", "{}", e["verdict"]);
    assert_eq!(e["timeline"]["first_release"], "2.0");
    assert_eq!(e["timeline"]["deploy"]["name"], "prod-eu-2", "{}", e["timeline"]);
    let minutes = e["timeline"]["deploy"]["minutes_before"].as_i64().unwrap();
    assert!((14..=16).contains(&minutes), "{minutes}");
    // All of it came within the hour, with the abort and assertion groups: a spike, together.
    let spike = &e["timeline"]["spike"];
    assert!(spike["events"].as_i64().unwrap() >= 20, "{spike}");
    let together: Vec<i64> = spike["together"].as_array().unwrap().iter().map(|g| g["id"].as_i64().unwrap()).collect();
    assert_eq!(together.len(), 2, "{spike}");
    assert!(!together.contains(&earlier_group) && !together.contains(&group));
    let history = e["history"].as_array().unwrap();
    let before = history.iter().find(|g| g["id"] == earlier_group).expect("the earlier wild read, same function");
    assert_eq!(before["state"], "resolved");
    assert_eq!(before["resolved_in"], "1.0");
    assert!(e["links"]["group"].as_str().unwrap().ends_with(&format!("/ui/groups/{group}")));

    // The same as Markdown, from the API and from the CLI.
    let markdown = server.client.get(server.url(&format!("/api/v1/groups/{group}/evidence?format=markdown"))).send().await.unwrap();
    assert_eq!(markdown.headers()["content-type"], "text/markdown; charset=utf-8");
    let markdown = markdown.text().await.unwrap();
    assert!(markdown.contains(&format!("(75% in this group vs 28% overall) `annotation.gpu\\_driver = {DRIVER}`")), "{markdown}");
    assert!(markdown.contains("minutes after the deploy `prod-eu-2` to production finished"), "{markdown}");
    assert!(markdown.contains(&format!("- Group {earlier_group} (resolved, resolved in 1.0)")), "{markdown}");
    assert!(markdown.contains("- Fault frame: crasher::linux::null\\_read"), "{markdown}");
    assert!(markdown.contains("- Spiked at ") && markdown.contains(", together with groups "), "{markdown}");
    let mut cli = common::faultline();
    cli.args(["evidence", &group.to_string(), "--markdown", "--server", &server.url(""), "--token", &server.admin_token]);
    let (code, out, err) = common::run(cli).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim_end(), markdown.trim_end());

    // The group's page says it in its "Why" block, and gives the Markdown to a signed-in person.
    let session = common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = session.get(&format!("/ui/groups/{group}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("<li class=\"over\">(75% in this group vs 28% overall) <code>annotation.gpu_driver = {DRIVER}</code></li>")), "{}", page.body);
    assert!(page.body.contains("minutes after the deploy prod-eu-2 to production finished"), "{}", page.body);
    assert!(page.body.contains(&format!("<a href=\"/ui/groups/{earlier_group}\">")), "the earlier group, linked");
    assert!(page.body.contains("<line class=\"deploy\"") && page.body.contains("<title>deploy of 2.0 to production (prod-eu-2), "), "the deploy on the group's chart");
    let page = session.get(&format!("/ui/groups/{group}/evidence.md")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body.trim_end(), markdown.trim_end());

    // Who may read it: a token without triage:read is refused, another project's sees nothing.
    let (ingest, _) = server.create_token(json!({"name": "ingest", "scopes": ["ingest"]})).await;
    let anonymous = server.anonymous.get(server.url(&format!("/api/v1/groups/{group}/evidence"))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let refused = server.anonymous.get(server.url(&format!("/api/v1/groups/{group}/evidence"))).bearer_auth(&ingest).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    server.create_project("other").await;
    let (other, _) = server.create_token(json!({"name": "other", "scopes": ["triage:read"], "projects": ["other"]})).await;
    let hidden = server.anonymous.get(server.url(&format!("/api/v1/groups/{group}/evidence"))).bearer_auth(&other).send().await.unwrap();
    assert_eq!(hidden.status(), 404);
    let (status, bad) = server.get_json(&format!("/api/v1/groups/{group}/evidence?format=pdf")).await;
    assert_eq!(status, 400, "{bad}");
}
}

/// The statistics of the correlations against SciPy's, the reference Mozilla's code calls:
/// `chi2_contingency` (χ² with Yates' correction, its p) and `fisher_exact` (two-sided p) on
/// tables from tiny to large, balanced to lopsided.
#[tokio::test]
async fn correlation_statistics_equal_scipys() {
    use faultline::correlations::stats::{chi2_contingency, fisher_exact};
    let present = std::process::Command::new("python3")
        .args(["-c", "import scipy"])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            !common::services_required(),
            "SciPy (PyPI) is required (tests/run.sh installs it)"
        );
        return;
    }
    // Deterministic tables: a linear congruential generator, counts 0–2,000 with some small.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |limit: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % limit
    };
    let mut tables: Vec<[[u64; 2]; 2]> = vec![
        [[30, 70], [10, 190]],
        [[3, 1], [1, 3]],
        [[5, 0], [2, 9]],
        [[72, 28], [102, 898]],
    ];
    for i in 0..40 {
        let limit = if i % 3 == 0 { 12 } else { 2_000 };
        tables.push([
            [next(limit) + 1, next(limit) + 1],
            [next(limit) + 1, next(limit) + 1],
        ]);
    }
    let script = r#"
import json, sys
from scipy.stats import chi2_contingency, fisher_exact
out = []
for t in json.load(sys.stdin):
    chi2, p, _, _ = chi2_contingency(t)
    _, fp = fisher_exact(t)
    out.append([float(chi2), float(p), float(fp)])
print(json.dumps(out))
"#;
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(serde_json::to_string(&tables).unwrap().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success());
    let scipy: Vec<[f64; 3]> = serde_json::from_slice(&output.stdout).unwrap();
    let close = |ours: f64, theirs: f64| {
        (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1e-300) || (ours - theirs).abs() < 1e-15
    };
    for (table, [chi2, p, fisher]) in tables.iter().zip(scipy) {
        let as_f64 = [
            [table[0][0] as f64, table[0][1] as f64],
            [table[1][0] as f64, table[1][1] as f64],
        ];
        let (our_chi2, our_p) = chi2_contingency(as_f64);
        assert!(
            close(our_chi2, chi2),
            "{table:?}: χ² {our_chi2} vs SciPy {chi2}"
        );
        assert!(
            (our_p - p).abs() <= 1e-7 * p.max(1e-300) || (our_p - p).abs() < 1e-12,
            "{table:?}: p {our_p} vs SciPy {p}"
        );
        let our_fisher = fisher_exact(*table);
        assert!(
            (our_fisher - fisher).abs() <= 1e-7 * fisher.max(1e-300)
                || (our_fisher - fisher).abs() < 1e-12,
            "{table:?}: Fisher p {our_fisher} vs SciPy {fisher}"
        );
    }
}

/// A crash of group `fingerprint` at `at`, as the index records it.
fn indexed_crash(n: usize, fingerprint: &str, at: i64) -> faultline::group::index::NewCrash {
    use faultline::group::index::{CrashAttributes, NewCrash};
    NewCrash {
        attributes: CrashAttributes {
            id: format!("{fingerprint}-{n}"),
            project_id: 1,
            received_at: at,
            product: None,
            release: Some("1.0".into()),
            platform: Some("Linux".into()),
            cpu: None,
            user_id: None,
            annotations: Default::default(),
            fingerprint: fingerprint.to_owned(),
            signature: fingerprint.to_owned(),
            fault_class: faultline::classify::FaultClass::NullRead.into(),
            kind: Default::default(),
        },
        payload_key: format!("p/{fingerprint}-{n}"),
        top_frames: Vec::new(),
        replaces_earlier: false,
        facts: Default::default(),
    }
}

/// A fresh crash index of kind `db` with 100 crashes in each of two groups (the `n`th received
/// at `at(n)`), each group's correlations computed; `None` when the database is not set up.
async fn two_computed_groups(
    db: common::Db,
    fingerprints: [&str; 2],
    at: impl Fn(usize) -> i64,
) -> Option<(
    tempfile::TempDir,
    faultline::group::index::CrashIndex,
    faultline::correlations::Correlations,
    Vec<i64>,
)> {
    use faultline::correlations::Correlations;
    use faultline::group::index::{CrashIndex, PayloadBudget};
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(db, dir.path()).await?;
    let index = CrashIndex::open(
        &url,
        PayloadBudget {
            per_new_group: 0,
            per_group_hour: 0,
        },
    )
    .await
    .unwrap();
    let correlations = Correlations::new(index.pool().clone(), 30);
    let mut groups = Vec::new();
    for fingerprint in fingerprints {
        let mut group = 0;
        for n in 0..100 {
            group = index
                .record(&indexed_crash(n, fingerprint, at(n)))
                .await
                .unwrap()
                .group_id;
        }
        correlations.compute(group).await.unwrap().unwrap();
        groups.push(group);
    }
    Some((dir, index, correlations, groups))
}

on_both_databases! {
/// A group whose crashes spike this hour has its correlations computed again within the hour,
/// though it grew by less than a quarter; a busy hour that is no spike does not.
async fn a_spiking_group_is_due_for_correlations_again(db: Db) {
    let now = common::now();
    let hour = now - now.rem_euclid(3600);
    // 100 crashes of each group in the 24 hours before this hour: about 4 an hour.
    let at = |n: usize| hour - 3600 * (1 + (n as i64 % 24)) + 60;
    let Some((_dir, index, correlations, groups)) = two_computed_groups(db, ["spiking", "steady"], at).await else {
        return;
    };
    let spiking = groups[0];
    // Computed before this hour began.
    sqlx::query("UPDATE group_correlations SET computed_at = $1").bind(hour - 60).execute(index.pool()).await.unwrap();
    assert_eq!(correlations.due(10).await.unwrap(), Vec::<i64>::new(), "nothing new");
    // This hour: 15 crashes of one (over 3 x 4 an hour), 9 of the other (under ten).
    for n in 0..15 {
        index.record(&indexed_crash(100 + n, "spiking", now)).await.unwrap();
    }
    for n in 0..9 {
        index.record(&indexed_crash(100 + n, "steady", now)).await.unwrap();
    }
    assert_eq!(correlations.due(10).await.unwrap(), vec![spiking], "grew by 15 %, but spiked");
    correlations.compute(spiking).await.unwrap().unwrap();
    assert_eq!(correlations.due(10).await.unwrap(), Vec::<i64>::new(), "computed in the spike's hour");
}

}

on_both_databases! {
/// A report computed while its group's burst went on, which missed a few of its crashes, is
/// computed again once the group has been quiet a minute; a group still crashing waits for the
/// usual growth.
async fn a_report_that_missed_part_of_a_burst_is_computed_again_once_quiet(db: Db) {
    let now = common::now();
    let Some((_dir, index, correlations, groups)) = two_computed_groups(db, ["quiet", "still-crashing"], |_| now - 900).await else {
        return;
    };
    // Both reports computed five minutes ago, while their bursts went on: 3 more crashes each
    // (3 %, far from the quarter that makes a report due), the last of one four minutes ago,
    // of the other now.
    sqlx::query("UPDATE group_correlations SET computed_at = $1").bind(now - 300).execute(index.pool()).await.unwrap();
    for n in 0..3 {
        index.record(&indexed_crash(100 + n, "quiet", now - 240)).await.unwrap();
        index.record(&indexed_crash(100 + n, "still-crashing", now)).await.unwrap();
    }
    assert_eq!(correlations.due(10).await.unwrap(), vec![groups[0]], "the quiet group's report missed 3 crashes");
    let report = correlations.compute(groups[0]).await.unwrap().unwrap();
    assert_eq!(report.group_crashes, 103);
    assert_eq!(correlations.due(10).await.unwrap(), Vec::<i64>::new(), "every crash of the quiet group counted");
}
}
