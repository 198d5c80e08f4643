//! Suspect commits: which change most likely caused a group. Candidates are the commits of
//! the group's first release, or of the release it regressed in (previous head .. its head) and the commits that last touched each
//! in-app frame's line (blame at that head). Some are excluded, with the reason kept (landed
//! after the first crash or after the release, reverts and what they revert, revisions in
//! `.git-blame-ignore-revs`, bot authors, blame older than the configured age); the rest are
//! scored against the frames (`score.rs`), and only those within a factor of the best are kept.
//!
//! Computed beside crash processing, never on its path: the server's job finds groups whose
//! suspects are missing or stale (a release gained commits), computes them and stores the
//! report with its inputs.

mod evidence;
pub mod score;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use crate::code::{links, Code, CodeAt, CodeError};
use crate::group::index::Group;
use crate::releases::{Release, ReleaseError, Releases};
use crate::triage::Triage;

/// Seconds a new crash's payload may take to be readable before a group without one is
/// reported as having no crash to read.
const PAYLOAD_GRACE_SECS: i64 = 120;

/// In-app frames a group's suspects are computed from.
pub const MAX_FRAMES: usize = 25;

/// Why a suspect computation failed.
#[derive(Debug, thiserror::Error)]
pub enum SuspectError {
    /// The database failed.
    #[error("suspects: {0}")]
    Database(#[from] sqlx::Error),
    /// Repositories or git failed.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// Releases failed.
    #[error(transparent)]
    Releases(#[from] ReleaseError),
    /// The crash index failed.
    #[error(transparent)]
    Index(#[from] crate::group::index::IndexError),
    /// A stored report does not read back.
    #[error("a stored suspect report is unreadable: {0}")]
    Report(#[from] serde_json::Error),
}

/// Why a candidate is not a suspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// It landed after the group's first crash.
    AfterFirstCrash,
    /// It landed after the release was released.
    AfterRelease,
    /// It reverts another commit.
    Revert,
    /// A later commit reverts it.
    Reverted,
    /// `.git-blame-ignore-revs` lists it (reformatting).
    IgnoredRevision,
    /// Its author matches a bot pattern.
    Bot,
    /// It last touched the line longer ago than `code.max_blame_age_days`.
    TooOld,
}

/// A commit as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitRef {
    /// The repository.
    pub repository: String,
    /// Full SHA.
    pub sha: String,
    /// Author name.
    pub author_name: String,
    /// Author email.
    pub author_email: String,
    /// When it landed, Unix seconds.
    pub committed_at: i64,
    /// The message's first line.
    pub summary: String,
    /// The commit in the repository's web view.
    pub link: Option<String>,
    /// The first release brought it (else blame found it).
    pub in_release: bool,
}

/// A suspect: the commit, its score, and the reasons in words.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Suspect {
    /// The commit.
    #[serde(flatten)]
    pub commit: CommitRef,
    /// Its score (docs/CODE.md).
    pub score: f64,
    /// Why, one feature per entry.
    pub reasons: Vec<StoredReason>,
}

/// A reason as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredReason {
    /// The feature.
    pub feature: String,
    /// The frame's depth among in-app frames.
    pub depth: usize,
    /// Its value before weights.
    pub value: f64,
    /// In words.
    pub words: String,
}

/// A candidate left out, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Excluded {
    /// The commit.
    #[serde(flatten)]
    pub commit: CommitRef,
    /// Why.
    pub reason: Exclusion,
}

/// A frame the suspects were computed from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrameInput {
    /// Its position in the crashing thread.
    pub frame: usize,
    /// Its file as the debug information names it.
    pub file: String,
    /// Its line.
    pub line: u32,
    /// The repository it was found in.
    pub repository: String,
    /// The path there.
    pub path: String,
}

/// A group's suspects with their inputs, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuspectReport {
    /// The group.
    pub group_id: i64,
    /// The release whose commits were candidates.
    pub release: Option<String>,
    /// The crash whose frames were read.
    pub crash_id: Option<String>,
    /// The heads blame ran at.
    pub heads: Vec<CodeAt>,
    /// The frames used.
    pub frames: Vec<FrameInput>,
    /// Suspects, best first.
    pub suspects: Vec<Suspect>,
    /// Candidates scored but not kept (their scores), best first.
    pub others: Vec<Suspect>,
    /// Candidates excluded, and why.
    pub excluded: Vec<Excluded>,
    /// Why there are none, when nothing could be computed.
    pub note: Option<String>,
    /// When, Unix seconds.
    pub computed_at: i64,
}

/// Computes, stores and reads suspect commits.
pub struct Suspects {
    pool: AnyPool,
    code: Arc<Code>,
    releases: Arc<Releases>,
    triage: Arc<Triage>,
    bots: regex::RegexSet,
    max_age_secs: Option<i64>,
}

