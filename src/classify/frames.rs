//! The crashing thread's frames as a person reads them (inlined functions first, each as its
//! own frame), the skip list that decides which frame to blame, and in-app rules.

use super::patterns::{shipped, FramePatterns, PatternError, PatternSet};
use minidump_processor::ProcessState;

use crate::process::thrown::ThrownException;
use crate::process::ProcessedCrash;
use serde::{Deserialize, Serialize};

/// One frame of the crashing thread, inlined frames included.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrameRef {
    /// Position in the expanded list (inlined frames count), from the top of the stack.
    pub index: usize,
    /// Index of the real frame in `threads[].frames[]` it belongs to.
    pub frame: usize,
    /// Whether this is an inlined call within that frame.
    pub inlined: bool,
    /// Function name, when symbolicated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Module (code file base name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Source file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// The crashing thread's frames, inlined ones first within each real frame.
pub fn crashing_frames(state: &ProcessState) -> Vec<FrameRef> {
    state
        .requesting_thread
        .and_then(|i| state.threads.get(i))
        .map(thread_frames)
        .unwrap_or_default()
}

/// The stack a crash is judged by (its class's sentinels, the frame to blame, the signature):
/// the throw stack of an uncaught exception the process recorded, else the crashing thread's.
pub fn judged_frames(crash: &ProcessedCrash) -> Vec<FrameRef> {
    match &crash.thrown {
        Some(thrown) if !thrown.frames.is_empty() => thrown_frames(thrown),
        _ => crashing_frames(&crash.state),
    }
}

/// A throw stack's frames (no inlined calls are recorded for them).
pub fn thrown_frames(thrown: &ThrownException) -> Vec<FrameRef> {
    thrown
        .frames
        .iter()
        .enumerate()
        .map(|(index, frame)| FrameRef {
            index,
            frame: index,
            inlined: false,
            function: frame.function.clone(),
            module: frame.module.clone(),
            file: frame.file.clone(),
            line: frame.line,
        })
        .collect()
}

/// A thread's frames as a reader sees them: each real frame preceded by the calls inlined into
/// it, innermost first.
pub fn thread_frames(thread: &minidump_unwind::CallStack) -> Vec<FrameRef> {
    let mut out = Vec::new();
    for (frame_index, frame) in thread.frames.iter().enumerate() {
        let module = frame.module.as_ref().map(|m| {
            let name = minidump::Module::code_file(m);
            crate::symbols::identify::base_name(&name).to_owned()
        });
        let inlines = frame.inlines.iter().map(|inline| {
            (
                Some(inline.function_name.clone()),
                inline.source_file_name.clone(),
                inline.source_line,
            )
        });
        let real = (
            frame.function_name.clone(),
            frame.source_file_name.clone(),
            frame.source_line,
        );
        expand(&mut out, frame_index, module, inlines, real);
    }
    out
}

/// The same expansion over a thread as readers see it (a stored crash read back, or a report's
/// view): the rows the crash page and the CLI's report show, in the order the classifier counts
/// them, so a fault frame's index names the same row everywhere.
pub fn view_frames(thread: &crate::process::view::ThreadView<'_>) -> Vec<FrameRef> {
    let mut out = Vec::new();
    let text = |s: &Option<std::borrow::Cow<'_, str>>| s.as_deref().map(str::to_owned);
    for (frame_index, frame) in thread.frames.iter().enumerate() {
        let inlines = frame.inlines.iter().flatten().map(|inline| {
            (
                Some(inline.function.to_string()),
                text(&inline.file),
                inline.line,
            )
        });
        let real = (text(&frame.function), text(&frame.file), frame.line);
        expand(&mut out, frame_index, text(&frame.module), inlines, real);
    }
    out
}

/// Function, file and line of one row.
type RowParts = (Option<String>, Option<String>, Option<u32>);

/// Appends one real frame's rows: the calls inlined into it first, then the frame itself.
fn expand(
    out: &mut Vec<FrameRef>,
    frame_index: usize,
    module: Option<String>,
    inlines: impl Iterator<Item = RowParts>,
    (function, file, line): RowParts,
) {
    for (function, file, line) in inlines {
        out.push(FrameRef {
            index: out.len(),
            frame: frame_index,
            inlined: true,
            function,
            module: module.clone(),
            file,
            line,
        });
    }
    out.push(FrameRef {
        index: out.len(),
        frame: frame_index,
        inlined: false,
        function,
        module,
        file,
        line,
    });
}

/// Frames not to blame: function-name regexes, and `module:`-prefixed module-name regexes
/// that apply to frames without a function name.
#[derive(Debug, Clone)]
pub struct SkipList(FramePatterns);

impl SkipList {
    /// The shipped defaults plus `extra` lines in the same syntax.
    pub fn new(extra: &[String]) -> Result<SkipList, PatternError> {
        FramePatterns::new(
            shipped::FAULT_FRAME_SKIP,
            "the default skip list",
            extra,
            "classify.skip_frames",
        )
        .map(SkipList)
    }

    /// Whether `frame` is machinery rather than the code to blame. A frame with neither
    /// function nor module (the wild address a bad call jumped to) is never blamed: its caller
    /// made the call.
    pub fn skips(&self, frame: &FrameRef) -> bool {
        match (&frame.function, &frame.module) {
            (None, None) => true,
            (Some(function), _) => self.0.functions.is_match(function),
            (None, Some(module)) => self.0.modules.is_match(module),
        }
    }
}

