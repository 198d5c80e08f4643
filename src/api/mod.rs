//! The HTTP API (axum on tokio): thin routes that extract, authorize, call a service of the
//! application (`crate::app::App`) and answer JSON; every failure is a status plus a body
//! `{"error": "...", "detail": "..."}` that says what to do next (`crate::http::HttpError`).
//! `server/` merges these routes with the web UI's.

mod admin;
mod alerts;
mod code;
mod evidence;
mod health;
mod ingest;
mod integrations;
mod minidump;
mod missing;
mod ops;
mod releases;
mod sentry_cli;
mod sourcemaps;
mod symbol_server;
mod symbols;
mod symupload;
mod triage;

use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::app::App;
use crate::http::route_with_and_without_slash as both;

pub use ops::{count_requests, install_metrics, not_found};

/// `?project=` (the default project when absent), on the routes about one project.
#[derive(Debug, serde::Deserialize)]
pub struct ProjectQuery {
    project: Option<String>,
}

/// Every API route (the server adds the web UI's pages, the fallback and the layers).
pub fn routes() -> Router<App> {
    let router = Router::new()
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics));
    let router = symbol_routes(router);
    let router = crash_routes(router);
    let router = ingest_routes(router);
    let router = admin_routes(router);
    let router = code_routes(router);
    alert_routes(router)
}

/// Releases (in Sentry's shape for sentry-cli, and faultline's own), repositories, code
/// mappings, suspect commits and source context.
fn code_routes(router: Router<App>) -> Router<App> {
    const ORG: &str = "/api/0/organizations/{org}";
    router
        .route(
            &format!("{ORG}/releases/"),
            post(releases::create).get(releases::list),
        )
        .route(
            &format!("{ORG}/releases/{{version}}/"),
            get(releases::get).put(releases::update),
        )
        .route(
            &format!("{ORG}/releases/{{version}}/commits/"),
            get(releases::commits),
        )
        .route(
            &format!("{ORG}/releases/{{version}}/previous-with-commits/"),
            get(releases::previous_with_commits),
        )
        .route(
            &format!("{ORG}/releases/{{version}}/deploys/"),
            post(releases::create_deploy).get(releases::list_deploys),
        )
        .route(&format!("{ORG}/repos/"), get(releases::repositories))
        .route(
            "/api/0/projects/{org}/{project}/releases/",
            get(releases::list_project),
        )
        .route("/api/v1/releases", get(releases::list_v1))
        .route("/api/v1/releases/{version}", get(releases::get_v1))
        .route(
            "/api/v1/releases/{version}/health",
            get(health::release_health),
        )
        .route("/api/v1/usage", post(health::usage))
        .route(&format!("{ORG}/sessions/"), get(health::sentry_sessions))
        .route(
            "/api/v1/repositories",
            get(code::list_repositories).post(code::add_repository),
        )
        .route("/api/v1/repositories/{id}", delete(code::remove_repository))
        .route(
            "/api/v1/repositories/{id}/fetch",
            post(code::fetch_repository),
        )
        .route(
            "/api/v1/code-mappings",
            get(code::list_mappings).post(code::set_mapping),
        )
        .route("/api/v1/code-mappings/{id}", delete(code::delete_mapping))
        .route("/api/v1/groups/{id}/suspects", get(code::suspects))
        .route(
            "/api/v1/groups/{id}/evidence",
            get(evidence::group_evidence),
        )
        .route(
            "/api/v1/crashes/{id}/source-context",
            get(code::source_context),
        )
}

/// Uploading, listing and serving debug files, in faultline's own shape and in the shapes of
/// the tools that upload them (Tecken, sentry-cli, Breakpad's symupload) and the clients that
/// download them (Breakpad's symbol-server layout, debuginfod).
fn symbol_routes(router: Router<App>) -> Router<App> {
    router
        .route("/api/v1/symbols", post(symbols::upload).get(symbols::list))
        .route("/api/v1/symbols/missing", get(missing::missing))
        .route("/api/v1/symbols/sources", get(symbols::sources))
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
}

/// Processing on request, and triage of what was processed.
fn crash_routes(router: Router<App>) -> Router<App> {
    router
        .route("/api/v1/minidump", post(minidump::process))
        .route("/api/v1/symbolicate", post(minidump::symbolicate))
        .route("/api/v1/symbolicate-jvm", post(minidump::symbolicate_jvm))
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
}

/// What crash reporters send: Breakpad/Crashpad, Sentry SDKs (minidumps, envelopes, events;
/// browsers too, hence CORS), Unreal's crash reporter and Backtrace's clients.
fn ingest_routes(router: Router<App>) -> Router<App> {
    let router = router
        .route("/submit", post(ingest::submit))
        .route("/api/v1/applecrashreport", post(ingest::apple_crash_report))
        .route("/post", post(ingest::backtrace));
    let router = both(router, "/api/{project}/minidump/", post(ingest::sentry));
    let router = both(
        router,
        "/api/{project}/envelope/",
        post(ingest::envelope).layer(ingest::browser_cors()),
    );
    let router = both(
        router,
        "/api/{project}/store/",
        post(ingest::store).layer(ingest::browser_cors()),
    );
    both(router, "/api/{project}/unreal/{key}/", post(ingest::unreal))
}

/// Projects, ingest keys and API tokens.
fn admin_routes(router: Router<App>) -> Router<App> {
    router
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
}

/// Alert rules, channels, what fired and what was delivered, and trackers' webhooks.
fn alert_routes(router: Router<App>) -> Router<App> {
    router
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
}