impl Suspects {
    /// The service; `bot_authors` are regular expressions (checked at start-up).
    pub fn new(
        pool: AnyPool,
        code: Arc<Code>,
        releases: Arc<Releases>,
        triage: Arc<Triage>,
    ) -> Result<Suspects, regex::Error> {
        let config = code.config().clone();
        let bots = regex::RegexSetBuilder::new(&config.bot_authors)
            .case_insensitive(true)
            .build()?;
        Ok(Suspects {
            pool,
            code,
            releases,
            triage,
            bots,
            max_age_secs: (config.max_blame_age_days > 0)
                .then(|| config.max_blame_age_days.saturating_mul(86_400) as i64),
        })
    }

    /// A group's stored suspects.
    pub async fn stored(&self, group_id: i64) -> Result<Option<SuspectReport>, SuspectError> {
        let row = sqlx::query("SELECT report FROM group_suspects WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.try_get("report")?;
        Ok(Some(serde_json::from_str(&text)?))
    }

    /// Groups whose investigated release (`investigated_release`) has a release record and
    /// whose suspects are missing, stale, or from another release (it regressed), oldest
    /// first.
    pub async fn due(&self, limit: i64) -> Result<Vec<i64>, SuspectError> {
        self.due_groups(None, limit).await
    }

    /// Due groups, all or only `only` (group IDs start at 1).
    async fn due_groups(&self, only: Option<i64>, limit: i64) -> Result<Vec<i64>, SuspectError> {
        let rows = sqlx::query(
            "SELECT g.id FROM crash_groups g JOIN releases r ON r.project_id = g.project_id \
             AND r.version = (CASE WHEN g.regressed = 1 AND g.last_release IS NOT NULL \
                THEN g.last_release ELSE g.first_release END) \
             LEFT JOIN group_suspects s ON s.group_id = g.id \
             WHERE g.merged_into IS NULL AND (s.group_id IS NULL OR s.stale = 1 \
                OR s.release_id IS NULL OR s.release_id <> r.id) \
             AND ($1 = 0 OR g.id = $1) ORDER BY g.id LIMIT $2",
        )
        .bind(only.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<i64, _>("id").ok())
            .collect())
    }

    /// Whether one group is due (see `due`).
    async fn due_group(&self, group_id: i64) -> Result<bool, SuspectError> {
        Ok(self
            .due_groups(Some(group_id), 1)
            .await?
            .contains(&group_id))
    }

    /// Computes the suspects of every due group (at most `limit`); how many were computed.
    pub async fn run_due(&self, limit: i64) -> Result<usize, SuspectError> {
        let due = self.due(limit).await?;
        for &group in &due {
            if let Err(e) = self.compute(group).await {
                tracing::warn!(group, error = %e, "suspect commits could not be computed");
                self.store(group, None, &failed(group, e.to_string()))
                    .await?;
            }
        }
        Ok(due.len())
    }

    /// Computes a group's suspects now and stores them.
    pub async fn compute(&self, group_id: i64) -> Result<Option<SuspectReport>, SuspectError> {
        let Some(group) = self.triage.group(group_id).await? else {
            return Ok(None);
        };
        let release = match investigated_release(&group) {
            Some(version) => self.releases.get(group.project_id, version).await?,
            None => None,
        };
        let report = match &release {
            Some(release) => match self.investigate(&group, release).await? {
                Some(report) => report,
                // Its crash's payload is still being written: the next look computes it.
                None => return Ok(None),
            },
            None => failed(
                group.id,
                "the group's release has no commits recorded".into(),
            ),
        };
        self.store(group.id, release.as_ref().map(|r| r.id), &report)
            .await?;
        Ok(Some(report))
    }

    /// The suspects of a group from its investigated release: the story of one computation.
    /// `None` when no crash of the group can be read yet and its last crash is recent (its
    /// payload may still be on its way).
    async fn investigate(
        &self,
        group: &Group,
        release: &Release,
    ) -> Result<Option<SuspectReport>, SuspectError> {
        let heads = self
            .releases
            .code_at(group.project_id, &release.version)
            .await?;
        let commits = self.releases.commits(release.id).await?;
        let crash = self.crash_of(group).await?;
        let Some((crash_id, view)) = crash else {
            if crate::clock::now() - group.last_seen < PAYLOAD_GRACE_SECS {
                return Ok(None);
            }
            let mut report = failed(
                group.id,
                "no kept crash of the group to read frames from".into(),
            );
            report.release = Some(release.version.clone());
            return Ok(Some(report));
        };
        let frames = self.located_frames(group.project_id, &view, &heads).await?;
        // Blame walks no further back than the oldest commit that could still be a suspect.
        let since = self.max_age_secs.map(|age| group.first_seen - age);
        let gathered = evidence::gather(&self.code, &heads, &frames, &commits, since).await?;
        let mut report = self.judge(group, release, gathered);
        report.crash_id = Some(crash_id);
        report.heads = heads;
        report.frames = frames;
        if report.frames.is_empty() {
            report.note = Some(
                "no frame of the crashing thread is in a repository of the release (add a code mapping)"
                    .into(),
            );
        }
        Ok(Some(report))
    }

