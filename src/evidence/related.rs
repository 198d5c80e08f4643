//! Groups related to a group: those failing in the same function (its history: has this failed
//! before, and how was it fixed) and those that started within the same hour (a shared cause),
//! ranked by the frames their signatures share.

use serde::Serialize;
use sqlx::{AnyPool, Row};

use super::Verdict;
use crate::group::index::Group;
use crate::group::spike::{is_spike, SPIKE_EVENTS, SPIKE_EVENTS_OTHERS};

/// How many related groups are listed.
const LISTED: usize = 10;
/// Groups whose first crash is this close to the group's (seconds) started with it.
const TOGETHER_SECS: i64 = 3_600;

/// Another group, and what it shares with this one.
#[derive(Debug, Clone, Serialize)]
pub struct RelatedGroup {
    /// Its ID.
    pub id: i64,
    /// Its signature.
    pub signature: String,
    /// `open`, `resolved`, …, or `merged` (into `merged_into`).
    pub state: String,
    /// The group it was merged into.
    pub merged_into: Option<i64>,
    /// The release it was resolved in.
    pub resolved_in: Option<String>,
    /// Its first and last crash.
    pub first_seen: i64,
    /// Its last crash.
    pub last_seen: i64,
    /// Frames of the signatures both have.
    pub shared_frames: usize,
}

/// A spike: an hour with many more crashes than the day before it.
#[derive(Debug, Clone, Serialize)]
pub struct Spike {
    /// The hour (Unix seconds, its start).
    pub hour: i64,
    /// Crashes in it.
    pub events: i64,
    /// Crashes per hour in the 24 hours before.
    pub before_per_hour: f64,
    /// Other groups of the project that spiked in the same hour, most shared frames first.
    pub together: Vec<RelatedGroup>,
}

/// The group's busiest hour of the last 14 days when it was a spike, with the other groups that
/// spiked in the same hour.
pub async fn spike(pool: &AnyPool, group: &Group, now: i64) -> Result<Option<Spike>, sqlx::Error> {
    let since = now - 14 * 86_400;
    let rows = sqlx::query(
        "SELECT hour, events FROM group_hours WHERE group_id = $1 AND hour >= $2 ORDER BY hour",
    )
    .bind(group.id)
    .bind(since - 86_400)
    .fetch_all(pool)
    .await?;
    let hours: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| Ok((r.try_get("hour")?, r.try_get("events")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let day_before = |hours: &[(i64, i64)], hour: i64| -> i64 {
        hours
            .iter()
            .filter(|(h, _)| *h >= hour - 86_400 && *h < hour)
            .map(|(_, e)| e)
            .sum()
    };
    let Some(&(hour, events)) = hours
        .iter()
        .filter(|(h, _)| *h >= since)
        .max_by_key(|(h, e)| (*e, *h))
    else {
        return Ok(None);
    };
    let before = day_before(&hours, hour);
    if !is_spike(events, before, SPIKE_EVENTS) {
        return Ok(None);
    }
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM crash_groups WHERE project_id = $1 AND id <> $2 \
         AND merged_into IS NULL AND last_seen >= $3 ORDER BY last_seen DESC LIMIT 200"
    ))
    .bind(group.project_id)
    .bind(group.id)
    .bind(hour)
    .fetch_all(pool)
    .await?;
    // Their crashes per hour from the day before to the hour, in one query.
    let counts = sqlx::query(
        "SELECT group_id, hour, events FROM group_hours WHERE group_id IN \
         (SELECT id FROM crash_groups WHERE project_id = $1 AND id <> $2 \
          AND merged_into IS NULL AND last_seen >= $3 ORDER BY last_seen DESC LIMIT 200) \
         AND hour >= $4 AND hour <= $3",
    )
    .bind(group.project_id)
    .bind(group.id)
    .bind(hour)
    .bind(hour - 86_400)
    .fetch_all(pool)
    .await?;
    let mut by_group: std::collections::HashMap<i64, Vec<(i64, i64)>> = Default::default();
    for r in &counts {
        by_group
            .entry(r.try_get("group_id")?)
            .or_default()
            .push((r.try_get("hour")?, r.try_get("events")?));
    }
    let mine = frames(&group.signature);
    let mut together = Vec::new();
    for row in &rows {
        let other = related(row, &mine)?;
        let counts = by_group.remove(&other.id).unwrap_or_default();
        let at = counts.iter().find(|(h, _)| *h == hour).map_or(0, |c| c.1);
        if is_spike(at, day_before(&counts, hour), SPIKE_EVENTS_OTHERS) {
            together.push(other);
        }
    }
    together.sort_by(|a, b| b.shared_frames.cmp(&a.shared_frames).then(a.id.cmp(&b.id)));
    together.truncate(LISTED);
    Ok(Some(Spike {
        hour,
        events,
        before_per_hour: before as f64 / 24.0,
        together,
    }))
}

