//! faultline for coding assistants: a Model Context Protocol server (the official Rust SDK,
//! rmcp) with tools over the same services as the API and the UI — find groups, a group's
//! evidence, a crash's frames, crashes by annotation, releases with their health, and changing
//! a group. A third thin front end: each tool checks the caller's token (its scopes and
//! projects, as the API does) and calls a service. Served as streamable HTTP at `/mcp`
//! (`routes`, bearer token) and over stdio by `faultline mcp` (`serve_stdio`). No language model
//! runs here: the assistant that reads the answers is the user's. See docs/MCP.md.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerInfo};
use rmcp::service::RequestContext;
use rmcp::{schemars, tool, tool_handler, tool_router, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::auth::Scope;
use crate::group::index::{GroupPatch, GroupQuery, GroupSort, GroupState};
use crate::http::Caller;

/// The faultline MCP server of one connection (HTTP session or stdio process).
#[derive(Clone)]
pub struct FaultlineMcp {
    state: App,
    /// The caller of a stdio server (HTTP callers come with each request).
    stdio_token: Option<crate::auth::Token>,
    #[allow(dead_code)] // read by the tool_handler macro
    tool_router: ToolRouter<FaultlineMcp>,
}

/// A tool's answer: JSON text, or a refusal the assistant reads.
type ToolResult = Result<CallToolResult, rmcp::ErrorData>;

/// A tool's outcome for the assistant: a text answer as is, any other answer as JSON text, a
/// refusal (missing scope, unknown group, bad argument) as a tool error it reads.
fn reply(outcome: Result<Value, String>) -> ToolResult {
    match outcome {
        Ok(Value::String(text)) => Ok(CallToolResult::success(vec![ContentBlock::text(text)])),
        Ok(value) => Ok(CallToolResult::success(vec![ContentBlock::json(value)?])),
        Err(message) => Ok(CallToolResult::error(vec![ContentBlock::text(message)])),
    }
}

/// A service's error as the API would say it: the caller's mistake in words, a failure of
/// faultline's own as a message with nothing internal (the details go to the log).
fn text(e: impl Into<crate::http::HttpError>) -> String {
    e.into().message().to_owned()
}

/// `find_groups`' parameters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FindGroups {
    /// The project's slug (`default` when absent).
    pub project: Option<String>,
    /// `open`, `in_progress`, `resolved` or `muted`.
    pub state: Option<String>,
    /// Only groups with a crash from this release.
    pub release: Option<String>,
    /// Text the signature contains.
    pub query: Option<String>,
    /// `last_seen` (default), `first_seen`, `events`, `users`, or `rate` (with `release`).
    pub sort: Option<String>,
    /// At most this many (1–100, default 20).
    pub limit: Option<i64>,
}

/// A group by its number.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GroupRef {
    /// The group's number.
    pub group_id: i64,
    /// The evidence as Markdown instead of JSON.
    pub markdown: Option<bool>,
}

/// A crash by its ID.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CrashRef {
    /// The crash's ID (a UUID).
    pub crash_id: String,
}

/// `find_crashes`' parameters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FindCrashes {
    /// The project's slug (`default` when absent).
    pub project: Option<String>,
    /// The annotation's name (`guid`, `user_id`, `gpu_driver`…).
    pub annotation: String,
    /// Its value.
    pub value: String,
    /// At most this many (1–100, default 25).
    pub limit: Option<i64>,
}

/// A project by its slug.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ProjectRef {
    /// The project's slug (`default` when absent).
    pub project: Option<String>,
}

/// `symbolicate_frames`' parameters: Sentry's symbolication request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SymbolicateFrames {
    /// Stacks of raw frames: `[{"frames": [{"instruction_addr": "0x140001042"}]}]`.
    pub stacktraces: Vec<Value>,
    /// The modules they fall in: `[{"type": "pe", "debug_id": "…", "code_file": "game.exe",
    /// "image_addr": "0x140000000", "image_size": 36864}]`.
    pub modules: Vec<Value>,
}

/// `update_group`'s parameters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct UpdateGroup {
    /// The group's number.
    pub group_id: i64,
    /// `open`, `in_progress`, `resolved` or `muted`.
    pub state: Option<String>,
    /// The release that fixes it (with `resolved`).
    pub resolved_in: Option<String>,
    /// Who works on it (an email or a name).
    pub assignee: Option<String>,
}

impl FaultlineMcp {
    /// A server for HTTP sessions (each request brings its caller).
    pub fn new(state: App) -> FaultlineMcp {
        FaultlineMcp {
            state,
            stdio_token: None,
            tool_router: Self::tool_router(),
        }
    }

    /// A server for one stdio client acting with `token`.
    pub fn for_token(state: App, token: crate::auth::Token) -> FaultlineMcp {
        FaultlineMcp {
            stdio_token: Some(token),
            ..FaultlineMcp::new(state)
        }
    }

