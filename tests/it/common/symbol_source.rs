//! A symbol server on loopback for the upstream-source tests: it serves a folder the test fills
//! (`/store/…`) and misbehaves on request — `/missing/…` (404), `/broken/…` (500), `/hang/…`
//! (never answers), `/slow/{ms}/…` (answers from the folder after a delay), `/huge/…` (a 2 GiB
//! body, streamed), `/liar/…` (another module's file), `/loop/…` (redirects to itself),
//! `/redirect/…` (redirects into `/store/…`). It counts every request by path. Below it, the
//! helpers the upstream-source tests share: sources, modules, requests and their candidates.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use faultline::config::{SourceConfig, SourceKind, SourceLayout, SourceTimeouts};
use futures::StreamExt;
use serde_json::{json, Value};

use super::TestServer;

/// The running server.
pub struct SymbolSource {
    pub addr: SocketAddr,
    /// The folder `/store/…` serves.
    pub root: PathBuf,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
struct Shared {
    root: PathBuf,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl SymbolSource {
    /// Starts the server on a free port over an empty folder.
    pub async fn start() -> SymbolSource {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let shared = Shared {
            root: root.clone(),
            counts: Arc::clone(&counts),
        };
        let app = axum::Router::new().fallback(answer).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        SymbolSource {
            addr,
            root,
            counts,
            _dir: dir,
        }
    }

    /// The base URL of one behaviour (`url("store")` → `http://127.0.0.1:PORT/store/`).
    pub fn url(&self, behaviour: &str) -> String {
        format!("http://{}/{behaviour}/", self.addr)
    }

    /// Puts `bytes` at `path` in the served folder.
    pub fn put(&self, path: &str, bytes: &[u8]) {
        let target = self.root.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }

    /// How many requests asked for `path` (the whole request path, `/store/a/b/c`).
    pub fn count(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Requests whose path starts with `prefix`.
    pub fn count_under(&self, prefix: &str) -> usize {
        let counts = self.counts.lock().unwrap();
        counts
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

async fn answer(State(shared): State<Shared>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    *shared
        .counts
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default() += 1;
    let (behaviour, rest) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", ""));
    match behaviour {
        "store" => serve_file(&shared, rest).await,
        "missing" => StatusCode::NOT_FOUND.into_response(),
        "broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        "slow" => {
            let (ms, rest) = rest.split_once('/').unwrap();
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            serve_file(&shared, rest).await
        }
        "huge" => {
            // 2 GiB in 1 MiB chunks, made as they are sent.
            let chunks = futures::stream::iter(0..2048)
                .map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 1 << 20])));
            Response::new(Body::from_stream(chunks))
        }
        "liar" => serve_file(&shared, "liar").await,
        "loop" => (StatusCode::FOUND, [(header::LOCATION, path.clone())]).into_response(),
        "redirect" => (
            StatusCode::FOUND,
            [(header::LOCATION, format!("/store/{rest}"))],
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve_file(shared: &Shared, rest: &str) -> Response {
    if rest.split('/').any(|s| s == ".." || s.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(shared.root.join(rest)).await {
        Ok(bytes) => bytes.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

pub const CRASH_PDB: &str = "crash.pdb/3249D99D0C4049318610F4E4FB0B69361/crash.pdb";
pub const EXCEPTION_PDB: &str =
    "CrashWithException.pdb/F535C5FB2AE84BB8AA206C30BE566C5A1/CrashWithException.pdb";
pub const TEST_APP_SYM: &str = "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym";

/// An HTTP source with short time limits.
pub fn http(id: &str, url: String, layout: SourceLayout) -> SourceConfig {
    SourceConfig {
        id: id.into(),
        kind: Some(SourceKind::Http),
        url: Some(url),
        layout: Some(layout),
        timeouts: SourceTimeouts {
            connect_ms: 1_000,
            first_byte_ms: 1_000,
            total_ms: 10_000,
        },
        ..SourceConfig::default()
    }
}

pub fn crash_module() -> Value {
    json!({"type": "pe", "debug_id": "3249D99D0C4049318610F4E4FB0B69361", "debug_file": "crash.pdb",
           "code_file": "C:\\build\\crash.exe", "image_addr": "0x400000", "image_size": 0x27000})
}

pub fn exception_module() -> Value {
    json!({"type": "pe", "debug_id": "f535c5fb-2ae8-4bb8-aa20-6c30be566c5a-1",
           "debug_file": "CrashWithException.pdb", "code_file": "CrashWithException.exe",
           "image_addr": "0x140000000", "image_size": 0x9000})
}

/// Symbolicates one frame in each of `modules` (at its image address + `0x1011`).
pub async fn symbolicate(server: &TestServer, modules: &[Value]) -> Value {
    let frames: Vec<Value> = modules
        .iter()
        .map(|m| {
            let base = u64::from_str_radix(
                m["image_addr"].as_str().unwrap().trim_start_matches("0x"),
                16,
            )
            .unwrap();
            json!({"instruction_addr": format!("{:#x}", base + 0x1012)})
        })
        .collect();
    let response = server
        .client
        .post(server.url("/api/v1/symbolicate"))
        .json(&json!({"stacktraces": [{"frames": frames}], "modules": modules}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `(source, outcome, detail)` of every candidate of a module (`candidates` of a symbolicate
/// answer, `symbol_candidates` of a processed dump).
pub fn candidates(module: &Value) -> Vec<(String, String, String)> {
    module
        .get("candidates")
        .or(module.get("symbol_candidates"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| {
                    (
                        c["source"].as_str().unwrap().to_owned(),
                        c["outcome"].as_str().unwrap().to_owned(),
                        c["detail"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first candidate from `source`.
pub fn from(module: &Value, source: &str) -> (String, String) {
    candidates(module)
        .into_iter()
        .find(|(s, ..)| s == source)
        .map(|(_, outcome, detail)| (outcome, detail))
        .unwrap_or_else(|| panic!("no candidate from {source}: {module}"))
}

/// Processes `dump` through `POST /api/v1/minidump`.
pub async fn process(server: &TestServer, dump: &[u8]) -> Value {
    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .body(dump.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The processed module named `name`.
pub fn module<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["filename"] == name)
        .unwrap_or_else(|| panic!("no module {name}"))
}
