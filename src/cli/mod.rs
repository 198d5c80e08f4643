//! The `faultline` command line: `serve` runs the server, `upload` sends debug files to one,
//! `process` processes a dump offline, `token` and `project` manage access.
//! Failures print `error: …` with what to do next and exit non-zero.

mod admin;
mod code;
mod evidence;
mod mcp;
mod process;
mod report;
mod retention;
mod server_call;
mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::Config;
use crate::server::{BoundServer, ADMIN_TOKEN_FILE};

/// faultline: a native crash processing server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (settings: see docs/CONFIGURATION.md).
    #[arg(long, global = true, env = "FAULTLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (defaults: 127.0.0.1:8080, ./symbol-store, ./data).
    Serve {
        /// Address to listen on (server.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Root folder of the object store (storage.root).
        #[arg(long)]
        store: Option<PathBuf>,
        /// Folder for server state and scratch space (storage.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Upload debug files, folders of them (dSYM bundles, Breakpad trees) or archives.
    Upload(upload::UploadArgs),
    /// Process one minidump offline and print its symbolicated threads.
    Process(process::ProcessArgs),
    /// Manage API tokens (in the configured data directory; no server needed).
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Manage projects and their ingest keys (in the configured data directory).
    #[command(subcommand)]
    Project(admin::ProjectCommand),
    /// Manage repositories (in the configured data directory; the server mirrors them).
    #[command(subcommand)]
    Repo(code::RepoCommand),
    /// Create releases with their commits, finalize them, record deploys (over HTTP).
    Release(code::ReleaseArgs),
    /// A group's evidence (verdict, suspects, correlations, timeline, history) from a server,
    /// as JSON or `--markdown` for a ticket.
    Evidence(evidence::EvidenceArgs),
    /// Serve the MCP tools to one coding assistant on stdin/stdout (over the configured
    /// stores, acting with --token / FAULTLINE_TOKEN).
    Mcp(mcp::McpArgs),
    /// Delete what is past its age now: unused debug files, old crash payloads, leftovers of
    /// unfinished uploads (`--dry-run` only reports).
    Retention(retention::RetentionArgs),
    /// Bring the crash index's schema up to date and exit (a deployment's migration step;
    /// `serve` does it too, and nodes that start at once migrate once).
    Migrate,
}

/// Flag overrides, shaped like [`Config`] with only the flags given.
#[derive(Serialize, Default)]
struct Overrides {
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    server: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    storage: serde_json::Map<String, serde_json::Value>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FAULTLINE_LOG")
                .unwrap_or_else(|_| "faultline=info,tower_http=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The server runs on every core. A one-shot command needs no worker threads of its own:
    // its thread also runs the CPU jobs and file reads it asks for (`process` asks for a dozen,
    // and each hand-off to a pool thread and back cost more than the job), and at most two
    // blocking threads serve what goes through tokio's own file API.
    let runtime = if serving {
        crate::cpu::start_server_pool();
        tokio::runtime::Runtime::new()
    } else {
        crate::cpu::run_jobs_on_this_thread();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(2)
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command, cli.config));
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    if serving {
        return code;
    }
    // A one-shot command is done: exit without shutting the runtime down piece by piece (its
    // blocking-pool threads, the symbol caches), which took 1–2 ms of a 15 ms `process` run,
    // and without the allocator's exit handler, which hands every free page back to the
    // kernel one call at a time just before the kernel frees them all. Nothing is left
    // unwritten: files are closed by now, stderr is unbuffered and stdout is flushed here.
    let code = if code == ExitCode::SUCCESS { 0 } else { 1 };
    if let Err(e) = std::io::Write::flush(&mut std::io::stdout()) {
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
    // SAFETY: `_exit` ends the process at once; every thread's work that matters is done.
    unsafe { libc::_exit(code) }
}

/// Runs one command (with the configuration file given by `--config`, if any).
async fn run(command: Command, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let load = || Config::load(config_file.as_deref(), Overrides::default());
    match command {
        Command::Serve {
            listen,
            store,
            data_dir,
        } => {
            let mut overrides = Overrides::default();
            if let Some(listen) = listen {
                overrides
                    .server
                    .insert("listen".into(), listen.to_string().into());
            }
            if let Some(store) = store {
                overrides
                    .storage
                    .insert("root".into(), store.display().to_string().into());
            }
            if let Some(dir) = data_dir {
                overrides
                    .storage
                    .insert("data_dir".into(), dir.display().to_string().into());
            }
            serve(Config::load(config_file.as_deref(), overrides)?).await
        }
        Command::Upload(args) => upload::run(args).await,
        Command::Process(args) => process::run(args, load()?).await,
        Command::Token(command) => admin::token(command, load()?).await,
        Command::Project(command) => admin::project(command, load()?).await,
        Command::Retention(args) => retention::run(args, load()?).await,
        Command::Repo(command) => code::repo(command, load()?).await,
        Command::Release(args) => code::release(args).await,
        Command::Evidence(args) => evidence::evidence(args).await,
        Command::Mcp(args) => mcp::mcp(args, load()?).await,
        Command::Migrate => migrate(load()?).await,
    }
}

async fn migrate(config: Config) -> anyhow::Result<ExitCode> {
    let url = config.index_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.storage.data_dir)?;
    }
    let budget = crate::group::index::PayloadBudget {
        per_new_group: 0,
        per_group_hour: 0,
    };
    crate::group::index::CrashIndex::open(&url, budget)
        .await
        .map_err(|e| anyhow::anyhow!("cannot migrate the crash index at {url}: {e}"))?;
    eprintln!("the crash index is up to date");
    Ok(ExitCode::SUCCESS)
}

/// Serves until Ctrl-C. Once bound it says, once, where to go: the web UI's address and the
/// command that shows the first admin token (never the token).
async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let token_file = config.storage.data_dir.join(ADMIN_TOKEN_FILE);
    let public_url = config
        .server
        .public_url
        .trim()
        .trim_end_matches('/')
        .to_owned();
    let server = BoundServer::bind(config).await?;
    let addr = server.local_addr();
    let origin = match public_url.as_str() {
        "" => format!("http://{addr}"),
        url => url.to_owned(),
    };
    let token_hint = if token_file.is_file() {
        format!(" (the first admin token: `cat {}`)", token_file.display())
    } else {
        String::new()
    };
    eprintln!("faultline: the web UI is at {origin}/ui/; sign in with a token{token_hint}");
    tracing::info!(addr = %addr, "faultline listening");
    server.serve().await?;
    Ok(ExitCode::SUCCESS)
}
