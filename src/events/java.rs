//! An event's Java and Kotlin frames de-obfuscated through its ProGuard mappings
//! (`debug_meta` images of type `proguard`, by UUID): the exceptions' classes first, then each
//! stack's frames, a frame replaced by all the frames it expands into (inlined calls), an R8
//! outline frame dropped. Status `deobfuscated`, `missing_mapping` (its mapping is not stored:
//! the missing-symbols report names it, and its upload reprocesses the event) or `as_sent` (a
//! class the mapping does not rename, such as Android's own).

use std::collections::BTreeSet;

use super::event::{Event, EventFrame};
use super::stacks::ProcessedFrame;
use crate::group::index::MissingModule;
use crate::jvm::{
    symbolicate_jvm, JvmException, JvmFrame, JvmModule, JvmStacktrace, SymbolicateJvmRequest,
};
use crate::process::modules::ModuleCache;

/// The exceptions' classes through the event's ProGuard mappings.
pub(super) async fn remap_exceptions(
    modules: &ModuleCache,
    event: &mut Event,
    mappings: &[JvmModule],
) {
    let request = SymbolicateJvmRequest {
        exceptions: event
            .exceptions
            .iter()
            .map(|e| JvmException {
                kind: e.kind.clone().unwrap_or_default(),
                module: e.module.clone().unwrap_or_default(),
            })
            .collect(),
        modules: mappings.to_vec(),
        ..SymbolicateJvmRequest::default()
    };
    let answer = symbolicate_jvm(modules, request).await;
    for (exception, remapped) in event.exceptions.iter_mut().zip(answer.exceptions) {
        if exception.kind.is_some() {
            exception.kind = Some(remapped.kind);
            exception.module = Some(remapped.module).filter(|m| !m.is_empty());
        }
    }
}

/// Java and Kotlin frames of each stack (`stacks`: the frames as sent; `processed`: the same
/// stacks being built) through the event's ProGuard mappings: each replaced by the frames it
/// de-obfuscates into (more than one where the compiler inlined). The mappings missing go into
/// `missing`, those read into `used`.
pub(super) async fn remap_frames(
    modules: &ModuleCache,
    platform: Option<&str>,
    stacks: &[&[EventFrame]],
    processed: &mut [Vec<ProcessedFrame>],
    mappings: Vec<JvmModule>,
    (missing, used): (&mut BTreeSet<MissingModule>, &mut BTreeSet<String>),
) {
    let mut positions = Vec::new();
    let mut request = SymbolicateJvmRequest {
        modules: mappings,
        ..SymbolicateJvmRequest::default()
    };
    for (s, stack) in stacks.iter().enumerate() {
        let java: Vec<usize> = (0..stack.len())
            .filter(|&f| stack[f].is_java(platform))
            .collect();
        if java.is_empty() {
            continue;
        }
        request.stacktraces.push(JvmStacktrace {
            exception: None,
            frames: java
                .iter()
                .map(|&f| {
                    let frame = &stack[f];
                    JvmFrame {
                        function: frame.function.clone().unwrap_or_default(),
                        module: frame.module.clone().unwrap_or_default(),
                        lineno: frame.lineno,
                        in_app: frame.in_app,
                        ..JvmFrame::default()
                    }
                })
                .collect(),
        });
        positions.push((s, java));
    }
    let answer = symbolicate_jvm(modules, request).await;
    let absent = answer.errors.iter().any(|e| e.kind == "missing");
    for ((s, java), stack) in positions.iter().zip(&answer.stacktraces) {
        let mut by_frame: Vec<Vec<&JvmFrame>> = vec![Vec::new(); java.len()];
        for out in &stack.frames {
            if let Some(slot) = by_frame.get_mut(out.index) {
                slot.push(out);
            }
        }
        let before = std::mem::take(&mut processed[*s]);
        // `java` lists the stack's Java frames in order: a binary search finds each one's slot.
        for (f, frame) in before.into_iter().enumerate() {
            let Ok(k) = java.binary_search(&f) else {
                processed[*s].push(frame);
                continue;
            };
            // An outline frame (R8's shared code) has no frames of its own: dropped.
            for out in &by_frame[k] {
                processed[*s].push(deobfuscated(&frame, out, absent));
            }
        }
    }
    for error in &answer.errors {
        if error.kind == "missing" {
            missing.insert(MissingModule {
                debug_id: error.uuid.to_ascii_lowercase(),
                debug_file: Some("ProGuard mapping".to_owned()),
                code_file: None,
                code_id: None,
            });
        }
    }
    used.extend(answer.used.iter().map(|id| id.to_string()));
}

/// The event's ProGuard mappings (`debug_meta` images of type `proguard`).
pub(super) fn proguard_modules(event: &Event) -> Vec<JvmModule> {
    event
        .images
        .iter()
        .filter(|i| i.kind == "proguard")
        .filter_map(|i| {
            Some(JvmModule {
                uuid: i.debug_id.clone()?,
                kind: "proguard".to_owned(),
            })
        })
        .collect()
}

/// A Java frame as its mapping tells it: `deobfuscated` when anything changed, else as sent
/// (`missing_mapping` when a mapping was missing).
fn deobfuscated(sent: &ProcessedFrame, out: &JvmFrame, missing: bool) -> ProcessedFrame {
    let mut frame = sent.clone();
    let f = &mut frame.frame;
    let changed = f.module.as_deref() != Some(out.module.as_str())
        || f.function.as_deref() != Some(out.function.as_str())
        || f.lineno != out.lineno;
    if !changed {
        frame.status = if missing {
            "missing_mapping"
        } else {
            "as_sent"
        }
        .to_owned();
        return frame;
    }
    f.module = Some(out.module.clone());
    f.function = Some(out.function.clone());
    f.lineno = out.lineno;
    if out.filename.is_some() {
        f.filename = out.filename.clone();
        f.abs_path = out.abs_path.clone();
    }
    frame.status = "deobfuscated".to_owned();
    frame
}
