//! A variable's bytes read as its type says, into the value a person reads: integers, chars,
//! bools, floats, enums by name, pointers with what they point into (and the C string behind a
//! `char *` when the dump holds it), structs and arrays to a bounded depth and size. Every part
//! that cannot be read says why.

use std::borrow::Cow;

use compact_str::{format_compact, CompactString, ToCompactString};
use serde::{Deserialize, Serialize};

use super::eval::{CapturedMemory, Unavailable};
use super::table::{BaseEncoding, TypeId, TypeInfo, VariablesTable};
use super::text::{array_text, escape_text, push_escaped, text_of};

/// How much of a value is shown.
#[derive(Debug, Clone, Copy)]
pub struct RenderLimits {
    /// Nesting of structs and arrays shown.
    pub depth: usize,
    /// Elements of one array (members of one struct) shown.
    pub elements: usize,
    /// Bytes of text read behind a `char *` or in a `char` array.
    pub text_bytes: usize,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            depth: 3,
            elements: 64,
            text_bytes: 256,
        }
    }
}

/// A value as shown: a leaf has `value` (or `unavailable`), a struct or array has `fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Value {
    /// The variable's name, a member's name, or `[i]` for an element. Copied, not shared with
    /// the table: a reference count every value of every crash of a module touches is a cache
    /// line the cores processing those crashes take from each other; a name of up to 24 bytes
    /// is kept inline.
    pub name: CompactString,
    /// The type as the source spells it (`struct node *`, `char [8]`).
    #[serde(rename = "type")]
    pub type_name: CompactString,
    /// The value, for a leaf: `42`, `120 'x'`, `0x7ffd…`, `BLUE`, `0.25`, `true` (kept inline,
    /// without an allocation, up to 24 bytes: a crash's values are mostly numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<CompactString>,
    /// Why there is no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<Unavailable>,
    /// For a pointer: `null`, `stack`, `heap`, `module NAME`, or `not captured`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_to: Option<CompactString>,
    /// For a `char *` or `char` array: the text up to its NUL, non-printable bytes as `\xNN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<CompactString>,
    /// For a Rust enum: the variant it holds (`Some`, `Err`); its fields follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<CompactString>,
    /// Members of a struct, elements of an array or vector, a variant's fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Value>,
    /// Members or elements were left out (the limits).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Longest one-line summary of a value ([`Value::summary`]).
const SUMMARY_CHARS: usize = 160;

impl Value {
    /// The value on one line, as a debugger prints it: `0x7ffd… (stack) "FL\x7f"`,
    /// `{id = 1, next = 0x0, …}`, `<optimized out>`; at most 160 characters.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        self.summarize(&mut out);
        if out.chars().count() > SUMMARY_CHARS {
            out = out.chars().take(SUMMARY_CHARS - 1).collect();
            out.push('…');
        }
        out
    }

    fn summarize(&self, out: &mut String) {
        if out.len() > SUMMARY_CHARS * 4 {
            return;
        }
        if let Some(why) = self.unavailable {
            out.push('<');
            out.push_str(why.as_str());
            out.push('>');
            return;
        }
        if let Some(value) = &self.value {
            out.push_str(value);
            if let Some(points_to) = self.points_to.as_deref().filter(|p| *p != "null") {
                out.push_str(&format!(" ({points_to})"));
            }
            if let Some(text) = &self.text {
                out.push_str(&format!(" \"{text}\""));
            }
            return;
        }
        if let Some(text) = &self.text {
            out.push_str(&format!("\"{text}\""));
            if self.truncated {
                out.push('…');
            }
            return;
        }
        if let Some(variant) = &self.variant {
            out.push_str(variant);
            if self.fields.is_empty() {
                return;
            }
        }
        out.push(if self.variant.is_some() { '(' } else { '{' });
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            // Elements, anonymous members and tuple fields (`__0`) show their value alone.
            let positional = field
                .name
                .strip_prefix("__")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !field.name.starts_with('[') && !field.name.is_empty() && !positional {
                out.push_str(&field.name);
                out.push_str(" = ");
            }
            field.summarize(out);
        }
        if self.truncated {
            out.push_str(if self.fields.is_empty() {
                "…"
            } else {
                ", …"
            });
        }
        out.push(if self.variant.is_some() { ')' } else { '}' });
    }
}

