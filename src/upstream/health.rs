//! What faultline remembers about its sources: each source's health (requests, hits, misses,
//! errors, the last error, whether it is being skipped after failing again and again) and the
//! negative cache of locations that had nothing, so a crash never asks twice for what a source
//! does not have.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use symbolic::common::DebugId;

use crate::clock::now_unsigned;

/// Failures in a row after which a source is skipped.
const FAILURES_BEFORE_SKIP: u32 = 3;

/// How long the longest skip lasts, in multiples of the source's `unhealthy_secs`.
const MAX_SKIP_FACTOR: u32 = 16;

/// One source's counters and state.
pub struct Health {
    requests: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    state: Mutex<HealthState>,
    unhealthy: Duration,
}

#[derive(Default)]
struct HealthState {
    failures_in_a_row: u32,
    skipped_until: Option<(Instant, u64)>,
    last_error: Option<(String, u64)>,
}

/// A source's health as `GET /api/v1/symbols/sources` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    /// Files asked for.
    pub requests: u64,
    /// Found (and valid).
    pub hits: u64,
    /// Not there.
    pub misses: u64,
    /// Server errors, timeouts, refused connections, oversized or malformed answers.
    pub errors: u64,
    /// The last error and when it happened (seconds since the Unix epoch).
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<u64>,
    /// While set: the source failed again and again and is not asked until then.
    pub skipped_until: Option<u64>,
    /// Whether it is asked at all right now.
    pub healthy: bool,
}

impl Health {
    /// A healthy source that is skipped for `unhealthy` after repeated failures.
    pub fn new(unhealthy: Duration) -> Health {
        Health {
            requests: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            state: Mutex::default(),
            unhealthy,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Until when (seconds since the Unix epoch) the source is skipped, if it is now.
    pub fn skipped_until(&self) -> Option<u64> {
        let state = self.state();
        let (until, unix) = state.skipped_until?;
        (Instant::now() < until).then_some(unix)
    }

    /// A request is being made.
    pub fn asked(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The source answered with the file.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.state().failures_in_a_row = 0;
    }

    /// The source answered that it has no such file (it works: failures in a row end).
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.state().failures_in_a_row = 0;
    }

    /// The source failed; after [`FAILURES_BEFORE_SKIP`] in a row it is skipped for a while,
    /// longer each time it fails again.
    pub fn failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        state.failures_in_a_row += 1;
        state.last_error = Some((error.to_owned(), now_unsigned()));
        if state.failures_in_a_row >= FAILURES_BEFORE_SKIP {
            let factor = 1u32
                << (state.failures_in_a_row - FAILURES_BEFORE_SKIP).min(MAX_SKIP_FACTOR.ilog2());
            let skip = self.unhealthy * factor;
            state.skipped_until = Some((Instant::now() + skip, now_unsigned() + skip.as_secs()));
        }
    }

    /// The counters and state now.
    pub fn view(&self) -> HealthView {
        let skipped_until = self.skipped_until();
        let state = self.state();
        HealthView {
            requests: self.requests.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: state.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: state.last_error.as_ref().map(|(_, at)| *at),
            skipped_until,
            healthy: skipped_until.is_none(),
        }
    }
}

/// What a location had last time it was asked, remembered for a while.
#[derive(Debug, Clone)]
pub struct Miss {
    /// `not_found`, `error` or `malformed`.
    pub outcome: super::CandidateOutcome,
    /// What went wrong.
    pub detail: Option<String>,
    /// When it was learned.
    pub at: Instant,
    /// How long it is remembered.
    pub ttl: Duration,
}

/// Remembered misses by (source, module, location).
pub type MissKey = (usize, DebugId, String);

/// The negative cache: entries expire after their own time to live.
pub fn miss_cache() -> moka::sync::Cache<MissKey, Miss> {
    struct ByTtl;
    impl moka::Expiry<MissKey, Miss> for ByTtl {
        fn expire_after_create(&self, _: &MissKey, miss: &Miss, _: Instant) -> Option<Duration> {
            Some(miss.ttl)
        }
    }
    moka::sync::Cache::builder()
        .max_capacity(1_000_000)
        .expire_after(ByTtl)
        .build()
}
