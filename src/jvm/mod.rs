//! Java and Kotlin frames de-obfuscated through ProGuard / R8 mapping files (Android builds):
//! each obfuscated frame (`a.b.c` `a` line 13) back to its class, method, file and line, a frame
//! whose line range the compiler inlined into several expanded into all of them (innermost
//! first, as the mapping lists them), R8's outline frames dropped and its rewrite rules
//! applied; exception class names and lone class names remapped too. The mappings are stored
//! like debug files (by the UUID sentry-cli gives them) and read as a ProguardCache built once
//! per mapping (`symbols::derive`), through the same module cache as native symbols.
//!
//! The request and answer are symbolicator's `/symbolicate-jvm` shapes; events' Java frames go
//! through the same [`symbolicate_jvm`].

use std::collections::BTreeMap;
use std::sync::Arc;

use proguard::{ProguardCache, StackFrame};
use serde::{Deserialize, Serialize};
use symbolic::common::DebugId;

use crate::process::modules::{ModuleCache, ModuleSymbols, SymbolStatus};
use crate::upstream::{ModulePlatform, ModuleRef};

/// Most frames one request may carry, over all its stacks.
pub const MAX_FRAMES: usize = 20_000;
/// Most frames one obfuscated frame may expand into (a mapping's inline ranges are the
/// uploader's to write: a hostile one could claim thousands).
const MAX_EXPANSION: usize = 64;

/// One Java / Kotlin frame, as sent and as answered.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct JvmFrame {
    /// The method.
    pub function: String,
    /// The class, fully qualified.
    pub module: String,
    /// The source file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The source file's path, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    /// The line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u32>,
    /// Whether it is the application's own code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app: Option<bool>,
    /// Its position among the request's frames of its stack (kept by every frame it expands
    /// into).
    #[serde(default)]
    pub index: usize,
    /// Whether the compiler made the method up (a lambda's bridge, an accessor).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub method_synthesized: bool,
}

/// An exception's class: `type` and `module` (package).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct JvmException {
    /// The class name without its package.
    #[serde(rename = "type")]
    pub kind: String,
    /// The package.
    #[serde(default)]
    pub module: String,
}

impl JvmException {
    /// `module.type`.
    fn full_name(&self) -> String {
        if self.module.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.module, self.kind)
        }
    }

    /// Splits a fully qualified class name at its last dot.
    fn from_full_name(name: &str) -> JvmException {
        match name.rsplit_once('.') {
            Some((module, kind)) => JvmException {
                kind: kind.to_owned(),
                module: module.to_owned(),
            },
            None => JvmException {
                kind: name.to_owned(),
                module: String::new(),
            },
        }
    }
}

/// One stack: its frames and the exception thrown there, if any.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct JvmStacktrace {
    /// The exception.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<JvmException>,
    /// The frames, caller first unless the request says otherwise.
    pub frames: Vec<JvmFrame>,
}

/// A mapping the frames need: `{"uuid": "…", "type": "proguard"}` (`source` bundles are
/// accepted and not read).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct JvmModule {
    /// The mapping's UUID.
    pub uuid: String,
    /// `proguard` or `source`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Which way a request's frames run.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FrameOrder {
    /// Oldest first, as Sentry events list them (the default).
    #[default]
    CallerFirst,
    /// Innermost first.
    CalleeFirst,
}

/// Request options (symbolicator's `options`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JvmOptions {
    /// Which way the frames run.
    #[serde(default)]
    pub frame_order: FrameOrder,
}

/// `POST /api/v1/symbolicate-jvm`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SymbolicateJvmRequest {
    /// Exceptions whose class names to remap.
    #[serde(default)]
    pub exceptions: Vec<JvmException>,
    /// Stacks to de-obfuscate.
    #[serde(default)]
    pub stacktraces: Vec<JvmStacktrace>,
    /// The mappings.
    pub modules: Vec<JvmModule>,
    /// Lone class names to remap (view hierarchies name classes).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Options.
    #[serde(default)]
    pub options: JvmOptions,
}

/// A mapping that could not be used.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JvmModuleError {
    /// Its UUID.
    pub uuid: String,
    /// `missing` (not stored) or `invalid` (stored, unreadable).
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// The answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SymbolicateJvmResponse {
    /// The exceptions, their classes remapped where a mapping knows them.
    pub exceptions: Vec<JvmException>,
    /// The stacks, frames de-obfuscated (and expanded), in the request's order.
    pub stacktraces: Vec<JvmStacktrace>,
    /// Each remapped class: obfuscated name to original.
    pub classes: BTreeMap<String, String>,
    /// Mappings missing or unreadable.
    pub errors: Vec<JvmModuleError>,
    /// The debug IDs of the mappings that were read (retention).
    #[serde(skip)]
    pub used: Vec<DebugId>,
}

