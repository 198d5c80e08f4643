//! A small HTTP load generator for the server-throughput benchmark (`benches/compare.py`): posts
//! the given minidumps round-robin to one URL over `--connections` keep-alive connections for
//! `--seconds`, from one thread so it takes as little of the machine's CPU as it can, and prints
//! one JSON line: requests, seconds, requests per second, and the generator's own CPU per request.
//!
//! With `--form`, each dump is sent as a crash reporter sends it (Breakpad multipart, field
//! `upload_file_minidump`, for `/submit`); with `--rate R`, requests start on a fixed schedule of
//! R per second (an open loop, as crash reporters are) instead of as fast as answers come back.
//! With `--sessions`, each request is instead a Sentry envelope of 10 session updates (each
//! connection's sessions begun in one envelope, ended in the next: one crashed, nine exited),
//! sent with the DSN key `public`, as an SDK sends them (release health's load).
//! With `--latency N`, each connection sends N requests one after another (after `--warmup W`
//! unmeasured ones) and the line also carries the p50 and p99 of their times, from the first
//! byte sent to the last received: the server's latency without a slow client's own.
//!
//! Usage: cargo bench --bench load -- --url http://127.0.0.1:PORT/api/v1/minidump \
//!            [--seconds 10] [--connections 2] [--token TOKEN] [--form] [--rate R] DUMP...
//!        cargo bench --bench load -- --url …/api/v1/symbolicate --connections 1 --latency 2000 \
//!            --warmup 200 --token TOKEN REQUEST.json
//!        cargo bench --bench load -- --url http://127.0.0.1:PORT/api/1/envelope/ --sessions …

use std::time::{Duration, Instant};

struct Args {
    url: String,
    seconds: f64,
    connections: usize,
    token: Option<String>,
    form: bool,
    sessions: bool,
    rate: Option<f64>,
    latency: Option<usize>,
    warmup: usize,
    files: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        seconds: 10.0,
        connections: 2,
        token: None,
        form: false,
        sessions: false,
        rate: None,
        latency: None,
        warmup: 0,
        files: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--url" => args.url = value("--url")?,
            "--token" => args.token = Some(value("--token")?),
            "--form" => args.form = true,
            "--sessions" => args.sessions = true,
            "--rate" => {
                args.rate = Some(
                    value("--rate")?
                        .parse()
                        .map_err(|e| format!("--rate: {e}"))?,
                )
            }
            "--latency" => {
                args.latency = Some(
                    value("--latency")?
                        .parse()
                        .map_err(|e| format!("--latency: {e}"))?,
                )
            }
            "--warmup" => {
                args.warmup = value("--warmup")?
                    .parse()
                    .map_err(|e| format!("--warmup: {e}"))?
            }
            "--seconds" => {
                args.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--connections" => {
                args.connections = value("--connections")?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            file => args.files.push(file.to_owned()),
        }
    }
    if args.url.is_empty() || (args.files.is_empty() && !args.sessions) {
        return Err("usage: load --url URL [--seconds S] [--connections N] FILE...".into());
    }
    Ok(args)
}

