//! Raw-frame symbolication: instruction addresses plus a module list (symbolicator's request
//! format) in, function / file / line / inlines per frame out, with a status per frame and per
//! module. Uses the same module symbols as minidump processing.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use symbolic::common::{CodeId, DebugId};

use super::location::SourceLocation;
use super::modules::{ModuleCache, ModuleSymbols, SymbolStatus};
use crate::symbols::ids::parse_debug_id;
use crate::upstream::{Candidate, ModulePlatform, ModuleRef};

/// An address as JSON carries it: a number or a `"0x…"` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr(pub u64);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Addr, D::Error> {
        /// Takes the number or the text as it comes: no buffering of the value to try each
        /// form in turn (a 100-frame request has a hundred of them).
        struct AddrVisitor;
        impl serde::de::Visitor<'_> for AddrVisitor {
            type Value = Addr;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an address (0x-prefixed hex or a number)")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Addr, E> {
                Ok(Addr(n))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Addr, E> {
                let digits = text.trim();
                let parsed = match digits
                    .strip_prefix("0x")
                    .or_else(|| digits.strip_prefix("0X"))
                {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => digits.parse(),
                };
                parsed.map(Addr).map_err(|_| {
                    E::custom(format!(
                        "{text:?} is not an address (use 0x-prefixed hex or a number)"
                    ))
                })
            }
        }
        deserializer.deserialize_any(AddrVisitor)
    }
}

impl Serialize for Addr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(super::view::hex_text(self.0, 1, &mut [0; 18]))
    }
}

/// A loaded module as the client saw it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RawModule {
    /// `pe`, `elf`, `macho`, … (echoed back; not needed for lookup).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The module's debug ID, either spelling.
    pub debug_id: Option<String>,
    /// The module's code ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_id: Option<String>,
    /// Debug file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_file: Option<String>,
    /// Code file name or path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_file: Option<String>,
    /// Load address.
    pub image_addr: Addr,
    /// Size in memory; without it the module extends to the next module's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
}

/// One frame to symbolicate.
#[derive(Debug, Clone, Deserialize)]
pub struct RawFrame {
    /// The frame's instruction address (a return address for every frame but the first).
    pub instruction_addr: Addr,
    /// Whether to look up `instruction_addr - 1` (the call instruction) instead of the return
    /// address itself; defaults to true for every frame but a stack's first.
    #[serde(default)]
    pub adjust_instruction_addr: Option<bool>,
    /// What `instruction_addr` counts from (symbolicator's `addr_mode`): the process's address
    /// space (`abs`, the default), or the start of one module (`rel:N`, N its index in
    /// `modules`) — how WebAssembly frames are given, every module's code starting at 0.
    #[serde(default)]
    pub addr_mode: AddrMode,
    /// A .NET frame's method (its metadata token, or its row in the assembly's `MethodDef`
    /// table); `instruction_addr` is then the IL offset within it and `addr_mode` names the
    /// assembly (`rel:N`, a `pe_dotnet` module).
    #[serde(default)]
    pub function_id: Option<Addr>,
}

/// What a frame's address counts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AddrMode {
    /// The process's address space.
    #[default]
    Absolute,
    /// The start of the module at this index of the request's `modules`.
    Relative(usize),
}

impl AddrMode {
    /// `abs` or `rel:N`.
    pub fn parse(text: &str) -> Option<AddrMode> {
        match text {
            "abs" => Some(AddrMode::Absolute),
            _ => text
                .strip_prefix("rel:")
                .and_then(|n| n.parse().ok())
                .map(AddrMode::Relative),
        }
    }
}

impl Serialize for AddrMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AddrMode::Absolute => serializer.serialize_str("abs"),
            AddrMode::Relative(n) => serializer.serialize_str(&format!("rel:{n}")),
        }
    }
}

impl<'de> Deserialize<'de> for AddrMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        AddrMode::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "addr_mode {text:?} is neither \"abs\" nor \"rel:N\" (N a module's index)"
            ))
        })
    }
}

impl RawFrame {
    /// The module the frame is in (its `rel:N` module, else the one covering its address) and
    /// its address in the process's address space.
    fn placed(&self, modules: &[RawModule]) -> Option<(usize, u64)> {
        match self.addr_mode {
            AddrMode::Absolute => {
                let addr = self.instruction_addr.0;
                covering_module(modules, addr).map(|i| (i, addr))
            }
            AddrMode::Relative(i) => {
                let module = modules.get(i)?;
                Some((
                    i,
                    module.image_addr.0.saturating_add(self.instruction_addr.0),
                ))
            }
        }
    }
}

