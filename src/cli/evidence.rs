//! `faultline evidence GROUP [--markdown]`: a group's evidence from a server (docs/EVIDENCE.md),
//! as JSON or as Markdown for a ticket or a chat.

use std::process::ExitCode;

use anyhow::Context;

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
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| {
        format!(
            "cannot reach the faultline server at {} (set --server or FAULTLINE_URL)",
            args.server
        )
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        eprintln!(
            "error: the server said {status}: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("{}", body.trim_end());
    Ok(ExitCode::SUCCESS)
}
