//! `faultline evidence GROUP [--markdown]`: a group's evidence from a server (docs/EVIDENCE.md),
//! as JSON or as Markdown for a ticket or a chat.

use std::process::ExitCode;

/// `faultline evidence`.
#[derive(clap::Args)]
pub struct EvidenceArgs {
    /// The group's ID.
    group: i64,
    /// Markdown instead of JSON.
    #[arg(long)]
    markdown: bool,
    /// The faultline server.
    #[arg(long, env = "FAULTLINE_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A token with the triage:read scope on the group's project.
    #[arg(long, env = "FAULTLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Prints the evidence; a failure says what the server answered.
pub async fn evidence(args: EvidenceArgs) -> anyhow::Result<ExitCode> {
    let format = if args.markdown { "markdown" } else { "json" };
    let url = format!(
        "{}/api/v1/groups/{}/evidence?format={format}",
        args.server.trim_end_matches('/'),
        args.group
    );
    let request = reqwest::Client::new().get(&url);
    let Some(body) = super::server_call::call(request, args.token.as_deref(), &args.server).await?
    else {
        return Ok(ExitCode::FAILURE);
    };
    println!("{}", body.trim_end());
    Ok(ExitCode::SUCCESS)
}
