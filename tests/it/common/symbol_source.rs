//! A symbol server on loopback for the upstream-source tests: it serves a folder the test fills
//! (`/store/…`) and misbehaves on request — `/missing/…` (404), `/broken/…` (500), `/hang/…`
//! (never answers), `/slow/{ms}/…` (answers from the folder after a delay), `/huge/…` (a 2 GiB
//! body, streamed), `/liar/…` (another module's file), `/loop/…` (redirects to itself),
//! `/redirect/…` (redirects into `/store/…`). It counts every request by path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

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

use futures::StreamExt;
