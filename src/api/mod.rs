//! The HTTP API (axum on tokio): routes, shared state, and the mapping of every failure to a
//! status code plus a JSON body `{"error": "...", "detail": "..."}` that says what to do next.

mod admin;
mod alerts;
pub mod auth;
mod body;
mod ingest;
mod integrations;
mod minidump;
mod missing;
mod multipart;
mod ops;
mod sentry_cli;
mod serve;
mod sourcemaps;
mod symbol_server;
pub(crate) mod symbols;
mod symupload;
pub(crate) mod triage;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::alerts::Alerts;
use crate::auth::{NewToken, Registry, Scope};
use crate::cluster::{Change, ChangeListener, ClusterEvents};
use crate::config::Config;
use crate::group::index::{CrashIndex, IndexError, PayloadBudget};
use crate::ingest::queue::IngestQueue;
use crate::ingest::throttle::Throttle;
use crate::ingest::worker::WorkerContext;
use crate::pipeline::Pipeline;
use crate::process::ProcessError;
use crate::store::{ObjectStore, StoreError};
use crate::symbols::unpack::UnpackLimits;
use crate::symbols::{SymbolError, SymbolStore};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// Debug files and their caches.
    pub symbols: Arc<SymbolStore>,
    /// Processing and classification, sharing parsed symbols between requests.
    pub pipeline: Arc<Pipeline>,
    /// Crashes and groups.
    pub index: Arc<CrashIndex>,
    /// The object store (crash payloads live here beside the symbols).
    pub objects: Arc<dyn ObjectStore>,
    /// The durable ingest queue.
    pub queue: Arc<IngestQueue>,
    /// Wakes the processing workers when a crash is queued.
    pub wake: Arc<tokio::sync::Notify>,
    /// Ingest throttle rules.
    pub throttle: Arc<Throttle>,
    /// Projects, ingest keys and API tokens.
    pub registry: Registry,
    /// What this node tells other nodes, and hears from them.
    pub cluster: Arc<ClusterEvents>,
    /// Crash bodies being read now (`ingest.max_concurrent_bodies` permits).
    pub ingest_bodies: Arc<tokio::sync::Semaphore>,
    /// Alert rules, channels and the delivery outbox.
    pub alerts: Arc<Alerts>,
}

impl AppState {
    /// Opens the stores the configuration names (creating folders as needed).
    pub async fn open(config: Config) -> anyhow::Result<AppState> {
        let objects = crate::store::open(&config.storage)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let scratch = config.storage.data_dir.join("tmp");
        let limits = UnpackLimits {
            max_entries: config.limits.max_archive_entries,
            max_unpacked_bytes: config.limits.max_archive_unpacked_bytes,
        };
        let symbols = SymbolStore::new(Arc::clone(&objects), scratch, limits).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data folder {}: {e} (set storage.data_dir or FAULTLINE_STORAGE_DATA_DIR to a writable folder)",
                config.storage.data_dir.display()
            )
        })?;
        let symbols = Arc::new(symbols);
        let pipeline = Arc::new(Pipeline::from_config(&config, Arc::clone(&symbols))?);
        let budget = PayloadBudget {
            per_new_group: config.group.payloads_per_new_group,
            per_group_hour: config.group.payloads_per_group_hour,
        };
        let url = config.index_url();
        let index = CrashIndex::open(&url, budget).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot open the crash index at {url}: {e} (set index.url or FAULTLINE_INDEX_URL)"
            )
        })?;
        let throttle =
            Throttle::new(&config.ingest.throttle).map_err(|e| anyhow::anyhow!("{e}"))?;
        let node = config.node_id();
        let queue = Arc::new(IngestQueue::new(
            &index,
            node.clone(),
            std::time::Duration::from_secs(config.cluster.lease_secs),
        ));
        let cluster = Arc::new(ClusterEvents::new(&index, node.clone()));
        let registry = Registry::new(index.pool().clone(), Arc::clone(&cluster));
        cluster.listen(Arc::new(registry.clone()));
        cluster.listen(Arc::new(SymbolChanges {
            modules: pipeline.processor.modules().clone(),
            symbols: Arc::clone(&symbols),
        }));
        let public_url = match config.server.public_url.trim() {
            "" => format!("http://{}", config.server.listen),
            url => url.to_owned(),
        };
        let alerts = Alerts::new(&index, node.clone(), config.alerts.clone(), public_url);
        index.observe(Arc::clone(&alerts) as Arc<dyn crate::group::index::RecordObserver>);
        let ingest_bodies = Arc::new(tokio::sync::Semaphore::new(
            config.ingest.max_concurrent_bodies.max(1),
        ));
        Ok(AppState {
            alerts,
            cluster,
            registry,
            ingest_bodies,
            config: Arc::new(config),
            symbols,
            pipeline,
            index: Arc::new(index),
            objects,
            queue,
            wake: Arc::new(tokio::sync::Notify::new()),
            throttle: Arc::new(throttle),
        })
    }
}

