//! A repository's mirror, read through the `git` program: a bare clone under the data folder,
//! fetched from its remote, asked for commits, files at a commit, blame and diffs.
//!
//! Why the program and not a library (docs/CODE.md has the measurements): blame with
//! `--ignore-revs-file` and fetch over HTTPS/SSH with the user's credentials are what the
//! suspect commits need, and git does both as every developer's machine does; gix has no
//! stable blame, and git2 would link libgit2 and OpenSSL for fetches git already makes. Every
//! command runs with a timeout, an output cap, no terminal prompt and no system or user
//! configuration, so a hostile remote cannot make one hang or fill memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// The most one git command may print (a blame of a huge file, a long log).
const MAX_OUTPUT_BYTES: u64 = 256 << 20;
/// The largest file read at a commit for source context or blame.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// Why a git command failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The program could not be started.
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    /// It ran and failed; `stderr` is its last words (never holds a credential: they are
    /// passed in the environment, not the command line or the URL).
    #[error("git {command} failed: {stderr}")]
    Failed {
        /// The subcommand.
        command: String,
        /// What it said.
        stderr: String,
    },
    /// It ran past its time.
    #[error("git {0} took longer than its timeout")]
    Timeout(String),
    /// It printed more than it may.
    #[error("git {0} printed more than {MAX_OUTPUT_BYTES} bytes")]
    TooLarge(String),
}

/// How faultline proves who it is to a private remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An HTTPS token (GitHub, GitLab, Gitea and Bitbucket accept one as the password).
    HttpsToken(String),
    /// The path of an SSH private key file.
    SshKey(PathBuf),
}

impl Credential {
    /// The kind as stored (`https_token`, `ssh_key`).
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::HttpsToken(_) => "https_token",
            Credential::SshKey(_) => "ssh_key",
        }
    }

    /// The secret as stored.
    pub fn secret(&self) -> String {
        match self {
            Credential::HttpsToken(token) => token.clone(),
            Credential::SshKey(path) => path.display().to_string(),
        }
    }

    /// A stored credential read back.
    pub fn from_stored(kind: &str, secret: String) -> Option<Credential> {
        match kind {
            "https_token" => Some(Credential::HttpsToken(secret)),
            "ssh_key" => Some(Credential::SshKey(PathBuf::from(secret))),
            _ => None,
        }
    }
}

/// One commit as the log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full SHA.
    pub sha: String,
    /// Author name.
    pub author_name: String,
    /// Author email.
    pub author_email: String,
    /// When it landed (committer date), Unix seconds.
    pub committed_at: i64,
    /// The whole message.
    pub message: String,
    /// The paths it changed.
    pub files: Vec<String>,
}

/// Who last touched one line of a file (blame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlamedLine {
    /// The line's number at the blamed commit, from 1.
    pub line: u32,
    /// The commit that last changed it.
    pub sha: String,
}

/// A commit named by blame, with what blame says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlamedCommit {
    /// Full SHA.
    pub sha: String,
    /// Author name.
    pub author_name: String,
    /// Author email.
    pub author_email: String,
    /// Committer date, Unix seconds.
    pub committed_at: i64,
    /// First line of its message.
    pub summary: String,
}

/// A file's blame: each line's commit, and those commits.
#[derive(Debug, Clone, Default)]
pub struct Blame {
    /// One entry per line, in order.
    pub lines: Vec<BlamedLine>,
    /// The commits named.
    pub commits: Vec<BlamedCommit>,
}

/// A bare mirror of one repository.
#[derive(Debug, Clone)]
pub struct Mirror {
    dir: PathBuf,
    timeout: Duration,
    credential: Option<Credential>,
}

impl Mirror {
    /// The mirror kept in `dir` (not created until `fetch`).
    pub fn new(dir: PathBuf, timeout: Duration, credential: Option<Credential>) -> Mirror {
        Mirror {
            dir,
            timeout,
            credential,
        }
    }

