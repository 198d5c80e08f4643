//! `faultline mcp`: the MCP server (docs/MCP.md) for one coding assistant on stdin/stdout,
//! over the configured stores (the same data folder or database as the server), acting with
//! the token given (its scopes and projects apply as on `/mcp`). Logs go to stderr: stdout is
//! the protocol.

use std::process::ExitCode;

use crate::app::App;
use crate::config::Config;

/// `faultline mcp`.
#[derive(clap::Args)]
pub struct McpArgs {
    /// The token the assistant acts with (`triage:read`; `triage:write` to change groups).
    #[arg(long, env = "FAULTLINE_TOKEN", hide_env_values = true)]
    token: String,
}

/// Checks the token, then serves until the client closes stdin.
pub async fn mcp(args: McpArgs, config: Config) -> anyhow::Result<ExitCode> {
    let state = App::open(config).await?;
    let token = match state.registry.authenticate(args.token.trim()).await {
        Ok(Ok(token)) => token,
        Ok(Err(failure)) => {
            eprintln!("error: {}", failure.message());
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => anyhow::bail!("cannot read the tokens: {e}"),
    };
    crate::mcp::serve_stdio(state, token).await?;
    Ok(ExitCode::SUCCESS)
}