/// Drops this node's copies of a module's symbols when another node stored files for it.
struct SymbolChanges {
    modules: crate::process::modules::ModuleCache,
    symbols: Arc<SymbolStore>,
}

#[async_trait::async_trait]
impl ChangeListener for SymbolChanges {
    async fn changed(&self, change: &Change) {
        let Change::Symbols(id) = change else { return };
        let Ok(id) = id.parse::<symbolic::common::DebugId>() else {
            return;
        };
        if let Err(e) = self.symbols.forget_local_caches(&id).await {
            tracing::warn!(debug_id = %id, error = %e, "could not drop local cache copies");
        }
        self.modules.invalidate(&id).await;
    }
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let body_timeout = std::time::Duration::from_secs(state.config.server.body_timeout_secs.max(1));
    Router::new()
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/symbols", post(symbols::upload).get(symbols::list))
        .route("/api/v1/symbols/missing", get(missing::missing))
        .route("/upload/", post(symbols::tecken_upload))
        .route(
            "/api/0/organizations/{org}/chunk-upload/",
            get(sentry_cli::options).post(sentry_cli::upload_chunks),
        )
        .route(
            "/v1/symbols/{debug_file}/{id_action}",
            get(symupload::check_status),
        )
        .route("/v1/uploads:create", post(symupload::create))
        .route(
            "/v1/uploads/{key}",
            put(symupload::put_file).post(symupload::complete),
        )
        .route(
            "/api/0/organizations/{org}/artifactbundle/assemble/",
            post(sentry_cli::assemble_bundle),
        )
        .route(
            "/api/0/projects/{org}/{project}/files/difs/assemble/",
            post(sentry_cli::assemble),
        )
        .route("/api/v1/symbols/{debug_id}/caches", get(symbols::caches))
        .route("/api/v1/minidump", post(minidump::process))
        .route("/api/v1/symbolicate", post(minidump::symbolicate))
        .route("/api/v1/symbolicate-js", post(sourcemaps::symbolicate_js))
        .route("/api/v1/groups", get(triage::list_groups))
        .route(
            "/api/v1/groups/{id}",
            get(triage::get_group).patch(triage::update_group),
        )
        .route("/api/v1/groups/{id}/merge", post(triage::merge_groups))
        .route("/api/v1/crashes", get(triage::list_crashes))
        .route("/api/v1/crashes/{id}", get(triage::get_crash))
        .route(
            "/api/v1/crashes/{id}/reprocess",
            post(triage::reprocess_crash),
        )
        .route("/submit", post(ingest::submit))
        .route("/api/{project}/minidump/", post(ingest::sentry))
        .route("/api/{project}/minidump", post(ingest::sentry))
        .route(
            "/api/{project}/envelope/",
            post(ingest::envelope).layer(ingest::browser_cors()),
        )
        .route(
            "/api/{project}/envelope",
            post(ingest::envelope).layer(ingest::browser_cors()),
        )
        .route(
            "/api/{project}/store/",
            post(ingest::store).layer(ingest::browser_cors()),
        )
        .route(
            "/api/{project}/store",
            post(ingest::store).layer(ingest::browser_cors()),
        )
        .route("/api/{project}/unreal/{key}/", post(ingest::unreal))
        .route("/api/{project}/unreal/{key}", post(ingest::unreal))
        .route("/post", post(ingest::backtrace))
        .route("/api/v1/token", get(admin::whoami))
        .route(
            "/api/v1/projects",
            get(admin::list_projects).post(admin::create_project),
        )
        .route(
            "/api/v1/projects/{project}/keys",
            get(admin::list_keys).post(admin::create_key),
        )
        .route(
            "/api/v1/projects/{project}/keys/{id}",
            delete(admin::revoke_key),
        )
        .route(
            "/api/v1/tokens",
            get(admin::list_tokens).post(admin::create_token),
        )
        .route("/api/v1/tokens/{id}", delete(admin::revoke_token))
        .route(
            "/api/v1/alert-rules",
            get(alerts::list_rules).post(alerts::create_rule),
        )
        .route(
            "/api/v1/alert-rules/{id}",
            get(alerts::get_rule)
                .put(alerts::update_rule)
                .delete(alerts::delete_rule),
        )
        .route(
            "/api/v1/channels",
            get(alerts::list_channels).post(alerts::create_channel),
        )
        .route(
            "/api/v1/channels/{id}",
            get(alerts::get_channel).delete(alerts::delete_channel),
        )
        .route("/api/v1/channels/{id}/test", post(alerts::test_channel))
        .route("/api/v1/alert-fires", get(alerts::list_fires))
        .route("/api/v1/deliveries", get(alerts::list_deliveries))
        .route(
            "/api/v1/integrations/{tracker}/webhook",
            post(integrations::webhook),
        )
        .route(
            "/api/v1/symbols/{debug_id}/{sha256}",
            get(symbols::download).delete(symbols::delete_file),
        )
        .route("/api/v1/symbols/{debug_id}", delete(symbols::delete_module))
        .route(
            "/symbols/{debug_file}/{debug_id}/{file_name}",
            get(symbol_server::symbols),
        )
        .route(
            "/buildid/{build_id}/{*artifact}",
            get(symbol_server::debuginfod),
        )
        .merge(crate::ui::routes())
        .fallback(ops::not_found)
        // Upload routes count bytes themselves against `limits.max_upload_bytes`.
        .layer(DefaultBodyLimit::disable())
        // A body that stops sending is dropped (408), so slow clients cannot hold memory.
        .layer(axum::middleware::map_request(
            move |request: axum::extract::Request| async move {
                request.map(|body| axum::body::Body::new(body::StallGuard::new(body, body_timeout)))
            },
        ))
        .route_layer(axum::middleware::from_fn(ops::count_requests))
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
        .with_state(state)
}

