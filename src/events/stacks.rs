//! An event's stacks after symbolication: each frame as it now reads, with its status and the
//! functions inlined at it, beside the frames as received; the vocabulary that processing
//! (`process.rs`) writes and grouping (`grouping.rs`) and the report (`report.rs`) read.

use serde::Serialize;

use super::event::EventFrame;
use crate::process::symbolicate::Addr;
use crate::process::symbolicate::InlineFrame;

/// Which kind of code an event's failing stack is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventPlatform {
    /// Native frames (instruction addresses).
    Native,
    /// JavaScript frames (URLs, lines, columns).
    JavaScript,
    /// Anything else (Python, Java…): frames as sent.
    Other,
}

/// One frame after symbolication.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessedFrame {
    /// The frame (function, file, line… now original).
    #[serde(flatten)]
    pub frame: EventFrame,
    /// Source lines before (JavaScript, from the map's sources).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_context: Vec<String>,
    /// Source lines after.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_context: Vec<String>,
    /// Native: the generated file and line (IL2CPP's C++) that `abs_path` and `lineno` were
    /// moved from by a line mapping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_abs_path: Option<String>,
    /// Native: the generated file's line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_lineno: Option<u32>,
    /// Native: functions inlined at this address, innermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inlines: Vec<InlineOut>,
    /// `symbolicated`, `missing_symbol`, `unknown_image`, `malformed` (native), `resolved`,
    /// `missing_sourcemap`, `missing_source`, `invalid_location`… (JavaScript), `as_sent`.
    pub status: String,
    /// JavaScript: the map used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sourcemap: Option<String>,
    /// JavaScript: how the map was found (`debug-id` or `release`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_with: Option<String>,
}

/// An inlined call (native).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InlineOut {
    /// Function.
    pub function: String,
    /// Source file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    /// Line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u32>,
}

impl From<&InlineFrame> for InlineOut {
    fn from(inline: &InlineFrame) -> InlineOut {
        InlineOut {
            function: inline.function.clone(),
            abs_path: inline.abs_path.clone(),
            lineno: inline.lineno,
        }
    }
}

/// One stack of the event (an exception's or a thread's), oldest frame first as in events.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessedStack {
    /// `exception` or `thread`.
    pub source: &'static str,
    /// What a reader calls it: `TypeError: x is undefined`, `thread 3 (main)`.
    pub label: String,
    /// Whether it is the stack that failed.
    pub crashed: bool,
    /// Frames after symbolication.
    pub frames: Vec<ProcessedFrame>,
    /// Frames as received.
    pub raw_frames: Vec<EventFrame>,
    /// The innermost frame's registers as received, in the CPU's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registers: Vec<(String, Addr)>,
}
