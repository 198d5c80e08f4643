//! Frame pattern lists: the fault-frame skip list here, the signature sentinel, prefix and
//! irrelevant lists in `group`, and the in-app rules. Each list is a data file shipped with
//! faultline plus lines from the configuration; each line is a regex over a function name, or,
//! with a `module:` prefix, over the module of a frame that has no function name. A list is
//! matched as one `RegexSet` (one pass over the name, however long the list).

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, StartKind};
use regex::{Regex, RegexSet};

/// Why a pattern list could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid pattern {pattern:?} in {list}: {source}")]
pub struct PatternError {
    /// Which list.
    pub list: String,
    /// The pattern.
    pub pattern: String,
    /// The regex error.
    pub source: regex::Error,
}

/// Regexes matched together. Most lines of the shipped lists are anchored names
/// (`^abort$`), name prefixes (`^__pthread_kill`) or small finite alternations of them
/// (`^_?_?str(len|cpy)(_chk)?$`): those are expanded into the strings they match and matched
/// as strings (a hash set, and one anchored Aho-Corasick automaton), and only real regexes
/// (repetitions, classes, case folding) are compiled, as one `RegexSet`. Compiling all 250
/// shipped lines as regexes took 6–10 ms, most of a warm CLI run's start-up.
#[derive(Debug, Clone)]
pub struct PatternSet {
    /// Whole names (`^…$` lines with a finite language).
    exact: HashSet<String>,
    /// Name prefixes (`^…` lines with a finite language).
    prefixes: Option<AhoCorasick>,
    /// Everything else.
    regexes: RegexSet,
}

/// What one pattern line asks for.
enum Pattern {
    /// The name is one of these strings (`exact`), or starts with one of them.
    Strings { strings: Vec<String>, exact: bool },
    /// A regex proper.
    Regex,
}

/// The most strings one line may expand into before it is compiled as a regex instead.
const MAX_EXPANSION: usize = 256;

/// Sorts a line: a line anchored at the start (`^`) whose body, up to an optional `$`, matches
/// a finite set of strings (literals, `?`, alternations; no repetition, class or case folding
/// that would multiply it past [`MAX_EXPANSION`]) becomes those strings; anything else, and
/// any line the parser refuses (compiled later to report the error), stays a regex.
fn sort(pattern: &str) -> Pattern {
    use regex_syntax::hir::{literal, HirKind, Look};
    let Ok(hir) = regex_syntax::parse(pattern) else {
        return Pattern::Regex;
    };
    let HirKind::Concat(parts) = hir.kind() else {
        return Pattern::Regex;
    };
    let [first, rest @ ..] = parts.as_slice() else {
        return Pattern::Regex;
    };
    if first.kind() != &HirKind::Look(Look::Start) {
        return Pattern::Regex;
    }
    let (body, exact) = match rest {
        [body @ .., last] if last.kind() == &HirKind::Look(Look::End) => (body, true),
        body => (body, false),
    };
    let body = regex_syntax::hir::Hir::concat(body.to_vec());
    let mut extractor = literal::Extractor::new();
    extractor.limit_total(MAX_EXPANSION);
    let seq = extractor.extract(&body);
    let (Some(literals), true) = (seq.literals(), seq.is_exact()) else {
        return Pattern::Regex;
    };
    // A look-around inside the body (`\b`, a second `^`) would be dropped by the expansion.
    if body.properties().look_set().is_empty() {
        let strings: Option<Vec<String>> = literals
            .iter()
            .map(|l| String::from_utf8(l.as_bytes().to_vec()).ok())
            .collect();
        if let Some(strings) = strings {
            return Pattern::Strings { strings, exact };
        }
    }
    Pattern::Regex
}

impl PatternSet {
    /// One set from `(pattern, list it comes from)` pairs; an invalid pattern is reported with
    /// its list.
    pub fn new<'a>(
        patterns: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<PatternSet, PatternError> {
        let mut exact = HashSet::new();
        let mut prefixes = Vec::new();
        let (mut all, mut lists) = (Vec::new(), Vec::new());
        for (pattern, list) in patterns {
            match sort(pattern) {
                Pattern::Strings {
                    strings,
                    exact: true,
                } => exact.extend(strings),
                Pattern::Strings { strings, .. } => prefixes.extend(strings),
                Pattern::Regex => {
                    all.push(pattern);
                    lists.push(list);
                }
            }
        }
        let prefixes = (!prefixes.is_empty()).then(|| {
            AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .start_kind(StartKind::Anchored)
                .build(&prefixes)
                .expect("a few thousand short prefixes fit an automaton")
        });
        // Regexes are compiled alone only to name the one at fault.
        let regexes = RegexSet::new(&all).map_err(|set_error| {
            let invalid = all.iter().zip(&lists).find_map(|(pattern, list)| {
                Regex::new(pattern)
                    .err()
                    .map(|source| (*pattern, *list, source))
            });
            // Every pattern valid alone: the set's size limit was crossed, by the last one.
            let (pattern, list, source) = invalid.unwrap_or((
                all.last().copied().unwrap_or_default(),
                lists.last().copied().unwrap_or_default(),
                set_error,
            ));
            PatternError {
                list: list.to_owned(),
                pattern: pattern.to_owned(),
                source,
            }
        })?;
        Ok(PatternSet {
            exact,
            prefixes,
            regexes,
        })
    }

