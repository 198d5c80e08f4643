//! Sentry SDKs' session items, read leniently: `session` (one session's update: `sid`, `did`,
//! `init`, `started`, `status`, `errors`, `attrs.release`/`environment`) and `sessions`
//! (pre-aggregated counts per minute, request-mode SDKs), and the usage rows a launcher or
//! game backend posts for crash reporters that send no sessions.

use serde::Deserialize;

/// The most updates or aggregate buckets one item may carry.
pub const MAX_BUCKETS: usize = 1_000;
/// The longest release, environment or user ID kept.
const MAX_TEXT: usize = 200;

/// Where a session ended, worst last: a session's final status only ever moves up this order
/// (a session counted `exited` that later says `crashed` is moved, never counted twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FinalStatus {
    /// Ended normally.
    Exited,
    /// Ended with handled errors.
    Errored,
    /// Ended without a clean shutdown (killed, hung, power loss).
    Abnormal,
    /// Ended in a crash.
    Crashed,
}

impl FinalStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            FinalStatus::Exited => "exited",
            FinalStatus::Errored => "errored",
            FinalStatus::Abnormal => "abnormal",
            FinalStatus::Crashed => "crashed",
        }
    }

    /// Read back.
    pub fn from_stored(text: &str) -> Option<FinalStatus> {
        match text {
            "exited" => Some(FinalStatus::Exited),
            "errored" => Some(FinalStatus::Errored),
            "abnormal" => Some(FinalStatus::Abnormal),
            "crashed" => Some(FinalStatus::Crashed),
            _ => None,
        }
    }
}

/// One session update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUpdate {
    /// The session.
    pub sid: String,
    /// The user or device (`did`).
    pub did: Option<String>,
    /// The first update of the session: it counts the session.
    pub init: bool,
    /// When the session started, Unix seconds (its hour and day bucket).
    pub started: i64,
    /// Its status when final (`ok` is not).
    pub status: Option<FinalStatus>,
    /// Release.
    pub release: String,
    /// Environment (`production` when absent).
    pub environment: String,
}

/// Pre-aggregated sessions of one minute (`sessions` items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionBucket {
    /// When they started, Unix seconds.
    pub started: i64,
    /// The user, when the SDK knows it.
    pub did: Option<String>,
    /// Counts by final status.
    pub exited: i64,
    /// Errored sessions.
    pub errored: i64,
    /// Abnormal sessions.
    pub abnormal: i64,
    /// Crashed sessions.
    pub crashed: i64,
    /// Release.
    pub release: String,
    /// Environment.
    pub environment: String,
}

/// Sessions and users of one hour, as a launcher or game backend reports them
/// (`POST /api/v1/usage`), for crash reporters that send no sessions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UsageRow {
    /// Release.
    pub release: String,
    /// Environment (`production` when absent).
    #[serde(default = "production")]
    pub environment: String,
    /// The hour, Unix seconds (any second of it).
    pub hour: i64,
    /// Sessions started in the hour.
    pub sessions: i64,
    /// Distinct users in the hour.
    #[serde(default)]
    pub users: i64,
}

fn production() -> String {
    "production".into()
}

impl UsageRow {
    /// Checks a row's text and counts.
    pub fn checked(mut self) -> Result<UsageRow, String> {
        self.release = clean(Some(self.release)).ok_or("usage: release is required")?;
        self.environment = clean(Some(self.environment)).unwrap_or_else(production);
        if !(0..=100_000_000).contains(&self.sessions) || !(0..=100_000_000).contains(&self.users) {
            return Err("usage: sessions and users are 0 to 100,000,000".into());
        }
        if self.hour < 0 {
            return Err("usage: hour is a Unix time".into());
        }
        Ok(self)
    }
}

/// What a request brought: session updates, aggregated buckets, usage rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionItems {
    /// Single-session updates.
    pub updates: Vec<SessionUpdate>,
    /// Aggregated buckets.
    pub buckets: Vec<SessionBucket>,
    /// Reported usage.
    pub usage: Vec<UsageRow>,
}

impl SessionItems {
    /// Nothing to record.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.buckets.is_empty() && self.usage.is_empty()
    }

    /// The crash report sent beside these updates ended their sessions: each is crashed (a
    /// session that said `crashed` itself and its crash report are one crashed session).
    pub fn ended_by_crash(&mut self) {
        for update in &mut self.updates {
            update.status = Some(FinalStatus::Crashed);
        }
    }
}

#[derive(Deserialize)]
struct Attrs {
    #[serde(default)]
    release: Option<String>,
    #[serde(default)]
    environment: Option<String>,
}

#[derive(Deserialize)]
struct RawUpdate {
    sid: String,
    #[serde(default)]
    did: Option<String>,
    #[serde(default)]
    init: bool,
    #[serde(default)]
    started: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    errors: Option<i64>,
    attrs: Attrs,
}

