//! The parts of a processed crash that readers read — threads, frames with their inlined
//! calls, modules and their symbols, the crash info — as types that both write the processed
//! JSON (`json.rs` builds them, borrowing from minidump-processor's state) and read it back
//! (the crash page, the CLI report). One set of names for both: renaming a field here renames
//! it in the JSON and in every reader, and a reader that used the old name fails to compile.
//!
//! Strings borrow while writing and are owned once read (`Cow`); addresses are [`Hex`], written
//! as minidump-stackwalk writes them and parsed back.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::modules::SymbolStatus;
use super::thrown::ThrownException;
use crate::symbols::derive::CacheSource;
use crate::upstream::Candidate;
use crate::variables::Variable;

/// An address, written as a `0x`-prefixed hex string as wide as the crashed process' pointers
/// (8 or 16 digits), as minidump-stackwalk writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex {
    /// The address.
    pub value: u64,
    /// A 32-bit process (8 digits).
    pub narrow: bool,
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.narrow {
            write!(f, "{:#010x}", self.value)
        } else {
            write!(f, "{:#018x}", self.value)
        }
    }
}

impl Hex {
    /// The address as its text, written digit by digit into `buf` (a processed crash's JSON
    /// holds thousands of addresses; the formatting machinery and serde_json's escaping of
    /// each piece it writes took several times as long).
    fn text<'b>(&self, buf: &'b mut [u8; 18]) -> &'b str {
        hex_text(self.value, if self.narrow { 8 } else { 16 }, buf)
    }
}

/// `value` as `0x` and at least `min_digits` lowercase hex digits (zero-padded), written into
/// `buf`: what `format!("{:#0w$x}")` gives, without the formatting machinery.
pub fn hex_text(value: u64, min_digits: usize, buf: &mut [u8; 18]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let significant = (64 - value.leading_zeros() as usize).div_ceil(4);
    let width = significant.max(min_digits).clamp(1, 16);
    buf[..2].copy_from_slice(b"0x");
    for i in 0..width {
        let nibble = (value >> (4 * (width - 1 - i))) & 0xf;
        buf[2 + i] = DIGITS[nibble as usize];
    }
    std::str::from_utf8(&buf[..2 + width]).expect("hex digits are ASCII")
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.text(&mut [0; 18]))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hex, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| de::Error::custom(format!("{text:?} is not a 0x… address")))?;
        let value = u64::from_str_radix(digits, 16)
            .map_err(|_| de::Error::custom(format!("{text:?} is not a hex address")))?;
        Ok(Hex {
            value,
            narrow: digits.len() <= 8,
        })
    }
}

/// A call inlined into a frame at its address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InlineView<'a> {
    /// The inlined function.
    pub function: Cow<'a, str>,
    /// Its source file.
    pub file: Option<Cow<'a, str>>,
    /// Its line.
    pub line: Option<u32>,
}

/// A module that was unloaded where a frame's address points, and the offsets into it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnloadedFrameView<'a> {
    /// The unloaded module's name.
    pub module: Cow<'a, str>,
    /// The frame's offsets into it.
    pub offsets: Vec<Hex>,
}

/// One frame of a thread (minidump-stackwalk's `frames[]`), with the calls inlined at it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrameView<'a> {
    /// Its position in the thread, from the top.
    pub frame: usize,
    /// The module (code file base name).
    pub module: Option<Cow<'a, str>>,
    /// The function, when symbolicated.
    pub function: Option<Cow<'a, str>>,
    /// Source file.
    pub file: Option<Cow<'a, str>>,
    /// Source line.
    pub line: Option<u32>,
    /// Where `file` and `line` were in generated code, when a line mapping moved them to the
    /// source it came from (Unity IL2CPP: the C++ file IL2CPP wrote from `file`, a C# file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_file: Option<Cow<'a, str>>,
    /// The generated file's line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_line: Option<u32>,
    /// Source column (an event's JavaScript frames; minidump frames have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The instruction address (an event's JavaScript frames have none).
    pub offset: Option<Hex>,
    /// Calls inlined at this address, innermost first.
    pub inlines: Option<Vec<InlineView<'a>>>,
    /// The address relative to the module's base.
    pub module_offset: Option<Hex>,
    /// Unloaded modules the address falls in.
    pub unloaded_modules: Option<Vec<UnloadedFrameView<'a>>>,
    /// The address relative to the function's start.
    pub function_offset: Option<Hex>,
    /// No function was found for the address.
    pub missing_symbols: bool,
    /// How the walker found the frame: `context`, `cfi`, `frame_pointer`, `scan`… (an event's
    /// frame: its status, `symbolicated`, `resolved`, `missing_sourcemap`…).
    pub trust: Cow<'a, str>,
    /// The registers, on the crashing thread's first frame of `crashing_thread` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registers: Option<Registers>,
    /// Its parameters and locals with their values (threads chosen by `processing.variables`;
    /// see docs/OUTPUT.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<Cow<'a, [Variable]>>,
}

/// One thread (minidump-stackwalk's `threads[]`, and the top-level `crashing_thread`, which
/// adds `threads_index`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadView<'a> {
    /// How many frames the walk found.
    pub frame_count: usize,
    /// The thread's last error (Windows), in words.
    pub last_error_value: Option<String>,
    /// Its name, when the dump has one.
    pub thread_name: Option<Cow<'a, str>>,
    /// The OS thread ID (an event's stacks have none).
    pub thread_id: Option<u32>,
    /// Its frames, from the top.
    pub frames: Vec<FrameView<'a>>,
    /// In `crashing_thread`: its index in `threads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads_index: Option<usize>,
}

