//! Server time of the releases page (`/ui/releases`) with a year of hourly session counts for
//! 200 releases (issue 33's target: under 50 ms): 1,752,000 rows of `session_hours`, 20 users
//! per release and day in `session_users` (1,460,000 rows), SQLite, through the whole router
//! without a network. Run: `cargo bench --bench releases_page`; prints a table.

use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Request};
use faultline::app::App;
use faultline::auth::{NewToken, Scope};
use faultline::config::Config;
use faultline::server::router;
use tower::ServiceExt;

const RELEASES: i64 = 200;
const HOURS: i64 = 24 * 365;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
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
    let cookie = state.registry.start_session(&token).await.unwrap().secret;
    let pool = state.index.sessions_pool().clone();
    let now = faultline::clock::now();
    let start = now - now.rem_euclid(3600) - HOURS * 3600;
    let filled = Instant::now();
    // Hourly counts: every release has sessions every hour of the year.
    sqlx::query(&format!(
        "WITH RECURSIVE r(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM r WHERE n < {}), \
         h(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM h WHERE n < {}) \
         INSERT INTO session_hours (project_id, release, environment, hour, sessions, exited, \
         errored, abnormal, crashed, reported_users) \
         SELECT 1, '1.' || r.n || '.0', 'production', {start} + h.n * 3600, 100 + r.n, 95, 2, 1, \
         1 + (h.n % 3), 0 FROM r, h",
        RELEASES - 1,
        HOURS - 1
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "WITH RECURSIVE r(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM r WHERE n < {}), \
         d(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM d WHERE n < 364), \
         u(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM u WHERE n < 19) \
         INSERT INTO session_users (project_id, release, environment, day, did, crashed) \
         SELECT 1, '1.' || r.n || '.0', 'production', {} + d.n * 86400, 'user-' || u.n, \
         (u.n = 0) FROM r, d, u",
        RELEASES - 1,
        start - start.rem_euclid(86_400)
    ))
    .execute(&pool)
    .await
    .unwrap();
    // The totals the writer keeps beside the hours.
    sqlx::query(
        "INSERT INTO session_releases (project_id, release, sessions, crashed, errored, abnormal, \
         ended, reported_users, users, crashed_users) SELECT h.project_id, h.release, \
         SUM(sessions), SUM(crashed), SUM(errored), SUM(abnormal), \
         SUM(exited + errored + abnormal + crashed), 0, 20, 1 FROM session_hours h \
         GROUP BY h.project_id, h.release",
    )
    .execute(&pool)
    .await
    .unwrap();
    let fill = filled.elapsed();
    let app = router(state);
    let mut samples = Vec::new();
    for _ in 0..11 {
        let started = Instant::now();
        let response = app
            .clone()
            .oneshot(
                Request::get("/ui/releases?project=default")
                    .header(header::COOKIE, format!("faultline_session={cookie}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("1.199.0"));
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "filled {} hourly rows and {} user rows in {:.1} s",
        RELEASES * HOURS,
        RELEASES * 365 * 20,
        fill.as_secs_f64()
    );
    println!("| page | median of 11 |");
    println!("| --- | --- |");
    println!(
        "| /ui/releases, 200 releases, a year of hours | {:.1} ms |",
        samples[5].as_secs_f64() * 1e3
    );
}
