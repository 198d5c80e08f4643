//! Socorro-style signatures and fingerprints.
//!
//! A signature is what a person reads in a crash list: the crashing thread's normalized
//! function names, from a sentinel frame when one is present, skipping irrelevant frames, going
//! through prefix frames (allocators, `mem*`, `abort`) up to the first meaningful one, joined
//! with ` | `, at most 255 characters, with a class prefix where one applies
//! (`stackoverflow | `, `OOM | small | `, `Abort | <message> | `).
//!
//! A fingerprint is what groups crashes: a hash over the grouping version, the fault class and
//! the signature's normalized frames, never over addresses, build IDs or releases.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::normalize::normalize;
use crate::classify::frames::FrameRef;
use crate::classify::patterns::{shipped, FramePatterns, PatternError, ShippedLine};
use crate::classify::FaultClass;

/// The grouping rules' version: part of every fingerprint, so a rule change makes new hashes
/// (which groups record next to their old ones) instead of silently regrouping.
pub const GROUPING_VERSION: u32 = 1;

/// Longest signature kept, as in Socorro.
const MAX_SIGNATURE: usize = 255;

/// Annotations that carry an abort message.
const ABORT_MESSAGE_KEYS: [&str; 4] = [
    "MozCrashReason",
    "abort_message",
    "AbortMessage",
    "abort message",
];

/// One of the three lists: function regexes, and `module:` regexes for unsymbolicated frames.
#[derive(Debug, Clone)]
struct PatternList(FramePatterns);

impl PatternList {
    fn new(
        defaults: &'static [ShippedLine],
        extra: &[String],
        setting: &str,
    ) -> Result<PatternList, PatternError> {
        FramePatterns::new(defaults, "the default list", extra, setting).map(PatternList)
    }

    fn matches(&self, frame: &NamedFrame) -> bool {
        if frame.symbolicated {
            self.0.functions.is_match(&frame.name)
        } else {
            self.0.modules.is_match(&frame.name)
        }
    }
}

/// The sentinel, prefix and irrelevant lists.
#[derive(Debug, Clone)]
pub struct SignatureRules {
    sentinels: PatternList,
    prefixes: PatternList,
    irrelevant: PatternList,
}

impl SignatureRules {
    /// The shipped lists plus configured additions (same syntax).
    pub fn new(
        sentinels: &[String],
        prefixes: &[String],
        irrelevant: &[String],
    ) -> Result<SignatureRules, PatternError> {
        Ok(SignatureRules {
            sentinels: PatternList::new(
                shipped::SIGNATURE_SENTINELS,
                sentinels,
                "group.signature_sentinels",
            )?,
            prefixes: PatternList::new(
                shipped::SIGNATURE_PREFIXES,
                prefixes,
                "group.signature_prefixes",
            )?,
            irrelevant: PatternList::new(
                shipped::SIGNATURE_IRRELEVANT,
                irrelevant,
                "group.signature_irrelevant",
            )?,
        })
    }
}

/// A frame as the signature sees it: the normalized function, or the module for
/// unsymbolicated frames.
struct NamedFrame {
    name: String,
    symbolicated: bool,
}

/// A crash's signature and the normalized frames it was built from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signature {
    /// The signature as displayed (`Abort | message | f | g`).
    pub text: String,
    /// The normalized frames, without prefix or truncation (the fingerprint's input).
    pub frames: Vec<String>,
}