/// Where a module's symbols came from (faultline's addition to `modules[]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleSymbolsView<'a> {
    /// Found, missing, malformed, no debug ID.
    pub symbol_status: SymbolStatus,
    /// The stored file that served functions and lines.
    pub symbols_file: Option<Cow<'a, CacheSource>>,
    /// The stored file that served unwind rules.
    pub cfi_file: Option<Cow<'a, CacheSource>>,
    /// Why the symbols are malformed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols_error: Option<Cow<'a, str>>,
    /// Where the file serving functions came from: `uploaded` or an upstream source's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols_origin: Option<Cow<'a, str>>,
    /// Every upstream location asked for the module's files, with what each gave.
    #[serde(default, skip_serializing_if = "<[Candidate]>::is_empty")]
    pub symbol_candidates: Cow<'a, [Candidate]>,
}

/// One loaded module (minidump-stackwalk's `modules[]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleView<'a> {
    /// Where it is loaded.
    pub base_addr: Hex,
    /// Its debug file's base name (`crash.pdb`).
    pub debug_file: Cow<'a, str>,
    /// Its debug ID, Breakpad form.
    pub debug_id: String,
    /// One past its last byte.
    pub end_addr: Hex,
    /// Its code file's base name (`crash.exe`).
    pub filename: Cow<'a, str>,
    /// Its code ID.
    pub code_id: String,
    /// Its version, when the dump has one.
    pub version: Option<Cow<'a, str>>,
    /// The certificate it was signed with (Windows).
    pub cert_subject: Option<Cow<'a, str>>,
    /// The symbol provider was asked for its symbols and had none.
    pub missing_symbols: bool,
    /// Symbols were loaded.
    pub loaded_symbols: bool,
    /// Symbols were found but broken.
    pub corrupt_symbols: bool,
    /// Where symbols came from (minidump-stackwalk's symbol server URL).
    pub symbol_url: Option<Cow<'a, str>>,
    /// What faultline found for it (absent in minidump-stackwalk's output).
    #[serde(flatten)]
    pub symbols: Option<ModuleSymbolsView<'a>>,
}

/// The process-level blocks of a processed crash that readers read: which thread crashed,
/// every thread, the crashing thread again with its registers, every module. The writer
/// (`json.rs`) names each entry with [`field_name!`] on this type, so the JSON key and the
/// field are one name.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProcessedParts<'a> {
    /// Which thread crashed.
    #[serde(default)]
    pub crash_info: CrashInfoView,
    /// Every thread.
    #[serde(default)]
    pub threads: Vec<ThreadView<'a>>,
    /// The crashing thread again, with its first frame's registers.
    #[serde(default)]
    pub crashing_thread: Option<ThreadView<'a>>,
    /// Every loaded module.
    #[serde(default)]
    pub modules: Vec<ModuleView<'a>>,
    /// The uncaught exception the process recorded, with its throw stack.
    #[serde(default)]
    pub uncaught_exception: Option<ThrownException>,
}

/// What a reader needs of `crash_info`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CrashInfoView {
    /// The index of the crashing thread in `threads`.
    pub crashing_thread: Option<usize>,
}

/// The JSON key of `field` of the read model `Type`: its name, checked by the compiler (a
/// field renamed or removed there fails to compile where the writer names it).
macro_rules! field_name {
    ($type:ident, $field:ident) => {{
        let _named = |view: &$type| {
            let _ = &view.$field;
        };
        stringify!($field)
    }};
}
pub(crate) use field_name;

/// A frame's registers, in the order the dump's CPU context lists them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registers(pub Vec<(Cow<'static, str>, String)>);

impl Serialize for Registers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Registers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Registers, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Registers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of register names and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Registers, A::Error> {
                let mut out = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    out.push((Cow::Owned(name), value));
                }
                Ok(Registers(out))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_minidump_stackwalk_writes_them() {
        let mut values = vec![0, 1, 0xf, 0x10, 0xffff_ffff, 0x1_0000_0000, u64::MAX];
        values.extend((0..64).map(|bit| 1u64 << bit));
        values.extend((0..64).map(|bit| (1u64 << bit).wrapping_sub(1) ^ 0x5a5a_5a5a_5a5a_5a5a));
        for value in values {
            // Unpadded, as raw symbolication echoes addresses.
            assert_eq!(hex_text(value, 1, &mut [0; 18]), format!("{value:#x}"));
            for narrow in [false, true] {
                let hex = Hex { value, narrow };
                let expected = if narrow {
                    format!("{value:#010x}")
                } else {
                    format!("{value:#018x}")
                };
                assert_eq!(hex.text(&mut [0; 18]), expected);
                assert_eq!(
                    serde_json::to_string(&hex).unwrap(),
                    format!("\"{expected}\"")
                );
            }
        }
    }

    #[test]
    fn addresses_read_back_as_written() {
        for hex in [
            Hex {
                value: 0x1234,
                narrow: true,
            },
            Hex {
                value: 0xffff_8000_0000_1234,
                narrow: false,
            },
            Hex {
                value: 0,
                narrow: false,
            },
        ] {
            let json = serde_json::to_string(&hex).unwrap();
            assert_eq!(serde_json::from_str::<Hex>(&json).unwrap(), hex, "{json}");
        }
        assert_eq!(
            Hex {
                value: 0x1234,
                narrow: true
            }
            .to_string(),
            "0x00001234"
        );
        assert!(serde_json::from_str::<Hex>("\"1234\"").is_err());
    }

    #[test]
    fn registers_keep_the_context_order() {
        let json = r#"{"rip":"0x1","rax":"0x2","rsp":"0x3"}"#;
        let registers: Registers = serde_json::from_str(json).unwrap();
        let names: Vec<&str> = registers.0.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, ["rip", "rax", "rsp"]);
        assert_eq!(serde_json::to_string(&registers).unwrap(), json);
    }
}