/// Which frames belong to the application itself.
#[derive(Debug, Clone)]
pub struct InAppRules {
    modules: PatternSet,
    paths: PatternSet,
}

impl InAppRules {
    /// Module-name and source-path regexes; both empty means no in-app rules.
    pub fn new(modules: &[String], paths: &[String]) -> Result<InAppRules, PatternError> {
        Ok(InAppRules {
            modules: PatternSet::new(
                modules
                    .iter()
                    .map(|p| (p.as_str(), "classify.in_app_modules")),
            )?,
            paths: PatternSet::new(paths.iter().map(|p| (p.as_str(), "classify.in_app_paths")))?,
        })
    }

    /// Whether any rule is configured.
    pub fn is_configured(&self) -> bool {
        !self.modules.is_empty() || !self.paths.is_empty()
    }

    /// Whether `frame` is application code.
    pub fn matches(&self, frame: &FrameRef) -> bool {
        frame
            .module
            .as_deref()
            .is_some_and(|m| self.modules.is_match(m))
            || frame
                .file
                .as_deref()
                .is_some_and(|f| self.paths.is_match(f))
    }
}

/// The first frame not on the skip list (the frame to blame), or the top frame when every
/// frame is skipped.
pub fn fault_frame(frames: &[FrameRef], skip: &SkipList) -> Option<FrameRef> {
    frames
        .iter()
        .find(|f| !skip.skips(f))
        .or(frames.first())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(index: usize, function: Option<&str>, module: &str) -> FrameRef {
        FrameRef {
            index,
            frame: index,
            inlined: false,
            function: function.map(str::to_owned),
            module: Some(module.to_owned()),
            file: None,
            line: None,
        }
    }

    #[test]
    fn default_list_skips_machinery_and_keeps_the_caller() {
        let skip = SkipList::new(&[]).unwrap();
        let frames = [
            frame(0, Some("__pthread_kill_implementation"), "libc.so.6"),
            frame(1, Some("raise"), "libc.so.6"),
            frame(2, Some("abort"), "libc.so.6"),
            frame(3, Some("__assert_fail"), "libc.so.6"),
            frame(4, Some("memcpy"), "libc.so.6"),
            frame(5, Some("parse_header(char const*)"), "app"),
        ];
        assert_eq!(fault_frame(&frames, &skip).unwrap().index, 5);
        for name in [
            "core::panicking::panic_fmt",
            "std::panicking::rust_panic_with_hook",
            "__cxa_throw",
            "std::terminate()",
            "KiUserExceptionDispatcher",
            "RtlReportCriticalFailure",
            "__stack_chk_fail",
            "je_malloc",
            "crashpad::CrashpadClient::DumpWithoutCrash(NativeCPUContext*)",
            "__memmove_avx_unaligned_erms",
            "strlen",
        ] {
            assert!(
                skip.skips(&frame(0, Some(name), "x")),
                "{name} should be skipped"
            );
        }
        for name in [
            "main",
            "memcpy_helper_of_mine",
            "MyAllocatorTest::run",
            "abort_request",
        ] {
            assert!(
                !skip.skips(&frame(0, Some(name), "x")),
                "{name} should not be skipped"
            );
        }
    }

    #[test]
    fn a_smashed_stack_blames_the_function_whose_canary_broke() {
        let skip = SkipList::new(&[]).unwrap();
        let frames = [
            frame(0, Some("uw_frame_state_for"), "libc.so.6"),
            frame(1, Some("_Unwind_Backtrace"), "libc.so.6"),
            frame(2, Some("__GI___backtrace"), "libc.so.6"),
            frame(3, Some("__libc_message"), "libc.so.6"),
            frame(4, Some("__fortify_fail"), "libc.so.6"),
            frame(5, Some("__stack_chk_fail"), "libc.so.6"),
            frame(6, Some("parse_header(char const*)"), "app"),
        ];
        assert_eq!(fault_frame(&frames, &skip).unwrap().index, 6);
    }

    #[test]
    fn configured_patterns_extend_the_defaults() {
        let skip =
            SkipList::new(&["^my_log_fatal$".into(), "module:^libmycrash\\.so$".into()]).unwrap();
        assert!(skip.skips(&frame(0, Some("my_log_fatal"), "app")));
        assert!(skip.skips(&frame(0, None, "libmycrash.so")));
        assert!(skip.skips(&frame(0, Some("abort"), "app")));
        assert!(SkipList::new(&["(".into()])
            .unwrap_err()
            .to_string()
            .contains("classify.skip_frames"));
    }

    #[test]
    fn in_app_rules_match_modules_or_paths() {
        let rules = InAppRules::new(&["^app$".into()], &["/src/game/".into()]).unwrap();
        assert!(rules.matches(&frame(0, Some("f"), "app")));
        let mut in_game = frame(0, Some("g"), "libengine.so");
        in_game.file = Some("/build/src/game/world.cpp".into());
        assert!(rules.matches(&in_game));
        assert!(!rules.matches(&frame(0, Some("h"), "libc.so.6")));
    }
}