    /// Who calls: the token the HTTP request was authenticated with, or the stdio token.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Caller {
        if let Some(token) = &self.stdio_token {
            return Caller(Some(token.clone()));
        }
        let token = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::auth::Token>())
            .cloned();
        Caller(token)
    }

    /// The project a tool names, if the caller may use it with `scope`.
    async fn project(
        &self,
        caller: &Caller,
        scope: Scope,
        slug: Option<&str>,
    ) -> Result<crate::auth::Project, String> {
        let project = crate::http::project_param(&self.state, slug)
            .await
            .map_err(text)?;
        caller.require_in(scope, &project).map_err(text)?;
        Ok(project)
    }

    /// A group the caller may use with `scope` (another project's reads as missing).
    async fn group(
        &self,
        caller: &Caller,
        scope: Scope,
        id: i64,
    ) -> Result<crate::group::index::Group, String> {
        caller.require(scope).map_err(text)?;
        match self.state.index.group(id).await.map_err(text)? {
            Some(group) if caller.may(scope, group.project_id) => Ok(group),
            _ => Err(format!("no group {id}")),
        }
    }
}

#[tool_router]
impl FaultlineMcp {
    #[tool(
        description = "Find crash groups of a project, as the groups page lists them: filter by state, release or signature text, sort by last_seen, first_seen, events, users, or rate (crashes per 1,000 sessions, with a release)."
    )]
    async fn find_groups(
        &self,
        Parameters(p): Parameters<FindGroups>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        reply(
            async {
                let caller = self.caller(&context);
                let project = self
                    .project(&caller, Scope::TriageRead, p.project.as_deref())
                    .await?;
                let query = GroupQuery {
                    project_id: project.id,
                    state: p
                        .state
                        .as_deref()
                        .map(GroupState::settable)
                        .transpose()
                        .map_err(text)?,
                    product: None,
                    release: p.release,
                    fault_class: None,
                    since: None,
                    until: None,
                    annotation: None,
                    assignee: None,
                    signature_contains: p.query,
                    sort: GroupSort::parse(p.sort.as_deref().unwrap_or("last_seen"))?,
                    limit: p.limit.unwrap_or(20).clamp(1, 100),
                    cursor: None,
                };
                let page = self.state.index.groups(&query).await.map_err(text)?;
                Ok(json!({"groups": page.items}))
            }
            .await,
        )
    }

    #[tool(
        description = "A crash group's evidence: the verdict and fault frame, suspect commits with reasons, what is over-represented in its crashes (correlations), when and after which deploy it appeared, groups that failed in the same function before, a regression's commits, rates per release. JSON, or Markdown with markdown=true."
    )]
    async fn group_evidence(
        &self,
        Parameters(p): Parameters<GroupRef>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        reply(
            async {
                let caller = self.caller(&context);
                self.group(&caller, Scope::TriageRead, p.group_id).await?;
                let evidence = self
                    .state
                    .evidence
                    .of_group(p.group_id)
                    .await
                    .map_err(text)?
                    .ok_or_else(|| format!("no group {}", p.group_id))?;
                Ok(if p.markdown == Some(true) {
                    Value::String(crate::evidence::markdown::render(&evidence))
                } else {
                    json!(evidence)
                })
            }
            .await,
        )
    }

    #[tool(
        description = "One crash: its attributes (release, OS, annotations), signature and class, and the crashing thread's frames (function, file, line, module), top first."
    )]
    async fn get_crash(
        &self,
        Parameters(p): Parameters<CrashRef>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        reply(
            async {
                let caller = self.caller(&context);
                caller.require(Scope::TriageRead).map_err(text)?;
                let stored = self
                    .state
                    .triage
                    .stored_crash(&p.crash_id)
                    .await
                    .map_err(text)?;
                let crash = stored
                    .crash
                    .filter(|c| caller.may(Scope::TriageRead, c.attributes.project_id))
                    .ok_or_else(|| format!("no crash {:?}", p.crash_id))?;
                let view = match crash.payload_key.as_deref() {
                    Some(key) => self.state.triage.processed(key).await,
                    None => None,
                };
                let thread = view
                    .as_ref()
                    .and_then(|v| v.crashing_index().and_then(|i| v.parts.threads.get(i)));
                let frames: Vec<Value> = thread
                    .map(|t| {
                        t.frames
                            .iter()
                            .take(64)
                            .map(|f| {
                                json!({"frame": f.frame, "module": f.module, "function": f.function,
                                       "file": f.file, "line": f.line})
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(json!({"crash": crash, "crashing_thread_frames": frames}))
            }
            .await,
        )
    }

    #[tool(
        description = "Crashes of a project carrying an annotation value (every crash of one user, one machine, one driver), newest first."
    )]
    async fn find_crashes(
        &self,
        Parameters(p): Parameters<FindCrashes>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        reply(
            async {
                let caller = self.caller(&context);
                let project = self
                    .project(&caller, Scope::TriageRead, p.project.as_deref())
                    .await?;
                let limit = p.limit.unwrap_or(25).clamp(1, 100);
                let page = self
                    .state
                    .index
                    .crashes_by_annotation(project.id, &p.annotation, &p.value, limit, None)
                    .await
                    .map_err(text)?;
                Ok(json!({"crashes": page.items}))
            }
            .await,
        )
    }

    #[tool(
        description = "A project's releases, newest first, with their commits, deploys, crashes, new groups, and release health (sessions, crash-free sessions and users, adoption)."
    )]
    async fn list_releases(
        &self,
        Parameters(p): Parameters<ProjectRef>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        reply(
            async {
                let caller = self.caller(&context);
                let project = self
                    .project(&caller, Scope::TriageRead, p.project.as_deref())
                    .await?;
                let releases = self.state.releases.list(project.id).await.map_err(text)?;
                let health = self
                    .state
                    .health
                    .summaries(project.id)
                    .await
                    .map_err(text)?;
                Ok(json!({"releases": releases, "health": health}))
            }
            .await,
        )
    }

    #[tool(
        description = "Symbolicate raw native frames (instruction addresses and the modules they fall in, as Sentry's symbolicator takes them) with the stored debug files: function, file, line and inlined calls per frame. Needs symbols:read."
    )]
    async fn symbolicate_frames(
        &self,
        Parameters(p): Parameters<SymbolicateFrames>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        reply(
            async {
                let caller = self.caller(&context);
                caller.require(Scope::SymbolsRead).map_err(text)?;
                let request = json!({"stacktraces": p.stacktraces, "modules": p.modules});
                let request: crate::process::symbolicate::SymbolicateRequest =
                    serde_json::from_value(request)
                        .map_err(|e| format!("invalid symbolication request: {e}"))?;
                let processor = &self.state.pipeline.processor;
                let response = crate::process::symbolicate::symbolicate(
                    processor.modules(),
                    request,
                    std::time::Instant::now() + processor.symbols_wait(),
                )
                .await;
                Ok(json!(response))
            }
            .await,
        )
    }

    #[tool(
        description = "Change a crash group: its state (open, in_progress, resolved, muted), the release that fixes it, its assignee. Needs a token with triage:write."
    )]
    async fn update_group(
        &self,
        Parameters(p): Parameters<UpdateGroup>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        reply(
            async {
                let caller = self.caller(&context);
                self.group(&caller, Scope::TriageWrite, p.group_id).await?;
                let patch = GroupPatch {
                    state: p
                        .state
                        .as_deref()
                        .map(GroupState::settable)
                        .transpose()
                        .map_err(text)?,
                    assignee: p.assignee.map(Some),
                    resolved_in: p.resolved_in.map(Some),
                    muted_until: None,
                    mute_for_events: None,
                    mute_for_users: None,
                };
                let group = self
                    .state
                    .triage
                    .change_group(p.group_id, &patch, None)
                    .await
                    .map_err(text)?
                    .ok_or_else(|| format!("no group {}", p.group_id))?;
                Ok(json!(group))
            }
            .await,
        )
    }
}

