//! What processing an event produces: its stacks with each frame's status, beside the frames
//! as received; the native images and what was missing; its grouping. Serialized as the
//! processed JSON (docs/OUTPUT.md, "Events"), and recorded like a processed minidump through
//! [`crate::group::ProcessedReport`].

use std::borrow::Cow;

use serde::ser::SerializeMap;
use serde_json::{json, Value};

use super::event::Event;
use super::grouping::EventGrouping;
use super::stacks::{EventPlatform, ProcessedStack};
use crate::group::index::MissingModule;
use crate::process::view::{FrameView, Hex, InlineView, Registers, ThreadView};
use crate::symbols::identify::base_name;

/// A processed event: the event, its stacks symbolicated, what was missing, and its group.
#[derive(Debug, Clone)]
pub struct EventReport {
    /// The event as received.
    pub event: Event,
    /// Exceptions' stacks, then threads' (a thread whose stack an exception already has is
    /// not repeated).
    pub stacks: Vec<ProcessedStack>,
    /// The failing stack's kind of code.
    pub platform: EventPlatform,
    /// Native images with their symbol status.
    pub images: Vec<Value>,
    /// Frame-level problems (`missing_sourcemap`, …, and native `missing_symbol`).
    pub errors: Vec<Value>,
    /// Native modules without symbols, and source maps / minified files not found (their
    /// store IDs): an upload of one reprocesses the event.
    pub missing_modules: Vec<MissingModule>,
    /// Debug IDs whose files symbolicated it.
    pub used_modules: Vec<String>,
    /// Signature, fingerprint and how they were chosen.
    pub grouping: EventGrouping,
}

impl EventReport {
    /// Writes the processed event's JSON (docs/OUTPUT.md, "Events") into `map`: the event's
    /// fields, its stacks (symbolicated and raw), and, so that a crash's page and tools that
    /// read processed minidumps find what they expect, `threads` (innermost frame first),
    /// `crash_info`, `modules`, `classification` and `grouping`.
    pub fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let e = &self.event;
        map.serialize_entry("kind", "event")?;
        map.serialize_entry("event_id", &e.event_id)?;
        map.serialize_entry("platform", &e.platform)?;
        map.serialize_entry("event_platform", &self.platform)?;
        map.serialize_entry("level", &e.level)?;
        map.serialize_entry("message", &e.message)?;
        map.serialize_entry("release", &e.release)?;
        map.serialize_entry("dist", &e.dist)?;
        map.serialize_entry("environment", &e.environment)?;
        map.serialize_entry("user", &e.user)?;
        map.serialize_entry("tags", &e.tags)?;
        map.serialize_entry("contexts", &e.contexts)?;
        map.serialize_entry("sdk", &e.sdk)?;
        let mut exception_stacks = self.stacks.iter().filter(|s| s.source == "exception");
        let mut exceptions = Vec::with_capacity(e.exceptions.len());
        for x in &e.exceptions {
            let stack = if x.frames.is_empty() {
                None
            } else {
                exception_stacks.next()
            };
            exceptions.push(json!({
                "type": x.kind,
                "value": x.value,
                "module": x.module,
                "mechanism": x.mechanism,
                "stacktrace": {"frames": stack.map(|s| &s.frames)},
                "raw_stacktrace": {"frames": &x.frames},
            }));
        }
        map.serialize_entry("exceptions", &exceptions)?;
        // Threads' stacks (an exception's stack is under the exception, not repeated here).
        let thread_stacks: Vec<&ProcessedStack> = self
            .stacks
            .iter()
            .filter(|s| s.source == "thread")
            .collect();
        map.serialize_entry("thread_stacks", &thread_stacks)?;
        let crashing = self.stacks.iter().position(|s| s.crashed).unwrap_or(0);
        let threads: Vec<ThreadView<'_>> =
            self.stacks.iter().map(|s| thread_view(s, None)).collect();
        map.serialize_entry("threads", &threads)?;
        // As a processed minidump has it: the crashing stack again, its innermost frame with the
        // registers the event sent.
        if let Some(stack) = self.stacks.get(crashing).filter(|s| !s.frames.is_empty()) {
            map.serialize_entry("crashing_thread", &thread_view(stack, Some(crashing)))?;
        }
        let main = e.main_exception();
        map.serialize_entry(
            "crash_info",
            &json!({
                "type": main.and_then(|x| x.kind.clone()).or_else(|| e.message.clone()),
                "crashing_thread": (!self.stacks.is_empty()).then_some(crashing),
            }),
        )?;
        map.serialize_entry("modules", &self.images)?;
        map.serialize_entry("errors", &self.errors)?;
        map.serialize_entry(
            "classification",
            &json!({
                "fault_class": self.grouping.fault_class,
                "evidence": {
                    "crash_reason": main.and_then(|x| x.kind.clone()),
                    "rule": main.and_then(|x| x.value.clone()).or_else(|| e.message.clone()),
                },
            }),
        )?;
        map.serialize_entry("grouping", &self.grouping)
    }
}