impl Value {
    /// A value shown by its parts (`fields`), with no leaf value of its own.
    pub(super) fn named(name: &str, type_name: &str, fields: Vec<Value>) -> Value {
        Value {
            fields,
            ..leaf(name, type_name, None)
        }
    }
}

/// Where pointers point, as the crash's memory map says.
pub trait AddressMap {
    /// `null`, `stack`, `heap`, `module NAME`, or `not captured`.
    fn describe(&self, address: u64) -> CompactString;
}

/// Reads values of one table's types.
pub struct Renderer<'a> {
    /// The types.
    pub table: &'a VariablesTable,
    /// The dump's memory (for strings behind pointers).
    pub memory: &'a dyn CapturedMemory,
    /// Where pointers point.
    pub map: &'a dyn AddressMap,
    /// How much is shown.
    pub limits: RenderLimits,
}

impl<'a> Renderer<'a> {
    /// The value named `name` of type `type_id` from `bytes`.
    pub fn value(
        &self,
        name: &str,
        type_id: Option<TypeId>,
        bytes: &[Result<u8, Unavailable>],
    ) -> Value {
        self.read(name, type_id, bytes, 0)
    }

    /// A value that could not be located at all.
    pub fn unavailable(&self, name: &str, type_id: Option<TypeId>, why: Unavailable) -> Value {
        let mut value = leaf(name, self.type_name(type_id), None);
        value.unavailable = Some(why);
        value
    }

    /// The size in bytes of type `id` (0 when unknown).
    pub fn size_of(&self, id: Option<TypeId>) -> u64 {
        self.table.type_size(id)
    }