    /// Where it is kept.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the mirror if needed and fetches every branch and tag from `remote` (a URL or a
    /// local folder); whether any branch or tag moved.
    pub async fn fetch(&self, remote: &str) -> Result<bool, GitError> {
        if !self.dir.join("HEAD").is_file() {
            std::fs::create_dir_all(&self.dir).map_err(GitError::Spawn)?;
            self.run(&["init", "--bare", "--quiet"]).await?;
        }
        let before = self.run(&["for-each-ref"]).await?;
        let remote = if Path::new(remote).is_dir() {
            // A local folder: its absolute path, so git treats it as a repository, not a URL.
            std::fs::canonicalize(remote)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| remote.to_owned())
        } else {
            remote.to_owned()
        };
        self.run(&[
            "fetch",
            "--quiet",
            "--prune",
            "--force",
            "--no-write-fetch-head",
            "--",
            &remote,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        ])
        .await?;
        let moved = self.run(&["for-each-ref"]).await? != before;
        if moved {
            // The commit graph with changed-path Bloom filters makes path-limited walks (blame)
            // skip the commits that did not touch the path: 1.0 s → 0.16 s for a file of a
            // 100,000-commit history (docs/CODE.md).
            self.run(&[
                "commit-graph",
                "write",
                "--reachable",
                "--changed-paths",
                "--split",
            ])
            .await?;
        }
        Ok(moved)
    }

    /// Whether the mirror has been fetched at least once.
    pub fn exists(&self) -> bool {
        self.dir.join("HEAD").is_file()
    }

    /// The full SHA of a commit named by SHA (full or abbreviated), tag or branch; `None` when
    /// the mirror does not have it.
    pub async fn resolve(&self, rev: &str) -> Result<Option<String>, GitError> {
        if !safe_rev(rev) || !self.exists() {
            return Ok(None);
        }
        let spec = format!("{rev}^{{commit}}");
        match self.run(&["rev-parse", "--verify", "--quiet", &spec]).await {
            Ok(out) => Ok(Some(String::from_utf8_lossy(&out).trim().to_owned())),
            Err(GitError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The commits reachable from `head` and not from `since` (all of `head`'s history when
    /// `since` is `None`, at most `max`), newest first, each with the paths it changed.
    pub async fn log(
        &self,
        since: Option<&str>,
        head: &str,
        max: usize,
    ) -> Result<Vec<CommitInfo>, GitError> {
        let range = match since {
            Some(since) => format!("{since}..{head}"),
            None => head.to_owned(),
        };
        let max = format!("--max-count={max}");
        // Records start with NUL + RS; fields are split by US; the message ends with RS and the
        // changed paths follow, one per line.
        let out = self
            .run(&[
                "log",
                &max,
                "--no-renames",
                "--name-only",
                "--format=%x00%x1e%H%x1f%an%x1f%ae%x1f%ct%x1f%B%x1e",
                &range,
                "--",
            ])
            .await?;
        Ok(parse_log(&String::from_utf8_lossy(&out)))
    }

    /// Several files' text at one commit, read by one `git cat-file` pair (sizes first, so a
    /// file past `MAX_FILE_BYTES` is skipped unread); `None` for a path that is not a file
    /// there.
    pub async fn files_text_at(
        &self,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<Option<String>>, GitError> {
        let wanted: Vec<usize> = (0..paths.len())
            .filter(|&i| safe_rev(commit) && !paths[i].is_empty() && !paths[i].contains('\n'))
            .collect();
        let mut found = vec![None; paths.len()];
        if wanted.is_empty() {
            return Ok(found);
        }
        let specs: String = wanted
            .iter()
            .map(|&i| format!("{commit}:{}\n", paths[i]))
            .collect();
        let checked = self
            .run_with_input(
                &["cat-file", "--batch-check=%(objecttype) %(objectsize)"],
                Some(specs.into_bytes()),
            )
            .await?;
        let sizes: Vec<Option<u64>> = String::from_utf8_lossy(&checked)
            .lines()
            .map(|line| match line.split_once(' ') {
                Some(("blob", size)) => size.parse().ok().filter(|s| *s <= MAX_FILE_BYTES),
                _ => None,
            })
            .collect();
        let readable: Vec<usize> = wanted
            .iter()
            .zip(&sizes)
            .filter(|(_, size)| size.is_some())
            .map(|(i, _)| *i)
            .collect();
        if readable.is_empty() {
            return Ok(found);
        }
        let specs: String = readable
            .iter()
            .map(|&i| format!("{commit}:{}\n", paths[i]))
            .collect();
        let out = self
            .run_with_input(&["cat-file", "--batch"], Some(specs.into_bytes()))
            .await?;
        let mut rest = out.as_slice();
        for &i in &readable {
            let Some(end) = rest.iter().position(|b| *b == b'\n') else {
                break;
            };
            let header = String::from_utf8_lossy(&rest[..end]).into_owned();
            rest = &rest[end + 1..];
            let size = header
                .rsplit(' ')
                .next()
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|_| header.contains(" blob "));
            let Some(size) = size.filter(|s| *s <= rest.len()) else {
                continue;
            };
            found[i] = Some(String::from_utf8_lossy(&rest[..size]).into_owned());
            rest = rest.get(size + 1..).unwrap_or_default();
        }
        Ok(found)
    }

    /// Every file path at a commit.
    pub async fn files_at(&self, commit: &str) -> Result<Vec<String>, GitError> {
        if !safe_rev(commit) {
            return Ok(Vec::new());
        }
        let out = self
            .run(&["ls-tree", "-r", "-z", "--name-only", commit])
            .await?;
        Ok(out
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect())
    }

    /// Who last touched each line of `path` at `commit`, skipping the revisions listed in
    /// `ignore_revs` (a `.git-blame-ignore-revs` file's text) as `git blame
    /// --ignore-revs-file` does. With `since` (Unix seconds) history older than it is not
    /// walked: lines older are blamed on the boundary commit, itself older than `since`.
    pub async fn blame(
        &self,
        commit: &str,
        path: &str,
        ignore_revs: Option<&str>,
        since: Option<i64>,
    ) -> Result<Blame, GitError> {
        if !safe_rev(commit) {
            return Ok(Blame::default());
        }
        let ignore_file = match ignore_revs {
            Some(text) => {
                let file = tempfile::NamedTempFile::new().map_err(GitError::Spawn)?;
                std::fs::write(file.path(), text).map_err(GitError::Spawn)?;
                Some(file)
            }
            None => None,
        };
        let mut args = vec!["blame", "--porcelain"];
        let since_arg = since.map(|s| format!("--since={s}"));
        if let Some(since) = &since_arg {
            args.push(since);
        }
        let ignore_path;
        if let Some(file) = &ignore_file {
            ignore_path = file.path().display().to_string();
            args.push("--ignore-revs-file");
            args.push(&ignore_path);
        }
        args.extend([commit, "--", path]);
        let out = self.run(&args).await?;
        Ok(parse_blame(&String::from_utf8_lossy(&out)))
    }

    /// The lines a commit removed and added in `path` (against its first parent), without
    /// their `-`/`+` marks.
    pub async fn changed_lines(
        &self,
        sha: &str,
        path: &str,
    ) -> Result<(Vec<String>, Vec<String>), GitError> {
        if !safe_rev(sha) {
            return Ok((Vec::new(), Vec::new()));
        }
        let out = self
            .run(&[
                "show",
                "--format=",
                "--unified=0",
                "--no-renames",
                "--no-ext-diff",
                "--no-color",
                sha,
                "--",
                path,
            ])
            .await?;
        let text = String::from_utf8_lossy(&out);
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for line in text.lines() {
            if line.starts_with("---") || line.starts_with("+++") {
                continue;
            }
            if let Some(rest) = line.strip_prefix('-') {
                removed.push(rest.to_owned());
            } else if let Some(rest) = line.strip_prefix('+') {
                added.push(rest.to_owned());
            }
        }
        Ok((removed, added))
    }

    /// Runs one git command in the mirror: no prompt, no system or user configuration, the
    /// credential in the environment, the timeout and the output cap enforced.
    async fn run(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        self.run_with_input(args, None).await
    }

    /// `run`, with `input` written to the command's standard input.
    async fn run_with_input(
        &self,
        args: &[&str],
        input: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, GitError> {
        let name = args.first().copied().unwrap_or("").to_owned();
        let mut command = tokio::process::Command::new("git");
        command
            .arg("--git-dir")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ASKPASS", "true")
            .env("LC_ALL", "C")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        self.credential_env(&mut command);
        let mut child = command.spawn().map_err(GitError::Spawn)?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let stdin = child.stdin.take();
        let work = async {
            let write_in = async {
                if let (Some(mut stdin), Some(input)) = (stdin, input) {
                    use tokio::io::AsyncWriteExt;
                    // A command that stops reading early is not an error of ours.
                    let _ = stdin.write_all(&input).await;
                }
                Ok::<_, std::io::Error>(())
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut limited_out = (&mut stdout).take(MAX_OUTPUT_BYTES + 1);
            let mut limited_err = (&mut stderr).take(64 << 10);
            let read_out = limited_out.read_to_end(&mut out);
            let read_err = limited_err.read_to_end(&mut err);
            let (a, b, c) = tokio::join!(read_out, read_err, write_in);
            a.and(b).and(c).map_err(GitError::Spawn)?;
            let status = child.wait().await.map_err(GitError::Spawn)?;
            Ok::<_, GitError>((status, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result?,
            Err(_) => return Err(GitError::Timeout(name)),
        };
        if out.len() as u64 > MAX_OUTPUT_BYTES {
            return Err(GitError::TooLarge(name));
        }
        if !status.success() {
            let stderr = String::from_utf8_lossy(&err);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            return Err(GitError::Failed {
                command: name,
                stderr: last
                    .unwrap_or("(no message)")
                    .trim()
                    .chars()
                    .take(300)
                    .collect(),
            });
        }
        Ok(out)
    }

    /// The credential as git reads it: an `Authorization` header from the environment's config
    /// (`GIT_CONFIG_*`, never the command line), or the SSH key through `GIT_SSH_COMMAND`.
    fn credential_env(&self, command: &mut tokio::process::Command) {
        match &self.credential {
            Some(Credential::HttpsToken(token)) => {
                use base64::Engine as _;
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("x-access-token:{token}"));
                command
                    .env("GIT_CONFIG_COUNT", "1")
                    .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                    .env(
                        "GIT_CONFIG_VALUE_0",
                        format!("Authorization: Basic {basic}"),
                    );
            }
            Some(Credential::SshKey(key)) => {
                let key = key.display().to_string().replace('\'', "");
                command.env(
                    "GIT_SSH_COMMAND",
                    format!(
                        "ssh -i '{key}' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
                    ),
                );
            }
            None => {}
        }
    }
}

/// A revision name git may be given as an argument: hex, tag or branch names; never an option
/// (`-…`), a range, or anything with spaces or control characters.
pub fn safe_rev(rev: &str) -> bool {
    !rev.is_empty()
        && rev.len() <= 200
        && !rev.starts_with('-')
        && !rev.contains("..")
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

/// Parses `git log --name-only` in the record format `log` asks for.
fn parse_log(text: &str) -> Vec<CommitInfo> {
    let mut commits = Vec::new();
    for record in text.split("\0\x1e").filter(|r| !r.trim().is_empty()) {
        let Some((head, files)) = record.split_once('\x1e') else {
            continue;
        };
        let mut fields = head.splitn(5, '\x1f');
        let (Some(sha), Some(name), Some(email), Some(time), Some(message)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        commits.push(CommitInfo {
            sha: sha.trim().to_owned(),
            author_name: name.to_owned(),
            author_email: email.to_owned(),
            committed_at: time.trim().parse().unwrap_or(0),
            message: message.trim_end().to_owned(),
            files: files
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        });
    }
    commits
}

/// Parses `git blame --porcelain`: a header per line (`sha orig final [count]`), the commit's
/// fields the first time it appears, then the line's text after a tab.
fn parse_blame(text: &str) -> Blame {
    let mut blame = Blame::default();
    let mut current: Option<(String, u32)> = None;
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for line in text.lines() {
        if line.starts_with('\t') {
            if let Some((sha, final_line)) = current.take() {
                blame.lines.push(BlamedLine {
                    line: final_line,
                    sha,
                });
            }
            continue;
        }
        let mut words = line.splitn(2, ' ');
        let (first, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        if first.len() == 40 && first.bytes().all(|b| b.is_ascii_hexdigit()) {
            let final_line = rest
                .split(' ')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            current = Some((first.to_owned(), final_line));
            if !seen.contains_key(first) {
                seen.insert(first.to_owned(), blame.commits.len());
                blame.commits.push(BlamedCommit {
                    sha: first.to_owned(),
                    author_name: String::new(),
                    author_email: String::new(),
                    committed_at: 0,
                    summary: String::new(),
                });
            }
            continue;
        }
        let Some(index) = current.as_ref().and_then(|(sha, _)| seen.get(sha)) else {
            continue;
        };
        let commit = &mut blame.commits[*index];
        match first {
            "author" => commit.author_name = rest.to_owned(),
            "author-mail" => commit.author_email = rest.trim_matches(['<', '>']).to_owned(),
            "committer-time" => commit.committed_at = rest.parse().unwrap_or(0),
            "summary" => commit.summary = rest.to_owned(),
            _ => {}
        }
    }
    blame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_that_could_be_options_or_ranges_are_refused() {
        assert!(safe_rev("0123abcd"));
        assert!(safe_rev("v1.2.0"));
        assert!(safe_rev("release/2.0"));
        assert!(!safe_rev("--upload-pack=touch /tmp/x"));
        assert!(!safe_rev("a..b"));
        assert!(!safe_rev("a b"));
        assert!(!safe_rev(""));
    }

    #[test]
    fn a_porcelain_blame_names_each_lines_commit_once() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let text = format!(
            "{a} 1 1 2\nauthor Ann\nauthor-mail <ann@x>\ncommitter-time 100\nsummary first\nfilename f.c\n\tint x;\n\
             {a} 2 2\n\tint y;\n\
             {b} 3 3 1\nauthor Bob\nauthor-mail <bob@x>\ncommitter-time 200\nsummary second\nfilename f.c\n\tint z;\n"
        );
        let blame = parse_blame(&text);
        assert_eq!(blame.lines.len(), 3);
        assert_eq!(blame.lines[2].sha, b);
        assert_eq!(blame.lines[1].line, 2);
        assert_eq!(blame.commits.len(), 2);
        assert_eq!(blame.commits[1].author_email, "bob@x");
        assert_eq!(blame.commits[0].committed_at, 100);
    }
}
