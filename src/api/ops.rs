//! Operational routes: `/health` for load balancers, `/metrics` in Prometheus text format, and
//! the per-request counters behind it.

use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::app::App;
use crate::auth::Scope;
use crate::http::Caller;
use crate::http::HttpError;

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls reuse it).
pub fn install_metrics() -> &'static PrometheusHandle {
    METRICS.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// `GET /health`: the server is up and serving.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /metrics`: counters in Prometheus text format. The ingest queue's gauges are read from
/// the queue table at each scrape, so they are true during a backlog too.
pub async fn metrics(State(state): State<App>, caller: Caller) -> Response {
    if !state.config.auth.public_metrics {
        if let Err(e) = caller.require(Scope::Admin) {
            return e.into_response();
        }
    }
    match state.queue.depth().await {
        Ok(depth) => {
            metrics::gauge!("faultline_ingest_queue", "state" => "queued").set(depth.queued as f64);
            metrics::gauge!("faultline_ingest_queue", "state" => "processing")
                .set(depth.processing as f64);
            metrics::gauge!("faultline_ingest_queue", "state" => "failed").set(depth.failed as f64);
            let now = crate::clock::now();
            let age = depth.oldest_queued_at.map_or(0, |t| (now - t).max(0));
            metrics::gauge!("faultline_ingest_queue_oldest_seconds").set(age as f64);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the ingest queue depth"),
    }
    match state.alerts.outbox_counts().await {
        Ok((pending, dead)) => {
            metrics::gauge!("faultline_alert_deliveries", "state" => "pending").set(pending as f64);
            metrics::gauge!("faultline_alert_deliveries", "state" => "dead").set(dead as f64);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the alert outbox"),
    }
    let body = install_metrics().render();
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

/// Any unknown route.
pub async fn not_found() -> HttpError {
    HttpError::new(StatusCode::NOT_FOUND, "no such route").with_detail(
        "see README.md for the API: /health, /metrics, /api/v1/symbols, /symbols/{debug_file}/{debug_id}/{file}",
    )
}

/// Counts every request by route and status: `faultline_http_requests_total`.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    metrics::counter!(
        "faultline_http_requests_total",
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}
