//! The evidence of a group, in one place: the verdict and fault frame of its latest crash,
//! its suspect commits, its correlations, its timeline (the release and deploy it appeared
//! after, the groups that started with it), its history (other groups failing in the same
//! function, resolved, merged or open), and its rates per release. Assembled from what the
//! services stored (nothing is computed here that could be slow); every claim carries the data
//! it rests on. `markdown.rs` writes it for a ticket or a chat; `related.rs` finds the groups.

pub mod markdown;
mod related;

use std::sync::Arc;

use serde::Serialize;

use crate::classify::FrameRef;
use crate::correlations::{CorrelationReport, Correlations};
use crate::group::index::{CrashIndex, Group};
use crate::health::{GroupRate, Health};
use crate::releases::Releases;
use crate::suspects::{Suspect, Suspects};
use crate::triage::Triage;

pub use related::{RelatedGroup, Spike};

/// Why the evidence could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// A service it reads failed.
    #[error("evidence: {0}")]
    Source(String),
}

fn source(e: impl std::fmt::Display) -> EvidenceError {
    EvidenceError::Source(e.to_string())
}

/// Everything known about why a group happens (docs/EVIDENCE.md).
#[derive(Debug, Clone, Serialize)]
pub struct GroupEvidence {
    /// The group as indexed.
    pub group: Group,
    /// What its latest readable crash says.
    pub verdict: Verdict,
    /// Suspect commits, best first (from the stored report; empty until computed).
    pub suspects: Vec<Suspect>,
    /// Why there are no suspects, when the report says.
    pub suspects_note: Option<String>,
    /// What is over-represented in its crashes (none until computed).
    pub correlations: Option<CorrelationsBlock>,
    /// When it appeared, after what, and with which other groups.
    pub timeline: Timeline,
    /// Other groups failing in the same function, or sharing its top frames.
    pub history: Vec<RelatedGroup>,
    /// For a group that came back after it was resolved: between which releases, and the
    /// commits of the releases in between that touched its frames' files.
    pub regression: Option<Regression>,
    /// Its crashes per 1,000 sessions per release.
    pub rates: Vec<GroupRate>,
    /// Where each part can be seen: the group's page, its latest crash.
    pub links: Links,
}

/// The verdict of the group's latest crash that could be read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// The crash read.
    pub crash_id: Option<String>,
    /// Fault class (the group's).
    pub fault_class: String,
    /// The rule that decided it, in words.
    pub rule: Option<String>,
    /// The crash reason (`SIGSEGV /SEGV_MAPERR`, an exception's type and message).
    pub crash_reason: Option<String>,
    /// The faulting address.
    pub address: Option<String>,
    /// The frame to blame.
    pub fault_frame: Option<FrameRef>,
    /// The source files of the crashing thread's frames, top first (at most 32).
    pub frame_files: Vec<String>,
    /// The fault frame's variable the faulting address came from, as a sentence
    /// (``0x10 = `node->next` (0x0) + 0x10, field `name` ``).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_variable: Option<String>,
    /// The fault frame's parameters and locals, one line each (docs/VARIABLES.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<VariableLine>,
}

/// A variable of the fault frame on one line.
#[derive(Debug, Clone, Serialize)]
pub struct VariableLine {
    /// `parameter` or `local`.
    pub kind: crate::variables::VariableKind,
    /// Its name.
    pub name: String,
    /// Its type as the source spells it.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its value on one line (`0x7ffd… (stack) "FL\x7f"`, `{id = 1, next = 0x0}`).
    pub value: String,
}

/// A group that came back: resolved in one release, crashing again in a newer one.
#[derive(Debug, Clone, Serialize)]
pub struct Regression {
    /// The release it was resolved in.
    pub resolved_in: String,
    /// The release it came back in.
    pub came_back_in: String,
    /// Commits of the releases after `resolved_in` up to `came_back_in` that changed a file of
    /// its crashing thread's frames, newest release first.
    pub commits: Vec<RegressionCommit>,
}

