//! The server: binds the listening socket, opens the application, creates the first admin
//! token, starts the processing workers and the background jobs (the cluster's change log,
//! alert delivery, retention), composes the two front ends (`api/` and `ui/`) into one router
//! with the layers every request passes (stalled-body guard, `Connection: close` after an unread
//! body, request counters, tracing), and serves connections until Ctrl-C, then drains them.

mod connections;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::auth::{NewToken, Scope};
use crate::config::Config;
use crate::ingest::worker::WorkerContext;

/// Every route and page, with the layers every request passes.
pub fn router(app: App) -> Router {
    let body_timeout = std::time::Duration::from_secs(app.config.server.body_timeout_secs.max(1));
    crate::api::routes()
        .merge(crate::ui::routes())
        .merge(mcp_routes(&app))
        .fallback(crate::api::not_found)
        // Upload routes count bytes themselves against `limits.max_upload_bytes`.
        .layer(DefaultBodyLimit::disable())
        // A body that stops sending is dropped (408), so slow clients cannot hold memory.
        .layer(axum::middleware::map_request(
            move |request: axum::extract::Request| async move {
                request.map(|body| {
                    axum::body::Body::new(crate::http::StallGuard::new(body, body_timeout))
                })
            },
        ))
        // A body left unread closes its connection: the response says so (see http/unread.rs).
        .layer(axum::middleware::from_fn(crate::http::close_if_body_unread))
        .route_layer(axum::middleware::from_fn(crate::api::count_requests))
        // Spans name the path only: query strings carry ingest keys (`?key=`, `token=`).
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    version = ?request.version()
                )
            },
        ))
        .with_state(app)
}

/// `/mcp`: the MCP server for coding assistants (docs/MCP.md), behind a bearer token and a
/// body limit (its requests are JSON-RPC messages, never uploads).
fn mcp_routes(app: &App) -> Router<App> {
    Router::new()
        .nest_service("/mcp", crate::mcp::http_service(app.clone()))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MCP_BODY_LIMIT,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::mcp::require_token,
        ))
}

/// The largest MCP request accepted (bytes).
const MCP_BODY_LIMIT: usize = 1 << 20;

/// A server bound to its address but not yet serving, so callers (tests) learn the port first.
pub struct BoundServer {
    listener: TcpListener,
    app: Router,
    limits: connections::ConnectionLimits,
}

/// The file the first start writes its admin token to.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// On a first start (no usable admin token), creates one with every scope and writes it to
/// `{data_dir}/admin-token` (mode 0600); logs the path, never the token.
async fn first_start_token(state: &App) -> anyhow::Result<()> {
    if state.registry.has_admin_token().await? {
        return Ok(());
    }
    let (secret, token) = state
        .registry
        .create_token(&NewToken {
            name: "first-start admin".to_owned(),
            scopes: Scope::ALL.to_vec(),
            projects: Vec::new(),
            expires_in_days: None,
        })
        .await?;
    let path = state.config.storage.data_dir.join(ADMIN_TOKEN_FILE);
    if let Err(e) = write_private(&path, format!("{secret}\n").as_bytes()) {
        // Nobody could ever read this token: revoke it, so the next start makes another.
        state.registry.revoke_token(&token.id).await?;
        anyhow::bail!(
            "cannot write the first admin token to {}: {e} (check that storage.data_dir is writable)",
            path.display()
        );
    }
    tracing::warn!(path = %path.display(), token_id = %token.id, "created an admin token with every scope; it is in this file (readable by this user only)");
    Ok(())
}

/// Writes `bytes` to a new file only its owner can read.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }
}

