//! How a candidate commit is scored against a crash's frames (docs/CODE.md publishes the
//! formula and these weights). For each in-app frame `f` at depth `d` (0 for the first in-app
//! frame from the top) and commit `c`:
//!
//! ```text
//! frame(c, f) = 1.0·proximity + 0.6·pickaxe + 0.3·file + 0.1·directory
//! proximity   = 2^(−k/4), k = lines between f's line and the nearest line c last changed
//!               (blame at the release's head; 0 for the line itself; none past 40 lines)
//! score(c)    = max over f of frame(c, f) / (1 + d)  ×  1.25 when c is in the release's range
//! ```
//!
//! Suspects are the candidates with a score of at least half the best (Predator keeps those
//! above max + ln 0.5 in log space: the same factor); none when there is no evidence at all, or
//! when several candidates all score the same (nothing tells them apart).

use serde::Serialize;

/// Weight of the nearness of a changed line to the frame's line.
pub const W_PROXIMITY: f64 = 1.0;
/// Weight of adding or removing the frame's exact line.
pub const W_PICKAXE: f64 = 0.6;
/// Weight of touching the frame's file.
pub const W_FILE: f64 = 0.3;
/// Weight of touching the frame's directory.
pub const W_DIRECTORY: f64 = 0.1;
/// Factor for a commit the group's first release brought.
pub const IN_RANGE_FACTOR: f64 = 1.25;
/// Lines beyond which a changed line says nothing about the frame's line.
pub const MAX_DISTANCE: u32 = 40;
/// Suspects keep at least this share of the best score.
pub const KEEP_FACTOR: f64 = 0.5;

/// One feature of a commit against one frame, as a reason the page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// `changed_line`, `nearby_line`, `pickaxe`, `file`, `directory`.
    pub feature: &'static str,
    /// The frame's position among the crash's in-app frames (0: the first).
    pub depth: usize,
    /// The feature's value before weights.
    pub value: f64,
    /// In words.
    pub words: String,
}

/// What is known of a commit against one frame.
#[derive(Debug, Clone, Default)]
pub struct FrameEvidence {
    /// Lines between the frame's line and the nearest line the commit last changed.
    pub distance: Option<u32>,
    /// It added or removed the frame's exact line.
    pub pickaxe: bool,
    /// It touched the frame's file.
    pub file: bool,
    /// It touched the frame's directory.
    pub directory: bool,
}

/// A frame as the scoring names it.
#[derive(Debug, Clone)]
pub struct ScoredFrame {
    /// Depth among in-app frames.
    pub depth: usize,
    /// The repository path.
    pub path: String,
    /// The line.
    pub line: u32,
    /// The frame's position in the thread (`frame #1`).
    pub frame: usize,
}

/// A commit's score against every frame, with the reasons.
pub fn score(frames: &[(ScoredFrame, FrameEvidence)], in_range: bool) -> (f64, Vec<Reason>) {
    let mut best = 0.0f64;
    let mut reasons = Vec::new();
    for (frame, evidence) in frames {
        let name = frame.path.rsplit('/').next().unwrap_or(&frame.path);
        let proximity = evidence
            .distance
            .filter(|k| *k <= MAX_DISTANCE)
            .map(|k| 2f64.powf(-(k as f64) / 4.0));
        let value = W_PROXIMITY * proximity.unwrap_or(0.0)
            + W_PICKAXE * f64::from(u8::from(evidence.pickaxe))
            + W_FILE * f64::from(u8::from(evidence.file))
            + W_DIRECTORY * f64::from(u8::from(evidence.directory));
        let weighted = value / (1.0 + frame.depth as f64);
        best = best.max(weighted);
        let at = format!("frame #{}", frame.frame);
        match evidence.distance.filter(|k| *k <= MAX_DISTANCE) {
            Some(0) => reasons.push(reason(
                frame,
                "changed_line",
                1.0,
                format!(
                    "last changed line {} of {name}, the crashing line of {at}",
                    frame.line
                ),
            )),
            Some(k) => reasons.push(reason(
                frame,
                "nearby_line",
                proximity.unwrap_or(0.0),
                format!(
                    "changed a line {k} line{} from line {} of {name} ({at})",
                    if k == 1 { "" } else { "s" },
                    frame.line
                ),
            )),
            None => {}
        }
        if evidence.pickaxe {
            reasons.push(reason(
                frame,
                "pickaxe",
                1.0,
                format!(
                    "added or removed the text of line {} of {name} ({at})",
                    frame.line
                ),
            ));
        }
        if evidence.file {
            reasons.push(reason(
                frame,
                "file",
                1.0,
                format!("touched {} ({at})", frame.path),
            ));
        } else if evidence.directory {
            let dir = frame.path.rsplit_once('/').map_or("/", |(d, _)| d);
            reasons.push(reason(
                frame,
                "directory",
                1.0,
                format!("touched {dir}/ ({at})"),
            ));
        }
    }
    let factor = if in_range { IN_RANGE_FACTOR } else { 1.0 };
    (best * factor, reasons)
}

fn reason(frame: &ScoredFrame, feature: &'static str, value: f64, words: String) -> Reason {
    Reason {
        feature,
        depth: frame.depth,
        value,
        words,
    }
}

/// Which of the scored candidates are suspects (indexes, best first).
pub fn keep(scores: &[f64]) -> Vec<usize> {
    let best = scores.iter().copied().fold(0.0f64, f64::max);
    if best <= 0.0 {
        return Vec::new();
    }
    let scored: Vec<f64> = scores.iter().copied().filter(|s| *s > 0.0).collect();
    if scored.len() > 1 && scored.iter().all(|s| (s - best).abs() < 1e-9) {
        return Vec::new();
    }
    let mut kept: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i] >= best * KEEP_FACTOR)
        .collect();
    kept.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(depth: usize) -> ScoredFrame {
        ScoredFrame {
            depth,
            path: "src/net/conn.c".into(),
            line: 42,
            frame: depth,
        }
    }

    #[test]
    fn the_commit_that_changed_the_crashing_line_outscores_one_that_touched_the_file() {
        let bug = FrameEvidence {
            distance: Some(0),
            pickaxe: true,
            file: true,
            directory: true,
        };
        let near = FrameEvidence {
            distance: Some(2),
            file: true,
            directory: true,
            ..Default::default()
        };
        let (bug_score, reasons) = score(&[(frame(0), bug)], true);
        let (near_score, _) = score(&[(frame(0), near.clone())], true);
        let (deep_score, _) = score(&[(frame(3), near)], true);
        assert!(bug_score > near_score && near_score > deep_score);
        assert_eq!(reasons[0].feature, "changed_line");
        assert!(
            reasons[0].words.contains("line 42 of conn.c"),
            "{}",
            reasons[0].words
        );
        assert_eq!(keep(&[bug_score, near_score * 0.3]), vec![0]);
    }

    #[test]
    fn candidates_that_all_score_the_same_are_no_suspects() {
        assert!(keep(&[0.3, 0.3, 0.3]).is_empty());
        assert!(keep(&[0.0, 0.0]).is_empty());
        assert_eq!(keep(&[0.3]), vec![0]);
        assert_eq!(keep(&[1.0, 0.6, 0.4]), vec![0, 1]);
    }
}
