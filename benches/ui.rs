//! Server time of the web UI's pages with 100,000 crashes in the index (SQLite, the embedded
//! default): the groups page (two sorts, and a signature search), the biggest group's page and
//! a real processed crash's page, each request through the whole router (session lookup,
//! queries, template) but without a network. Run: `cargo bench --bench ui`.
//!
//! The index is filled through `CrashIndex::record` (the path processed crashes take): 2,000
//! groups with Zipf-like sizes (the biggest holds about 12,000 crashes) over two weeks, each
//! crash with six annotations.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Request};
use criterion::{criterion_group, criterion_main, Criterion};
use faultline::app::App;
use faultline::auth::{NewToken, Scope};
use faultline::classify::FaultClass;
use faultline::config::Config;
use faultline::group::index::{CrashAttributes, NewCrash};
use faultline::server::router;
use futures::StreamExt;
use tower::ServiceExt;

const CRASHES: usize = 100_000;
const GROUPS: usize = 2_000;

/// The group of crash `i`: group `g` gets a share proportional to 1/(g+1).
fn group_of(i: usize, cumulative: &[f64]) -> usize {
    let x = (i as f64 * 0.618_033_988_7).fract() * cumulative[GROUPS - 1];
    cumulative.partition_point(|c| *c < x).min(GROUPS - 1)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (app, cookie, crash_id, big_group) = rt.block_on(async {
        let mut config = Config::default();
        config.storage.root = dir.path().join("store");
        config.storage.data_dir = dir.path().join("data");
        config.ingest.process_crashes = false;
        let state = App::open(config).await.unwrap();
        let (_, token) = state
            .registry
            .create_token(&NewToken {
                name: "bench".into(),
                scopes: Scope::ALL.to_vec(),
                projects: Vec::new(),
                expires_in_days: None,
            })
            .await
            .unwrap();
        let session = state.registry.start_session(&token).await.unwrap();

        let started = Instant::now();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut cumulative = Vec::with_capacity(GROUPS);
        let mut total = 0.0;
        for g in 0..GROUPS {
            total += 1.0 / (g as f64 + 1.0);
            cumulative.push(total);
        }
        let index = state.index.clone();
        futures::stream::iter(0..CRASHES)
            .map(|i| {
                let index = index.clone();
                let g = group_of(i, &cumulative);
                async move {
                    let release = format!("1.{}.{}", i % 7, i % 3);
                    let platform = ["Windows NT", "Linux", "Mac OS X"][i % 3].to_owned();
                    let annotations: BTreeMap<String, String> = [
                        ("ProductName", "Game".to_owned()),
                        ("Version", release.clone()),
                        ("Channel", ["release", "beta"][i % 2].to_owned()),
                        ("GPU", format!("gpu-{}", i % 11)),
                        ("Locale", ["en-US", "de-DE", "ja-JP"][i % 3].to_owned()),
                        ("UserID", format!("user-{}", i % 5_000)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                    let id = uuid::Uuid::new_v4().to_string();
                    let crash = NewCrash {
                        payload_key: format!("crashes/bench/{id}/processed.json"),
                        top_frames: Vec::new(),
                        replaces_earlier: false,
                        facts: Default::default(),
                        attributes: CrashAttributes {
                            project_id: 1,
                            received_at: now - (i as i64 * 14 * 86_400 / CRASHES as i64),
                            product: Some("Game".into()),
                            release: Some(release),
                            platform: Some(platform),
                            cpu: Some(["amd64", "arm64"][i % 2].into()),
                            user_id: Some(format!("user-{}", i % 5_000)),
                            annotations,
                            fingerprint: format!("{g:032x}"),
                            signature: format!(
                                "game::subsystem{}::function_{g} | game::caller",
                                g % 37
                            ),
                            fault_class: [
                                FaultClass::NullRead,
                                FaultClass::WildWrite,
                                FaultClass::Abort,
                                FaultClass::StackOverflow,
                            ][g % 4]
                                .into(),
                            kind: Default::default(),
                            id,
                        },
                    };
                    index.record(&crash).await.unwrap();
                }
            })
            .buffer_unordered(256)
            .collect::<Vec<()>>()
            .await;
        eprintln!(
            "filled the index with {CRASHES} crashes in {GROUPS} groups in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        // One real crash, processed and recorded through the API, for the crash page.
        let app = router(state.clone());
        let response = app
            .clone()
            .oneshot(
                Request::post("/api/v1/minidump")
                    .header(
                        header::COOKIE,
                        format!("faultline_session={}", session.secret),
                    )
                    .header(
                        header::AUTHORIZATION,
                        format!(
                            "Bearer {}",
                            state
                                .registry
                                .create_token(&NewToken {
                                    name: "ingest".into(),
                                    scopes: vec![Scope::Ingest],
                                    projects: Vec::new(),
                                    expires_in_days: None,
                                })
                                .await
                                .unwrap()
                                .0
                        ),
                    )
                    .body(Body::from(
                        std::fs::read(concat!(
                            env!("CARGO_MANIFEST_DIR"),
                            "/fixtures/minidumps/wild-read.dmp"
                        ))
                        .unwrap(),
                    ))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap();
        let processed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let crash_id = processed["crash_id"]
            .as_str()
            .expect("the crash ID")
            .to_owned();
        // The first group recorded is the biggest (group 0 of the Zipf shares).
        let big = state
            .index
            .groups(&faultline::group::index::GroupQuery {
                limit: 1,
                ..faultline::group::index::GroupQuery::new(
                    1,
                    faultline::group::index::GroupSort::Events,
                )
            })
            .await
            .unwrap()
            .items[0]
            .clone();
        eprintln!("biggest group: {} crashes", big.event_count);
        (app, session.secret, crash_id, big.id)
    });

    let mut group = c.benchmark_group("ui");
    group.sample_size(30);
    for (label, path) in [
        ("groups/last-seen", "/ui/".to_owned()),
        ("groups/events", "/ui/?sort=events".to_owned()),
        ("groups/search", "/ui/?q=subsystem7".to_owned()),
        ("group/biggest", format!("/ui/groups/{big_group}")),
        ("crash/wild-read", format!("/ui/crashes/{crash_id}")),
    ] {
        // Every page must render, or the figures mean nothing.
        let status = rt.block_on(get(&app, &path, &cookie));
        assert_eq!(status, 200, "{path}");
        group.bench_function(label, |b| {
            b.iter(|| rt.block_on(get(&app, &path, &cookie)));
        });
    }
    group.finish();
}

async fn get(app: &axum::Router, path: &str, cookie: &str) -> u16 {
    let response = app
        .clone()
        .oneshot(
            Request::get(path)
                .header(header::COOKIE, format!("faultline_session={cookie}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    status
}

criterion_group!(benches, bench);
criterion_main!(benches);
