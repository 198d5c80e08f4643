//! Shared test harness: a real faultline server on a random loopback port with its own temp
//! folders, and paths into `../shared/fixtures`.

#![allow(dead_code)]

pub mod alerting;
pub mod receiver;
pub mod repository;
pub mod s3;
pub mod smtp;
pub mod symbol_source;
pub mod ui;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use faultline::config::Config;
use faultline::server::BoundServer;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A path under `../shared/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel);
    assert!(path.exists(), "missing fixture {}", path.display());
    path
}

/// A dump the project generates (`fixtures/minidumps/`).
pub fn generated(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/minidumps")
        .join(name)
}

/// The bytes of a generated dump.
pub fn generated_bytes(name: &str) -> Vec<u8> {
    std::fs::read(generated(name)).unwrap()
}

/// The bytes of a fixture.
pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap()
}

/// Which database a suite runs on (every index, queue and grouping suite runs on both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// The embedded default: a file in the test's temp folder.
    Sqlite,
    /// A fresh database on the Postgres cluster `tests/run.sh` starts
    /// (`FAULTLINE_TEST_POSTGRES_URL`).
    Postgres,
}

/// Runs a test once on SQLite and once on Postgres: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($(#[doc = $doc:expr])* async fn $name:ident($db:ident: Db) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                run($crate::common::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                run($crate::common::Db::Postgres).await
            }
            async fn run($db: $crate::common::Db) $body
        }
    };
}

/// Whether `tests/run.sh` (and so CI) runs the suite: then a missing service fails the test.
pub fn services_required() -> bool {
    std::env::var("FAULTLINE_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// A fresh, empty database of kind `db`: a SQLite file in `dir`, or a new database on the test
/// Postgres cluster. `None` (after saying so) when no Postgres is configured and the suite is
/// not run by `tests/run.sh`.
pub async fn database_url(db: Db, dir: &std::path::Path) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!(
            "sqlite://{}?mode=rwc",
            dir.join(format!("index-{}.sqlite", uuid::Uuid::new_v4().simple()))
                .display()
        )),
        Db::Postgres => {
            let Ok(admin) = std::env::var("FAULTLINE_TEST_POSTGRES_URL") else {
                assert!(
                    !services_required(),
                    "FAULTLINE_TEST_POSTGRES_URL is not set: tests/run.sh starts a Postgres cluster"
                );
                eprintln!("skipped on Postgres: FAULTLINE_TEST_POSTGRES_URL is not set (bash tests/run.sh starts a cluster)");
                return None;
            };
            Some(create_database(&admin).await)
        }
    }
}

/// A new database on the cluster at `admin_url`; its URL.
pub async fn create_database(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the test Postgres cluster");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    format!("{base}/{name}")
}

/// Every group of the default project, sorted and paged as given.
pub fn group_query(
    sort: faultline::group::index::GroupSort,
    limit: i64,
    cursor: Option<String>,
) -> faultline::group::index::GroupQuery {
    faultline::group::index::GroupQuery {
        limit,
        cursor,
        ..faultline::group::index::GroupQuery::new(1, sort)
    }
}

/// A running server and the folders it owns (deleted when dropped).
pub struct TestServer {
    pub addr: SocketAddr,
    pub store_root: PathBuf,
    pub data_dir: PathBuf,
    /// Sends the first-start admin token (every scope) with each request.
    pub client: reqwest::Client,
    /// The first-start admin token.
    pub admin_token: String,
    /// A client that sends no token.
    pub anonymous: reqwest::Client,
    /// The configuration it runs with (for opening its stores beside it).
    pub config: Config,
    _dirs: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with default settings.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusts its configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_on(Db::Sqlite, tweak)
            .await
            .expect("SQLite is always there")
    }

    /// Starts a server whose crash index is on `db` (`None`: Postgres is not configured and
    /// the suite may skip it; see [`database_url`]).
    pub async fn start_on(db: Db, tweak: impl FnOnce(&mut Config)) -> Option<TestServer> {
        let dirs = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.storage.root = dirs.path().join("store");
        config.storage.data_dir = dirs.path().join("data");
        if db == Db::Postgres {
            config.index.url = database_url(db, dirs.path()).await?;
        }
        tweak(&mut config);
        let store_root = config.storage.root.clone();
        let data_dir = config.storage.data_dir.clone();
        let server = BoundServer::bind(config.clone()).await.unwrap();
        let addr = server.local_addr();
        tokio::spawn(server.serve());
        let admin_token = std::fs::read_to_string(data_dir.join("admin-token"))
            .expect("the first start writes an admin token")
            .trim()
            .to_owned();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {admin_token}").parse().unwrap(),
        );
        Some(TestServer {
            addr,
            store_root,
            data_dir,
            client: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
            admin_token,
            anonymous: reqwest::Client::new(),
            config,
            _dirs: dirs,
        })
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET `path`, returning status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// DELETE `path` with the admin token, returning the status.
    pub async fn delete(&self, path: &str) -> u16 {
        let response = self.client.delete(self.url(path)).send().await.unwrap();
        response.status().as_u16()
    }

    /// POSTs JSON to an admin route with the admin token; returns the status and the answer.
    pub async fn admin_post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Creates a token through the admin API; returns the secret and its ID.
    pub async fn create_token(&self, body: serde_json::Value) -> (String, String) {
        let (status, answer) = self.admin_post("/api/v1/tokens", body).await;
        assert_eq!(status, 201, "{answer}");
        (
            answer["token"].as_str().unwrap().to_owned(),
            answer["info"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a project through the admin API; returns its listing.
    pub async fn create_project(&self, name: &str) -> serde_json::Value {
        let (status, answer) = self
            .admin_post("/api/v1/projects", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(status, 201, "{answer}");
        answer
    }

    /// A new connection that has sent `bytes`.
    pub async fn send_raw(&self, bytes: &[u8]) -> tokio::net::TcpStream {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        stream
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// POSTs `body` as one raw upload named `name`, returning status and JSON body.
    pub async fn upload(&self, name: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url("/api/v1/symbols"))
            .query(&[("name", name)])
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Uploads a fixture under its base name.
    pub async fn upload_fixture(&self, rel: &str) -> (u16, serde_json::Value) {
        let name = rel.rsplit('/').next().unwrap();
        self.upload(name, fixture_bytes(rel)).await
    }

    /// Every file under the store root (relative paths), for checking what was written.
    pub fn stored_files(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    out.push(path.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.store_root, &self.store_root, &mut out);
        out.retain(|p| !p.starts_with(".tmp"));
        out.sort();
        out
    }
}

/// The `MODULE` and `INFO CODE_ID` lines of a Breakpad .sym: (os, arch, debug id, name,
/// code id, code file).
pub fn sym_identity(rel: &str) -> (String, String, String, String, Option<(String, String)>) {
    let text = String::from_utf8_lossy(&fixture_bytes(rel)).into_owned();
    let module: Vec<&str> = text.lines().next().unwrap().splitn(5, ' ').collect();
    assert_eq!(module[0], "MODULE");
    let code = text.lines().find_map(|l| {
        let rest = l.strip_prefix("INFO CODE_ID ")?;
        let mut parts = rest.splitn(2, ' ');
        Some((
            parts.next()?.to_owned(),
            parts.next().unwrap_or("").to_owned(),
        ))
    });
    (
        module[1].to_owned(),
        module[2].to_owned(),
        module[3].to_owned(),
        module[4].to_owned(),
        code,
    )
}

/// Every file under `path` (or `path` itself).
pub fn files_under(path: &std::path::Path) -> Vec<PathBuf> {
    if !path.is_dir() {
        return vec![path.to_owned()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        out.extend(files_under(&entry.unwrap().path()));
    }
    out.sort();
    out
}

/// A symbol store in a fresh temp folder holding every debug file under `paths` (bundle
/// metadata and the dSYM fixture's deliberately invalid file are let through unstored).
pub async fn symbol_store(
    paths: &[PathBuf],
) -> (
    std::sync::Arc<faultline::symbols::SymbolStore>,
    tempfile::TempDir,
) {
    use faultline::store::FsStore;
    use faultline::symbols::unpack::UnpackLimits;
    use faultline::symbols::SymbolStore;
    let dir = tempfile::tempdir().unwrap();
    let limits = UnpackLimits {
        max_entries: 1000,
        max_unpacked_bytes: 1 << 30,
    };
    let objects = std::sync::Arc::new(FsStore::open(dir.path().join("store")).unwrap());
    let store = SymbolStore::new(objects, dir.path().join("tmp"), limits).unwrap();
    for path in paths.iter().flat_map(|p| files_under(p)) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let unpacked = tempfile::tempdir_in(dir.path()).unwrap();
        let reports = store
            .ingest(
                &path,
                &name,
                unpacked.path(),
                &faultline::sourcemaps::ReleaseContext::default(),
            )
            .await;
        let expected_junk = name.ends_with(".plist") || name == "invalid";
        assert!(
            reports.iter().all(|r| r.file.is_some() || expected_junk),
            "{reports:?}"
        );
    }
    (std::sync::Arc::new(store), dir)
}

/// Sends raw bytes over a TCP connection and returns (status, body) of the response.
pub async fn replay(server: &TestServer, request: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("response in time")
            .unwrap();
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        // Stop once headers and a Content-Length body are complete (keep-alive connections).
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            });
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A `multipart/form-data` body: (field name, file name, bytes) per part.
pub fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, data) in parts {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
        )
        .unwrap();
        if let Some(file) = file {
            write!(
                body,
                "; filename=\"{file}\"\r\nContent-Type: application/octet-stream"
            )
            .unwrap();
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    body
}

/// A Breakpad-style crash upload (`multipart/form-data; boundary=B`) carrying `dump`.
pub fn crash_form(dump: &[u8]) -> Vec<u8> {
    multipart("B", &[("upload_file_minidump", Some("a.dmp"), dump)])
}

/// Gzip-compresses `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Polls `GET /api/v1/crashes/{id}` until the crash leaves the queue.
pub async fn settled(server: &TestServer, id: &str) -> serde_json::Value {
    for _ in 0..300 {
        let (status, body) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        assert_eq!(status, 200, "{body}");
        if body["state"] == "processed" || body["state"] == "failed" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("crash {id} was not processed in time");
}

/// POSTs `body` without a token (as crash reporters do); returns status and body text.
pub async fn post(
    server: &TestServer,
    path: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = server.anonymous.post(server.url(path)).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// What a server process has logged so far (collected as it goes, so it never blocks on a
/// full pipe).
pub type ServerLog = std::sync::Arc<std::sync::Mutex<String>>;

/// `faultline serve` (the real binary) on a free port with its folders under `dir` and extra
/// environment; returns the process, its URL and its log.
pub async fn serve_process(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, ServerLog) {
    use tokio::io::AsyncBufReadExt;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_faultline"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(dir.join("store"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("FAULTLINE_LOG", "faultline=info")
        .env_remove("FAULTLINE_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the server starts in time")
            .unwrap()
            .expect("the server prints its address");
        log.push_str(&line);
        log.push('\n');
        if let Some(addr) = line.split("addr=").nth(1) {
            break format!("http://{}", addr.split_whitespace().next().unwrap());
        }
    };
    let log: ServerLog = std::sync::Arc::new(std::sync::Mutex::new(log));
    let collected = std::sync::Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = collected.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    (child, url, log)
}

/// Submits the generated dump `dump` with annotations through `/submit`; waits until it is
/// processed; its ID.
pub async fn submit(server: &TestServer, dump: &str, annotations: &[(&str, &str)]) -> String {
    submit_bytes(server, &generated_bytes(dump), annotations).await
}

/// Submits the minidump `bytes` with annotations through `/submit`, as a crash reporter does;
/// waits until it is processed; its ID.
pub async fn submit_bytes(
    server: &TestServer,
    bytes: &[u8],
    annotations: &[(&str, &str)],
) -> String {
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = annotations
        .iter()
        .map(|(k, v)| (*k, None, v.as_bytes()))
        .collect();
    parts.push(("upload_file_minidump", Some("a.dmp"), bytes));
    let (status, reply) = post(
        server,
        "/submit",
        Some("multipart/form-data; boundary=XyZ"),
        &[],
        multipart("XyZ", &parts),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let id = reply.trim().strip_prefix("CrashID=bp-").unwrap().to_owned();
    let done = settled(server, &id).await;
    assert_eq!(done["state"], "processed", "{done}");
    id
}

/// The crash generator's debug ID (Breakpad form) and code ID as its dumps name them; they
/// change whenever fixtures/minidumps is regenerated.
pub fn crasher_ids() -> (String, String) {
    use minidump::Module as _;
    let dump = minidump::Minidump::read(generated_bytes("wild-read.dmp")).unwrap();
    let modules = dump.get_stream::<minidump::MinidumpModuleList>().unwrap();
    let crasher = modules
        .iter()
        .find(|m| m.code_file().ends_with("/crasher"))
        .expect("the crasher module");
    (
        crasher.debug_identifier().unwrap().breakpad().to_string(),
        crasher.code_identifier().unwrap().as_str().to_owned(),
    )
}

/// Whether `tool` runs here; under `tests/run.sh` (which installs it) its absence fails.
pub fn tool_present(tool: &str) -> bool {
    let present = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        present || !services_required(),
        "{tool} is required (tests/run.sh installs it)"
    );
    if !present {
        eprintln!("skipping: {tool} is not installed");
    }
    present
}

/// `POST /api/v1/symbolicate-js` with the admin token; asserts 200 and returns the answer.
pub async fn symbolicate_js(server: &TestServer, request: serde_json::Value) -> serde_json::Value {
    let response = server
        .client
        .post(server.url("/api/v1/symbolicate-js"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A temporary folder holding copies of the ../shared fixtures `dir/name` for each name.
pub fn fixture_dir(dir: &str, names: &[&str]) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::write(
            out.path().join(name),
            fixture_bytes(&format!("{dir}/{name}")),
        )
        .unwrap();
    }
    out
}

/// A minified file and its map from the symbolic source-map fixtures (`sourcemaps/symbolic/…`)
/// with `id` injected as `sentry-cli sourcemaps inject` does: a `//# debugId=` comment in the
/// file, `debug_id` (or `debugId`) in the map.
pub fn injected(rel_js: &str, rel_map: &str, id: &str, map_field: &str) -> (Vec<u8>, Vec<u8>) {
    let mut js = fixture_bytes(&format!("sourcemaps/symbolic/{rel_js}"));
    js.extend_from_slice(format!("\n//# debugId={id}\n").as_bytes());
    let mut map: serde_json::Value =
        serde_json::from_slice(&fixture_bytes(&format!("sourcemaps/symbolic/{rel_map}"))).unwrap();
    map[map_field] = serde_json::json!(id);
    (js, serde_json::to_vec(&map).unwrap())
}

/// The 1-based column of `needle` in line 1 of the symbolic source-map fixture `rel`.
pub fn column_of(rel: &str, needle: &str) -> u32 {
    let text = String::from_utf8(fixture_bytes(&format!("sourcemaps/symbolic/{rel}"))).unwrap();
    let first = text.lines().next().unwrap();
    first
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {rel}")) as u32
        + 1
}

/// Uploads files to `POST /api/v1/symbols{query}` as multipart parts (name, bytes); returns status and answer.
pub async fn upload_files(
    server: &TestServer,
    query: &str,
    files: &[(&str, Vec<u8>)],
) -> (u16, serde_json::Value) {
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in files {
        form = form.part(
            name.to_string(),
            reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
        );
    }
    let response = server
        .client
        .post(server.url(&format!("/api/v1/symbols{query}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The ID of the one crash with annotation `filter` (`name=value`), once it is listed.
pub async fn crash_with_annotation(server: &TestServer, filter: &str) -> String {
    for _ in 0..200 {
        let (_, list) = server
            .get_json(&format!("/api/v1/crashes?annotation.{filter}"))
            .await;
        if let Some(id) = list["crashes"][0]["id"].as_str() {
            return id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no crash with {filter} arrived");
}

/// The `faultline` binary with no server, token or configuration from the environment, logging
/// errors only.
pub fn faultline() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"));
    command
        .env_remove("FAULTLINE_URL")
        .env_remove("FAULTLINE_TOKEN")
        .env_remove("FAULTLINE_CONFIG")
        .env("FAULTLINE_LOG", "error");
    command
}

/// Runs `command` off the async runtime: its exit code, stdout and stderr.
pub async fn run(mut command: std::process::Command) -> (i32, String, String) {
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `sentry-cli --url SERVER --auth-token TOKEN ARGS` run in `dir` (else the test's folder),
/// with no configuration of its own; success and output.
pub async fn sentry_cli_in(
    server: &TestServer,
    token: &str,
    dir: Option<&std::path::Path>,
    args: &[&str],
) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new("sentry-cli");
    command
        .args(["--url", &server.url("/"), "--auth-token", token])
        .args(args)
        .env("HOME", home.path())
        .env("SENTRY_DISABLE_UPDATE_CHECK", "true")
        .env_remove("SENTRY_AUTH_TOKEN")
        .env_remove("SENTRY_URL")
        .env_remove("SENTRY_ORG")
        .env_remove("SENTRY_PROJECT");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.output().await.expect("sentry-cli runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `sentry-cli COMMAND… --org acme --project default PATH` with the admin token; asserts that it
/// succeeded and returns its output.
pub async fn sentry_cli_upload(
    server: &TestServer,
    command: &[&str],
    path: &std::path::Path,
) -> String {
    let path = path.to_string_lossy();
    let mut args = command.to_vec();
    args.extend(["--org", "acme", "--project", "default", &path]);
    let (ok, out) = sentry_cli_in(server, &server.admin_token, None, &args).await;
    assert!(ok, "{out}");
    out
}

/// Now, Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// 10:00 UTC `days` days before today: as a session's `started` (RFC 3339) and in Unix seconds.
/// Updates of sessions that started more than five days ago are dropped, so tests date their
/// sessions from today.
pub fn days_ago_at_ten(days: i64) -> (String, i64) {
    let date = time::OffsetDateTime::now_utc().date() - time::Duration::days(days);
    let at = date
        .with_hms(10, 0, 0)
        .unwrap()
        .assume_utc()
        .unix_timestamp();
    (format!("{date}T10:00:00Z"), at)
}

/// Posts an envelope of JSON items (`type`, payload) as a Sentry SDK does (`X-Sentry-Auth`,
/// the default project's public key); its status and answer.
pub async fn send_envelope_items(
    server: &TestServer,
    items: &[(&str, serde_json::Value)],
) -> (u16, String) {
    let mut body = b"{}\n".to_vec();
    for (kind, payload) in items {
        let payload = serde_json::to_vec(payload).unwrap();
        body.extend_from_slice(
            format!("{{\"type\":\"{kind}\",\"length\":{}}}\n", payload.len()).as_bytes(),
        );
        body.extend_from_slice(&payload);
        body.push(b'\n');
    }
    post(
        server,
        "/api/1/envelope/",
        Some("application/x-sentry-envelope"),
        &[(
            "x-sentry-auth",
            "Sentry sentry_version=7, sentry_key=public",
        )],
        body,
    )
    .await
}

/// Where tests/run.sh installed the Sentry SDK for Node (`@sentry/node`), if it did.
pub fn sentry_node_module() -> Option<std::path::PathBuf> {
    let module = std::path::PathBuf::from(std::env::var_os("FAULTLINE_TEST_SENTRY_NODE")?);
    module.join("package.json").exists().then_some(module)
}