/// A signature's frames.
fn frames(signature: &str) -> Vec<&str> {
    signature.split(" | ").map(str::trim).collect()
}

/// A function's name without its parameters (`Foo::bar(int)` → `Foo::bar`).
fn normalized(function: &str) -> &str {
    function.split('(').next().unwrap_or(function).trim()
}

fn related(row: &sqlx::any::AnyRow, mine: &[&str]) -> Result<RelatedGroup, sqlx::Error> {
    let signature: String = row.try_get("signature")?;
    let merged_into: Option<i64> = row.try_get("merged_into")?;
    let shared_frames = frames(&signature)
        .iter()
        .filter(|f| mine.contains(f))
        .count();
    Ok(RelatedGroup {
        id: row.try_get("id")?,
        state: if merged_into.is_some() {
            "merged".into()
        } else {
            row.try_get("state")?
        },
        merged_into,
        resolved_in: row.try_get("resolved_in")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        shared_frames,
        signature,
    })
}

const COLUMNS: &str = "id, signature, state, merged_into, resolved_in, first_seen, last_seen";

/// Other groups of the project whose signature starts with the same function as this one's
/// (or as its fault frame's), resolved and merged ones included, most shared frames first.
pub async fn same_function(
    pool: &AnyPool,
    group: &Group,
    verdict: &Verdict,
) -> Result<Vec<RelatedGroup>, sqlx::Error> {
    let mine = frames(&group.signature);
    let mut functions: Vec<String> = vec![mine[0].to_owned()];
    if let Some(function) = verdict
        .fault_frame
        .as_ref()
        .and_then(|f| f.function.as_deref())
    {
        let function = normalized(function).to_owned();
        if !function.is_empty() && !functions.contains(&function) {
            functions.push(function);
        }
    }
    let mut found: Vec<RelatedGroup> = Vec::new();
    for function in functions {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM crash_groups WHERE project_id = $1 AND id <> $2 \
             AND (signature = $3 OR signature LIKE $4 ESCAPE '\\') ORDER BY last_seen DESC LIMIT 50"
        ))
        .bind(group.project_id)
        .bind(group.id)
        .bind(function.as_str())
        .bind(format!("{} | %", like_escaped(&function)))
        .fetch_all(pool)
        .await?;
        for row in &rows {
            let other = related(row, &mine)?;
            if !found.iter().any(|g| g.id == other.id) {
                found.push(other);
            }
        }
    }
    found.sort_by(|a, b| {
        b.shared_frames
            .cmp(&a.shared_frames)
            .then(b.last_seen.cmp(&a.last_seen))
    });
    found.truncate(LISTED);
    Ok(found)
}

/// Other groups of the project whose first crash came within an hour of this one's, most
/// shared frames first, then the closest in time.
pub async fn started_together(
    pool: &AnyPool,
    group: &Group,
) -> Result<Vec<RelatedGroup>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM crash_groups WHERE project_id = $1 AND id <> $2 \
         AND merged_into IS NULL AND first_seen >= $3 AND first_seen <= $4 \
         ORDER BY first_seen LIMIT 200"
    ))
    .bind(group.project_id)
    .bind(group.id)
    .bind(group.first_seen - TOGETHER_SECS)
    .bind(group.first_seen + TOGETHER_SECS)
    .fetch_all(pool)
    .await?;
    let mine = frames(&group.signature);
    let mut found = rows
        .iter()
        .map(|row| related(row, &mine))
        .collect::<Result<Vec<_>, _>>()?;
    found.sort_by(|a, b| {
        b.shared_frames.cmp(&a.shared_frames).then(
            (a.first_seen - group.first_seen)
                .abs()
                .cmp(&(b.first_seen - group.first_seen).abs()),
        )
    });
    found.truncate(LISTED);
    Ok(found)
}

/// `text` matched literally by `LIKE … ESCAPE '\'`.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_lose_their_parameters_and_signatures_split_into_frames() {
        assert_eq!(normalized("net::Conn::read(int, char*)"), "net::Conn::read");
        assert_eq!(frames("a | b::c | d"), ["a", "b::c", "d"]);
        assert_eq!(like_escaped("100%_a\\"), "100\\%\\_a\\\\");
    }
}