impl serde::Serialize for EventReport {
    /// The processed event's JSON alone (no crash or group IDs: `faultline process`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.serialize_fields(&mut map)?;
        map.end()
    }
}

/// A stack as a processed minidump's thread (innermost frame first), for the readers of
/// processed crashes (the crash page); with `crashing_index`, the top-level `crashing_thread`
/// copy (its index, and the registers on its innermost frame).
fn thread_view(stack: &ProcessedStack, crashing_index: Option<usize>) -> ThreadView<'_> {
    let registers = (crashing_index.is_some() && !stack.registers.is_empty()).then(|| {
        Registers(
            stack
                .registers
                .iter()
                .map(|(name, value)| (Cow::Owned(name.clone()), format!("{:#018x}", value.0)))
                .collect(),
        )
    });
    let frames: Vec<FrameView<'_>> = stack
        .frames
        .iter()
        .rev()
        .enumerate()
        .map(|(index, f)| {
            let fr = &f.frame;
            FrameView {
                frame: index,
                module: fr
                    .package
                    .as_deref()
                    .map(base_name)
                    .or(fr.module.as_deref())
                    .map(Cow::Borrowed),
                function: fr.function.as_deref().map(Cow::Borrowed),
                file: fr
                    .abs_path
                    .as_deref()
                    .or(fr.filename.as_deref())
                    .map(Cow::Borrowed),
                line: fr.lineno,
                generated_file: f.generated_abs_path.as_deref().map(Cow::Borrowed),
                generated_line: f.generated_lineno,
                column: fr.colno,
                offset: fr.instruction_addr.map(|a| Hex {
                    value: a.0,
                    narrow: false,
                }),
                inlines: (!f.inlines.is_empty()).then(|| {
                    f.inlines
                        .iter()
                        .map(|i| InlineView {
                            function: Cow::Borrowed(&i.function),
                            file: i.abs_path.as_deref().map(Cow::Borrowed),
                            line: i.lineno,
                        })
                        .collect()
                }),
                module_offset: None,
                unloaded_modules: None,
                function_offset: None,
                missing_symbols: matches!(
                    f.status.as_str(),
                    "missing_symbol" | "missing_sourcemap" | "missing_source" | "missing_mapping"
                ),
                trust: Cow::Borrowed(&f.status),
                registers: if index == 0 { registers.clone() } else { None },
                variables: None,
            }
        })
        .collect();
    ThreadView {
        frame_count: frames.len(),
        last_error_value: None,
        thread_name: Some(Cow::Borrowed(&stack.label)),
        thread_id: None,
        frames,
        threads_index: crashing_index,
    }
}

impl crate::group::ProcessedReport for EventReport {
    fn kind(&self) -> crate::group::index::CrashKind {
        crate::group::index::CrashKind::Event
    }
    fn platform(&self) -> Option<String> {
        let os = &self.event.contexts["os"];
        os["name"]
            .as_str()
            .map(|name| match os["version"].as_str() {
                Some(version) => format!("{name} {version}"),
                None => name.to_owned(),
            })
            .or_else(|| self.event.platform.clone())
    }
    fn cpu(&self) -> Option<String> {
        self.event.contexts["device"]["arch"]
            .as_str()
            .map(str::to_owned)
    }
    fn fingerprint(&self) -> &str {
        &self.grouping.fingerprint
    }
    fn signature(&self) -> &str {
        &self.grouping.signature
    }
    fn signature_frames(&self) -> &[String] {
        &self.grouping.frames
    }
    fn fault_class(&self) -> crate::group::CrashClass {
        self.grouping.fault_class
    }
    fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        EventReport::serialize_fields(self, map)
    }
}
