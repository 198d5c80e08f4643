//! What git says about the candidates: blame of each frame's file at the release's head (with
//! the repository's `.git-blame-ignore-revs`), the lines each range commit changed in those
//! files, reverts named in messages. Facts only; `mod.rs` decides.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::score::{FrameEvidence, ScoredFrame};
use super::FrameInput;
use crate::code::git::Blame;
use crate::code::{Code, CodeAt, CodeError};
use crate::releases::ReleaseCommit;

/// Blames run at once for one group.
const PARALLEL_BLAMES: usize = 4;

/// The file that lists reformatting revisions blame skips.
const IGNORE_REVS_FILE: &str = ".git-blame-ignore-revs";

/// A candidate commit with its evidence against each frame of its repository.
pub struct Candidate {
    /// The repository.
    pub repository: String,
    /// Full SHA.
    pub sha: String,
    /// Author name.
    pub author_name: String,
    /// Author email.
    pub author_email: String,
    /// When it landed.
    pub committed_at: i64,
    /// First line of its message.
    pub summary: String,
    /// The first release brought it.
    pub in_release: bool,
    /// The repository's link template.
    pub web_url_template: Option<String>,
    /// Evidence per frame.
    pub frames: Vec<(ScoredFrame, FrameEvidence)>,
}

/// Reverts named by messages (`This reverts commit <sha>.`).
#[derive(Default)]
pub struct Reverts {
    /// Commits that revert another.
    pub reverting: HashSet<String>,
    /// Commits reverted.
    pub reverted: HashSet<String>,
}

/// Everything gathered for one group.
#[derive(Default)]
pub struct Gathered {
    /// The candidates.
    pub candidates: Vec<Candidate>,
    /// Reverts among the release's commits.
    pub reverts: Reverts,
    /// Revisions `.git-blame-ignore-revs` lists.
    pub ignored: HashSet<String>,
}

/// Gathers the candidates of each repository the frames are in.
pub async fn gather(
    code: &Code,
    heads: &[CodeAt],
    frames: &[FrameInput],
    commits: &[ReleaseCommit],
    since: Option<i64>,
) -> Result<Gathered, CodeError> {
    let mut gathered = Gathered::default();
    for commit in commits {
        if let Some(target) = reverted_by(commit.message.as_deref().unwrap_or("")) {
            gathered.reverts.reverting.insert(commit.sha.clone());
            gathered.reverts.reverted.insert(target);
        }
    }
    for head in heads {
        let in_repo: Vec<(usize, &FrameInput)> = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.repository == head.repository)
            .collect();
        if in_repo.is_empty() {
            continue;
        }
        let Some(repo) = code.repository_by_name(&head.repository).await? else {
            continue;
        };
        let range: Vec<&ReleaseCommit> = commits
            .iter()
            .filter(|c| c.repository.eq_ignore_ascii_case(&repo.name))
            .collect();
        let reading = Reading::read(code, &repo, &head.commit, &in_repo, since).await?;
        gathered.ignored.extend(reading.ignored.iter().cloned());
        let mut candidates = range_candidates(&repo, &range);
        blame_candidates(&repo, &reading, &in_repo, &mut candidates);
        for candidate in candidates.values_mut() {
            let files = range
                .iter()
                .find(|c| c.sha == candidate.sha)
                .map(|c| c.files.as_slice())
                .unwrap_or_default();
            for (depth, frame) in &in_repo {
                let evidence = reading
                    .evidence(code, &repo, candidate, files, frame)
                    .await?;
                let scored = ScoredFrame {
                    depth: *depth,
                    path: frame.path.clone(),
                    line: frame.line,
                    frame: frame.frame,
                };
                candidate.frames.push((scored, evidence));
            }
        }
        gathered.candidates.extend(candidates.into_values());
    }
    Ok(gathered)
}

/// The release's commits in one repository, as candidates.
fn range_candidates(
    repo: &crate::code::Repository,
    range: &[&ReleaseCommit],
) -> BTreeMap<String, Candidate> {
    range
        .iter()
        .map(|commit| {
            let summary = commit.message.as_deref().unwrap_or("").lines().next();
            let candidate = Candidate {
                repository: repo.name.clone(),
                sha: commit.sha.clone(),
                author_name: commit.author_name.clone().unwrap_or_default(),
                author_email: commit.author_email.clone().unwrap_or_default(),
                committed_at: commit.committed_at.unwrap_or(0),
                summary: summary.unwrap_or("").to_owned(),
                in_release: true,
                web_url_template: repo.web_url_template.clone(),
                frames: Vec::new(),
            };
            (commit.sha.clone(), candidate)
        })
        .collect()
}