/// One stack of frames, innermost first.
#[derive(Debug, Clone, Deserialize)]
pub struct RawStacktrace {
    /// The frames.
    pub frames: Vec<RawFrame>,
}

/// The request: symbolicator's `stacktraces` + `modules` (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct SymbolicateRequest {
    /// Stacks to symbolicate.
    pub stacktraces: Vec<RawStacktrace>,
    /// Modules the addresses fall in.
    pub modules: Vec<RawModule>,
}

/// What happened to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameStatus {
    /// Function (and usually file and line) found.
    Symbolicated,
    /// The module is known but has no symbols, or none covering this address.
    MissingSymbol,
    /// No module in the request covers the address.
    UnknownImage,
    /// The covering module's debug ID is missing or unreadable.
    Malformed,
}

impl FrameStatus {
    /// The status as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameStatus::Symbolicated => "symbolicated",
            FrameStatus::MissingSymbol => "missing_symbol",
            FrameStatus::UnknownImage => "unknown_image",
            FrameStatus::Malformed => "malformed",
        }
    }
}

/// One symbolicated frame.
#[derive(Debug, Clone, Serialize)]
pub struct SymbolicatedFrame {
    /// Symbolicated, missing_symbol, unknown_image or malformed.
    pub status: FrameStatus,
    /// Position in the request's frame list.
    pub original_index: usize,
    /// The address as sent.
    pub instruction_addr: Addr,
    /// Index into `modules` of the covering module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_index: Option<usize>,
    /// The covering module's code file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// A .NET frame's method, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_id: Option<Addr>,
    /// Function, demangled (none for a .NET frame: its method is named by the event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The source language, when the debug file names it (.NET: `csharp`, `fsharp`, `vb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<&'static str>,
    /// Absolute address where the function starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sym_addr: Option<Addr>,
    /// Source file path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    /// Line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u32>,
    /// The generated C++ file `abs_path` / `lineno` came from (Unity IL2CPP: they name the C#).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_abs_path: Option<String>,
    /// Its line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_lineno: Option<u32>,
    /// Functions inlined at this address, innermost first (as minidump-stackwalk lists them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inlines: Vec<InlineFrame>,
}

/// An inlined function at a frame's address.
#[derive(Debug, Clone, Serialize)]
pub struct InlineFrame {
    /// Function, demangled.
    pub function: String,
    /// Source file path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    /// Line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u32>,
}

/// A module echoed back with what was found for it.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleResult {
    /// found, missing, malformed or no_debug_id; `unused` when no frame fell in it.
    pub debug_status: &'static str,
    /// Where its symbols came from: `uploaded` or an upstream source's ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbols_origin: Option<String>,
    /// Every upstream location asked for its files, with what each gave (as symbolicator's
    /// `candidates`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// Its code is IL2CPP's and its line mapping is not stored: frames name C++, not C#.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lacks_il2cpp_mapping: bool,
    /// The module as sent.
    #[serde(flatten)]
    pub module: RawModule,
}

/// The response.
#[derive(Debug, Clone, Serialize)]
pub struct SymbolicateResponse {
    /// Always `completed`.
    pub status: &'static str,
    /// One per request stack, frames in request order.
    pub stacktraces: Vec<SymbolicatedStacktrace>,
    /// One per request module, same order.
    pub modules: Vec<ModuleResult>,
}

/// One symbolicated stack.
#[derive(Debug, Clone, Serialize)]
pub struct SymbolicatedStacktrace {
    /// Frames in request order.
    pub frames: Vec<SymbolicatedFrame>,
}

impl SymbolicateResponse {
    /// About how many bytes its JSON takes (a symbolicated frame with a file is ~250).
    pub fn json_size_hint(&self) -> usize {
        let frames: usize = self.stacktraces.iter().map(|s| s.frames.len()).sum();
        256 + 320 * frames + 256 * self.modules.len()
    }
}

impl RawModule {
    /// Its debug ID, when it has a usable one.
    fn parsed_debug_id(&self) -> Option<DebugId> {
        parse_debug_id(self.debug_id.as_deref()?).ok()
    }

    /// The module (whose debug ID is `debug_id`) as upstream sources are asked for it.
    fn module_ref(&self, debug_id: DebugId) -> ModuleRef {
        let platform = match self.kind.as_deref() {
            Some("pe") => ModulePlatform::Windows,
            Some("elf") => ModulePlatform::Linux,
            Some("macho") => ModulePlatform::Apple,
            _ => ModulePlatform::Unknown,
        };
        ModuleRef::new(
            debug_id,
            self.debug_file.as_deref(),
            self.code_file.as_deref(),
            self.code_id
                .as_deref()
                .map(|id| CodeId::new(id.to_ascii_lowercase())),
            platform,
        )
    }
}

