//! What suspect commits and source context cost (issue 32's targets), on a repository the
//! benchmark generates once with `git fast-import` (kept in `target/bench-data/`): 100,000
//! commits over 5,000 files of 60 lines, one line changed per commit, dated 2020–2026. Release
//! 1.0 is `main~300`, release 1.1 is `main` (300 commits). A crash of 1.1 (an SDK event) has 25
//! in-app frames, each in a file release 1.1 changed, on a line one of its commits changed.
//! Against a real server on loopback (SQLite, the repository registered by path):
//! - fetch: the first fetch of the mirror (clone + commit graph), once;
//! - suspects cold: the first computation (nothing in memory);
//! - suspects again: computing again (file lists and texts in memory, blame still run);
//! - suspects stored: reading the stored report (what pages, alerts and the API do);
//! - source context: the crash's 25 frames, mirror warm.
//!
//! Run: `cargo bench --bench suspects`; prints a table (medians, HTTP included).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline::config::Config;
use faultline::server::BoundServer;
use serde_json::{json, Value};

const FILES: usize = 5_000;
const LINES: usize = 60;
const COMMITS: usize = 100_000;
const RANGE: usize = 300;
const FRAMES: usize = 25;

fn path_of(file: usize) -> String {
    format!("src/mod{:02}/file{file:04}.c", file / 100)
}

