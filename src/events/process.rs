//! An event's frames symbolicated: native frames (an `instruction_addr` inside a `debug_meta`
//! image) through the same module symbols as minidumps, JavaScript frames through the source
//! map store (`/symbolicate-js`'s resolution), other frames kept as sent. The frames as
//! received stay beside the symbolicated ones. The result ([`EventReport`], grouped by
//! `grouping.rs`) is what the worker records.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::event::{Event, EventFrame};
use super::grouping::group;
use super::java;
use super::report::EventReport;
use super::stacks::{EventPlatform, InlineOut, ProcessedFrame, ProcessedStack};
use crate::group::index::MissingModule;
use crate::group::signature::SignatureRules;
use crate::process::modules::ModuleCache;
use crate::process::symbolicate::{
    symbolicate, Addr, AddrMode, FrameStatus, ModuleResult, RawFrame, RawModule, RawStacktrace,
    SymbolicateRequest,
};
use crate::sourcemaps::symbolicate::{
    symbolicate as symbolicate_js, JsError, JsFrame, JsModule, JsStacktrace, SymbolicateJsRequest,
};
use crate::sourcemaps::{SourceMapError, SourceMapStore};
use crate::symbols::identify::{base_name, IL2CPP_MAPPING};

/// Symbolicates and groups events (Java frames: `java.rs`).
pub struct EventProcessor<'a> {
    /// Native module symbols (shared with minidump processing).
    pub modules: &'a ModuleCache,
    /// How long the event waits for symbols still being fetched from upstream sources.
    pub symbols_wait: std::time::Duration,
    /// Source maps and minified files; without a store (`faultline process` of an Apple crash
    /// report with local debug files), JavaScript frames stay as sent.
    pub sourcemaps: Option<&'a SourceMapStore>,
    /// Signature lists (native events sign like minidumps).
    pub rules: &'a SignatureRules,
    /// Largest stored file read.
    pub max_file_bytes: u64,
}

/// What symbolication found besides frames.
#[derive(Default)]
struct Findings {
    /// Frame-level problems.
    errors: Vec<Value>,
    /// Native modules, JavaScript artifacts and ProGuard mappings that were needed and not
    /// stored.
    missing: BTreeSet<MissingModule>,
    /// Debug IDs and artifact store IDs whose files resolved frames.
    used: BTreeSet<String>,
}

/// A stack being built: where it came from and its frames as sent.
struct StackSource<'e> {
    source: &'static str,
    label: String,
    crashed: bool,
    frames: &'e [EventFrame],
    /// The innermost frame's registers.
    registers: &'e [(String, Addr)],
}