/// Announces the files upstream sources sent as uploads are announced: the crashes processed
/// without them are processed again.
async fn fetched_files_job(
    upstream: Arc<crate::upstream::Upstream>,
    uploads: Arc<crate::uploads::Uploads>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut fetched = upstream.subscribe();
    loop {
        match fetched.recv().await {
            Ok(id) => uploads.announce_fetched(id).await,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "fell behind announcing fetched symbol files")
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Runs retention every `retention.interval_secs` (the configured policies, and always the
/// leftovers of unfinished uploads and the session states no update can reach); this node's module caches forget deleted debug files,
/// other nodes hear of them through the cluster's change log.
async fn retention_job(state: App) {
    let every = std::time::Duration::from_secs(state.config.retention.interval_secs.max(60));
    let policy = crate::retention::RetentionPolicy::from_config(&state.config.retention);
    loop {
        tokio::time::sleep(every).await;
        let stores = crate::retention::RetentionStores {
            symbols: &state.symbols,
            objects: &*state.objects,
            index: &state.index,
            cluster: &state.cluster,
        };
        let now = crate::clock::now_unsigned();
        match crate::retention::run(&stores, policy, now, false).await {
            Ok(report) => {
                for module in report.modules() {
                    if let Ok(id) = module.parse() {
                        state.pipeline.processor.modules().invalidate(&id).await;
                    }
                }
                crate::retention::record_metrics(&report);
                if report.bytes > 0 || report.session_state_count > 0 {
                    tracing::info!(
                        symbol_files = report.symbol_file_count,
                        payloads = report.payload_count,
                        leftovers = report.leftover_count,
                        session_states = report.session_state_count,
                        bytes = report.bytes,
                        "retention deleted what was past its age"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention run failed; trying again next interval")
            }
        }
    }
}

/// Fetches every repository mirror each `code.fetch_interval_secs`; a fetch that brought
/// commits marks stored suspect commits stale.
async fn repository_fetch_job(state: App) {
    let every = state.config.code.fetch_interval_secs;
    if every == 0 {
        return;
    }
    loop {
        match state.code.repositories().await {
            Ok(repositories) => {
                for repo in repositories {
                    match state.code.fetch(&repo).await {
                        Ok(true) => {
                            if let Err(e) = state.suspects.mark_all_stale().await {
                                tracing::warn!(error = %e, "could not mark suspects stale");
                            }
                        }
                        Ok(false) => {}
                        // Logged and recorded on the repository by the fetch itself.
                        Err(_) => metrics::counter!("faultline_repository_fetch_failures_total")
                            .increment(1),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list repositories"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(every.max(10))).await;
    }
}

/// Computes the suspect commits of groups whose suspects are missing or stale, a batch every
/// `code.suspects_interval_secs`, beside crash processing.
async fn suspects_job(state: App) {
    let every = std::time::Duration::from_secs(state.config.code.suspects_interval_secs.max(1));
    loop {
        tokio::time::sleep(every).await;
        match state.suspects.run_due(20).await {
            Ok(n) => metrics::counter!("faultline_suspect_reports_total").increment(n as u64),
            Err(e) => tracing::warn!(error = %e, "suspect commits job failed"),
        }
    }
}

/// Computes the correlations of groups whose correlations are missing or due, a few every
/// `evidence.correlations_interval_secs`, beside crash processing (on a thread of their own).
async fn correlations_job(state: App) {
    let every =
        std::time::Duration::from_secs(state.config.evidence.correlations_interval_secs.max(1));
    loop {
        tokio::time::sleep(every).await;
        match state.correlations.run_due(5).await {
            Ok(n) => metrics::counter!("faultline_correlation_reports_total").increment(n as u64),
            Err(e) => tracing::warn!(error = %e, "correlations job failed"),
        }
    }
}

impl BoundServer {
    /// Opens the stores, creates the first admin token if there is none, starts the processing
    /// workers and binds `config.server.listen` (port 0 picks a free port).
    pub async fn bind(config: Config) -> anyhow::Result<BoundServer> {
        crate::api::install_metrics();
        let listen = config.server.listen;
        let limits = connections::ConnectionLimits {
            max_connections: config.server.max_connections,
            header_timeout: std::time::Duration::from_secs(
                config.server.header_timeout_secs.max(1),
            ),
        };
        let state = App::open(config).await?;
        first_start_token(&state).await?;
        // This node starts with empty caches: only changes from now on concern it.
        state.cluster.skip_past().await?;
        tokio::spawn(Arc::clone(&state.cluster).follow(
            state.config.index_url(),
            std::time::Duration::from_secs(state.config.cluster.event_poll_secs.max(1)),
        ));
        if state.config.alerts.deliver {
            tokio::spawn(Arc::clone(&state.alerts).dispatch());
        }
        tokio::spawn(retention_job(state.clone()));
        tokio::spawn(repository_fetch_job(state.clone()));
        tokio::spawn(suspects_job(state.clone()));
        tokio::spawn(correlations_job(state.clone()));
        if let Some(upstream) = &state.upstream {
            tokio::spawn(fetched_files_job(
                Arc::clone(upstream),
                Arc::clone(&state.uploads),
            ));
        }
        let workers = match state.config.ingest.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        if state.config.ingest.process_crashes {
            crate::ingest::worker::start(
                WorkerContext {
                    pipeline: Arc::clone(&state.pipeline),
                    index: Arc::clone(&state.index),
                    queue: Arc::clone(&state.queue),
                    objects: Arc::clone(&state.objects),
                    user_annotations: Arc::new(state.config.group.user_annotations.clone()),
                    wake: Arc::clone(&state.wake),
                    cluster: Arc::clone(&state.cluster),
                    symbols: Arc::clone(&state.symbols),
                    max_file_bytes: state.config.limits.max_upload_bytes,
                    processing: state.config.processing.clone(),
                    projects: state.registry.clone(),
                },
                workers,
            )
            .await;
        }
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {listen}: {e} (choose another with --listen or FAULTLINE_SERVER_LISTEN)")
        })?;
        Ok(BoundServer {
            listener,
            app: router(state),
            limits,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until the process is interrupted.
    pub async fn serve(self) -> anyhow::Result<()> {
        connections::serve(self.listener, self.app, self.limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Ok(())
    }
}
