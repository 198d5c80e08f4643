//! An uncaught Objective-C exception, as Crashpad records it on macOS and iOS: the process
//! re-raises it as a simulated exception with code `0x43506E78` ("CPnx", Breakpad's
//! `MD_NS_EXCEPTION_SIMULATED`), so the crashing thread's stack is Crashpad's machinery; what
//! went wrong is in the module annotations — the exception's name and reason
//! (`exceptionName`, `exceptionReason`, Chromium's `firstexception`) and the return addresses of
//! the stack at the throw (`firstexception_bt`). The throw stack is symbolicated here with the
//! dump's modules and symbols, and becomes the stack the fault frame and the signature come from.

use std::collections::HashMap;
use std::sync::Arc;

use minidump::{MinidumpModuleList, Module};
use minidump_processor::ProcessState;
use serde::{Deserialize, Serialize};
use symbolic::common::DebugId;

use super::modules::ModuleSymbols;
use crate::symbols::identify::base_name;

/// The exception code of an uncaught Objective-C exception re-raised by Crashpad ("CPnx").
pub const NS_EXCEPTION_SIMULATED: u32 = 0x4350_6E78;

/// The most frames read from a recorded throw stack.
const MAX_FRAMES: usize = 512;

/// An uncaught exception the process recorded before it died.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThrownException {
    /// Its runtime: `objc`.
    pub kind: String,
    /// The exception's class name (`NSInvalidArgumentException`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its reason (`-[__NSArrayM objectAtIndex:]: index 5 beyond bounds [0 .. 2]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The stack at the throw, innermost first, symbolicated.
    #[serde(default)]
    pub frames: Vec<ThrownFrame>,
}

/// One frame of a throw stack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThrownFrame {
    /// The return address recorded, hex.
    pub address: String,
    /// The module it falls in (code file base name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Its offset in that module, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_offset: Option<String>,
    /// The function, when the module's symbols have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Source file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

impl ThrownException {
    /// "NSInvalidArgumentException: reason", or whichever of the two is known.
    pub fn summary(&self) -> String {
        match (&self.name, &self.reason) {
            (Some(name), Some(reason)) => format!("{name}: {reason}"),
            (Some(one), None) | (None, Some(one)) => one.clone(),
            (None, None) => "no name or reason recorded".to_owned(),
        }
    }
}

/// The uncaught Objective-C exception of a dump whose exception code is `code`, read from its
/// Crashpad annotations (`annotation` looks one up by key), with the throw stack symbolicated;
/// `None` for any other crash.
pub fn read<'a>(
    code: Option<u32>,
    annotation: impl Fn(&str) -> Option<&'a str>,
    state: &ProcessState,
    by_id: &HashMap<DebugId, Arc<ModuleSymbols>>,
) -> Option<ThrownException> {
    if code != Some(NS_EXCEPTION_SIMULATED) {
        return None;
    }
    let frames = annotation("firstexception_bt")
        .map(|trace| {
            addresses(trace)
                .into_iter()
                .map(|a| frame(a, &state.modules, by_id))
                .collect()
        })
        .unwrap_or_default();
    Some(ThrownException {
        kind: "objc".to_owned(),
        name: annotation("exceptionName").map(str::to_owned),
        reason: annotation("exceptionReason")
            .or(annotation("firstexception"))
            .map(str::to_owned),
        frames,
    })
}

/// The addresses of a recorded stack: hex (`0x…`) or decimal numbers separated by spaces,
/// commas or brackets (Chromium writes `0x1 0x2`, `-[NSArray componentsJoinedByString:]`
/// decimal); anything else is skipped.
fn addresses(trace: &str) -> Vec<u64> {
    trace
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | '[' | ']'))
        .filter_map(
            |token| match token.strip_prefix("0x").or(token.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => token.parse().ok(),
            },
        )
        .filter(|a| *a != 0)
        .take(MAX_FRAMES)
        .collect()
}

/// One return address with its module and, where the module's symbols have it, its function
/// and line (looked up at the call: the address less one).
fn frame(
    address: u64,
    modules: &MinidumpModuleList,
    by_id: &HashMap<DebugId, Arc<ModuleSymbols>>,
) -> ThrownFrame {
    let mut frame = ThrownFrame {
        address: format!("{address:#x}"),
        module: None,
        module_offset: None,
        function: None,
        file: None,
        line: None,
    };
    let Some(module) = modules.module_at_address(address) else {
        return frame;
    };
    let offset = address - module.base_address();
    frame.module = Some(base_name(&module.code_file()).to_owned());
    frame.module_offset = Some(format!("{offset:#x}"));
    let location = module
        .debug_identifier()
        .and_then(|id| by_id.get(&id))
        .and_then(|symbols| symbols.functions.as_ref())
        .and_then(|functions| functions.lookup(offset.saturating_sub(1)));
    if let Some(location) = location {
        frame.function = Some(location.function.clone());
        frame.file = location.file.clone();
        frame.line = Some(location.line).filter(|l| *l != 0);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_stacks_are_read_in_hex_or_decimal() {
        assert_eq!(addresses("0x10 0x20\n0X30"), [0x10, 0x20, 0x30]);
        assert_eq!(addresses("(16, 32, junk, 0)"), [16, 32]);
        assert_eq!(addresses(""), Vec::<u64>::new());
        assert_eq!(addresses(&"0x1 ".repeat(1000)).len(), MAX_FRAMES);
    }
}
