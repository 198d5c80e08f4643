//! The "Suspect commits" block of a group's page: each suspect with its reasons in words, the
//! candidates left out and why, the commit that says it fixes the group, and the top suspect's
//! author offered as the assignee.

use super::page::{ago, when};
use crate::app::App;
use crate::suspects::{Exclusion, Suspect};

/// A suspect as the page shows it.
pub struct SuspectRow {
    pub short_sha: String,
    pub link: Option<String>,
    pub summary: String,
    pub author: String,
    pub when: String,
    pub score: String,
    pub reasons: Vec<String>,
    pub in_release: bool,
}

/// A commit left out, and why in words.
pub struct ExcludedRow {
    pub short_sha: String,
    pub link: Option<String>,
    pub summary: String,
    pub author: String,
    pub why: &'static str,
}

/// A commit that says it fixes the group.
pub struct FixRow {
    pub short_sha: String,
    pub summary: String,
    pub release: String,
}

/// The whole block.
#[derive(Default)]
pub struct SuspectsBlock {
    /// Not computed yet.
    pub pending: bool,
    /// The release whose commits were candidates.
    pub release: String,
    pub computed: String,
    pub note: String,
    pub suspects: Vec<SuspectRow>,
    pub others: Vec<SuspectRow>,
    pub excluded: Vec<ExcludedRow>,
    pub fixes: Vec<FixRow>,
    /// The top suspect's author (email), offered as the assignee.
    pub offer_assignee: String,
    pub offer_name: String,
}

fn short(sha: &str) -> String {
    sha.chars().take(10).collect()
}

fn exclusion_words(reason: Exclusion) -> &'static str {
    match reason {
        Exclusion::AfterFirstCrash => "landed after the group's first crash",
        Exclusion::AfterRelease => "landed after the release was released",
        Exclusion::Revert => "a revert",
        Exclusion::Reverted => "reverted by a later commit",
        Exclusion::IgnoredRevision => "listed in .git-blame-ignore-revs (reformatting)",
        Exclusion::Bot => "authored by a bot",
        Exclusion::TooOld => "touched the line too long before the first crash",
    }
}

fn suspect_row(s: &Suspect, now: i64) -> SuspectRow {
    SuspectRow {
        short_sha: short(&s.commit.sha),
        link: s.commit.link.clone(),
        summary: s.commit.summary.clone(),
        author: s.commit.author_name.clone(),
        when: format!(
            "{} ({})",
            ago(s.commit.committed_at, now),
            when(s.commit.committed_at)
        ),
        score: format!("{:.2}", s.score),
        reasons: s.reasons.iter().map(|r| r.words.clone()).collect(),
        in_release: s.commit.in_release,
    }
}

/// The block for a group, from its stored report (computing happens beside, never here).
pub async fn suspects_block(state: &App, group_id: i64, now: i64) -> SuspectsBlock {
    let mut block = SuspectsBlock::default();
    match state.releases.fixes_of(group_id).await {
        Ok(fixes) => {
            block.fixes = fixes
                .into_iter()
                .map(|(release, c)| FixRow {
                    short_sha: short(&c.sha),
                    summary: c.summary().to_owned(),
                    release,
                })
                .collect()
        }
        Err(e) => tracing::warn!(group = group_id, error = %e, "could not read fixing commits"),
    }
    let report = match state.suspects.stored(group_id).await {
        Ok(Some(report)) => report,
        Ok(None) => {
            block.pending = true;
            return block;
        }
        Err(e) => {
            tracing::warn!(group = group_id, error = %e, "could not read suspect commits");
            block.note = "suspect commits could not be read".into();
            return block;
        }
    };
    block.release = report.release.clone().unwrap_or_default();
    block.computed = ago(report.computed_at, now);
    block.note = report.note.clone().unwrap_or_default();
    if let Some(top) = report.suspects.first() {
        block.offer_assignee = if top.commit.author_email.is_empty() {
            top.commit.author_name.clone()
        } else {
            top.commit.author_email.clone()
        };
        block.offer_name = top.commit.author_name.clone();
    }
    block.suspects = report
        .suspects
        .iter()
        .map(|s| suspect_row(s, now))
        .collect();
    block.others = report.others.iter().map(|s| suspect_row(s, now)).collect();
    block.excluded = report
        .excluded
        .iter()
        .map(|e| ExcludedRow {
            short_sha: short(&e.commit.sha),
            link: e.commit.link.clone(),
            summary: e.commit.summary.clone(),
            author: e.commit.author_name.clone(),
            why: exclusion_words(e.reason),
        })
        .collect();
    block
}