/// User + system CPU seconds this process has used.
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in clock ticks (100 per second on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

/// The multipart boundary of `--form` bodies.
const BOUNDARY: &str = "faultline-load-boundary";

/// `dump` as a Breakpad crash upload.
fn form(dump: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"ProductName\"\r\n\r\nLoadTest\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; filename=\"crash.dmp\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(dump);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Envelope `n` of connection `worker`: 10 sessions begun (`n` even) or ended (`n` odd: the
/// first crashed, the rest exited), each with its own `sid`, users spread over 5,000.
/// Today, 00:00 UTC, as a session's `started`: updates of sessions that started more than five
/// days ago are dropped, so the load's sessions start today.
fn today() -> &'static str {
    static TODAY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TODAY.get_or_init(|| format!("{}T00:00:00Z", time::OffsetDateTime::now_utc().date()))
}

fn session_envelope(worker: usize, n: usize) -> bytes::Bytes {
    let init = n % 2 == 0;
    let mut body = String::from("{}\n");
    for k in 0..10 {
        let status = match (init, k) {
            (true, _) => "ok",
            (false, 0) => "crashed",
            (false, _) => "exited",
        };
        let item = format!(
            r#"{{"sid":"w{worker}-{}-{k}","did":"u{}","init":{init},"started":"{}","status":"{status}","attrs":{{"release":"bench@1.0","environment":"production"}}}}"#,
            n / 2,
            (n * 10 + k) % 5000,
            today()
        );
        body.push_str(&format!(
            "{{\"type\":\"session\",\"length\":{}}}\n{item}\n",
            item.len()
        ));
    }
    body.into()
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    let bodies: Vec<bytes::Bytes> = args
        .files
        .iter()
        .map(|f| match std::fs::read(f) {
            Ok(data) if args.form => form(&data).into(),
            Ok(data) => data.into(),
            Err(e) => {
                eprintln!("load: cannot read {f}: {e}");
                std::process::exit(2);
            }
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut headers = reqwest::header::HeaderMap::new();
    if args.form {
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}")
                .parse()
                .expect("a valid content type"),
        );
    }
    if args.sessions {
        headers.insert(
            "x-sentry-auth",
            "Sentry sentry_version=7, sentry_key=public"
                .parse()
                .expect("a valid header"),
        );
    }
    if let Some(token) = &args.token {
        let value = format!("Bearer {token}").parse().unwrap_or_else(|e| {
            eprintln!("load: --token: {e}");
            std::process::exit(2);
        });
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(args.connections)
        .build()
        .expect("an HTTP client");
    let cpu_before = own_cpu_seconds();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let scheduled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counts = runtime.block_on(async {
        let tasks = (0..args.connections).map(|worker| {
            let (client, bodies, url) = (client.clone(), bodies.clone(), args.url.clone());
            let (scheduled, rate) = (scheduled.clone(), args.rate);
            let (sessions, latency, warmup) = (args.sessions, args.latency, args.warmup);
            async move {
                let mut done = 0usize;
                let mut next = worker;
                let mut times = Vec::new();
                loop {
                    match latency {
                        Some(count) if times.len() >= count => break,
                        None if Instant::now() >= deadline => break,
                        _ => {}
                    }
                    if let Some(rate) = rate {
                        // The next slot of the schedule, whichever connection is free.
                        let slot = scheduled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let at = started + Duration::from_secs_f64(slot as f64 / rate);
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                    }
                    let body = if sessions {
                        session_envelope(worker, next - worker)
                    } else {
                        bodies[next % bodies.len()].clone()
                    };
                    next += 1;
                    let sent = Instant::now();
                    let response = client.post(&url).body(body).send().await;
                    let response = match response {
                        Ok(r) => r,
                        Err(e) => return Err(format!("request failed: {e}")),
                    };
                    let status = response.status();
                    let body = response.bytes().await.map_err(|e| e.to_string())?;
                    if !status.is_success() {
                        return Err(format!(
                            "HTTP {status}: {}",
                            String::from_utf8_lossy(&body[..body.len().min(300)])
                        ));
                    }
                    if latency.is_some() && next - worker > warmup {
                        times.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    done += 1;
                }
                Ok((done, times))
            }
        });
        futures::future::join_all(tasks).await
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut total = 0;
    let mut times = Vec::new();
    for count in counts {
        match count {
            Ok((n, mut t)) => {
                total += n;
                times.append(&mut t);
            }
            Err(e) => {
                eprintln!("load: {e}");
                std::process::exit(1);
            }
        }
    }
    let cpu = own_cpu_seconds() - cpu_before;
    times.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        times
            .get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{{\"requests\": {total}, \"seconds\": {elapsed:.3}, \"rate\": {:.1}, \"client_cpu_ms_per_request\": {:.3}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}}}",
        total as f64 / elapsed,
        cpu * 1000.0 / total.max(1) as f64,
        percentile(0.5),
        percentile(0.99)
    );
}
