//! The one clock: now, in Unix seconds (and milliseconds, for latency stamps), as every table,
//! lease, window and page counts time. A leaf: it imports nothing of ours.

/// Now, Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Now, Unix seconds, for the stores that keep times unsigned (never before 1970).
pub fn now_unsigned() -> u64 {
    now().max(0) as u64
}

/// Now, Unix milliseconds.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
