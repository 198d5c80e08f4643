//! `faultline token …` and `faultline project …`: manage API tokens, projects and ingest keys
//! in the configured data directory's database directly (no server needed). A new secret is
//! printed alone on stdout, so scripts can capture it; everything else goes to stderr or tables.

use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::{NewToken, Registry, Scope};
use crate::cluster::ClusterEvents;
use crate::config::Config;
use crate::group::index::{CrashIndex, PayloadBudget};

/// `faultline token …`.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once; only its hash is kept).
    Create {
        /// A scope it grants: ingest, symbols:read, symbols:write, triage:read, triage:write,
        /// admin. Repeat for several.
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// Limit it to a project (slug); repeat for several. Without it: every project.
        #[arg(long = "project")]
        projects: Vec<String>,
        /// A label saying who or what holds it.
        #[arg(long, default_value = "")]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires: Option<u32>,
    },
    /// List tokens (IDs, labels, scopes, projects, dates; never the tokens).
    List,
    /// Revoke a token by ID (running servers refuse it within 2 seconds).
    Revoke {
        /// The token's ID (`tok_…`, from `faultline token list`).
        id: String,
    },
}

/// `faultline project …`.
#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Create a project (its slug is derived from the name).
    Create {
        /// Its display name.
        name: String,
    },
    /// List projects.
    List,
    /// Create an ingest key for a project and print it (shown once), for crash reporters'
    /// URLs: `/submit?key=…`, Sentry DSNs `http://KEY@HOST/PROJECT`, `…/unreal/KEY/`, `token=`.
    Key {
        /// The project's slug.
        project: String,
        /// List the project's keys instead of creating one.
        #[arg(long, conflicts_with = "revoke")]
        list: bool,
        /// Revoke the key with this ID instead of creating one.
        #[arg(long, value_name = "KEY_ID")]
        revoke: Option<String>,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
}

/// The registry in the configured database (created and migrated if new).
async fn open(config: &Config) -> anyhow::Result<Registry> {
    let index = open_index(config).await?;
    let events = std::sync::Arc::new(ClusterEvents::new(&index, "cli"));
    Ok(Registry::new(index.pool().clone(), events))
}

/// The configured database (created and migrated if new).
pub(super) async fn open_index(config: &Config) -> anyhow::Result<CrashIndex> {
    std::fs::create_dir_all(&config.storage.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the data folder {}: {e} (set storage.data_dir or FAULTLINE_STORAGE_DATA_DIR)",
            config.storage.data_dir.display()
        )
    })?;
    let url = config.index_url();
    let index = CrashIndex::open(
        &url,
        PayloadBudget {
            per_new_group: 0,
            per_group_hour: 0,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot open the crash index at {url}: {e}"))?;
    Ok(index)
}

pub(super) fn date(unix: Option<i64>) -> String {
    unix.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map_or_else(
            || "-".to_owned(),
            |t| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute()
                )
            },
        )
}

pub(super) fn print_rows(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Runs `faultline token …`.
pub async fn token(command: TokenCommand, config: Config) -> anyhow::Result<ExitCode> {
    let registry = open(&config).await?;
    match command {
        TokenCommand::Create {
            scopes,
            projects,
            name,
            expires,
        } => {
            let (secret, token) = registry
                .create_token(&NewToken {
                    name,
                    scopes,
                    projects,
                    expires_in_days: expires,
                })
                .await?;
            eprintln!(
                "created token {} (copy it now: it is not shown again)",
                token.id
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            let projects = registry.projects().await?;
            let slug = |id: &i64| {
                projects
                    .iter()
                    .find(|p| p.id == *id)
                    .map_or_else(|| id.to_string(), |p| p.slug.clone())
            };
            let rows: Vec<Vec<String>> = registry
                .tokens()
                .await?
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.scopes
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        t.projects.as_ref().map_or_else(
                            || "*".to_owned(),
                            |ids| ids.iter().map(slug).collect::<Vec<_>>().join(","),
                        ),
                        date(Some(t.created_at)),
                        date(t.expires_at),
                        date(t.last_used_at),
                        if t.revoked_at.is_some() {
                            "revoked".to_owned()
                        } else {
                            "active".to_owned()
                        },
                    ]
                })
                .collect();
            print_rows(
                &[
                    "ID",
                    "NAME",
                    "SCOPES",
                    "PROJECTS",
                    "CREATED",
                    "EXPIRES",
                    "LAST USED",
                    "STATE",
                ],
                &rows,
            );
        }
        TokenCommand::Revoke { id } => {
            if !registry.revoke_token(&id).await? {
                anyhow::bail!("no active token {id:?} (see `faultline token list`)");
            }
            eprintln!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `faultline project …`.
pub async fn project(command: ProjectCommand, config: Config) -> anyhow::Result<ExitCode> {
    let registry = open(&config).await?;
    match command {
        ProjectCommand::Create { name } => {
            let project = registry.create_project(&name).await?;
            println!("{}", project.slug);
            eprintln!(
                "created project {:?}; give crash reporters a key with `faultline project key {}`",
                project.name, project.slug
            );
        }
        ProjectCommand::List => {
            let rows: Vec<Vec<String>> = registry
                .projects()
                .await?
                .iter()
                .map(|p| {
                    vec![
                        p.id.to_string(),
                        p.slug.clone(),
                        p.name.clone(),
                        date(Some(p.created_at)),
                    ]
                })
                .collect();
            print_rows(&["ID", "SLUG", "NAME", "CREATED"], &rows);
        }
        ProjectCommand::Key {
            project,
            list,
            revoke,
        } => {
            let project = registry.project(&project).await?.ok_or_else(|| {
                anyhow::anyhow!("no project {project:?} (see `faultline project list`)")
            })?;
            if list {
                let rows: Vec<Vec<String>> = registry
                    .ingest_keys(&project)
                    .await?
                    .iter()
                    .map(|k| vec![k.id.clone(), date(Some(k.created_at)), date(k.revoked_at)])
                    .collect();
                print_rows(&["ID", "CREATED", "REVOKED"], &rows);
            } else if let Some(id) = revoke {
                let owned = registry
                    .ingest_keys(&project)
                    .await?
                    .iter()
                    .any(|k| k.id == id);
                if !owned || !registry.revoke_ingest_key(&id).await? {
                    anyhow::bail!(
                        "no active key {id:?} in project {:?} (see `faultline project key {} --list`)",
                        project.slug,
                        project.slug
                    );
                }
                eprintln!("revoked key {id}");
            } else {
                let (secret, key) = registry.create_ingest_key(&project).await?;
                eprintln!(
                    "created ingest key {} for project {:?} (copy it now: it is not shown again)",
                    key.id, project.slug
                );
                println!("{secret}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
