//! `faultline upload PATH...`: sends debug files, JavaScript files and source maps to a faultline
//! server. Files and archives go as they are; folders (dSYM bundles, Breakpad trees, build
//! output) are walked and each file is sent with its path relative to the folder's parent — or,
//! with `--release` (JavaScript files without debug IDs), relative to the folder itself, so that
//! `--url-prefix` plus that path is the URL the file is served at. Shows a progress bar over
//! bytes, then a table of what the server did with each file. Exits 1 if any file was rejected.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

/// Arguments of `faultline upload`.
#[derive(Args)]
pub struct UploadArgs {
    /// Debug files, folders of them, or zip/tar/tar.gz archives.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The faultline server.
    #[arg(long, env = "FAULTLINE_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An API token with the symbols:write scope (`faultline token create --scope symbols:write`).
    #[arg(long, env = "FAULTLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// JavaScript: the release that files without a debug ID belong to.
    #[arg(long)]
    release: Option<String>,
    /// JavaScript: the release's distribution.
    #[arg(long, requires = "release")]
    dist: Option<String>,
    /// JavaScript: the URL a folder's files are served under (`~/static/js` for any host).
    #[arg(long, requires = "release")]
    url_prefix: Option<String>,
    /// The project release files are kept for (slug; the default project without it).
    #[arg(long)]
    project: Option<String>,
}

/// One file's outcome as the server reports it.
#[derive(Deserialize)]
struct FileOutcome {
    name: String,
    status: String,
    reason: Option<String>,
    file: Option<FileIdentity>,
    artifact: Option<ArtifactIdentity>,
}

#[derive(Deserialize)]
struct ArtifactIdentity {
    kind: String,
    debug_id: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct FileIdentity {
    debug_id: String,
    format: String,
    arch: String,
}

#[derive(Deserialize)]
struct ServerAnswer {
    error: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    files: Vec<FileOutcome>,
}

/// Every regular file to send, with the name it is sent under: its path from the folder's
/// parent, or from the folder itself when `inside`.
fn collect(paths: &[PathBuf], inside: bool) -> anyhow::Result<Vec<(PathBuf, String)>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(PathBuf, String)>) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read folder {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(&entry.path(), &name, out)?;
            } else if kind.is_file() {
                out.push((entry.path(), name));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read {} (check the path)", path.display()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if meta.is_dir() {
            let start = out.len();
            walk(path, &name, &mut out)?;
            if inside {
                for (_, sent) in &mut out[start..] {
                    *sent = sent[name.len() + 1..].to_owned();
                }
            }
        } else {
            out.push((path.clone(), name));
        }
    }
    Ok(out)
}

/// Sends every file and prints the table.
pub async fn run(args: UploadArgs) -> anyhow::Result<ExitCode> {
    let files = collect(&args.paths, args.release.is_some())?;
    let mut release_query: Vec<(&str, &str)> = Vec::new();
    for (key, value) in [
        ("release", &args.release),
        ("dist", &args.dist),
        ("url_prefix", &args.url_prefix),
        ("project", &args.project),
    ] {
        if let Some(value) = value {
            release_query.push((key, value));
        }
    }
    if files.is_empty() {
        anyhow::bail!("no files found under the given paths");
    }
    let total: u64 = files
        .iter()
        .map(|(path, _)| std::fs::metadata(path).map_or(0, |m| m.len()))
        .sum();
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .expect("valid template"),
    );
    let client = reqwest::Client::new();
    check_token(&client, &args).await?;
    let endpoint = format!("{}/api/v1/symbols", args.server.trim_end_matches('/'));
    let mut outcomes = Vec::new();
    for (path, name) in &files {
        progress.set_message(name.clone());
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let bar = progress.clone();
        let body = reqwest::Body::wrap_stream(ReaderStream::new(file).inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                bar.inc(chunk.len() as u64);
            }
        }));
        let mut request = client
            .post(&endpoint)
            .query(&[("name", name.as_str())])
            .query(&release_query)
            .body(body);
        if let Some(token) = &args.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| {
                format!("cannot reach the faultline server at {} (is `faultline serve` running? set --server or FAULTLINE_URL)", args.server)
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("the server's answer was cut off")?;
        let answer: ServerAnswer = serde_json::from_str(&text).with_context(|| {
            format!("the server answered {status} with something that is not faultline JSON: {text:.200}")
        })?;
        if answer.files.is_empty() {
            outcomes.push(FileOutcome {
                name: name.clone(),
                status: "rejected".into(),
                reason: Some(format!(
                    "HTTP {status}: {}{}",
                    answer.error.unwrap_or_default(),
                    answer.detail.map(|d| format!(" ({d})")).unwrap_or_default()
                )),
                file: None,
                artifact: None,
            });
        } else {
            outcomes.extend(answer.files);
        }
    }
    progress.finish_and_clear();
    print_table(&outcomes);
    let rejected = outcomes.iter().filter(|o| o.status == "rejected").count();
    Ok(if rejected > 0 {
        eprintln!("error: {rejected} file(s) rejected; see the reasons above");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Asks the server whether the token may upload before sending anything (a refused upload would
/// otherwise be cut off mid-body).
async fn check_token(client: &reqwest::Client, args: &UploadArgs) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/token", args.server.trim_end_matches('/'));
    let mut request = client.get(&url);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| {
        format!("cannot reach the faultline server at {} (is `faultline serve` running? set --server or FAULTLINE_URL)", args.server)
    })?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "the server refused the token (HTTP {status}: {}); pass a token with the symbols:write scope as --token or FAULTLINE_TOKEN (`faultline token create --scope symbols:write`)",
            answer["error"].as_str().unwrap_or("no reason given")
        );
    }
    let scopes = answer["scopes"].as_array().cloned().unwrap_or_default();
    if !scopes.iter().any(|s| s == "symbols:write") {
        anyhow::bail!(
            "this token lacks the symbols:write scope (it has {}); create one with `faultline token create --scope symbols:write`",
            serde_json::Value::Array(scopes)
        );
    }
    Ok(())
}

fn print_table(outcomes: &[FileOutcome]) {
    let rows: Vec<[String; 4]> = outcomes
        .iter()
        .map(|o| {
            let (id, kind) = match (&o.file, &o.artifact) {
                (Some(f), _) => (f.debug_id.clone(), format!("{} {}", f.format, f.arch)),
                (None, Some(a)) => (
                    a.debug_id
                        .clone()
                        .or_else(|| a.url.clone())
                        .unwrap_or_default(),
                    a.kind.replace('_', " "),
                ),
                (None, None) => (String::new(), String::new()),
            };
            let status = match &o.reason {
                Some(reason) => format!("{}: {reason}", o.status),
                None => o.status.clone(),
            };
            [o.name.clone(), kind, id, status]
        })
        .collect();
    let header = ["FILE", "FORMAT", "DEBUG ID", "RESULT"];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 4]| {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    let count = |s: &str| outcomes.iter().filter(|o| o.status == s).count();
    println!(
        "\n{} stored, {} already present, {} rejected, {} skipped",
        count("stored"),
        count("already_present"),
        count("rejected"),
        count("skipped")
    );
}
