//! The front door tried as an attacker would: bodies whose multipart boundary never comes and
//! decompression bombs (memory measured on the real binary), half-closed sockets, slow clients,
//! the connection and in-flight caps, the queue's gauges during a backlog, and thousands of
//! mutated minidumps and multipart bodies.

use crate::common;

use std::io::Write;
use std::time::Duration;

use common::{crash_form, generated_bytes, gzip, multipart, post, settled, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A field of `/proc/{pid}/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Gzip of `n` zero bytes, made in pieces.
fn gzip_zeros(n: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    for _ in 0..n / block.len() {
        gz.write_all(&block).unwrap();
    }
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_bodies_keep_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url, _) = common::serve_process(dir.path(), &[]).await;
    let pid = child.id().unwrap();
    let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let token = token.trim().to_owned();
    let client = reqwest::Client::new();
    // Warm up (first requests allocate pools), then measure the peak from here on.
    for _ in 0..3 {
        client.get(format!("{url}/health")).send().await.unwrap();
    }
    let baseline = status_kib(pid, "VmRSS:");
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");

    // 300 MB of zeros without a boundary, gzip-compressed to ~300 KB.
    let no_boundary = gzip_zeros(300 << 20);
    // A Sentry dump part that expands to 300 MB.
    let bomb_part = crash_form(&no_boundary);
    // Raw multipart bodies without a boundary for the routes that do not decode gzip.
    let raw_no_boundary = vec![b'a'; 48 << 20];
    let mut requests = Vec::new();
    for i in 0..8 {
        let (path, encoding, body) = match i % 4 {
            0 | 1 => ("/submit", Some("gzip"), no_boundary.clone()),
            2 => ("/api/7/minidump/", None, bomb_part.clone()),
            _ => ("/api/v1/symbols", None, raw_no_boundary.clone()),
        };
        let mut request = client
            .post(format!("{url}{path}"))
            .header("content-type", "multipart/form-data; boundary=B")
            .body(body);
        if path == "/api/v1/symbols" {
            request = request.bearer_auth(&token);
        }
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        requests.push(tokio::spawn(async move { (path, answer(request).await) }));
    }
    // Same for the synchronous route, with the raw body.
    let sync = client
        .post(format!("{url}/api/v1/minidump"))
        .header("content-type", "multipart/form-data; boundary=B")
        .bearer_auth(&token)
        .body(raw_no_boundary.clone());
    let mut answers = vec![("/api/v1/minidump", answer(sync).await)];
    for request in requests {
        answers.push(request.await.unwrap());
    }
    for (path, answer) in &answers {
        // The server refuses these bodies long before their end and closes the connection; a
        // client still sending may see the reset instead of the answer. What it does see must
        // be the refusal.
        let Some((status, body)) = answer else {
            continue;
        };
        match *path {
            "/submit" => {
                assert_eq!(*status, 400, "{path}: {body}");
                assert!(
                    body.is_empty()
                        || body.trim() == "Discarded=malformed_invalid_payload_structure",
                    "{body}"
                );
            }
            // The bomb part is a well-formed body: refused once it expands past the cap, or
            // stored and failed as not a minidump — never buffered.
            "/api/7/minidump/" => {
                assert!(*status == 400 || *status == 413, "{path}: {status} {body}")
            }
            _ => assert_eq!(*status, 400, "{path}: {body}"),
        }
    }
    assert!(
        answers.iter().filter(|(_, a)| a.is_some()).count() >= 3,
        "most refusals reach their client: {answers:?}"
    );
    let peak = status_kib(pid, "VmHWM:");
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!(
        "baseline {} MiB, peak {} MiB, growth {growth_mib} MiB",
        baseline / 1024,
        peak / 1024
    );
    assert!(
        growth_mib < 160,
        "nine hostile bodies (1.5 GB expanded) raised the peak RSS by {growth_mib} MiB"
    );
    // Still serving.
    let health = client.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// The status and body of a request's answer; `None` when the connection was reset first.
async fn answer(request: reqwest::RequestBuilder) -> Option<(u16, String)> {
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// Reads a whole response (until the server closes), with a deadline.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_closed_client_still_gets_its_answer() {
    let server = TestServer::start().await;
    let body = crash_form(&generated_bytes("null-write.dmp"));
    let mut request = format!(
        "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let mut request = request.clone();
        request[b"POST /submit ".len()..][..8].copy_from_slice(version.as_bytes());
        let mut stream = server.send_raw(&request).await;
        stream.shutdown().await.unwrap(); // shutdown(SHUT_WR): nothing more will be sent
        let response = read_to_close(&mut stream, Duration::from_secs(30)).await;
        assert!(
            response.starts_with(&format!("{version} 200")),
            "{version}: {response:?}"
        );
        let id = response
            .split("CrashID=bp-")
            .nth(1)
            .unwrap()
            .trim()
            .to_owned();
        assert_eq!(settled(&server, &id).await["state"], "processed");
    }
    let mut stream = server
        .send_raw(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    stream.shutdown().await.unwrap();
    let response = read_to_close(&mut stream, Duration::from_secs(10)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_timed_out() {
    let server = TestServer::start_with(|c| {
        c.server.header_timeout_secs = 1;
        c.server.body_timeout_secs = 1;
    })
    .await;
    // A head that never ends (slowloris): the connection is closed.
    let mut stream = server
        .send_raw(b"POST /submit HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await;
    let started = std::time::Instant::now();
    let response = read_to_close(&mut stream, Duration::from_secs(20)).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the server closed the connection"
    );
    assert!(!response.contains("200 OK"), "{response:?}");

    // A body that stops arriving: 408, on an ingest route and an API route.
    for (path, content_type) in [
        ("/submit", "multipart/form-data; boundary=B"),
        ("/api/v1/minidump", "application/octet-stream"),
    ] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n--B\r\n",
            server.admin_token
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let response = read_to_close(&mut stream, Duration::from_secs(20)).await;
        assert!(response.starts_with("HTTP/1.1 408"), "{path}: {response:?}");
    }
    // The server is fine.
    let (status, _) = server.get_json("/health").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_and_crash_bodies_past_their_caps_are_told_to_retry() {
    let server = TestServer::start_with(|c| {
        c.server.max_connections = 4;
        c.ingest.max_concurrent_bodies = 1;
    })
    .await;
    // Four idle connections hold every slot; the fifth is answered 503 and closed.
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = server
            .send_raw(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        idle.push(stream);
    }
    let mut fifth = TcpStream::connect(server.addr).await.unwrap();
    let response = read_to_close(&mut fifth, Duration::from_secs(10)).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response:?}");
    assert!(response.contains("Retry-After: 1"), "{response:?}");
    assert!(
        response.contains("too many open connections"),
        "{response:?}"
    );
    drop(idle);
    // Slots come back as connections close.
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(response) = server.anonymous.get(server.url("/health")).send().await {
            if response.status() == 200 {
                ok = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the server accepts connections again");

    // One crash body in flight (its sender stalls); a second crash is told to retry later.
    // (The stalled connection is retried while the connection cap still counts the idle ones
    // being closed.)
    let mut busy = None;
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 100000\r\n\r\n--B\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        {
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 503"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
            continue;
        }
        stalled.push(stream);
        let (status, body) = post(
            &server,
            "/submit",
            Some("multipart/form-data; boundary=B"),
            &[],
            crash_form(b"MDMP"),
        )
        .await;
        if status == 503 {
            busy = Some(body);
            break;
        }
    }
    let busy = busy.expect("a second crash body is refused while the first is in flight");
    assert!(busy.contains("retry later"), "{busy}");
    drop(stalled);
    let (status, _) = server.get_json("/health").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_gauges_are_true_during_a_backlog() {
    // A receive-only node: crashes are queued and nothing processes them.
    let server = TestServer::start_with(|c| c.ingest.process_crashes = false).await;
    let body = crash_form(&generated_bytes("null-write.dmp"));
    for _ in 0..5 {
        let (status, _) = post(
            &server,
            "/submit",
            Some("multipart/form-data; boundary=B"),
            &[],
            body.clone(),
        )
        .await;
        assert_eq!(status, 200);
    }
    let gauge = |metrics: &str, name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    let metrics = server.metrics().await;
    assert_eq!(
        gauge(&metrics, "faultline_ingest_queue{state=\"queued\"}"),
        5.0
    );
    assert_eq!(
        gauge(&metrics, "faultline_ingest_queue{state=\"processing\"}"),
        0.0
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let metrics = server.metrics().await;
    let age = gauge(&metrics, "faultline_ingest_queue_oldest_seconds");
    assert!(age >= 2.0, "the oldest queued crash has waited {age} s");
}

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A mutated copy of one of `seeds`: bits flipped, cut short, or spliced with another.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    match rng.below(4) {
        0 | 1 => {
            for _ in 0..1 + rng.below(32) {
                // Mostly the headers and directories, where parsers decide sizes and offsets.
                let span = if rng.below(2) == 0 {
                    data.len().min(4096)
                } else {
                    data.len()
                };
                let at = rng.below(span);
                data[at] ^= 1 << rng.below(8);
            }
        }
        2 => data.truncate(rng.below(data.len())),
        _ => {
            let other = &seeds[rng.below(seeds.len())];
            let cut = rng.below(data.len());
            let from = rng.below(other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
    }
    data
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_mutated_dumps_and_bodies_get_no_5xx() {
    let server = TestServer::start().await;
    let mut seeds: Vec<Vec<u8>> = [
        "null-write.dmp",
        "stack-overflow.dmp",
        "heap-corruption.dmp",
    ]
    .iter()
    .map(|n| generated_bytes(n))
    .collect();
    for name in [
        "rust-minidump/simple-crashpad.dmp",
        "rust-minidump/linux-mini.dmp",
        "symbolic/crash_macos.dmp",
    ] {
        seeds.push(common::fixture_bytes(&format!("minidumps/{name}")));
    }
    let mut rng = Rng(0x5eed_f00d_dead_beef);
    let ct = "multipart/form-data; boundary=B";
    let mut jobs = Vec::new();
    for i in 0..2000 {
        let dump = mutate(&mut rng, &seeds);
        let (path, content_type, body) = match i % 4 {
            // Synchronous processing of the mutated dump.
            0 | 1 => ("/api/v1/minidump", None, dump),
            // A well-formed crash upload carrying it (processed by the workers).
            2 => ("/submit", Some(ct), crash_form(&dump)),
            // A mutated multipart body (framing, headers and all), sometimes gzip'ed.
            _ => {
                let body = multipart(
                    "B",
                    &[
                        ("prod", None, b"Game"),
                        (
                            "upload_file_minidump",
                            Some("a.dmp"),
                            &dump[..dump.len().min(20_000)],
                        ),
                    ],
                );
                let mutated = mutate(&mut rng, &[body]);
                if rng.below(3) == 0 {
                    ("/submit", Some(ct), gzip(&mutated))
                } else {
                    ("/submit", Some(ct), mutated)
                }
            }
        };
        let client = server.client.clone();
        let url = server.url(path);
        let gzipped = body.starts_with(&[0x1f, 0x8b]);
        jobs.push(async move {
            let mut request = client.post(url).body(body);
            if let Some(ct) = content_type {
                request = request.header("content-type", ct);
            }
            if gzipped {
                request = request.header("content-encoding", "gzip");
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (i, path, status, text)
        });
    }
    use futures::StreamExt;
    let results: Vec<_> = futures::stream::iter(jobs)
        .buffer_unordered(8)
        .collect()
        .await;
    let mut accepted = Vec::new();
    for (i, path, status, text) in &results {
        assert!(*status < 500, "request {i} to {path}: {status} {text}");
        if *path == "/submit" && *status == 200 {
            accepted.push(text.trim().trim_start_matches("CrashID=bp-").to_owned());
        }
    }
    let refused = results.iter().filter(|r| r.2 >= 400).count();
    eprintln!(
        "{} requests: {refused} refused (4xx), {} crashes queued",
        results.len(),
        accepted.len()
    );
    assert!(
        refused > 100 && accepted.len() > 100,
        "the mutations exercised both outcomes"
    );
    // The workers survive them all: every queued crash ends processed or failed with a reason.
    for id in &accepted {
        let crash = settled(&server, id).await;
        if crash["state"] == "failed" {
            assert!(
                crash["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{crash}"
            );
        }
    }
    let (status, _) = server.get_json("/health").await;
    assert_eq!(status, 200);
}

/// A request refused before its body was read leaves the rest of the body on the connection,
/// which the server then closes: the response must say so, or a client that pools connections
/// sends its next request down the closing socket and gets a broken pipe instead of an answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_body_closes_its_connection_and_the_response_says_so() {
    let server = TestServer::start().await;
    let body = vec![b'x'; 64 << 10];
    let refused = [
        // No token.
        format!(
            "POST /api/v1/symbols HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        // A token, but no multipart content type.
        format!(
            "POST /api/0/organizations/acme/chunk-upload/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
            server.admin_token,
            body.len()
        ),
    ];
    for head in refused {
        let mut stream = server.send_raw(head.as_bytes()).await;
        let _ = stream.write_all(&body).await;
        let response = read_to_close(&mut stream, Duration::from_secs(30)).await;
        let head_of_response = response.split("\r\n\r\n").next().unwrap().to_lowercase();
        assert!(head_of_response.starts_with("http/1.1 4"), "{response:?}");
        assert!(
            head_of_response.contains("\r\nconnection: close"),
            "{head}: {response:?}"
        );
    }

    // A request whose body was read (or that had none) keeps its connection: two requests on
    // one socket, two answers.
    let mut stream = server
        .send_raw(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
    let response = read_to_close(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(response.matches("HTTP/1.1 200").count(), 2, "{response:?}");

    // A pooling client alternating refused and accepted requests gets every answer.
    for _ in 0..30 {
        let refused = server
            .client
            .post(server.url("/api/0/organizations/acme/chunk-upload/"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let (status, _) = server.get_json("/health").await;
        assert_eq!(status, 200);
    }
}