/// A server bound to its address but not yet serving, so callers (tests) learn the port first.
pub struct BoundServer {
    listener: TcpListener,
    app: Router,
    limits: serve::ConnectionLimits,
}

/// The file the first start writes its admin token to.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// On a first start (no usable admin token), creates one with every scope and writes it to
/// `{data_dir}/admin-token` (mode 0600); logs the path, never the token.
async fn first_start_token(state: &AppState) -> anyhow::Result<()> {
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

/// Runs retention every `retention.interval_secs` (the configured policies, and always the
/// leftovers of unfinished uploads); this node's module caches forget deleted debug files,
/// other nodes hear of them through the cluster's change log.
async fn retention_job(state: AppState) {
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
        let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
        match crate::retention::run(&stores, policy, now, false).await {
            Ok(report) => {
                for module in report.modules() {
                    if let Ok(id) = module.parse() {
                        state.pipeline.processor.modules().invalidate(&id).await;
                    }
                }
                crate::retention::record_metrics(&report);
                if report.bytes > 0 {
                    tracing::info!(
                        symbol_files = report.symbol_file_count,
                        payloads = report.payload_count,
                        leftovers = report.leftover_count,
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

impl BoundServer {
    /// Opens the stores, creates the first admin token if there is none, starts the processing
    /// workers and binds `config.server.listen` (port 0 picks a free port).
    pub async fn bind(config: Config) -> anyhow::Result<BoundServer> {
        ops::install_metrics();
        let listen = config.server.listen;
        let limits = serve::ConnectionLimits {
            max_connections: config.server.max_connections,
            header_timeout: std::time::Duration::from_secs(
                config.server.header_timeout_secs.max(1),
            ),
        };
        let state = AppState::open(config).await?;
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
        serve::serve(self.listener, self.app, self.limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Ok(())
    }
}

/// A failed request: status, a one-line `error` and an optional `detail`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    detail: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A client error (4xx) or server error (5xx) with its message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Adds a response header (`WWW-Authenticate`, `Retry-After`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// Adds a longer explanation.
    pub fn with_detail(mut self, detail: impl Into<String>) -> ApiError {
        self.detail = Some(detail.into());
        self
    }

    /// Its status, message and explanation (the web UI shows them on a page).
    pub(crate) fn parts(&self) -> (StatusCode, &str, Option<&str>) {
        (self.status, &self.error, self.detail.as_deref())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error });
        if let Some(detail) = self.detail {
            body["detail"] = detail.into();
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

impl From<SymbolError> for ApiError {
    fn from(e: SymbolError) -> ApiError {
        tracing::error!(error = %e, "symbol store failure");
        let status = match &e {
            SymbolError::Store(StoreError::Backend { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, "the symbol store failed; try again later").with_detail(e.to_string())
    }
}

impl From<ProcessError> for ApiError {
    fn from(e: ProcessError) -> ApiError {
        let status = match &e {
            ProcessError::NotAMinidump(_) | ProcessError::Corrupt(_) => StatusCode::BAD_REQUEST,
            ProcessError::Budget { budget: "size", .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProcessError::Budget { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ProcessError::Internal(_) => {
                tracing::error!(error = %e, "processing failure");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> ApiError {
        match e {
            IndexError::Invalid(message) => ApiError::new(StatusCode::BAD_REQUEST, message),
            other => {
                tracing::error!(error = %other, "crash index failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the crash index failed; try again later",
                )
                .with_detail(other.to_string())
            }
        }
    }
}