fn covering_module(modules: &[RawModule], addr: u64) -> Option<usize> {
    modules
        .iter()
        .enumerate()
        .filter(|(_, m)| m.image_addr.0 <= addr)
        .filter(|(i, m)| {
            let end = m
                .image_size
                .map(|size| m.image_addr.0.saturating_add(size))
                .or_else(|| {
                    // Without a size, a module reaches the next module's start.
                    modules
                        .iter()
                        .enumerate()
                        .filter(|(j, n)| j != i && n.image_addr.0 > m.image_addr.0)
                        .map(|(_, n)| n.image_addr.0)
                        .min()
                });
            end.is_none_or(|end| addr < end)
        })
        .max_by_key(|(_, m)| m.image_addr.0)
        .map(|(i, _)| i)
}

/// Symbolicates every frame of `request` with symbols from `cache`; a module whose symbols are
/// still being fetched from an upstream source at `deadline` is left without them.
pub async fn symbolicate(
    cache: &ModuleCache,
    request: SymbolicateRequest,
    deadline: std::time::Instant,
) -> SymbolicateResponse {
    let modules = request.modules;
    let (symbols, statuses) =
        fetch_referenced(cache, &modules, &request.stacktraces, deadline).await;
    let stacktraces: Vec<SymbolicatedStacktrace> = request
        .stacktraces
        .into_iter()
        .map(|stack| SymbolicatedStacktrace {
            frames: stack
                .frames
                .into_iter()
                .enumerate()
                .map(|(index, frame)| symbolicate_frame(index, frame, &modules, &symbols))
                .collect(),
        })
        .collect();
    count_frames(&stacktraces);
    SymbolicateResponse {
        status: "completed",
        stacktraces,
        modules: modules
            .into_iter()
            .zip(statuses)
            .enumerate()
            .map(|(i, (module, status))| ModuleResult {
                debug_status: status.map_or("unused", SymbolStatus::as_str),
                symbols_origin: symbols.get(&i).and_then(|s| s.origin.clone()),
                candidates: symbols
                    .get(&i)
                    .map(|s| s.candidates.clone())
                    .unwrap_or_default(),
                lacks_il2cpp_mapping: symbols
                    .get(&i)
                    .and_then(|s| s.functions.as_ref())
                    .is_some_and(|f| f.lacks_il2cpp_mapping()),
                module,
            })
            .collect(),
    }
}

/// Adds the request's frames to `faultline_symbolicated_frames_total`, once per status (a
/// lookup in the metrics registry per frame was a percent of the route's time).
fn count_frames(stacktraces: &[SymbolicatedStacktrace]) {
    let mut counts: Vec<(FrameStatus, u64)> = Vec::new();
    for frame in stacktraces.iter().flat_map(|s| &s.frames) {
        match counts
            .iter_mut()
            .find(|(status, _)| *status == frame.status)
        {
            Some((_, n)) => *n += 1,
            None => counts.push((frame.status, 1)),
        }
    }
    for (status, n) in counts {
        metrics::counter!("faultline_symbolicated_frames_total", "status" => status.as_str())
            .increment(n);
    }
}

/// Each module a frame points into, its symbols fetched once, concurrently; and every
/// module's status (`None`: no frame points into it).
async fn fetch_referenced(
    cache: &ModuleCache,
    modules: &[RawModule],
    stacktraces: &[RawStacktrace],
    deadline: std::time::Instant,
) -> (
    HashMap<usize, Arc<ModuleSymbols>>,
    Vec<Option<SymbolStatus>>,
) {
    let mut statuses: Vec<Option<SymbolStatus>> = vec![None; modules.len()];
    let mut referenced: Vec<usize> = stacktraces
        .iter()
        .flat_map(|s| &s.frames)
        .filter_map(|f| f.placed(modules).map(|(module, _)| module))
        .collect();
    referenced.sort_unstable();
    referenced.dedup();
    let ids: Vec<(usize, Option<DebugId>)> = referenced
        .iter()
        .map(|&i| (i, modules[i].parsed_debug_id()))
        .collect();
    let fetched = futures::future::join_all(ids.iter().filter_map(|(i, id)| {
        let id = (*id)?;
        let describe = move || modules[*i].module_ref(id);
        Some(async move { (*i, cache.get_by(id, describe, deadline).await) })
    }))
    .await;
    for (i, id) in &ids {
        if id.is_none() {
            statuses[*i] = Some(SymbolStatus::NoDebugId);
        }
    }
    let mut symbols = HashMap::new();
    for (i, module_symbols) in fetched {
        statuses[i] = Some(module_symbols.status);
        symbols.insert(i, module_symbols);
    }
    (symbols, statuses)
}