/// Adds the commits blame names for each frame's line (older than the release's range).
fn blame_candidates(
    repo: &crate::code::Repository,
    reading: &Reading,
    frames: &[(usize, &FrameInput)],
    candidates: &mut BTreeMap<String, Candidate>,
) {
    for (_, frame) in frames {
        let Some(blame) = reading.blames.get(&frame.path) else {
            continue;
        };
        let Some(line) = blame.lines.iter().find(|l| l.line == frame.line) else {
            continue;
        };
        if candidates.contains_key(&line.sha) {
            continue;
        }
        if let Some(c) = blame.commits.iter().find(|c| c.sha == line.sha) {
            candidates.insert(
                c.sha.clone(),
                Candidate {
                    repository: repo.name.clone(),
                    sha: c.sha.clone(),
                    author_name: c.author_name.clone(),
                    author_email: c.author_email.clone(),
                    committed_at: c.committed_at,
                    summary: c.summary.clone(),
                    in_release: false,
                    web_url_template: repo.web_url_template.clone(),
                    frames: Vec::new(),
                },
            );
        }
    }
}

/// What was read of one repository at the release's head.
struct Reading {
    ignored: HashSet<String>,
    blames: HashMap<String, Blame>,
    texts: HashMap<String, std::sync::Arc<str>>,
}

impl Reading {
    /// Reads the ignore list, each frame file's text and blame at `head`.
    async fn read(
        code: &Code,
        repo: &crate::code::Repository,
        head: &str,
        frames: &[(usize, &FrameInput)],
        since: Option<i64>,
    ) -> Result<Reading, CodeError> {
        let mut paths: Vec<String> = frames.iter().map(|(_, f)| f.path.clone()).collect();
        paths.sort();
        paths.dedup();
        let mut asked = paths.clone();
        asked.push(IGNORE_REVS_FILE.to_owned());
        let mut texts = code.texts_at(repo, head, &asked).await?;
        let ignore_text = texts.pop().flatten();
        let ignored: HashSet<String> = ignore_text
            .as_deref()
            .unwrap_or("")
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| l.len() >= 7 && l.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
            .collect();
        let mirror = code.mirror(repo);
        // A few blames at once: each is one git process, mostly waiting on its own reads.
        let mut blames = HashMap::new();
        for batch in paths.chunks(PARALLEL_BLAMES) {
            let runs = batch.iter().map(|path| {
                let (mirror, head, path) = (mirror.clone(), head.to_owned(), path.clone());
                let ignore = ignore_text.as_deref().map(str::to_owned);
                async move {
                    let blame = mirror.blame(&head, &path, ignore.as_deref(), since).await;
                    (path, blame)
                }
            });
            for (path, blame) in futures::future::join_all(runs).await {
                blames.insert(path, blame?);
            }
        }
        let texts = paths
            .into_iter()
            .zip(texts)
            .filter_map(|(p, t)| t.map(|t| (p, t)))
            .collect();
        Ok(Reading {
            ignored,
            blames,
            texts,
        })
    }

    /// A candidate's evidence against one frame.
    async fn evidence(
        &self,
        code: &Code,
        repo: &crate::code::Repository,
        candidate: &Candidate,
        files: &[String],
        frame: &FrameInput,
    ) -> Result<FrameEvidence, CodeError> {
        let blame = self.blames.get(&frame.path);
        let distance = blame.and_then(|b| {
            b.lines
                .iter()
                .filter(|l| l.sha == candidate.sha)
                .map(|l| l.line.abs_diff(frame.line))
                .min()
        });
        let touched_file = files.iter().any(|f| f == &frame.path) || distance.is_some();
        let dir = frame.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let touched_dir = touched_file
            || files
                .iter()
                .any(|f| f.rsplit_once('/').map(|(d, _)| d).unwrap_or("") == dir);
        let line_text = self
            .texts
            .get(&frame.path)
            .and_then(|t| t.lines().nth(frame.line.saturating_sub(1) as usize))
            .map(str::trim)
            .unwrap_or("");
        let pickaxe = if touched_file && !line_text.is_empty() {
            let (removed, added) = code
                .mirror(repo)
                .changed_lines(&candidate.sha, &frame.path)
                .await?;
            removed.iter().chain(&added).any(|l| l.trim() == line_text)
        } else {
            false
        };
        Ok(FrameEvidence {
            distance,
            pickaxe,
            file: touched_file,
            directory: touched_dir,
        })
    }
}

/// The commit a revert's message names (`This reverts commit <sha>.`).
fn reverted_by(message: &str) -> Option<String> {
    let at = message.find("This reverts commit ")?;
    let sha: String = message[at + "This reverts commit ".len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (sha.len() >= 7).then(|| sha.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_revert_names_the_commit_it_reverts() {
        let message = "Revert \"Add retry\"\n\nThis reverts commit 0123456789abcdef0123456789abcdef01234567.\n";
        assert_eq!(
            super::reverted_by(message).as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(super::reverted_by("Fix the retry"), None);
    }
}