#[derive(Deserialize)]
struct RawBucket {
    started: String,
    #[serde(default)]
    did: Option<String>,
    #[serde(default)]
    exited: i64,
    #[serde(default)]
    errored: i64,
    #[serde(default)]
    abnormal: i64,
    #[serde(default)]
    crashed: i64,
}

#[derive(Deserialize)]
struct RawAggregates {
    attrs: Attrs,
    aggregates: Vec<RawBucket>,
}

/// An RFC 3339 date as Unix seconds.
pub fn unix(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|d| d.unix_timestamp())
}

fn clean(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().chars().take(MAX_TEXT).collect::<String>())
        .filter(|t| !t.is_empty() && !t.chars().any(char::is_control))
}

/// The final status an update says: `ok` is not final; `exited` with errors is `errored`.
fn final_status(status: Option<&str>, errors: i64) -> Option<FinalStatus> {
    match status? {
        "exited" if errors > 0 => Some(FinalStatus::Errored),
        "exited" => Some(FinalStatus::Exited),
        "errored" => Some(FinalStatus::Errored),
        "abnormal" => Some(FinalStatus::Abnormal),
        "crashed" => Some(FinalStatus::Crashed),
        _ => None,
    }
}

/// A `session` item.
pub fn read_session(payload: &[u8]) -> Result<SessionUpdate, String> {
    let raw: RawUpdate =
        serde_json::from_slice(payload).map_err(|e| format!("session item: {e}"))?;
    let release = clean(raw.attrs.release).ok_or(
        "session item: attrs.release is required: printable text (at most 200 characters are kept)",
    )?;
    let started = raw
        .started
        .as_deref()
        .or(raw.timestamp.as_deref())
        .and_then(unix)
        .ok_or("session item: started is not an RFC 3339 date")?;
    let sid = clean(Some(raw.sid)).ok_or("session item: sid is empty")?;
    Ok(SessionUpdate {
        sid,
        did: clean(raw.did),
        init: raw.init,
        started,
        status: final_status(raw.status.as_deref(), raw.errors.unwrap_or(0)),
        release,
        environment: clean(raw.attrs.environment).unwrap_or_else(|| "production".into()),
    })
}

/// A `sessions` item.
pub fn read_sessions(payload: &[u8]) -> Result<Vec<SessionBucket>, String> {
    let raw: RawAggregates =
        serde_json::from_slice(payload).map_err(|e| format!("sessions item: {e}"))?;
    let release = clean(raw.attrs.release).ok_or("sessions item: attrs.release is required: printable text (at most 200 characters are kept)")?;
    let environment = clean(raw.attrs.environment).unwrap_or_else(|| "production".into());
    if raw.aggregates.len() > MAX_BUCKETS {
        return Err(format!("sessions item: more than {MAX_BUCKETS} aggregates"));
    }
    raw.aggregates
        .into_iter()
        .map(|b| {
            let counts = [b.exited, b.errored, b.abnormal, b.crashed];
            if counts.iter().any(|c| !(0..=1_000_000).contains(c)) {
                return Err("sessions item: counts are 0 to 1,000,000".to_owned());
            }
            Ok(SessionBucket {
                started: unix(&b.started)
                    .ok_or("sessions item: started is not an RFC 3339 date")?,
                did: clean(b.did),
                exited: b.exited,
                errored: b.errored,
                abnormal: b.abnormal,
                crashed: b.crashed,
                release: release.clone(),
                environment: environment.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_sdks_items_read_as_sent() {
        let update = read_session(br#"{"sid":"920bcbef-6267-45f7-8149-a99f78f324f4","init":true,"started":"2026-12-05T11:13:07.717146Z","timestamp":"2026-12-05T11:13:07.718261Z","status":"exited","errors":1,"did":"u1","attrs":{"release":"r@1","environment":"prod"}}"#).unwrap();
        assert_eq!(update.status, Some(FinalStatus::Errored));
        assert!(update.init);
        assert_eq!(update.did.as_deref(), Some("u1"));
        assert_eq!(update.started, 1_796_469_187);
        let buckets = read_sessions(br#"{"attrs":{"environment":"prod","release":"r@1"},"aggregates":[{"started":"2026-12-05T11:13:00.000000Z","exited":3}]}"#).unwrap();
        assert_eq!(buckets[0].exited, 3);
        assert_eq!(buckets[0].release, "r@1");
        assert!(read_session(br#"{"sid":"x","attrs":{}}"#).is_err());
        assert_eq!(final_status(Some("ok"), 0), None);
        assert!(FinalStatus::Crashed > FinalStatus::Exited);
    }
}
