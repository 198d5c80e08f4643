//! Session updates accepted and made durable per second (issue 33's target: 20,000/s on one
//! node, 2 cores, SQLite and Postgres). A real server on loopback; 64 connections each sending
//! envelopes as SDKs do (`session` items: the inits of sessions, then their final `exited` or
//! `crashed`), one or ten items per envelope, every answer awaited (an answer means
//! committed), with 5,000 users (counted exactly) or a user per session (past the exact
//! limit: HyperLogLog sketches). The load generator runs in the same process, on the same 2 cores.
//! Postgres when `FAULTLINE_BENCH_POSTGRES_URL` names an empty database.
//!
//! Run: `cargo bench --bench sessions`; prints a table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::config::Config;
use faultline::server::BoundServer;

const CONNECTIONS: usize = 64;
const SECONDS: u64 = 10;

/// Today, 00:00 UTC, as a session's `started`: updates of sessions that started more than five
/// days ago are dropped, so the load's sessions start today.
fn today() -> &'static str {
    static TODAY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TODAY.get_or_init(|| format!("{}T00:00:00Z", time::OffsetDateTime::now_utc().date()))
}

/// One session item (as its envelope line pair).
fn item(sid: u64, init: bool, crashed: bool, users: u64) -> String {
    let status = if init {
        "ok"
    } else if crashed {
        "crashed"
    } else {
        "exited"
    };
    let payload = format!(
        r#"{{"sid":"s-{sid}","did":"u-{}","init":{init},"started":"{}","status":"{status}","attrs":{{"release":"game@2.1.{}","environment":"production"}}}}"#,
        sid % users,
        today(),
        sid % 3
    );
    format!(
        "{{\"type\":\"session\",\"length\":{}}}\n{payload}\n",
        payload.len()
    )
}

/// An envelope of `per` session items: the inits of `per` sessions, or their final updates.
fn envelope(first_sid: u64, per: u64, init: bool, users: u64) -> Vec<u8> {
    let mut body = "{}\n".to_owned();
    for sid in first_sid..first_sid + per {
        body.push_str(&item(sid, init, sid % 50 == 0, users));
    }
    body.into_bytes()
}

async fn run(index_url: Option<String>, per: u64, users: u64) -> (f64, u64) {
    let dirs = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.root = dirs.path().join("store");
    config.storage.data_dir = dirs.path().join("data");
    config.ingest.throttle = Default::default();
    if let Some(url) = index_url {
        config.index.url = url;
    }
    let server = BoundServer::bind(config).await.unwrap();
    let url = format!("http://{}/api/1/envelope/", server.local_addr());
    tokio::spawn(server.serve());
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS as u64 {
        let (url, sent, failed) = (url.clone(), Arc::clone(&sent), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let first = per * 1_000_000_000_000 + c * 10_000_000 + (n / 2) * per;
                let body = envelope(first, per, n % 2 == 0, users);
                let ok = client
                    .post(&url)
                    .header(
                        "x-sentry-auth",
                        "Sentry sentry_version=7, sentry_key=public",
                    )
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    sent.fetch_add(per, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        sent.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() {
    println!("| database | updates per envelope | users | session updates/s (acknowledged = committed) | failed requests |");
    println!("| --- | --- | --- | --- | --- |");
    let postgres = std::env::var("FAULTLINE_BENCH_POSTGRES_URL").ok();
    // 5,000 users are counted exactly; a user per session passes the exact limit within the
    // first second (counted by the sketches from then on).
    for (per, users) in [(1, 5_000), (10, 5_000), (10, u64::MAX)] {
        let label = if users == u64::MAX {
            "one per session".to_owned()
        } else {
            users.to_string()
        };
        let (rate, failed) = run(None, per, users).await;
        println!("| SQLite | {per} | {label} | {rate:.0} | {failed} |");
        if let Some(url) = &postgres {
            let (rate, failed) = run(Some(url.clone()), per, users).await;
            println!("| Postgres | {per} | {label} | {rate:.0} | {failed} |");
        }
    }
}
