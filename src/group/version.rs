//! Comparing release versions, for regression detection: a crash from a release *newer* than the
//! one a group was resolved in reopens it. Compared as versions, never by date.
//!
//! 1. Semantic versions, after trimming a leading `v` and padding missing parts
//!    (`1.2` = `1.2.0`): semver order, where `1.0.0-beta.2 < 1.0.0`.
//! 2. Otherwise, when both start with a number (`2024.05.1b`, `4.26.2-12345+UE4`, `58.0a1`):
//!    chunk by chunk, numbers numerically and text by text, a longer version newer when
//!    the shorter is its prefix.
//! 3. Otherwise (commit hashes, code names) the two are not comparable: never a regression.

use std::cmp::Ordering;

/// Compares two release strings; `None` when they cannot be ordered.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (parse_semver(a), parse_semver(b)) {
        return Some(x.cmp(&y));
    }
    let (x, y) = (chunks(a), chunks(b));
    match (x.first(), y.first()) {
        (Some(Chunk::Number(_)), Some(Chunk::Number(_))) => Some(x.cmp(&y)),
        _ => None,
    }
}

/// Whether `release` is newer than `resolved_in`.
pub fn is_newer(release: &str, resolved_in: &str) -> bool {
    compare(release, resolved_in) == Some(Ordering::Greater)
}

fn parse_semver(text: &str) -> Option<semver::Version> {
    let text = text.trim();
    let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
    if let Ok(v) = semver::Version::parse(text) {
        return Some(v);
    }
    // Pad `1` / `1.2` (before any pre-release or build suffix) to three parts.
    let split = text.find(['-', '+']).unwrap_or(text.len());
    let (core, rest) = text.split_at(split);
    let parts = core.split('.').count();
    if parts >= 3 || core.is_empty() {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
    semver::Version::parse(&padded).ok()
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk {
    // Text sorts before numbers: `1.0a` < `1.0.1`.
    Text(String),
    Number(u64),
}

fn chunks(text: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut numeric = false;
    let flush = |current: &mut String, numeric: bool, out: &mut Vec<Chunk>| {
        if current.is_empty() {
            return;
        }
        out.push(if numeric {
            Chunk::Number(current.parse().unwrap_or(u64::MAX))
        } else {
            Chunk::Text(current.to_lowercase())
        });
        current.clear();
    };
    for c in text.trim().chars() {
        if c.is_ascii_alphanumeric() {
            let digit = c.is_ascii_digit();
            if digit != numeric {
                flush(&mut current, numeric, &mut out);
                numeric = digit;
            }
            current.push(c);
        } else {
            flush(&mut current, numeric, &mut out);
        }
    }
    flush(&mut current, numeric, &mut out);
    out
}

/// The older of a group's first release and a new crash's (by version order; a release that
/// does not compare keeps the first).
pub fn earliest(first: &Option<String>, new: &Option<String>) -> Option<String> {
    match (first, new) {
        (Some(old), Some(new)) if compare(new, old) == Some(Ordering::Less) => Some(new.clone()),
        (None, new) => new.clone(),
        (old, _) => old.clone(),
    }
}

/// The newer of a group's last release and a new crash's.
pub fn latest(last: &Option<String>, new: &Option<String>) -> Option<String> {
    match (last, new) {
        (Some(old), Some(new)) if is_newer(new, old) => Some(new.clone()),
        (None, new) => new.clone(),
        (old, _) => old.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_order() {
        assert!(is_newer("1.2.10", "1.2.9"));
        assert!(is_newer("v2.0", "1.99.99"));
        assert!(is_newer("1.0.0", "1.0.0-beta.2"));
        assert!(!is_newer("1.0.0-rc.1", "1.0.0"));
        assert!(!is_newer("1.2", "1.2.0"));
        assert_eq!(compare("1.2", "1.2.0"), Some(Ordering::Equal));
    }

    #[test]
    fn other_version_strings_compare_chunk_by_chunk() {
        assert!(is_newer("2024.05.10", "2024.05.9"));
        assert!(is_newer("4.26.2-12345+UE4", "4.26.1-99999+UE4"));
        assert!(is_newer("58.0.1", "58.0a1"));
        assert!(is_newer("1.2.3.4", "1.2.3"));
        assert!(!is_newer("10.0.19041.1", "10.0.19041.1"));
    }

    #[test]
    fn hashes_and_names_are_not_comparable() {
        assert_eq!(compare("a1b2c3d", "f9e8d7c"), None);
        assert_eq!(compare("bookworm", "trixie"), None);
        assert!(!is_newer("deadbeef", "1.0"));
    }
}
