//! What one line of a frame pattern list matches, worked out without compiling it: a set of
//! whole names, a set of name prefixes, or a regex proper together with the prefixes any name
//! it matches must start with. The build script (`build.rs`) runs this over the shipped lists,
//! so a run of faultline starts with them already sorted; lines from the configuration are
//! sorted the same way at start-up.

use regex_syntax::hir::{literal, Hir, HirKind, Look};

/// The most strings one line may expand into (or gate on) before it is treated as a regex
/// that any name may match.
const MAX_EXPANSION: usize = 256;

/// What a pattern line matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// A name equal to one of these (`^…$` lines whose language is finite).
    Names(Vec<String>),
    /// A name starting with one of these (`^…` lines whose language is finite).
    Prefixes(Vec<String>),
    /// A regex proper (repetitions, classes, case folding, no `^`). `gate`: the prefixes every
    /// name it matches starts with, when there are few enough to list (`None`: any name may
    /// match). A line the parser refuses is a regex without a gate; compiling it reports why.
    Regex {
        /// Prefixes a matching name must start with.
        gate: Option<Vec<String>>,
    },
}

/// Splits a list line into whether it is a `module:` line (matched against the module names
/// of frames without a function name) and its pattern.
pub fn split_module(line: &str) -> (bool, &str) {
    match line.strip_prefix("module:") {
        Some(module) => (true, module.trim()),
        None => (false, line),
    }
}

/// Sorts one pattern (the part after any `module:`).
pub fn analyze(pattern: &str) -> LineKind {
    // Most lines are a plain name or prefix: no parser needed.
    if let Some(body) = pattern.strip_prefix('^') {
        let (body, exact) = body
            .strip_suffix('$')
            .map_or((body, false), |body| (body, true));
        if !body.is_empty() && !body.chars().any(regex_syntax::is_meta_character) {
            let strings = vec![body.to_owned()];
            return if exact {
                LineKind::Names(strings)
            } else {
                LineKind::Prefixes(strings)
            };
        }
    }
    let unknown = LineKind::Regex { gate: None };
    let Ok(hir) = regex_syntax::parse(pattern) else {
        return unknown;
    };
    let HirKind::Concat(parts) = hir.kind() else {
        return unknown;
    };
    let [first, rest @ ..] = parts.as_slice() else {
        return unknown;
    };
    if first.kind() != &HirKind::Look(Look::Start) {
        return unknown;
    }
    if let Some(kind) = finite(rest) {
        return kind;
    }
    LineKind::Regex {
        gate: strings(&literal::Extractor::new().extract(&Hir::concat(rest.to_vec())))
            .filter(|prefixes| prefixes.iter().all(|p| !p.is_empty())),
    }
}

/// The strings a `^`-anchored line's body matches (up to an optional `$`), when its language
/// is finite and small: literals, `?`, alternations; no repetition, class or case folding
/// that would multiply it past [`MAX_EXPANSION`], and no look-around inside (`\b`, a second
/// `^`), which the expansion would drop.
fn finite(rest: &[Hir]) -> Option<LineKind> {
    let (body, exact) = match rest {
        [body @ .., last] if last.kind() == &HirKind::Look(Look::End) => (body, true),
        body => (body, false),
    };
    let body = Hir::concat(body.to_vec());
    if !body.properties().look_set().is_empty() {
        return None;
    }
    let mut extractor = literal::Extractor::new();
    extractor.limit_total(MAX_EXPANSION);
    let seq = extractor.extract(&body);
    if !seq.is_exact() {
        return None;
    }
    let strings = strings(&seq)?;
    Some(if exact {
        LineKind::Names(strings)
    } else {
        LineKind::Prefixes(strings)
    })
}

/// A finite literal sequence as strings (`None`: infinite, too long, or not UTF-8).
fn strings(seq: &literal::Seq) -> Option<Vec<String>> {
    let literals = seq.literals()?;
    if literals.len() > MAX_EXPANSION {
        return None;
    }
    literals
        .iter()
        .map(|l| String::from_utf8(l.as_bytes().to_vec()).ok())
        .collect()
}
