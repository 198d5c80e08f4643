//! The "Why" block of a group's page (docs/EVIDENCE.md): what is over-represented in its
//! crashes, when it appeared and after which deploy, the groups that started with it, and the
//! groups that failed in the same function before; and the whole evidence as Markdown
//! (`/ui/groups/{id}/evidence.md`) to paste into a ticket.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::page::{ago, when, UiError};
use super::session::Viewer;
use crate::app::App;
use crate::auth::Scope;

/// One correlation in words.
pub struct CorrelationLine {
    /// `75%` in the group.
    pub group: String,
    /// `28%` overall.
    pub overall: String,
    /// `annotation.gpu_driver = 31.0.15.3623` (∧ another).
    pub items: String,
    /// Over-represented (else under-represented).
    pub over: bool,
}

/// Another group, linked.
pub struct RelatedLine {
    pub id: i64,
    pub signature: String,
    /// `resolved in 1.0`, `open`, `merged into 12`.
    pub state: String,
    pub when: String,
}

/// A deploy drawn on the group's chart.
pub struct DeployMark {
    /// Where (4 units an hour from the chart's start).
    pub x: i64,
    /// `2.0 to production (prod-eu-2), 3 hours ago`.
    pub label: String,
}

/// The deploys of the releases the group crashed in that finished inside the chart's window
/// (`start`, `hours` long), as marks.
pub async fn deploy_marks(
    state: &App,
    project_id: i64,
    releases: &[String],
    start: i64,
    t: i64,
) -> Vec<DeployMark> {
    let mut marks = Vec::new();
    for version in releases.iter().take(20) {
        let Ok(Some(release)) = state.releases.get(project_id, version).await else {
            continue;
        };
        let Ok(deploys) = state.releases.deploys(release.id).await else {
            continue;
        };
        for d in deploys
            .into_iter()
            .filter(|d| d.finished_at >= start && d.finished_at <= t)
        {
            marks.push(DeployMark {
                x: (d.finished_at - start) * 4 / 3600,
                label: format!(
                    "{version} to {}{}, {}",
                    d.environment,
                    d.name.map(|n| format!(" ({n})")).unwrap_or_default(),
                    ago(d.finished_at, t)
                ),
            });
        }
    }
    marks
}

/// What the block shows.
#[derive(Default)]
pub struct WhyBlock {
    /// Correlations, when computed.
    pub correlations: Vec<CorrelationLine>,
    /// The window and age of the correlations, or why there are none.
    pub correlations_note: String,
    /// When and after what it appeared, in words.
    pub timeline: String,
    /// Groups whose first crash came within the hour.
    pub together: Vec<RelatedLine>,
    /// Groups failing in the same function.
    pub history: Vec<RelatedLine>,
}

fn related_lines(groups: &[crate::evidence::RelatedGroup], t: i64) -> Vec<RelatedLine> {
    groups
        .iter()
        .map(|g| RelatedLine {
            id: g.id,
            signature: g.signature.clone(),
            state: match (&g.merged_into, &g.resolved_in) {
                (Some(into), _) => format!("merged into {into}"),
                (None, Some(release)) => format!("{}, in {release}", g.state.replace('_', " ")),
                (None, None) => g.state.replace('_', " "),
            },
            when: format!("last seen {}", ago(g.last_seen, t)),
        })
        .collect()
}

/// The block of group `id` (empty when its evidence cannot be read).
pub async fn why_block(state: &App, group_id: i64, t: i64) -> WhyBlock {
    let evidence = match state.evidence.of_group(group_id).await {
        Ok(Some(evidence)) => evidence,
        Ok(None) => return WhyBlock::default(),
        Err(e) => {
            tracing::warn!(group = group_id, error = %e, "could not read the group's evidence");
            return WhyBlock::default();
        }
    };
    let mut block = WhyBlock {
        together: related_lines(&evidence.timeline.started_together, t),
        history: related_lines(&evidence.history, t),
        ..WhyBlock::default()
    };
    match &evidence.correlations {
        Some(c) => {
            let r = &c.report;
            block.correlations_note = format!(
                "{} crashes of this group against {} of the project since {}, computed {}{}.",
                r.group_crashes,
                r.reference_crashes,
                when(r.since),
                ago(r.computed_at, t),
                if c.stale { " (stale: computed again when crashes come)" } else { "" }
            );
            block.correlations = r
                .deviations
                .iter()
                .take(10)
                .map(|d| CorrelationLine {
                    group: format!("{:.0}%", d.group_share * 100.0),
                    overall: format!("{:.0}%", d.reference_share * 100.0),
                    items: d
                        .items
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect::<Vec<_>>()
                        .join(" ∧ "),
                    over: d.group_share > d.reference_share,
                })
                .collect();
        }
        None => {
            block.correlations_note =
                "Not computed yet: correlations are computed beside processing once a group has 5 crashes.".into()
        }
    }
    let tl = &evidence.timeline;
    let mut words = format!("First seen {}", when(tl.first_seen));
    if let Some(release) = &tl.first_release {
        words.push_str(&format!(" in {release}"));
    }
    if let Some(d) = &tl.deploy {
        words.push_str(&format!(
            ", {} minutes after the deploy{} to {} finished",
            d.minutes_before,
            d.name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default(),
            d.environment
        ));
    }
    if let Some(adoption) = tl.adoption_then {
        words.push_str(&format!(
            "; that release had {adoption:.0}% of sessions then"
        ));
    }
    words.push('.');
    block.timeline = words;
    block
}

/// `GET /ui/groups/{id}/evidence.md`: the evidence as Markdown, for a ticket.
pub async fn markdown(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| UiError::bad_request(format!("{id:?} is not a group number")))?;
    viewer.caller.require(Scope::TriageRead)?;
    let group = match state.index.group(id).await? {
        Some(group) if viewer.may(Scope::TriageRead, group.project_id) => group,
        _ => return Err(UiError::not_found(format!("no group {id}"))),
    };
    let evidence = state
        .evidence
        .of_group(group.id)
        .await
        .map_err(UiError::of)?
        .ok_or_else(|| UiError::not_found(format!("no group {}", group.id)))?;
    Ok((
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        crate::evidence::markdown::render(&evidence),
    )
        .into_response())
}
