//! A loopback HTTP receiver standing in for services that cannot run here (a webhook
//! consumer, Slack, PagerDuty): it records every request and answers from a script, so tests
//! can check what the real service would check (signatures, body shapes) and make it fail.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

/// What the receiver answers next.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A status, optional `Retry-After`, and a body.
    Status(u16, Option<u64>, &'static str),
    /// Never answer (the request hangs until the client gives up or dies).
    Hang,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    notify: tokio::sync::Notify,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Starts a receiver answering `200 ok` unless scripted otherwise.
    pub async fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        let state = Arc::clone(&shared);
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&state);
                async move {
                    state.received.lock().unwrap().push(Received {
                        path: uri.path().to_owned(),
                        headers,
                        body,
                        at: std::time::Instant::now(),
                    });
                    state.notify.notify_waiters();
                    let answer = state
                        .script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(Answer::Status(200, None, "ok"));
                    match answer {
                        Answer::Status(status, retry_after, body) => {
                            let mut response =
                                (StatusCode::from_u16(status).unwrap(), body).into_response();
                            if let Some(secs) = retry_after {
                                response
                                    .headers_mut()
                                    .insert("retry-after", secs.to_string().parse().unwrap());
                            }
                            response
                        }
                        Answer::Hang => {
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, shared }
    }

    /// Queues answers for the next requests.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.notify.notified();
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} requests, got {}: {:?}",
                    received.len(),
                    received.iter().map(|r| &r.path).collect::<Vec<_>>()
                );
            }
        }
    }
}