    /// The crash whose frames are read: the newest kept one from the investigated release,
    /// else the newest kept one.
    async fn crash_of(
        &self,
        group: &Group,
    ) -> Result<Option<(String, crate::pipeline::CrashView<'static>)>, SuspectError> {
        let crashes = self.triage.group_crashes(group.id, 200).await?;
        let mut kept: Vec<_> = crashes.iter().filter(|c| c.payload_key.is_some()).collect();
        let wanted = investigated_release(group);
        kept.sort_by_key(|c| c.attributes.release.as_deref() != wanted);
        for crash in kept.into_iter().take(5) {
            if let Some(view) = self
                .triage
                .processed(crash.payload_key.as_deref().unwrap_or_default())
                .await
            {
                return Ok(Some((crash.attributes.id.clone(), view)));
            }
        }
        Ok(None)
    }

    /// The crashing thread's frames found in a repository of the release, top first.
    async fn located_frames(
        &self,
        project_id: i64,
        view: &crate::pipeline::CrashView<'_>,
        heads: &[CodeAt],
    ) -> Result<Vec<FrameInput>, SuspectError> {
        let Some(thread) = view
            .crashing_index()
            .and_then(|i| view.parts.threads.get(i))
        else {
            return Ok(Vec::new());
        };
        let mut frames = Vec::new();
        for (i, frame) in thread.frames.iter().enumerate() {
            let (Some(file), Some(line)) = (frame.file.as_deref(), frame.line) else {
                continue;
            };
            if let Ok(Some(located)) = self.code.locate(project_id, file, heads).await? {
                frames.push(FrameInput {
                    frame: i,
                    file: file.to_owned(),
                    line,
                    repository: located.repository,
                    path: located.path,
                });
            }
            if frames.len() == MAX_FRAMES {
                break;
            }
        }
        Ok(frames)
    }

    /// Excludes, scores and keeps (the decisions, from the gathered evidence).
    fn judge(
        &self,
        group: &Group,
        release: &Release,
        gathered: evidence::Gathered,
    ) -> SuspectReport {
        let mut excluded = Vec::new();
        let mut scored = Vec::new();
        for candidate in gathered.candidates {
            let commit = self.commit_ref(&candidate).clone();
            if let Some(reason) = self.exclusion(
                group,
                release,
                &candidate,
                &gathered.reverts,
                &gathered.ignored,
            ) {
                excluded.push(Excluded { commit, reason });
                continue;
            }
            let (value, reasons) = score::score(&candidate.frames, candidate.in_release);
            scored.push(Suspect {
                commit,
                score: (value * 1000.0).round() / 1000.0,
                reasons: reasons
                    .into_iter()
                    .map(|r| StoredReason {
                        feature: r.feature.to_owned(),
                        depth: r.depth,
                        value: (r.value * 1000.0).round() / 1000.0,
                        words: r.words,
                    })
                    .collect(),
            });
        }
        let scores: Vec<f64> = scored.iter().map(|s| s.score).collect();
        let kept = score::keep(&scores);
        let mut suspects = Vec::new();
        let mut others = Vec::new();
        for (i, suspect) in scored.into_iter().enumerate() {
            if kept.contains(&i) {
                suspects.push(suspect);
            } else if suspect.score > 0.0 {
                others.push(suspect);
            }
        }
        suspects.sort_by(|a, b| b.score.total_cmp(&a.score));
        others.sort_by(|a, b| b.score.total_cmp(&a.score));
        SuspectReport {
            group_id: group.id,
            release: Some(release.version.clone()),
            crash_id: None,
            heads: Vec::new(),
            frames: Vec::new(),
            suspects,
            others,
            excluded,
            note: None,
            computed_at: crate::clock::now(),
        }
    }

