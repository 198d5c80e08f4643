//! Frame pattern lists: the fault-frame skip list here, the signature sentinel, prefix and
//! irrelevant lists in `group`, and the in-app rules. Each list is a data file shipped with
//! faultline plus lines from the configuration; each line is a regex over a function name, or,
//! with a `module:` prefix, over the module of a frame that has no function name. A list is
//! matched as one `RegexSet` (one pass over the name, however long the list).

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

/// Regexes matched together.
#[derive(Debug, Clone)]
pub struct PatternSet(RegexSet);

impl PatternSet {
    /// One set from `(pattern, list it comes from)` pairs; an invalid pattern is reported with
    /// its list.
    pub fn new<'a>(
        patterns: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<PatternSet, PatternError> {
        let (all, lists): (Vec<&str>, Vec<&str>) = patterns.into_iter().unzip();
        // One set, compiled once; patterns are compiled alone only to name the one at fault
        // (compiling each alone every time cost most of a CLI run's start-up: the regex crate
        // builds a full DFA for each small pattern).
        RegexSet::new(&all).map(PatternSet).map_err(|set_error| {
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
        })
    }

    /// Whether any pattern matches `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    /// Whether the set has no pattern.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