/// De-obfuscates `request` with the mappings `modules` holds.
pub async fn symbolicate_jvm(
    modules: &ModuleCache,
    request: SymbolicateJvmRequest,
) -> SymbolicateJvmResponse {
    let (mappings, errors) = load_mappings(modules, &request.modules).await;
    let caches: Vec<ProguardCache<'_>> = mappings
        .iter()
        .filter_map(|(_, m)| m.functions.as_ref()?.proguard())
        .collect();
    let remap_class = |name: &str| caches.iter().find_map(|c| c.remap_class(name));
    let remap_exception = |e: &JvmException| match remap_class(&e.full_name()) {
        Some(original) => JvmException::from_full_name(original),
        None => e.clone(),
    };
    let order = request.options.frame_order;
    let stacktraces = request
        .stacktraces
        .iter()
        .map(|stack| {
            let exception = stack.exception.as_ref().map(&remap_exception);
            let descriptor = stack
                .exception
                .as_ref()
                .map(|e| proguard::class_name_to_descriptor(&e.full_name()));
            JvmStacktrace {
                frames: remap_stack(&caches, &stack.frames, order, descriptor.as_deref()),
                exception,
            }
        })
        .collect();
    SymbolicateJvmResponse {
        exceptions: request.exceptions.iter().map(remap_exception).collect(),
        stacktraces,
        classes: request
            .classes
            .iter()
            .filter_map(|c| Some((c.clone(), remap_class(c)?.to_owned())))
            .collect(),
        errors,
        used: mappings.iter().map(|(id, _)| *id).collect(),
    }
}

/// Each `proguard` module's symbols, and the errors of those that could not be read.
async fn load_mappings(
    modules: &ModuleCache,
    wanted: &[JvmModule],
) -> (Vec<(DebugId, Arc<ModuleSymbols>)>, Vec<JvmModuleError>) {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for module in wanted.iter().filter(|m| m.kind == "proguard") {
        let error = |kind| JvmModuleError {
            uuid: module.uuid.clone(),
            kind,
        };
        let Ok(id) = module.uuid.parse::<DebugId>() else {
            errors.push(error("invalid"));
            continue;
        };
        let reference = ModuleRef::new(id, None, None, None, ModulePlatform::Unknown);
        let symbols = modules.get(&reference).await;
        match symbols.status {
            SymbolStatus::Found
                if symbols
                    .functions
                    .as_ref()
                    .and_then(|f| f.proguard())
                    .is_some() =>
            {
                loaded.push((id, symbols))
            }
            SymbolStatus::Missing | SymbolStatus::NoDebugId => errors.push(error("missing")),
            _ => errors.push(error("invalid")),
        }
    }
    (loaded, errors)
}

/// One stack's frames through the mappings, in `order`, innermost handled first (an outline
/// frame's position carries to its caller).
fn remap_stack(
    caches: &[ProguardCache<'_>],
    frames: &[JvmFrame],
    order: FrameOrder,
    exception: Option<&str>,
) -> Vec<JvmFrame> {
    let mut innermost_first: Vec<(usize, &JvmFrame)> = frames.iter().enumerate().collect();
    if order == FrameOrder::CallerFirst {
        innermost_first.reverse();
    }
    let mut outline = vec![None; caches.len()];
    let mut rewrite = exception.is_some();
    let mut out = Vec::with_capacity(frames.len());
    for (index, frame) in innermost_first {
        let input = match frame.lineno {
            Some(line) => StackFrame::new(&frame.module, &frame.function, line as usize),
            None => StackFrame::new(&frame.module, &frame.function, 0),
        };
        let mut remapped: Option<Vec<JvmFrame>> = None;
        let mut skipped = false;
        for (cache, carried) in caches.iter().zip(outline.iter_mut()) {
            let Some(mut found) =
                cache.remap_frame_with_context(&input, exception, rewrite, carried)
            else {
                skipped = true; // an outline frame: it belongs to its caller
                break;
            };
            let expanded: Vec<JvmFrame> = found
                .by_ref()
                .take(MAX_EXPANSION)
                .map(|f| JvmFrame {
                    function: f.method().to_owned(),
                    module: f.class().to_owned(),
                    filename: f.file().map(str::to_owned),
                    abs_path: f.file().map(str::to_owned),
                    lineno: f
                        .line()
                        .and_then(|l| u32::try_from(l).ok())
                        .filter(|l| *l > 0),
                    in_app: frame.in_app,
                    index,
                    method_synthesized: f.method_synthesized(),
                })
                .collect();
            if !expanded.is_empty() {
                remapped = Some(expanded);
                break;
            }
            if found.had_mappings() {
                skipped = true; // a rewrite rule removed it (the throwing helper's own frame)
                break;
            }
        }
        if skipped {
            continue;
        }
        rewrite = false;
        let mut kept = remapped.unwrap_or_else(|| {
            vec![JvmFrame {
                index,
                ..frame.clone()
            }]
        });
        if order == FrameOrder::CallerFirst {
            kept.reverse();
        }
        out.push(kept);
    }
    if order == FrameOrder::CallerFirst {
        out.reverse();
    }
    out.into_iter().flatten().collect()
}
