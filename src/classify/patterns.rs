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

/// Regexes matched together. Most lines of the shipped lists are plain names (`^abort$`) or
/// name prefixes (`^__pthread_kill`): those are matched as strings (a hash set, and one
/// anchored Aho-Corasick automaton), and only real regexes are compiled, as one `RegexSet`.
/// Compiling all 250 shipped lines as regexes took 6–10 ms, most of a warm CLI run's start-up.
#[derive(Debug, Clone)]
pub struct PatternSet {
    /// `^name$` lines.
    exact: HashSet<String>,
    /// `^prefix` lines.
    prefixes: Option<AhoCorasick>,
    /// Everything else.
    regexes: RegexSet,
}

/// What one pattern line asks for.
enum Pattern<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
}

/// Sorts a line into plain name, prefix or regex: a line is plain when, without its leading
/// `^` and trailing `$`, it holds no regex syntax at all.
fn sort(pattern: &str) -> Pattern<'_> {
    let Some(body) = pattern.strip_prefix('^') else {
        return Pattern::Regex(pattern);
    };
    let (body, exact) = match body.strip_suffix('$') {
        Some(body) => (body, true),
        None => (body, false),
    };
    let plain = !body.is_empty() && !body.chars().any(regex_syntax::is_meta_character);
    match (plain, exact) {
        (true, true) => Pattern::Exact(body),
        (true, false) => Pattern::Prefix(body),
        (false, _) => Pattern::Regex(pattern),
    }
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
                Pattern::Exact(name) => {
                    exact.insert(name.to_owned());
                }
                Pattern::Prefix(prefix) => prefixes.push(prefix),
                Pattern::Regex(regex) => {
                    all.push(regex);
                    lists.push(list);
                }
            }
        }
        let prefixes = (!prefixes.is_empty()).then(|| {
            AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .start_kind(StartKind::Anchored)
                .build(&prefixes)
                .expect("a few hundred plain prefixes fit an automaton")
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
                "^(?i)kernel32\\.dll$",
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
