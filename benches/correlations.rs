//! Correlations and evidence on a generated project (issue 34's targets: computed in under 2 s
//! for a group of 10,000 crashes, read in under 100 ms once computed): 100,000 crashes in 20
//! groups over a day, four annotations each (400,000 rows), the first group's crashes 72 % on
//! one GPU driver against 3 % elsewhere; SQLite. Run: `cargo bench --bench correlations`;
//! prints a table.

use std::time::Instant;

use faultline::app::App;
use faultline::config::Config;

const CRASHES: i64 = 100_000;
const GROUP: i64 = 10_000;
const GROUPS: i64 = 20;
const RUNS: usize = 5;

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.root = dir.path().join("store");
    config.storage.data_dir = dir.path().join("data");
    config.ingest.process_crashes = false;
    let state = App::open(config).await.unwrap();
    let pool = state.index.pool().clone();
    let now = faultline::clock::now();
    let filled = Instant::now();
    sqlx::query(&format!(
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {GROUPS}) \
         INSERT INTO crash_groups (id, project_id, signature, fault_class, first_seen, last_seen, \
         event_count, first_release, last_release) \
         SELECT n, 1, 'frame_' || n || ' | main', 'null-read', {start}, {now}, \
         CASE WHEN n = 1 THEN {GROUP} ELSE {others} END, '2.0', '2.0' FROM g",
        start = now - 86_400,
        others = (CRASHES - GROUP) / (GROUPS - 1),
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < {last}) \
         INSERT INTO crashes (id, project_id, received_at, product, release, platform, cpu, \
         user_id, annotations, fingerprint, signature, fault_class, group_id, state) \
         SELECT 'c' || n, 1, {now} - (n % 86400), 'Game', '2.0', \
         CASE WHEN n % 4 = 0 THEN 'Linux' ELSE 'Windows NT' END, 'amd64', 'u' || (n % 5000), \
         '{{}}', 'f', 's', 'null-read', \
         CASE WHEN n < {GROUP} THEN 1 ELSE 2 + n % {rest} END, 'processed' FROM c",
        last = CRASHES - 1,
        rest = GROUPS - 1,
    ))
    .execute(&pool)
    .await
    .unwrap();
    for (name, value) in [
        (
            "gpu_driver",
            format!("CASE WHEN (n < {GROUP} AND n % 100 < 72) OR (n >= {GROUP} AND n % 100 < 3) THEN '31.0.15.3623' ELSE '30.0.' || (n % 5) END"),
        ),
        ("gpu_vendor", "'vendor-' || (n % 3)".to_owned()),
        ("launcher", "'7.' || (n % 7)".to_owned()),
        ("locale", "'locale-' || (n % 11)".to_owned()),
    ] {
        sqlx::query(&format!(
            "WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < {last}) \
             INSERT INTO crash_annotations (crash_id, name, value) \
             SELECT 'c' || n, '{name}', {value} FROM c",
            last = CRASHES - 1,
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let filled = filled.elapsed().as_secs_f64();
    let mut computed = Vec::new();
    let mut report = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        report = state.correlations.compute(1).await.unwrap();
        computed.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let report = report.expect("group 1 exists");
    let mut stored = Vec::new();
    let mut evidence = Vec::new();
    for _ in 0..RUNS * 4 {
        let started = Instant::now();
        state.correlations.stored(1).await.unwrap().unwrap();
        stored.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        state.evidence.of_group(1).await.unwrap().unwrap();
        evidence.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let top = &report.deviations[0];
    println!(
        "Generated {CRASHES} crashes in {GROUPS} groups with 4 annotations each in {filled:.1} s."
    );
    println!(
        "Top deviation: {:?} ({:.0}% in the group vs {:.0}% overall); {} deviations.",
        top.items,
        top.group_share * 100.0,
        top.reference_share * 100.0,
        report.deviations.len()
    );
    println!();
    println!("| step | median of {RUNS}+ runs |");
    println!("| --- | --- |");
    println!("| correlations of a {GROUP}-crash group against {CRASHES} crashes, computed and stored | {:.0} ms |", median(computed));
    println!(
        "| the stored correlations read | {:.2} ms |",
        median(stored)
    );
    println!(
        "| the group's whole evidence assembled | {:.2} ms |",
        median(evidence)
    );
}