#[tool_handler]
impl ServerHandler for FaultlineMcp {
    fn get_info(&self) -> ServerInfo {
        ServerInfo::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "faultline holds crash groups, their crashes and the evidence of why they happen. \
             Start with find_groups, then group_evidence for a group; get_crash for its frames.",
        )
    }
}

/// Refuses an `/mcp` request without a usable token (401, before the MCP server sees it) and
/// hands the token to the tools through the request's extensions.
pub async fn require_token(State(state): State<App>, mut request: Request, next: Next) -> Response {
    let secret = crate::http::presented_token(request.headers()).map(str::to_owned);
    let caller = match Caller::from_secret(&state, secret.as_deref()).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let token = match caller.authenticated() {
        Ok(token) => token.clone(),
        Err(e) => return e.into_response(),
    };
    request.extensions_mut().insert(token);
    next.run(request).await
}

/// The streamable HTTP service for `/mcp` (sessions kept in memory by this node).
pub fn http_service(
    state: App,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    FaultlineMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    use rmcp::transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    };
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = host_of(&state.config.public_url()) {
        hosts.push(host);
    }
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    StreamableHttpService::new(
        move || Ok(FaultlineMcp::new(state.clone())),
        LocalSessionManager::default().into(),
        config,
    )
}

/// The host of a URL (`https://crash.example.com:8443/x` → `crash.example.com`).
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Serves one MCP client on stdin/stdout acting with `token` (`faultline mcp`).
pub async fn serve_stdio(state: App, token: crate::auth::Token) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let server = FaultlineMcp::for_token(state, token)
        .serve(rmcp::transport::stdio())
        .await?;
    server.waiting().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_come_out_of_urls() {
        assert_eq!(
            host_of("https://crash.example.com:8443/x").as_deref(),
            Some("crash.example.com")
        );
        assert_eq!(host_of("http://[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(
            host_of("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(host_of("").as_deref(), None);
    }
}