impl EventProcessor<'_> {
    /// Processes `event`, filed under project `project` (release files are looked up there).
    pub async fn process(
        &self,
        mut event: Event,
        project: i64,
    ) -> Result<EventReport, SourceMapError> {
        let mappings = java::proguard_modules(&event);
        if !mappings.is_empty() {
            java::remap_exceptions(self.modules, &mut event, &mappings).await;
        }
        let stacks = stack_sources(&event);
        let mut processed: Vec<Vec<ProcessedFrame>> = stacks
            .iter()
            .map(|s| s.frames.iter().map(as_sent).collect())
            .collect();
        let mut found = Findings::default();
        let images = self
            .native(&event, &stacks, &mut processed, &mut found)
            .await;
        self.javascript(&event, &stacks, &mut processed, project, &mut found)
            .await?;
        if !mappings.is_empty() {
            let sent: Vec<&[EventFrame]> = stacks.iter().map(|s| s.frames).collect();
            java::remap_frames(
                self.modules,
                event.platform.as_deref(),
                &sent,
                &mut processed,
                mappings,
                (&mut found.missing, &mut found.used),
            )
            .await;
        }
        let stacks: Vec<ProcessedStack> = stacks
            .into_iter()
            .zip(processed)
            .map(|(s, frames)| ProcessedStack {
                source: s.source,
                label: s.label,
                crashed: s.crashed,
                frames,
                raw_frames: s.frames.to_vec(),
                registers: s.registers.to_vec(),
            })
            .collect();
        let failing = stacks.iter().find(|s| s.crashed).or(stacks.first());
        let platform = match failing {
            Some(s) if s.frames.iter().any(|f| f.frame.is_native()) => EventPlatform::Native,
            Some(s)
                if s.raw_frames
                    .iter()
                    .any(|f| f.is_javascript(event.platform.as_deref())) =>
            {
                EventPlatform::JavaScript
            }
            _ => EventPlatform::Other,
        };
        let grouping = group(self.rules, &event, failing, platform);
        Ok(EventReport {
            event,
            stacks,
            platform,
            images,
            errors: found.errors,
            missing_modules: found.missing.into_iter().collect(),
            used_modules: found.used.into_iter().collect(),
            grouping,
        })
    }

    /// Native frames through the module symbols; returns the images with their status.
    async fn native(
        &self,
        event: &Event,
        stacks: &[StackSource<'_>],
        processed: &mut [Vec<ProcessedFrame>],
        found: &mut Findings,
    ) -> Vec<Value> {
        let (images, image_index) = native_images(event);
        // Which (stack, frame) each request frame is; request stacks are innermost first.
        let mut positions = Vec::new();
        let mut request = SymbolicateRequest {
            stacktraces: Vec::new(),
            modules: images,
        };
        for (s, stack) in stacks.iter().enumerate() {
            let native: Vec<usize> = (0..stack.frames.len())
                .rev()
                .filter(|&f| stack.frames[f].is_native())
                .collect();
            if native.is_empty() {
                continue;
            }
            request.stacktraces.push(RawStacktrace {
                frames: native
                    .iter()
                    .map(|&f| RawFrame {
                        instruction_addr: stack.frames[f].instruction_addr.expect("native"),
                        adjust_instruction_addr: None,
                        // `rel:N` names the event's image N; the request lists fewer modules.
                        addr_mode: match stack.frames[f].addr_mode {
                            Some(AddrMode::Relative(n)) => AddrMode::Relative(
                                image_index.get(n).copied().flatten().unwrap_or(usize::MAX),
                            ),
                            _ => AddrMode::Absolute,
                        },
                        function_id: stack.frames[f].function_id,
                    })
                    .collect(),
            });
            positions.push((s, native));
        }
        if request.stacktraces.is_empty() {
            return Vec::new();
        }
        let deadline = std::time::Instant::now() + self.symbols_wait;
        let answer = symbolicate(self.modules, request, deadline).await;
        for ((s, native), stack) in positions.iter().zip(&answer.stacktraces) {
            for (&f, out) in native.iter().zip(&stack.frames) {
                let frame = &mut processed[*s][f];
                frame.status = out.status.as_str().to_owned();
                if let Some(package) = &out.package {
                    frame.frame.package = Some(package.clone());
                }
                if out.status == FrameStatus::Symbolicated {
                    // A .NET frame's method is named by the event, not its PDB.
                    if out.function.is_some() {
                        frame.frame.function = out.function.clone();
                    }
                    frame.frame.abs_path = out.abs_path.clone();
                    frame.frame.filename = out.abs_path.as_deref().map(|p| base_name(p).to_owned());
                    frame.frame.lineno = out.lineno;
                    frame.generated_abs_path = out.generated_abs_path.clone();
                    frame.generated_lineno = out.generated_lineno;
                    frame.inlines = out.inlines.iter().map(InlineOut::from).collect();
                } else if let Some(module) = out.module_index {
                    found.errors.push(json!({
                        "type": out.status.as_str(),
                        "instruction_addr": out.instruction_addr,
                        "image": answer.modules[module].module.code_file,
                    }));
                }
            }
        }
        note_modules(&answer.modules, found);
        answer
            .modules
            .iter()
            .map(|m| serde_json::to_value(m).unwrap_or_default())
            .collect()
    }

    /// JavaScript frames through the source map store.
    async fn javascript(
        &self,
        event: &Event,
        stacks: &[StackSource<'_>],
        processed: &mut [Vec<ProcessedFrame>],
        project: i64,
        found: &mut Findings,
    ) -> Result<(), SourceMapError> {
        let platform = event.platform.as_deref();
        let mut positions = Vec::new();
        let mut request = SymbolicateJsRequest {
            stacktraces: Vec::new(),
            modules: event
                .images
                .iter()
                .filter(|i| i.kind == "sourcemap")
                .filter_map(|i| {
                    Some(JsModule {
                        kind: "sourcemap".to_owned(),
                        code_file: i.code_file.clone()?,
                        debug_id: i.debug_id.clone()?,
                    })
                })
                .collect(),
            release: event.release.clone(),
            dist: event.dist.clone(),
        };
        for (s, stack) in stacks.iter().enumerate() {
            let js: Vec<usize> = (0..stack.frames.len())
                .filter(|&f| stack.frames[f].is_javascript(platform))
                .collect();
            if js.is_empty() {
                continue;
            }
            request.stacktraces.push(JsStacktrace {
                frames: js
                    .iter()
                    .map(|&f| {
                        let frame = &stack.frames[f];
                        JsFrame {
                            function: frame.function.clone(),
                            abs_path: frame.abs_path.clone().expect("javascript"),
                            lineno: frame.lineno.expect("javascript"),
                            colno: frame.colno,
                            ..JsFrame::default()
                        }
                    })
                    .collect(),
            });
            positions.push((s, js));
        }
        if request.stacktraces.is_empty() {
            return Ok(());
        }
        let Some(sourcemaps) = self.sourcemaps else {
            return Ok(());
        };
        let answer = symbolicate_js(sourcemaps, request, project, self.max_file_bytes).await?;
        for ((s, js), stack) in positions.iter().zip(&answer.stacktraces) {
            for (&f, out) in js.iter().zip(&stack.frames) {
                apply_js_frame(&mut processed[*s][f], out, &answer.errors);
            }
        }
        found.errors.extend(
            answer
                .errors
                .iter()
                .filter_map(|e| serde_json::to_value(e).ok()),
        );
        found.used.extend(answer.used.iter().cloned());
        for wanted in &answer.missing {
            let name = base_name(&wanted.url).to_owned();
            found.missing.insert(MissingModule {
                debug_id: wanted.id.clone(),
                debug_file: Some(if wanted.sourcemap {
                    name.clone()
                } else {
                    format!("{name}.map")
                }),
                code_file: Some(wanted.url.clone()),
                code_id: None,
            });
        }
        Ok(())
    }
}

/// What the source map made of one JavaScript frame: its original function, file, line and
/// source lines, or the reason it stayed minified.
fn apply_js_frame(frame: &mut ProcessedFrame, out: &JsFrame, errors: &[JsError]) {
    if !out.data.symbolicated {
        let reason = errors
            .iter()
            .find(|e| e.abs_path == out.abs_path)
            .and_then(|e| serde_json::to_value(&e.kind).ok())
            .and_then(|k| k["type"].as_str().map(str::to_owned));
        frame.status = reason.unwrap_or_else(|| "invalid_location".to_owned());
        return;
    }
    frame.status = "resolved".to_owned();
    frame.sourcemap = out.data.sourcemap.clone();
    frame.resolved_with = out.data.resolved_with.clone();
    let f = &mut frame.frame;
    f.function = out.function.clone();
    f.filename = out.filename.clone();
    f.module = out.module.clone();
    f.abs_path = Some(out.abs_path.clone());
    f.lineno = Some(out.lineno);
    f.colno = out.colno;
    f.context_line = out.context_line.clone();
    f.in_app = out.in_app;
    frame.pre_context = out.pre_context.clone();
    frame.post_context = out.post_context.clone();
}

/// A frame as sent, before symbolication.
fn as_sent(frame: &EventFrame) -> ProcessedFrame {
    ProcessedFrame {
        frame: frame.clone(),
        pre_context: Vec::new(),
        post_context: Vec::new(),
        generated_abs_path: None,
        generated_lineno: None,
        inlines: Vec::new(),
        status: "as_sent".to_owned(),
        sourcemap: None,
        resolved_with: None,
    }
}

/// The event's stacks: each exception with frames, then each thread with frames whose stack
/// no exception carries.
fn stack_sources(event: &Event) -> Vec<StackSource<'_>> {
    let mut out = Vec::new();
    let failing = event.crashing_frames().as_ptr();
    for e in event.exceptions.iter().filter(|e| !e.frames.is_empty()) {
        let label = match (&e.kind, &e.value) {
            (Some(k), Some(v)) => format!("{k}: {v}"),
            (Some(k), None) => k.clone(),
            (None, Some(v)) => v.clone(),
            (None, None) => "exception".to_owned(),
        };
        // Registers come with the exception's stack, or with its thread's.
        let thread = || {
            let id = e.thread_id.as_deref()?;
            event.threads.iter().find(|t| t.id.as_deref() == Some(id))
        };
        let registers = match (e.registers.is_empty(), thread()) {
            (true, Some(thread)) => &thread.registers,
            _ => &e.registers,
        };
        out.push(StackSource {
            source: "exception",
            label,
            crashed: e.frames.as_ptr() == failing,
            frames: &e.frames,
            registers,
        });
    }
    let exception_threads: BTreeSet<&str> = event
        .exceptions
        .iter()
        .filter(|e| !e.frames.is_empty())
        .filter_map(|e| e.thread_id.as_deref())
        .collect();
    for t in event.threads.iter().filter(|t| !t.frames.is_empty()) {
        if t.id
            .as_deref()
            .is_some_and(|id| exception_threads.contains(id))
        {
            continue;
        }
        let label = match (&t.id, &t.name) {
            (Some(id), Some(name)) => format!("thread {id} ({name})"),
            (Some(id), None) => format!("thread {id}"),
            (None, Some(name)) => format!("thread ({name})"),
            (None, None) => "thread".to_owned(),
        };
        out.push(StackSource {
            source: "thread",
            label,
            crashed: t.frames.as_ptr() == failing,
            frames: &t.frames,
            registers: &t.registers,
        });
    }
    out
}
/// The event's native images (`debug_meta`), as a symbolication request lists modules, and for
/// each image of the event its index among them (`None`: not a native image, or one without a
/// load address). A WebAssembly module's code and a .NET assembly start at 0 (their frames
/// count from them).
fn native_images(event: &Event) -> (Vec<RawModule>, Vec<Option<usize>>) {
    let mut modules = Vec::new();
    let mut index = Vec::with_capacity(event.images.len());
    for i in &event.images {
        let image_addr = match (i.image_addr, i.kind.as_str()) {
            (_, "sourcemap") => None,
            // Both count their frames from the module: WebAssembly code offsets, .NET IL.
            (None, "wasm" | "pe_dotnet") => Some(Addr(0)),
            (addr, _) => addr,
        };
        let Some(image_addr) = image_addr else {
            index.push(None);
            continue;
        };
        index.push(Some(modules.len()));
        modules.push(RawModule {
            kind: Some(i.kind.clone()),
            debug_id: i.debug_id.clone(),
            code_id: i.code_id.clone(),
            debug_file: i.debug_file.clone(),
            code_file: i.code_file.clone(),
            image_addr,
            image_size: i.image_size,
        });
    }
    (modules, index)
}