/// A commit between the two releases of a regression that touched a frame's file.
#[derive(Debug, Clone, Serialize)]
pub struct RegressionCommit {
    /// The release that brought it.
    pub release: String,
    /// Its repository.
    pub repository: String,
    /// Full SHA.
    pub sha: String,
    /// The first line of its message.
    pub summary: String,
    /// Its author.
    pub author: Option<String>,
    /// The frames' files it changed (as the repository names them).
    pub files: Vec<String>,
}

/// Correlations with their age.
#[derive(Debug, Clone, Serialize)]
pub struct CorrelationsBlock {
    /// Computed longer ago than the configured age: recomputed when crashes come.
    pub stale: bool,
    /// The report.
    #[serde(flatten)]
    pub report: CorrelationReport,
}

/// When the group appeared, after what.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// Its first crash (Unix seconds).
    pub first_seen: i64,
    /// The release of its first crash.
    pub first_release: Option<String>,
    /// The last deploy of that release finished before its first crash.
    pub deploy: Option<DeployBefore>,
    /// That release's share of the project's sessions in the 24 hours before, percent.
    pub adoption_then: Option<f64>,
    /// Other groups whose first crash came within an hour of its own, most shared frames first.
    pub started_together: Vec<RelatedGroup>,
    /// Its busiest hour of the last 14 days when that was a spike, with the groups that spiked
    /// in the same hour.
    pub spike: Option<Spike>,
}

/// A deploy the group appeared after.
#[derive(Debug, Clone, Serialize)]
pub struct DeployBefore {
    /// Its environment.
    pub environment: String,
    /// Its name.
    pub name: Option<String>,
    /// When it finished.
    pub finished_at: i64,
    /// Minutes from then to the group's first crash.
    pub minutes_before: i64,
}

/// Addresses in the UI.
#[derive(Debug, Clone, Serialize)]
pub struct Links {
    /// The group's page.
    pub group: String,
    /// The latest crash read, at its fault frame.
    pub crash: Option<String>,
}

/// Assembles evidence from the services that hold it.
pub struct Evidence {
    index: Arc<CrashIndex>,
    triage: Arc<Triage>,
    suspects: Arc<Suspects>,
    correlations: Arc<Correlations>,
    releases: Arc<Releases>,
    health: Arc<Health>,
    public_url: String,
}

/// The services the evidence reads.
pub struct EvidenceSources {
    /// Groups and crashes.
    pub index: Arc<CrashIndex>,
    /// Stored crashes.
    pub triage: Arc<Triage>,
    /// Suspect commits.
    pub suspects: Arc<Suspects>,
    /// Correlations.
    pub correlations: Arc<Correlations>,
    /// Releases and deploys.
    pub releases: Arc<Releases>,
    /// Release health.
    pub health: Arc<Health>,
}

impl EvidenceSources {
    /// The sources, shared.
    pub fn of(
        index: &Arc<CrashIndex>,
        triage: &Arc<Triage>,
        suspects: &Arc<Suspects>,
        correlations: &Arc<Correlations>,
        releases: &Arc<Releases>,
        health: &Arc<Health>,
    ) -> EvidenceSources {
        EvidenceSources {
            index: Arc::clone(index),
            triage: Arc::clone(triage),
            suspects: Arc::clone(suspects),
            correlations: Arc::clone(correlations),
            releases: Arc::clone(releases),
            health: Arc::clone(health),
        }
    }
}