    /// The type as the source spells it.
    pub fn type_name(&self, id: Option<TypeId>) -> &'a str {
        self.table.type_name(id)
    }

    pub(super) fn read(
        &self,
        name: &str,
        type_id: Option<TypeId>,
        bytes: &[Result<u8, Unavailable>],
        depth: usize,
    ) -> Value {
        let type_name = self.type_name(type_id);
        let Some(info) = self.resolved(type_id) else {
            return leaf(name, type_name, None);
        };
        if let Some(value) = self.container(name, type_name, info, bytes, depth) {
            return value;
        }
        match info {
            TypeInfo::Struct { members, .. } => {
                let mut value = leaf(name, type_name, None);
                if depth >= self.limits.depth {
                    value.truncated = true;
                    return value;
                }
                value
                    .fields
                    .reserve_exact(members.len().min(self.limits.elements));
                for member in members.iter().take(self.limits.elements) {
                    let size = self.size_of(member.type_id);
                    let start = member.offset as usize;
                    // A bit field's storage may run past the struct's end: read what is there.
                    let end = match member.bits {
                        Some(_) => start.saturating_add(size as usize).min(bytes.len()),
                        None => start.saturating_add(size as usize),
                    };
                    let part = bytes.get(start..end).filter(|p| !p.is_empty());
                    let field = match (part, member.bits) {
                        (Some(part), None) => {
                            self.read(&member.name, member.type_id, part, depth + 1)
                        }
                        (Some(part), Some((offset, width))) => {
                            let mut field =
                                leaf(&member.name, self.type_name(member.type_id), None);
                            match known_word(part) {
                                Ok(word) => {
                                    let word = word.unwrap_or(0) >> offset;
                                    let mask = if width >= 64 { !0 } else { (1u64 << width) - 1 };
                                    field.value = Some((word & mask).to_compact_string());
                                }
                                Err(why) => field.unavailable = Some(why),
                            }
                            field
                        }
                        (None, _) => {
                            self.unavailable(&member.name, member.type_id, Unavailable::Unsupported)
                        }
                    };
                    value.fields.push(field);
                }
                value.truncated = members.len() > self.limits.elements;
                value
            }
            TypeInfo::Array { element, count } => {
                let mut value = leaf(name, type_name, None);
                let size = self.size_of(*element) as usize;
                let count = count.unwrap_or(0) as usize;
                if self.is_character(*element) {
                    // Text, as a debugger prints a `char` array: every element (NULs within
                    // it too), the trailing NULs left out; its elements one by one only when
                    // a byte of it is unknown.
                    let width = size.max(1);
                    if let Some(text) = array_text(bytes, width, self.limits.text_bytes) {
                        value.text = Some(text);
                        value.truncated = bytes.len() > self.limits.text_bytes;
                        return value;
                    }
                } else if let Some(width) = self.char_width(*element) {
                    value.text = text_of(bytes.iter().take(self.limits.text_bytes), width);
                }
                if depth >= self.limits.depth || size == 0 {
                    value.truncated = count > 0;
                    return value;
                }
                value.fields.reserve_exact(count.min(self.limits.elements));
                for i in 0..count.min(self.limits.elements) {
                    let part = bytes.get(i * size..(i + 1) * size).unwrap_or(&[]);
                    value
                        .fields
                        .push(self.read(&element_name(i), *element, part, depth + 1));
                }
                value.truncated = count > self.limits.elements;
                value
            }
            _ => self.scalar(name, type_name, info, bytes),
        }
    }

    fn scalar(
        &self,
        name: &str,
        type_name: &str,
        info: &TypeInfo,
        bytes: &[Result<u8, Unavailable>],
    ) -> Value {
        let mut value = leaf(name, type_name, None);
        let word = match known_word(bytes) {
            Ok(Some(word)) => word,
            Ok(None) => {
                value.unavailable = Some(Unavailable::Unsupported);
                return value;
            }
            Err(why) => {
                value.unavailable = Some(why);
                return value;
            }
        };
        value.value = Some(match info {
            TypeInfo::Base { encoding, size, .. } => base_value(*encoding, *size, word),
            TypeInfo::Enum {
                values,
                signed,
                size,
                ..
            } => {
                let number = if *signed {
                    sign_extend(word, *size)
                } else {
                    word as i64
                };
                match values.iter().find(|(_, v)| *v == number) {
                    Some((name, _)) => CompactString::from(name.as_str()),
                    None => number.to_compact_string(),
                }
            }
            TypeInfo::Pointer { target, .. } => {
                value.points_to = Some(self.map.describe(word));
                if let Some(width) = self.char_width(*target).filter(|_| word != 0) {
                    value.text = self.c_string(word, width);
                }
                hex(word)
            }
            _ => hex(word),
        });
        value
    }

    /// The text at `address` up to its NUL (a code unit of `width` bytes), as far as the dump
    /// holds it.
    fn c_string(&self, address: u64, width: usize) -> Option<CompactString> {
        // Most strings lie well inside a captured region: read the longest shown at once.
        let longest = self.limits.text_bytes / width * width;
        if let Some(bytes) = self.memory.read(address, longest) {
            let end = bytes
                .chunks_exact(width)
                .position(|unit| unit.iter().all(|b| *b == 0))
                .map_or(bytes.len(), |units| units * width);
            return Some(escape_text(&bytes[..end], width));
        }
        // Near the region's end: a unit at a time, as far as the dump holds them.
        let mut text = Vec::new();
        while text.len() < longest {
            let unit = self.memory.read(address + text.len() as u64, width)?;
            if unit.iter().all(|b| *b == 0) {
                break;
            }
            text.extend_from_slice(&unit);
        }
        Some(escape_text(&text, width))
    }

    /// The type with typedefs and qualifiers looked through.
    pub(super) fn resolved(&self, id: Option<TypeId>) -> Option<&'a TypeInfo> {
        let mut id = id;
        for _ in 0..64 {
            match self.table.type_info(id)? {
                TypeInfo::Typedef { target, .. } | TypeInfo::Qualified { target, .. } => {
                    id = *target
                }
                other => return Some(other),
            }
        }
        None
    }

    /// Whether `id` is a character type (`char`, `unsigned char`, `wchar_t`, `char16_t`…), not
    /// a 1-byte integer (Rust's `u8`), whose arrays are shown as text alone.
    pub(super) fn is_character(&self, id: Option<TypeId>) -> bool {
        match self.resolved(id) {
            Some(TypeInfo::Base { encoding, size, .. }) => match encoding {
                BaseEncoding::SignedChar | BaseEncoding::UnsignedChar => *size == 1,
                BaseEncoding::Utf => *size == 2,
                _ => false,
            },
            _ => false,
        }
    }

    /// The bytes of one character of text when `id` is a character type: 1 for `char` (and
    /// the other one-byte integers, as gdb shows them), 2 for Windows' `wchar_t` and `char16_t`
    /// (UTF-16).
    pub(super) fn char_width(&self, id: Option<TypeId>) -> Option<usize> {
        match self.resolved(id)? {
            TypeInfo::Base {
                size: 1,
                encoding:
                    BaseEncoding::SignedChar
                    | BaseEncoding::UnsignedChar
                    | BaseEncoding::Signed
                    | BaseEncoding::Unsigned,
                ..
            } => Some(1),
            TypeInfo::Base {
                size: 2,
                encoding: BaseEncoding::Utf,
                ..
            } => Some(2),
            _ => None,
        }
    }
}