/// A small deterministic generator (xorshift), so every run builds the same history.
struct Rng(u64);
impl Rng {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

/// The repository (built on first use): a bare repository written by `git fast-import`.
fn repository() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/suspects-100k.git");
    if dir.join("refs/heads/main").is_file() || dir.join("packed-refs").is_file() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .arg("--git-dir")
            .arg(&dir)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "--bare", "--quiet"]);
    eprintln!("generating {COMMITS} commits over {FILES} files (once)…");
    let mut import = Command::new("git")
        .arg("--git-dir")
        .arg(&dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = std::io::BufWriter::new(import.stdin.take().unwrap());
    let mut files: Vec<Vec<String>> = (0..FILES)
        .map(|f| {
            (0..LINES)
                .map(|l| format!("int f{f}_{l}(int x) {{ return x + {l}; }}"))
                .collect()
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (start, end) = (1_577_836_800i64, 1_793_491_200i64);
    for c in 0..COMMITS {
        let when = start + (end - start) * c as i64 / COMMITS as i64;
        let changed: Vec<usize> = if c == 0 {
            (0..FILES).collect()
        } else {
            let f = rng.next(FILES);
            let l = rng.next(LINES);
            files[f][l] = format!("int f{f}_{l}(int x) {{ return x * {c}; }}");
            vec![f]
        };
        let message = format!("change {c}\n");
        let who = c % 50;
        write!(stream, "commit refs/heads/main\ncommitter Dev{who} <dev{who}@example.com> {when} +0000\ndata {}\n{message}", message.len()).unwrap();
        for f in changed {
            let data = files[f].join("\n") + "\n";
            write!(
                stream,
                "M 644 inline {}\ndata {}\n{data}",
                path_of(f),
                data.len()
            )
            .unwrap();
        }
        writeln!(stream).unwrap();
    }
    drop(stream);
    assert!(import.wait().unwrap().success());
    dir
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The frames: for 25 files the range changed, the line its newest commit in the range changed.
fn frames(dir: &Path) -> Vec<(String, u32)> {
    let log = git_out(
        dir,
        &[
            "log",
            "--format=%H",
            "--name-only",
            &format!("main~{RANGE}..main"),
        ],
    );
    let mut seen = Vec::new();
    let mut lines = log.lines().filter(|l| !l.is_empty());
    let mut frames = Vec::new();
    while let (Some(sha), Some(path)) = (lines.next(), lines.next()) {
        if seen.contains(&path.to_owned()) {
            continue;
        }
        seen.push(path.to_owned());
        let diff = git_out(dir, &["show", "--format=", "--unified=0", sha, "--", path]);
        let line = diff
            .lines()
            .find_map(|l| l.strip_prefix("@@ -").and_then(|r| r.split(" +").nth(1)))
            .and_then(|r| r.split([',', ' ']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        frames.push((path.to_owned(), line));
        if frames.len() == FRAMES {
            break;
        }
    }
    frames
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut request = client.request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    assert!(status.is_success(), "{url}: {status} {answer}");
    answer
}

#[tokio::main]
async fn main() {
    let repo = repository();
    let head = git_out(&repo, &["rev-parse", "main"]);
    let base = git_out(&repo, &["rev-parse", &format!("main~{RANGE}")]);
    let frames = frames(&repo);
    let dirs = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.root = dirs.path().join("store");
    config.storage.data_dir = dirs.path().join("data");
    // Nothing computes suspects behind the benchmark's back.
    config.code.suspects_interval_secs = 1_000_000;
    config.code.fetch_interval_secs = 0;
    let data_dir = config.storage.data_dir.clone();
    let server = BoundServer::bind(config).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(server.serve());
    let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", token.trim()).parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    use reqwest::Method as M;

    let repository = call(
        &client,
        M::POST,
        format!("{url}/api/v1/repositories"),
        Some(json!({"name": "bench/game", "url": repo})),
    )
    .await;
    let started = Instant::now();
    call(
        &client,
        M::POST,
        format!("{url}/api/v1/repositories/{}/fetch", repository["id"]),
        None,
    )
    .await;
    let fetch = started.elapsed();
    let releases = format!("{url}/api/0/organizations/o/releases/");
    call(&client, M::POST, releases.clone(), Some(json!({"version": "1.0", "projects": ["default"], "refs": [{"repository": "bench/game", "commit": base}]}))).await;
    call(&client, M::POST, releases.clone(), Some(json!({"version": "1.1", "projects": ["default"], "refs": [{"repository": "bench/game", "commit": format!("{base}..{head}")}]}))).await;

    let event_frames: Vec<Value> = frames
        .iter()
        .rev()
        .map(|(path, line)| json!({"function": format!("fn_{line}"), "abs_path": format!("C:\\build\\{}", path.replace('/', "\\")), "lineno": line, "in_app": true}))
        .collect();
    let event = json!({"platform": "native", "release": "1.1", "exception": {"values": [{"type": "SIGSEGV", "value": "bench", "stacktrace": {"frames": event_frames}}]}});
    let payload = serde_json::to_vec(&event).unwrap();
    let mut envelope = b"{}\n".to_vec();
    envelope.extend_from_slice(
        format!("{{\"type\":\"event\",\"length\":{}}}\n", payload.len()).as_bytes(),
    );
    envelope.extend_from_slice(&payload);
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/api/1/envelope/"))
        .header(
            "x-sentry-auth",
            "Sentry sentry_version=7, sentry_key=public",
        )
        .body(envelope)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let crash = answer["id"].as_str().unwrap().to_owned();
    let group = loop {
        let got = call(
            &client,
            M::GET,
            format!("{url}/api/v1/crashes/{crash}"),
            None,
        )
        .await;
        if got["state"] == "processed" {
            break got["crash"]["group_id"].as_i64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let compute = format!("{url}/api/v1/groups/{group}/suspects?compute=1");
    let started = Instant::now();
    let report = call(&client, M::GET, compute.clone(), None).await;
    let cold = started.elapsed();
    let suspects = report["report"]["suspects"].as_array().map_or(0, Vec::len);
    let located = report["report"]["frames"].as_array().map_or(0, Vec::len);
    let mut again = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        call(&client, M::GET, compute.clone(), None).await;
        again.push(started.elapsed());
    }
    let stored_url = format!("{url}/api/v1/groups/{group}/suspects");
    let mut stored = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        call(&client, M::GET, stored_url.clone(), None).await;
        stored.push(started.elapsed());
    }
    let context_url = format!("{url}/api/v1/crashes/{crash}/source-context");
    let context = call(&client, M::GET, context_url.clone(), None).await;
    let with_lines = context["context"]["frames"].as_array().map_or(0, Vec::len);
    let mut contexts = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        call(&client, M::GET, context_url.clone(), None).await;
        contexts.push(started.elapsed());
    }

    println!("repository: {COMMITS} commits, {FILES} files; release range {RANGE} commits; {located} of {FRAMES} frames located, {suspects} suspect(s), {with_lines} frames with source lines");
    println!("| what | time |");
    println!("| --- | --- |");
    println!(
        "| first fetch of the mirror (clone + commit graph) | {:.2} s |",
        fetch.as_secs_f64()
    );
    println!(
        "| suspects, cold (first computation) | {:.0} ms |",
        cold.as_secs_f64() * 1e3
    );
    println!(
        "| suspects, computed again (median of 5) | {:.0} ms |",
        median(again).as_secs_f64() * 1e3
    );
    println!(
        "| suspects, stored (median of 100) | {:.2} ms |",
        median(stored).as_secs_f64() * 1e3
    );
    println!(
        "| source context, 25 frames, mirror warm (median of 100) | {:.2} ms |",
        median(contexts).as_secs_f64() * 1e3
    );
}