/// Notes the modules whose symbols were missing (the missing-symbols report, reprocessing on
/// upload) and those used (retention).
fn note_modules(modules: &[ModuleResult], found: &mut Findings) {
    for module in modules {
        let Some(debug_id) = &module.module.debug_id else {
            continue;
        };
        let Ok(id) = crate::symbols::ids::parse_debug_id(debug_id) else {
            continue;
        };
        match module.debug_status {
            "missing" => {
                let base = |name: &Option<String>| {
                    name.as_deref()
                        .map(|n| base_name(n).to_owned())
                        .filter(|n| !n.is_empty())
                };
                found.missing.insert(MissingModule {
                    debug_id: id.to_string(),
                    debug_file: base(&module.module.debug_file),
                    code_file: base(&module.module.code_file),
                    code_id: module.module.code_id.clone(),
                });
            }
            "found" => {
                found.used.insert(id.to_string());
                if module.lacks_il2cpp_mapping {
                    found.missing.insert(MissingModule {
                        debug_id: id.to_string(),
                        debug_file: Some(IL2CPP_MAPPING.to_owned()),
                        code_file: module
                            .module
                            .code_file
                            .as_deref()
                            .map(|f| base_name(f).to_owned()),
                        code_id: None,
                    });
                }
            }
            _ => {}
        }
    }
}