fn leaf(name: &str, type_name: &str, value: Option<CompactString>) -> Value {
    Value {
        name: CompactString::new(name),
        type_name: CompactString::new(type_name),
        value,
        unavailable: None,
        points_to: None,
        text: None,
        variant: None,
        fields: Vec::new(),
        truncated: false,
    }
}

/// The name of element `i` (`[i]`): the first ones shared, made once.
pub(super) fn element_name(i: usize) -> Cow<'static, str> {
    static NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        (0..RenderLimits::default().elements)
            .map(|i| format!("[{i}]"))
            .collect()
    });
    match NAMES.get(i) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("[{i}]")),
    }
}

/// The little-endian word of the first 8 bytes (`None` when there are none), if every byte is
/// known, or why one is missing; without collecting them anywhere.
fn known_word(bytes: &[Result<u8, Unavailable>]) -> Result<Option<u64>, Unavailable> {
    let mut word = [0u8; 8];
    for (i, byte) in bytes.iter().enumerate() {
        let byte = (*byte)?;
        if let Some(slot) = word.get_mut(i) {
            *slot = byte;
        }
    }
    Ok((!bytes.is_empty()).then(|| u64::from_le_bytes(word)))
}

pub(super) fn le_u64(raw: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = raw.len().min(8);
    word[..n].copy_from_slice(&raw[..n]);
    u64::from_le_bytes(word)
}

fn sign_extend(word: u64, size: u8) -> i64 {
    match size {
        1 => word as u8 as i8 as i64,
        2 => word as u16 as i16 as i64,
        4 => word as u32 as i32 as i64,
        _ => word as i64,
    }
}

fn base_value(encoding: BaseEncoding, size: u8, word: u64) -> CompactString {
    match encoding {
        BaseEncoding::Signed => sign_extend(word, size).to_compact_string(),
        BaseEncoding::Unsigned | BaseEncoding::Other => word.to_compact_string(),
        BaseEncoding::SignedChar | BaseEncoding::UnsignedChar => {
            let number = if encoding == BaseEncoding::SignedChar {
                sign_extend(word, size)
            } else {
                word as i64
            };
            // `120 'x'`, written piece by piece: a char array's every element is one.
            let mut out = number.to_compact_string();
            out.push_str(" '");
            push_escaped(&mut out, word as u8);
            out.push('\'');
            out
        }
        BaseEncoding::Boolean => (word != 0).to_compact_string(),
        BaseEncoding::Float => match size {
            4 => format_compact!("{}", f64::from(f32::from_bits(word as u32))),
            8 => format_compact!("{}", f64::from_bits(word)),
            _ => hex(word),
        },
        BaseEncoding::Utf => match char::from_u32(word as u32) {
            Some(c) => format_compact!("U+{:04X} '{c}'", word),
            None => format_compact!("U+{word:04X}"),
        },
    }
}

/// `0x…`: an address or pointer as gdb shows it, without the formatting machinery.
pub(super) fn hex(word: u64) -> CompactString {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buffer = [0u8; 18];
    let mut at = buffer.len();
    let mut rest = word;
    loop {
        at -= 1;
        buffer[at] = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    at -= 2;
    buffer[at..at + 2].copy_from_slice(b"0x");
    CompactString::from_utf8(&buffer[at..]).expect("ASCII digits")
}

#[cfg(test)]
mod tests;