    /// Whether any pattern matches `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.exact.contains(text)
            || self
                .prefixes
                .as_ref()
                .is_some_and(|p| p.is_match(Input::new(text).anchored(Anchored::Yes)))
            || self.regexes.is_match(text)
    }

    /// Whether the set has no pattern.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_none() && self.regexes.is_empty()
    }
}

/// A frame list: function-name patterns, and `module:` patterns for frames without a function.
#[derive(Debug, Clone)]
pub struct FramePatterns {
    /// Over function names.
    pub functions: PatternSet,
    /// Over module names (frames with no function name).
    pub modules: PatternSet,
}

impl FramePatterns {
    /// The list in `defaults` (a shipped data file, named `default_list` in errors) plus
    /// `extra` lines from the configuration setting `setting`. Blank lines and `#` comments are
    /// ignored.
    pub fn new(
        defaults: &str,
        default_list: &str,
        extra: &[String],
        setting: &str,
    ) -> Result<FramePatterns, PatternError> {
        let mut functions = Vec::new();
        let mut modules = Vec::new();
        let lines = defaults
            .lines()
            .map(|l| (l, default_list))
            .chain(extra.iter().map(|l| (l.as_str(), setting)));
        for (line, list) in lines {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.strip_prefix("module:") {
                Some(module) => modules.push((module.trim(), list)),
                None => functions.push((line, list)),
            }
        }
        Ok(FramePatterns {
            functions: PatternSet::new(functions)?,
            modules: PatternSet::new(modules)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_and_prefixes_match_as_their_regexes_would() {
        let set = PatternSet::new(
            [
                "^abort$",
                "^__pthread_kill",
                "^operator new",
                "^_?_?libc_message",
                "^_?_?str(len|cpy)(_chk)?$",
                "^(?i)kernel32\\.dll$",
                "^a\\b",
                "raise",
            ]
            .map(|p| (p, "test")),
        )
        .unwrap();
        for (text, expected) in [
            ("abort", true),
            ("abort2", false),
            ("xabort", false),
            ("__pthread_kill_implementation", true),
            ("__pthread_kil", false),
            ("operator new[]", true),
            ("__libc_message", true),
            ("_strcpy_chk", true),
            ("__strlen", true),
            ("strlen_chk", true),
            ("strlenx", false),
            ("___strlen", false),
            ("a b", true),
            ("ab", false),
            ("KERNEL32.dll", true),
            ("kernel32xdll", false),
            ("my_raise_fn", true),
            ("", false),
        ] {
            assert_eq!(set.is_match(text), expected, "{text:?}");
        }
        assert!(PatternSet::new([]).unwrap().is_empty());
        assert!(!PatternSet::new([("^a", "test")]).unwrap().is_empty());
    }

    /// Every shipped line matches exactly what its regex matches, expanded or not, on names
    /// built from the expansions themselves (each, one character longer, one shorter).
    #[test]
    fn expanded_shipped_lines_match_as_their_regexes_would() {
        let shipped = [
            crate::classify::frames::DEFAULT_SKIP_LIST,
            crate::group::signature::DEFAULT_SENTINELS,
            crate::group::signature::DEFAULT_PREFIXES,
            crate::group::signature::DEFAULT_IRRELEVANT,
        ];
        let lines: Vec<&str> = shipped
            .iter()
            .flat_map(|list| list.lines())
            .map(|l| l.trim())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.strip_prefix("module:").map_or(l, str::trim))
            .collect();
        let mut names = vec![
            String::new(),
            "x".to_owned(),
            "KERNEL32.DLL".to_owned(),
            "libc-2.31.so".to_owned(),
            "__memcpy_avx_unaligned_erms".to_owned(),
        ];
        let mut regexes = 0;
        for line in &lines {
            match sort(line) {
                Pattern::Strings { strings, .. } => {
                    for s in strings {
                        names.push(format!("{s}x"));
                        names.push(s.chars().skip(1).collect());
                        let mut shorter = s.clone();
                        shorter.pop();
                        names.push(shorter);
                        names.push(s);
                    }
                }
                Pattern::Regex => regexes += 1,
            }
        }
        for line in &lines {
            let set = PatternSet::new([(*line, "test")]).unwrap();
            let regex = Regex::new(line).unwrap();
            for name in &names {
                assert_eq!(
                    set.is_match(name),
                    regex.is_match(name),
                    "{line} on {name:?}"
                );
            }
        }
        // Only lines with repetitions, classes or case folding are left to compile.
        assert!(regexes <= 11, "{regexes} of {} lines compiled", lines.len());
    }

    #[test]
    fn lines_split_into_function_and_module_patterns_and_errors_name_their_list() {
        let list = FramePatterns::new(
            "# comment\n^abort$\n\nmodule:^libc\\.so",
            "the defaults",
            &["^my_panic".to_owned()],
            "classify.skip_frames",
        )
        .unwrap();
        assert!(list.functions.is_match("abort"));
        assert!(list.functions.is_match("my_panic_handler"));
        assert!(!list.functions.is_match("libc.so.6"));
        assert!(list.modules.is_match("libc.so.6"));
        assert!(!list.modules.is_match("abort"));
        let error = FramePatterns::new(
            "^ok$",
            "the defaults",
            &["(".to_owned(), "^fine$".to_owned()],
            "classify.skip_frames",
        )
        .unwrap_err();
        assert_eq!(
            (error.list.as_str(), error.pattern.as_str()),
            ("classify.skip_frames", "(")
        );
    }
}