    /// Why a candidate is excluded, if it is.
    fn exclusion(
        &self,
        group: &Group,
        release: &Release,
        candidate: &evidence::Candidate,
        reverts: &evidence::Reverts,
        ignored: &std::collections::HashSet<String>,
    ) -> Option<Exclusion> {
        let at = candidate.committed_at;
        if ignored
            .iter()
            .any(|i| candidate.sha.starts_with(i.as_str()))
        {
            Some(Exclusion::IgnoredRevision)
        } else if reverts.reverting.contains(&candidate.sha) {
            Some(Exclusion::Revert)
        } else if reverts.reverted.contains(&candidate.sha) {
            Some(Exclusion::Reverted)
        } else if self.bots.is_match(&candidate.author_name)
            || self.bots.is_match(&candidate.author_email)
        {
            Some(Exclusion::Bot)
        } else if release.released_at.is_some_and(|r| at > r) {
            Some(Exclusion::AfterRelease)
        } else if at > group.first_seen {
            Some(Exclusion::AfterFirstCrash)
        } else if !candidate.in_release
            && self
                .max_age_secs
                .is_some_and(|age| group.first_seen - at > age)
        {
            Some(Exclusion::TooOld)
        } else {
            None
        }
    }

    fn commit_ref(&self, candidate: &evidence::Candidate) -> CommitRef {
        CommitRef {
            repository: candidate.repository.clone(),
            sha: candidate.sha.clone(),
            author_name: candidate.author_name.clone(),
            author_email: candidate.author_email.clone(),
            committed_at: candidate.committed_at,
            summary: candidate.summary.clone(),
            link: candidate
                .web_url_template
                .as_deref()
                .and_then(|t| links::commit_link(t, &candidate.sha)),
            in_release: candidate.in_release,
        }
    }

    async fn store(
        &self,
        group_id: i64,
        release_id: Option<i64>,
        report: &SuspectReport,
    ) -> Result<(), SuspectError> {
        let text = serde_json::to_string(report)?;
        sqlx::query(
            "INSERT INTO group_suspects (group_id, release_id, computed_at, stale, report) \
             VALUES ($1, $2, $3, 0, $4) ON CONFLICT (group_id) DO UPDATE SET \
             release_id = excluded.release_id, computed_at = excluded.computed_at, stale = 0, \
             report = excluded.report",
        )
        .bind(group_id)
        .bind(release_id)
        .bind(report.computed_at)
        .bind(text)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks every stored report stale (a repository was fetched: blame may differ).
    pub async fn mark_all_stale(&self) -> Result<(), SuspectError> {
        sqlx::query("UPDATE group_suspects SET stale = 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// How long an alert waits for suspects computed on its behalf.
const ALERT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

#[async_trait::async_trait]
impl crate::outbound::SuspectLines for Suspects {
    /// The stored suspects, or (a new group's first alert usually goes out before the job
    /// reached it) computed now when the group is due: alerts are sent beside crash
    /// processing, so this never delays a crash.
    async fn suspect_lines(&self, group_id: i64) -> Vec<String> {
        let report = match self.stored(group_id).await {
            Ok(Some(report)) => Some(report),
            Ok(None) => match self.due_group(group_id).await {
                Ok(true) => tokio::time::timeout(ALERT_WAIT, self.compute_when_ready(group_id))
                    .await
                    .ok()
                    .flatten(),
                _ => None,
            },
            Err(_) => None,
        };
        report
            .map(|r| r.suspects.iter().take(3).map(suspect_line).collect())
            .unwrap_or_default()
    }
}

impl Suspects {
    /// `compute`, again every half second while the group's crash is not readable yet or a
    /// computation failed (the caller bounds the wait).
    async fn compute_when_ready(&self, group_id: i64) -> Option<SuspectReport> {
        loop {
            match self.compute(group_id).await {
                Ok(Some(report)) => return Some(report),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(group = group_id, error = %e, "suspect commits for an alert failed; trying again");
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// One suspect in a line: `abc1234567 Summary — Author: first reason <link>`.
fn suspect_line(s: &Suspect) -> String {
    let mut line = format!(
        "{} {} — {}",
        s.commit.sha.chars().take(10).collect::<String>(),
        s.commit.summary,
        s.commit.author_name
    );
    if let Some(reason) = s.reasons.first() {
        line.push_str(": ");
        line.push_str(&reason.words);
    }
    if let Some(link) = &s.commit.link {
        line.push(' ');
        line.push_str(link);
    }
    line
}

/// The release whose commits are suspects: the one a regressed group came back in, else the
/// group's first release.
fn investigated_release(group: &Group) -> Option<&str> {
    match (&group.last_release, &group.first_release) {
        (Some(last), _) if group.regressed => Some(last),
        (_, first) => first.as_deref(),
    }
}

/// A report with no suspects and why.
fn failed(group_id: i64, note: String) -> SuspectReport {
    SuspectReport {
        group_id,
        release: None,
        crash_id: None,
        heads: Vec::new(),
        frames: Vec::new(),
        suspects: Vec::new(),
        others: Vec::new(),
        excluded: Vec::new(),
        note: Some(note),
        computed_at: crate::clock::now(),
    }
}