/// Computes the signature of a crash of `class` with these crashing-thread frames (inlined
/// frames included) and annotations.
pub fn signature(
    rules: &SignatureRules,
    class: FaultClass,
    frames: &[FrameRef],
    annotations: &BTreeMap<String, String>,
) -> Signature {
    let named: Vec<NamedFrame> = frames
        .iter()
        .map(|f| match &f.function {
            Some(function) => NamedFrame {
                name: normalize(function),
                symbolicated: true,
            },
            None => NamedFrame {
                name: f.module.clone().unwrap_or_else(|| "???".to_owned()),
                symbolicated: false,
            },
        })
        .collect();
    let start = named
        .iter()
        .position(|f| f.symbolicated && rules.sentinels.matches(f))
        .unwrap_or(0);
    let mut parts = Vec::new();
    for (i, frame) in named[start..].iter().enumerate() {
        let is_sentinel = i == 0 && start > 0;
        if !is_sentinel && rules.irrelevant.matches(frame) {
            continue;
        }
        parts.push(frame.name.clone());
        if !(frame.symbolicated && rules.prefixes.matches(frame)) {
            break;
        }
    }
    if parts.is_empty() {
        parts.extend(named.first().map(|f| f.name.clone()));
    }
    let body = if parts.is_empty() {
        "EMPTY: no frame data available".to_owned()
    } else {
        parts.join(" | ")
    };
    let prefix = match class {
        FaultClass::StackOverflow => "stackoverflow | ".to_owned(),
        FaultClass::OutOfMemory => {
            let size = annotations
                .get("OOMAllocationSize")
                .and_then(|s| s.trim().parse::<u64>().ok());
            match size {
                Some(n) if n <= 262_144 => "OOM | small | ".to_owned(),
                Some(_) => "OOM | large | ".to_owned(),
                None => "OOM | unknown | ".to_owned(),
            }
        }
        FaultClass::Abort | FaultClass::Assertion => ABORT_MESSAGE_KEYS
            .iter()
            .find_map(|k| annotations.get(*k).filter(|m| !m.trim().is_empty()))
            .map(|m| format!("Abort | {} | ", m.trim().replace('|', "/")))
            .unwrap_or_default(),
        _ => String::new(),
    };
    Signature {
        text: truncate(&format!("{prefix}{body}")),
        frames: parts,
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_SIGNATURE {
        return s.to_owned();
    }
    let mut end = MAX_SIGNATURE - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// A group's identity hash: hex SHA-256 (first 128 bits) of the grouping version, the fault
/// class and the signature's normalized frames.
pub fn fingerprint(class: FaultClass, signature: &Signature) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "faultline-grouping-v{GROUPING_VERSION}\n{}\n",
        class.as_str()
    ));
    for frame in &signature.frames {
        hasher.update(frame.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(names: &[(&str, &str)]) -> Vec<FrameRef> {
        names
            .iter()
            .enumerate()
            .map(|(i, (function, module))| FrameRef {
                index: i,
                frame: i,
                inlined: false,
                function: (!function.is_empty()).then(|| function.to_string()),
                module: Some(module.to_string()),
                file: None,
                line: None,
            })
            .collect()
    }

    fn rules() -> SignatureRules {
        SignatureRules::new(&[], &[], &[]).unwrap()
    }

    #[test]
    fn sentinel_prefix_and_irrelevant_frames() {
        let crash = frames(&[
            ("__pthread_kill_implementation.constprop.0", "libc.so.6"),
            ("raise", "libc.so.6"),
            ("abort", "libc.so.6"),
            ("__assert_fail", "libc.so.6"),
            ("Parser::parse_header(char const*)", "app"),
            ("main", "app"),
        ]);
        let sig = signature(&rules(), FaultClass::Assertion, &crash, &BTreeMap::new());
        assert_eq!(sig.text, "__assert_fail | Parser::parse_header");
        let memcpy = frames(&[
            ("__memmove_avx_unaligned_erms", "libc.so.6"),
            ("std::vector<int>::push_back(int const&)", "app"),
            ("main", "app"),
        ]);
        let sig = signature(&rules(), FaultClass::WildWrite, &memcpy, &BTreeMap::new());
        assert_eq!(
            sig.text,
            "__memmove_avx_unaligned_erms | std::vector<T>::push_back"
        );
    }

    #[test]
    fn unsymbolicated_frames_show_their_module() {
        let crash = frames(&[("", "libc.so.6"), ("", "libxul.so"), ("main", "app")]);
        let sig = signature(&rules(), FaultClass::WildRead, &crash, &BTreeMap::new());
        assert_eq!(sig.text, "libxul.so");
    }

    #[test]
    fn class_prefixes() {
        let crash = frames(&[("recurse(int)", "app"), ("recurse(int)", "app")]);
        let none = BTreeMap::new();
        assert_eq!(
            signature(&rules(), FaultClass::StackOverflow, &crash, &none).text,
            "stackoverflow | recurse"
        );
        let small = BTreeMap::from([("OOMAllocationSize".to_owned(), "4096".to_owned())]);
        assert_eq!(
            signature(&rules(), FaultClass::OutOfMemory, &crash, &small).text,
            "OOM | small | recurse"
        );
        let large = BTreeMap::from([("OOMAllocationSize".to_owned(), "1073741824".to_owned())]);
        assert_eq!(
            signature(&rules(), FaultClass::OutOfMemory, &crash, &large).text,
            "OOM | large | recurse"
        );
        let message = BTreeMap::from([(
            "MozCrashReason".to_owned(),
            "MOZ_RELEASE_ASSERT(ok)".to_owned(),
        )]);
        assert_eq!(
            signature(&rules(), FaultClass::Abort, &crash, &message).text,
            "Abort | MOZ_RELEASE_ASSERT(ok) | recurse"
        );
    }

    #[test]
    fn long_signatures_are_cut_at_255() {
        let long = "x".repeat(300);
        let crash = frames(&[(long.as_str(), "app")]);
        let sig = signature(&rules(), FaultClass::WildRead, &crash, &BTreeMap::new());
        assert_eq!(sig.text.len(), 255);
        assert!(sig.text.ends_with("..."));
    }

    #[test]
    fn fingerprints_ignore_addresses_and_follow_class_and_frames() {
        let a = frames(&[("Foo::bar(int)", "app")]);
        let b = frames(&[("Foo::bar(long)", "app-v2")]);
        let none = BTreeMap::new();
        let sig_a = signature(&rules(), FaultClass::NullRead, &a, &none);
        let sig_b = signature(&rules(), FaultClass::NullRead, &b, &none);
        assert_eq!(
            fingerprint(FaultClass::NullRead, &sig_a),
            fingerprint(FaultClass::NullRead, &sig_b)
        );
        assert_ne!(
            fingerprint(FaultClass::NullRead, &sig_a),
            fingerprint(FaultClass::NullWrite, &sig_a)
        );
        let c = frames(&[("Foo::baz(int)", "app")]);
        let sig_c = signature(&rules(), FaultClass::NullRead, &c, &none);
        assert_ne!(
            fingerprint(FaultClass::NullRead, &sig_a),
            fingerprint(FaultClass::NullRead, &sig_c)
        );
        assert_eq!(fingerprint(FaultClass::NullRead, &sig_a).len(), 32);
    }
}