/// One frame: the module it points into, then its function, file, line and inlines.
fn symbolicate_frame(
    index: usize,
    frame: RawFrame,
    modules: &[RawModule],
    symbols: &HashMap<usize, Arc<ModuleSymbols>>,
) -> SymbolicatedFrame {
    let mut out = SymbolicatedFrame {
        status: FrameStatus::UnknownImage,
        original_index: index,
        instruction_addr: frame.instruction_addr,
        module_index: None,
        package: None,
        function_id: frame.function_id,
        function: None,
        lang: None,
        sym_addr: None,
        abs_path: None,
        lineno: None,
        generated_abs_path: None,
        generated_lineno: None,
        inlines: Vec::new(),
    };
    let Some((module_index, addr)) = frame.placed(modules) else {
        return out;
    };
    let module = &modules[module_index];
    out.module_index = Some(module_index);
    out.package = module.code_file.clone();
    let Some(module_symbols) = symbols.get(&module_index) else {
        out.status = FrameStatus::Malformed;
        return out;
    };
    if let Some(method) = frame.function_id {
        return dotnet_frame(out, method, frame.instruction_addr, module_symbols);
    }
    let adjust = frame.adjust_instruction_addr.unwrap_or(index > 0);
    let lookup_addr = if adjust { addr.saturating_sub(1) } else { addr };
    let location: Option<Arc<SourceLocation>> = module_symbols
        .functions
        .as_ref()
        .and_then(|s| s.lookup(lookup_addr - module.image_addr.0));
    let Some(location) = location else {
        out.status = FrameStatus::MissingSymbol;
        return out;
    };
    out.status = FrameStatus::Symbolicated;
    out.sym_addr = Some(Addr(module.image_addr.0 + location.function_offset));
    out.function = Some(location.function.clone());
    out.abs_path = location.file.clone();
    out.lineno = Some(location.line).filter(|l| *l != 0);
    if let Some(generated) = &location.generated {
        out.generated_abs_path = Some(generated.file.clone());
        out.generated_lineno = Some(generated.line);
    }
    out.inlines = location
        .inlines
        .iter()
        .rev()
        .map(|i| InlineFrame {
            function: i.function.clone(),
            abs_path: i.file.clone(),
            lineno: i.line,
        })
        .collect();
    out
}

/// A .NET frame: its method's IL offset to file and line through the assembly's portable PDB
/// (the method's name is the event's; the PDB's sequence points carry none).
fn dotnet_frame(
    mut out: SymbolicatedFrame,
    method: Addr,
    il_offset: Addr,
    symbols: &ModuleSymbols,
) -> SymbolicatedFrame {
    let found = symbols
        .functions
        .as_ref()
        .and_then(|f| f.lookup_il(method.0, il_offset.0));
    let Some(found) = found else {
        out.status = FrameStatus::MissingSymbol;
        return out;
    };
    out.status = FrameStatus::Symbolicated;
    out.abs_path = Some(found.file);
    out.lineno = Some(found.line).filter(|l| *l != 0);
    out.lang = found.lang;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_as_numbers_or_text_and_written_as_hex() {
        for (json, value) in [
            ("4096", 4096),
            ("\"0x1A\"", 0x1a),
            ("\" 0X10 \"", 0x10),
            ("\"4096\"", 4096),
            ("18446744073709551615", u64::MAX),
        ] {
            let addr: Addr = serde_json::from_str(json).unwrap();
            assert_eq!(addr, Addr(value), "{json}");
            assert_eq!(
                serde_json::to_string(&addr).unwrap(),
                format!("\"{value:#x}\"")
            );
        }
        for bad in ["\"zz\"", "\"0x\"", "-1", "1.5", "null", "[]"] {
            let error = serde_json::from_str::<Addr>(bad).unwrap_err().to_string();
            assert!(error.contains("address"), "{bad}: {error}");
        }
        let error = serde_json::from_str::<Addr>("\"0xg\"").unwrap_err();
        assert!(error.to_string().contains("\"0xg\" is not an address"));
    }
}