impl Evidence {
    /// Over the services; links start with `public_url`.
    pub fn new(sources: EvidenceSources, public_url: String) -> Evidence {
        Evidence {
            index: sources.index,
            triage: sources.triage,
            suspects: sources.suspects,
            correlations: sources.correlations,
            releases: sources.releases,
            health: sources.health,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// A group's evidence: the story of reading each source (`None`: no such group).
    pub async fn of_group(&self, group_id: i64) -> Result<Option<GroupEvidence>, EvidenceError> {
        let Some(group) = self.index.group(group_id).await.map_err(source)? else {
            return Ok(None);
        };
        let verdict = self.verdict(&group).await?;
        let report = self.suspects.stored(group_id).await.map_err(source)?;
        let correlations = self.correlations.stored(group_id).await.map_err(source)?;
        let timeline = self.timeline(&group).await?;
        let history = related::same_function(self.index.pool(), &group, &verdict)
            .await
            .map_err(source)?;
        let rates = self.health.group_rates(group_id).await.map_err(source)?;
        let regression = self.regression(&group, &verdict).await?;
        let links = Links {
            group: format!("{}/ui/groups/{group_id}", self.public_url),
            crash: verdict
                .crash_id
                .as_ref()
                .map(|id| format!("{}/ui/crashes/{id}#fault", self.public_url)),
        };
        Ok(Some(GroupEvidence {
            suspects_note: report.as_ref().and_then(|r| r.note.clone()),
            suspects: report.map(|r| r.suspects).unwrap_or_default(),
            correlations: correlations.map(|report| CorrelationsBlock {
                stale: self.correlations.is_stale(&report),
                report,
            }),
            group,
            verdict,
            timeline,
            history,
            regression,
            rates,
            links,
        }))
    }

    /// The newest of the group's last crashes whose processed result can be read.
    async fn verdict(&self, group: &Group) -> Result<Verdict, EvidenceError> {
        let mut verdict = Verdict {
            fault_class: group.fault_class.as_str().to_owned(),
            ..Verdict::default()
        };
        let crashes = self
            .triage
            .group_crashes(group.id, 10)
            .await
            .map_err(source)?;
        for crash in crashes.iter().filter(|c| c.payload_key.is_some()).take(3) {
            let key = crash.payload_key.as_deref().unwrap_or_default();
            let Some(view) = self.triage.processed(key).await else {
                continue;
            };
            verdict.crash_id = Some(crash.attributes.id.clone());
            if let Some(thread) = view
                .crashing_index()
                .and_then(|i| view.parts.threads.get(i))
            {
                for file in thread.frames.iter().filter_map(|f| f.file.as_deref()) {
                    if verdict.frame_files.len() < 32
                        && !verdict.frame_files.iter().any(|f| f == file)
                    {
                        verdict.frame_files.push(file.to_owned());
                    }
                }
            }
            if let Some(c) = view.classification.as_deref() {
                verdict.rule = Some(c.evidence.rule.clone());
                verdict.crash_reason = c.evidence.crash_reason.clone();
                verdict.address = c.evidence.address.clone();
                verdict.fault_frame = c.fault_frame.clone();
                verdict.fault_variable = c.signals.fault_variable.as_ref().map(|f| f.sentence());
                let frame = c.fault_frame.as_ref().map(|f| f.frame);
                let thread = view
                    .crashing_index()
                    .and_then(|i| view.parts.threads.get(i));
                let variables = thread
                    .zip(frame)
                    .and_then(|(t, f)| t.frames.get(f)?.variables.as_deref());
                verdict.variables = variables
                    .unwrap_or_default()
                    .iter()
                    .map(|v| VariableLine {
                        kind: v.kind,
                        name: v.value.name.to_string(),
                        type_name: v.value.type_name.to_string(),
                        value: v.value.summary(),
                    })
                    .collect();
            } else {
                verdict.crash_reason = view.event_evidence.clone();
            }
            break;
        }
        Ok(verdict)
    }

    /// For a regressed group: the releases it was resolved in and came back in, and the
    /// commits between them that touched its frames' files.
    async fn regression(
        &self,
        group: &Group,
        verdict: &Verdict,
    ) -> Result<Option<Regression>, EvidenceError> {
        let (true, Some(resolved_in), Some(came_back_in)) =
            (group.regressed, &group.resolved_in, &group.last_release)
        else {
            return Ok(None);
        };
        let releases = self.releases.list(group.project_id).await.map_err(source)?;
        let between = releases.iter().filter(|r| {
            let v = r.release.version.as_str();
            crate::group::version::is_newer(v, resolved_in)
                && !crate::group::version::is_newer(v, came_back_in)
        });
        let mut commits = Vec::new();
        for summary in between {
            let release = &summary.release;
            for c in self.releases.commits(release.id).await.map_err(source)? {
                let files: Vec<String> = c
                    .files
                    .iter()
                    .filter(|f| verdict.frame_files.iter().any(|frame| same_file(frame, f)))
                    .cloned()
                    .collect();
                if files.is_empty() {
                    continue;
                }
                commits.push(RegressionCommit {
                    release: release.version.clone(),
                    summary: c.summary().to_owned(),
                    repository: c.repository,
                    sha: c.sha,
                    author: c.author_name,
                    files,
                });
            }
        }
        Ok(Some(Regression {
            resolved_in: resolved_in.clone(),
            came_back_in: came_back_in.clone(),
            commits,
        }))
    }

    /// The release and deploy the group appeared after, and who started with it.
    async fn timeline(&self, group: &Group) -> Result<Timeline, EvidenceError> {
        let mut timeline = Timeline {
            first_seen: group.first_seen,
            first_release: group.first_release.clone(),
            ..Timeline::default()
        };
        if let Some(version) = &group.first_release {
            if let Some(release) = self
                .releases
                .get(group.project_id, version)
                .await
                .map_err(source)?
            {
                let deploys = self.releases.deploys(release.id).await.map_err(source)?;
                timeline.deploy = deploys
                    .into_iter()
                    .filter(|d| d.finished_at <= group.first_seen)
                    .max_by_key(|d| d.finished_at)
                    .map(|d| DeployBefore {
                        minutes_before: (group.first_seen - d.finished_at) / 60,
                        environment: d.environment,
                        name: d.name,
                        finished_at: d.finished_at,
                    });
            }
            timeline.adoption_then = self
                .health
                .adoption_at(group.project_id, version, group.first_seen)
                .await
                .map_err(source)?;
        }
        timeline.started_together = related::started_together(self.index.pool(), group)
            .await
            .map_err(source)?;
        timeline.spike = related::spike(self.index.pool(), group, crate::clock::now())
            .await
            .map_err(source)?;
        Ok(timeline)
    }
}

/// Whether a frame's file (as the build saw it: `C:\\b\\src\\net\\conn.c`) is a repository's
/// file (`src/net/conn.c`): the same path, or ending with it at a folder boundary.
fn same_file(frame: &str, repository_file: &str) -> bool {
    let frame = frame.replace('\\', "/");
    let file = repository_file.trim_start_matches('/');
    !file.is_empty() && (frame == file || frame.ends_with(&format!("/{file}")))
}

#[async_trait::async_trait]
impl crate::outbound::EvidenceSummary for Evidence {
    /// The evidence's summary lines; nothing when it cannot be read (an alert is never held
    /// back for it).
    async fn evidence_summary(&self, group_id: i64, with_variables: bool) -> Option<String> {
        match self.of_group(group_id).await {
            Ok(Some(evidence)) => markdown::summary(&evidence, with_variables),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "no evidence for an alert");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_file;

    #[test]
    fn frame_files_match_repository_files_at_a_folder_boundary() {
        assert!(same_file("C:\\b\\src\\net\\conn.c", "src/net/conn.c"));
        assert!(same_file("/build/src/net/conn.c", "src/net/conn.c"));
        assert!(same_file("src/net/conn.c", "src/net/conn.c"));
        assert!(!same_file("/build/src/net/myconn.c", "conn.c"));
        assert!(!same_file("/build/conn.c", ""));
    }
}
