//! `faultline repo …` (repositories, in the configured data directory's database, as `project`
//! does) and `faultline release …` (releases, commits and deploys, over HTTP to a server, for
//! teams without sentry-cli: the same routes sentry-cli uses).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};

use super::admin::{date, open_index, print_rows};
use crate::code::git::Credential;
use crate::code::{Code, NewRepository};
use crate::config::Config;

/// `faultline repo …`.
#[derive(Subcommand)]
pub enum RepoCommand {
    /// Register a repository; the server keeps a mirror under its data folder and fetches it
    /// on a schedule and when a release names a commit it lacks.
    Add {
        /// The name releases use (`acme/game`, sentry-cli's `--commit acme/game@…`).
        name: String,
        /// Its remote URL (HTTPS or SSH).
        #[arg(long, conflicts_with = "path", required_unless_present = "path")]
        url: Option<String>,
        /// A local repository folder instead of a URL.
        #[arg(long)]
        path: Option<PathBuf>,
        /// The branch releases are cut from.
        #[arg(long, default_value = "main")]
        branch: String,
        /// Link to a line when the URL is not GitHub, GitLab, Gitea/Forgejo or Bitbucket:
        /// `https://git.example.com/{commit}/{path}#L{line}`.
        #[arg(long)]
        web_url_template: Option<String>,
        /// A file holding an HTTPS token for a private remote (read once, kept in the
        /// database, never shown).
        #[arg(long, conflicts_with = "ssh_key")]
        token_file: Option<PathBuf>,
        /// The path of an SSH private key for a private remote (the server reads it there).
        #[arg(long)]
        ssh_key: Option<PathBuf>,
    },
    /// List repositories (never their credentials).
    List,
    /// Remove a repository, its code mappings and its mirror.
    Remove {
        /// Its ID (from `faultline repo list`).
        id: i64,
    },
}

/// Runs `faultline repo …`.
pub async fn repo(command: RepoCommand, config: Config) -> anyhow::Result<ExitCode> {
    let index = open_index(&config).await?;
    let code = Code::new(&index, &config.storage.data_dir, config.code.clone());
    match command {
        RepoCommand::Add {
            name,
            url,
            path,
            branch,
            web_url_template,
            token_file,
            ssh_key,
        } => {
            let remote = match (url, path) {
                (Some(url), _) => url,
                (None, Some(path)) => std::fs::canonicalize(&path)
                    .with_context(|| format!("no folder {}", path.display()))?
                    .display()
                    .to_string(),
                (None, None) => anyhow::bail!("give --url or --path"),
            };
            let credential = match (token_file, ssh_key) {
                (Some(file), _) => Some(Credential::HttpsToken(
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?
                        .trim()
                        .to_owned(),
                )),
                (None, Some(key)) => Some(Credential::SshKey(key)),
                (None, None) => None,
            };
            let repo = code
                .add_repository(NewRepository {
                    name,
                    remote,
                    branch: Some(branch),
                    web_url_template,
                    credential,
                })
                .await?;
            eprintln!(
                "repository {} registered (#{}); the server fetches it within code.fetch_interval_secs",
                repo.name, repo.id
            );
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::List => {
            let rows: Vec<Vec<String>> = code
                .repositories()
                .await?
                .into_iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.name,
                        r.remote,
                        r.branch,
                        r.credential.unwrap_or_else(|| "-".into()),
                        date(r.fetched_at),
                        r.fetch_error.unwrap_or_default(),
                    ]
                })
                .collect();
            print_rows(
                &[
                    "ID",
                    "NAME",
                    "REMOTE",
                    "BRANCH",
                    "CREDENTIAL",
                    "FETCHED",
                    "ERROR",
                ],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::Remove { id } => {
            if code.remove_repository(id).await? {
                eprintln!("repository #{id} removed");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: no repository #{id}");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// `faultline release …`: what sentry-cli's `releases` commands do, against `--server`.
#[derive(clap::Args)]
pub struct ReleaseArgs {
    /// The faultline server.
    #[arg(long, env = "FAULTLINE_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A token with the releases:write scope.
    #[arg(long, env = "FAULTLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: ReleaseCommand,
}

/// The release subcommands.
#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Create a release (or complete it), with its commits.
    New {
        /// Its version.
        version: String,
        /// The project (slug).
        #[arg(long, default_value = crate::auth::DEFAULT_PROJECT)]
        project: String,
        /// `REPO@COMMIT` or `REPO@FROM..TO`; repeat per repository. Without a range, the range
        /// starts at the previous release's head.
        #[arg(long = "commit")]
        commits: Vec<String>,
        /// Mark it released now.
        #[arg(long)]
        finalize: bool,
    },
    /// Mark a release released now.
    Finalize {
        /// Its version.
        version: String,
    },
    /// Record a deploy.
    Deploy {
        /// Its version.
        version: String,
        /// The environment (`production`, `staging`).
        #[arg(long = "env", short = 'e')]
        environment: String,
        /// A name for the deploy.
        #[arg(long)]
        name: Option<String>,
    },
}

/// Runs `faultline release …`.
pub async fn release(args: ReleaseArgs) -> anyhow::Result<ExitCode> {
    let base = format!(
        "{}/api/0/organizations/faultline/releases/",
        args.server.trim_end_matches('/')
    );
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let (method, url, body) = match &args.command {
        ReleaseCommand::New {
            version,
            project,
            commits,
            finalize,
        } => {
            let mut refs = Vec::new();
            for spec in commits {
                let (repository, commit) = spec
                    .rsplit_once('@')
                    .with_context(|| format!("{spec:?} is not REPO@COMMIT or REPO@FROM..TO"))?;
                refs.push(json!({"repository": repository, "commit": commit}));
            }
            let mut body = json!({"version": version, "projects": [project]});
            if !refs.is_empty() {
                body["refs"] = Value::Array(refs);
            }
            if *finalize {
                body["dateReleased"] = json!(now);
            }
            (reqwest::Method::POST, base.clone(), body)
        }
        ReleaseCommand::Finalize { version } => (
            reqwest::Method::PUT,
            format!("{base}{}/", crate::code::links::encode_segment(version)),
            json!({"dateReleased": now}),
        ),
        ReleaseCommand::Deploy {
            version,
            environment,
            name,
        } => (
            reqwest::Method::POST,
            format!(
                "{base}{}/deploys/",
                crate::code::links::encode_segment(version)
            ),
            json!({"environment": environment, "name": name, "dateFinished": now}),
        ),
    };
    let request = reqwest::Client::new().request(method, &url).json(&body);
    let Some(answer) =
        super::server_call::call(request, args.token.as_deref(), &args.server).await?
    else {
        return Ok(ExitCode::FAILURE);
    };
    let answer: Value = serde_json::from_str(&answer).unwrap_or_default();
    match &args.command {
        ReleaseCommand::Deploy {
            version,
            environment,
            ..
        } => {
            eprintln!("deploy of {version} to {environment} recorded")
        }
        _ => eprintln!(
            "release {}: {} commits, released {}",
            answer["version"].as_str().unwrap_or("?"),
            answer["commitCount"],
            answer["dateReleased"].as_str().unwrap_or("not yet")
        ),
    }
    Ok(ExitCode::SUCCESS)
}
