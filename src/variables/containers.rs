//! The standard library's types shown by what they hold, not by their fields: Rust enums
//! (`Option`, `Result`, any enum with a variant part) as the variant and its fields, Rust
//! `&str` and `String` and C++ `std::string` (libstdc++'s and MSVC's, `std::wstring` too) as
//! their text, Rust `Vec<T>` and C++ `std::vector<T>` as their elements — read through the
//! layouts the debug file's types describe (DWARF or a PDB), from the memory the dump captured,
//! within the same limits as any other value.

use compact_str::CompactString;

use super::eval::Unavailable;
use super::render::{element_name, hex, le_u64, Renderer, Value};
use super::table::{Member, TypeId, TypeInfo, Variants};
use super::text::escape_text;

/// A member found inside a value: its byte offset from the value's start and its type.
type Found = (u64, Option<TypeId>);

/// Largest element of a vector read (a bigger one is left out, `truncated`).
const MAX_ELEMENT_BYTES: u64 = 4096;

/// An integer or pointer read from a value's bytes, or why they are not known.
type Word = Result<u64, Unavailable>;

impl Renderer<'_> {
    /// `info` shown by what it holds when it is a type whose layout is known; `None` for any
    /// other struct (shown field by field).
    pub(super) fn container(
        &self,
        name: &str,
        type_name: &str,
        info: &TypeInfo,
        bytes: &[Result<u8, Unavailable>],
        depth: usize,
    ) -> Option<Value> {
        let TypeInfo::Struct {
            name: struct_name,
            variants,
            element,
            ..
        } = info
        else {
            return None;
        };
        if let Some(variants) = variants {
            return Some(self.variant(name, type_name, variants, bytes, depth));
        }
        let struct_name = struct_name.as_deref()?;
        // Made only once the struct is known to be a container (most structs are not).
        let value = || Value::named(name, type_name, Vec::new());
        // Each kind: where its pointer and its length are (`None`: not this layout after all).
        let words = if struct_name == "&str" {
            let pointer = self.word_of(info, bytes, &["data_ptr"])?;
            (pointer, self.word_of(info, bytes, &["length"])?)
        } else if struct_name == "String" {
            let pointer = self.first_pointer(info, bytes, &["vec", "buf"])?;
            (pointer, self.word_of(info, bytes, &["vec", "len"])?)
        } else if struct_name.starts_with("basic_string<char,") {
            let pointer = self.word_of(info, bytes, &["_M_dataplus", "_M_p"])?;
            (pointer, self.word_of(info, bytes, &["_M_string_length"])?)
        } else if struct_name.starts_with("Vec<") {
            let pointer = self.first_pointer(info, bytes, &["buf"])?;
            let length = self.word_of(info, bytes, &["len"])?;
            return Some(match (pointer, length) {
                (Ok(pointer), Ok(length)) => {
                    self.elements(value(), *element, pointer, length, depth)
                }
                (Err(why), _) | (_, Err(why)) => unavailable(value(), why),
            });
        } else if struct_name.starts_with("vector<") {
            return self.vector(
                value(),
                info,
                bytes,
                depth,
                ["_M_impl", "_M_start", "_M_finish"],
            );
        } else if let Some(width) = msvc_string_width(struct_name) {
            return self.msvc_string(value(), info, bytes, width);
        } else if struct_name.starts_with("std::vector<") {
            let paths = ["_Mypair._Myval2", "_Myfirst", "_Mylast"];
            return self.vector(value(), info, bytes, depth, paths);
        } else {
            return None;
        };
        Some(match words {
            (Ok(pointer), Ok(length)) => self.text_value(value(), pointer, length, 1),
            (Err(why), _) | (_, Err(why)) => unavailable(value(), why),
        })
    }

    /// MSVC's `std::basic_string` (`_Mypair._Myval2`): `_Mysize` characters, kept in the
    /// string's own 16-byte buffer `_Bx._Buf` while its capacity `_Myres` fits there, else at
    /// `_Bx._Ptr`.
    fn msvc_string(
        &self,
        value: Value,
        info: &TypeInfo,
        bytes: &[Result<u8, Unavailable>],
        width: usize,
    ) -> Option<Value> {
        const BUFFER: u64 = 16;
        let (buffer, _) = self.find(info, &["_Mypair", "_Myval2", "_Bx"])?;
        let size = self.word_of(info, bytes, &["_Mypair", "_Myval2", "_Mysize"])?;
        let capacity = self.word_of(info, bytes, &["_Mypair", "_Myval2", "_Myres"])?;
        let (pointer_at, pointer_type) = self.find(info, &["_Mypair", "_Myval2", "_Bx", "_Ptr"])?;
        let (size, capacity) = match (size, capacity) {
            (Ok(size), Ok(capacity)) => (size, capacity),
            (Err(why), _) | (_, Err(why)) => return Some(unavailable(value, why)),
        };
        if capacity < BUFFER / width as u64 {
            let length = size.min(BUFFER / width as u64) as usize * width;
            let start = usize::try_from(buffer).ok()?;
            let inline = bytes.get(start..start.checked_add(length)?)?;
            return Some(match known_bytes(inline) {
                Ok(text) => Value {
                    text: Some(escape_text(&text, width)),
                    ..value
                },
                Err(why) => unavailable(value, why),
            });
        }
        let pointer_size = self.size_of(pointer_type).clamp(1, 8) as usize;
        Some(match word_at(bytes, pointer_at, pointer_size)? {
            Ok(pointer) => self.text_value(value, pointer, size, width),
            Err(why) => unavailable(value, why),
        })
    }

    /// A C++ `std::vector<T>`: the elements from its first pointer to its last, both in the
    /// struct at `[path, first, last]` (`_M_impl` in libstdc++, `_Mypair._Myval2` in MSVC's).
    fn vector(
        &self,
        value: Value,
        info: &TypeInfo,
        bytes: &[Result<u8, Unavailable>],
        depth: usize,
        [path, first, last]: [&str; 3],
    ) -> Option<Value> {
        let mut first_path: Vec<&str> = path.split('.').collect();
        let mut last_path = first_path.clone();
        first_path.push(first);
        last_path.push(last);
        let (_, start_type) = self.find(info, &first_path)?;
        let element = match self.resolved(start_type) {
            Some(TypeInfo::Pointer { target, .. }) => *target,
            _ => return None,
        };
        let start = self.word_of(info, bytes, &first_path)?;
        let finish = self.word_of(info, bytes, &last_path)?;
        Some(match (start, finish) {
            (Ok(start), Ok(finish)) => {
                let size = self.size_of(element).max(1);
                let length = finish.saturating_sub(start) / size;
                self.elements(value, element, start, length, depth)
            }
            (Err(why), _) | (_, Err(why)) => unavailable(value, why),
        })
    }

    /// A Rust enum: the variant its discriminant chooses, with that variant's fields.
    fn variant(
        &self,
        name: &str,
        type_name: &str,
        variants: &Variants,
        bytes: &[Result<u8, Unavailable>],
        depth: usize,
    ) -> Value {
        let mut value = Value::named(name, type_name, Vec::new());
        let chosen = match &variants.discriminant {
            Some(discriminant) => {
                let size = self.size_of(discriminant.type_id).clamp(1, 8) as usize;
                let tag = match word_at(bytes, discriminant.offset, size) {
                    Some(Ok(tag)) => tag,
                    Some(Err(why)) => return unavailable(value, why),
                    None => return unavailable(value, Unavailable::Unsupported),
                };
                let mask = if size >= 8 {
                    !0
                } else {
                    (1u64 << (size * 8)) - 1
                };
                variants
                    .variants
                    .iter()
                    .find(|(v, _)| v.is_some_and(|v| v & mask == tag))
                    .or_else(|| variants.variants.iter().find(|(v, _)| v.is_none()))
            }
            None => variants.variants.first(),
        };
        let Some((_, member)) = chosen else {
            value.unavailable = Some(Unavailable::Unsupported);
            return value;
        };
        value.variant = Some(CompactString::new(&member.name));
        let start = member.offset as usize;
        let end = start.saturating_add(self.size_of(member.type_id) as usize);
        if let Some(part) = bytes.get(start..end.min(bytes.len())) {
            let inner = self.read(&member.name, member.type_id, part, depth);
            value.fields = inner.fields;
            value.truncated = inner.truncated;
        }
        value
    }

    /// A string's value, `length` characters of `width` bytes: its text when the dump holds
    /// it, else where it points.
    fn text_value(&self, mut value: Value, pointer: u64, length: u64, width: usize) -> Value {
        let units = (self.limits.text_bytes / width) as u64;
        let shown = length.min(units) as usize * width;
        match self.memory.read(pointer, shown) {
            Some(text) if pointer != 0 || shown == 0 => {
                value.text = Some(escape_text(&text, width));
                value.truncated = length > units;
            }
            _ => {
                value.value = Some(hex(pointer));
                value.points_to = Some(self.map.describe(pointer));
            }
        }
        value
    }

    /// A vector's elements, as far as the limits and the captured memory go.
    fn elements(
        &self,
        mut value: Value,
        element: Option<TypeId>,
        pointer: u64,
        length: u64,
        depth: usize,
    ) -> Value {
        let size = self.size_of(element);
        let shown = length.min(self.limits.elements as u64);
        // An element's bytes are copied out of the dump: a type claiming to be huge is not.
        if depth >= self.limits.depth || size == 0 || size > MAX_ELEMENT_BYTES {
            value.truncated = length > 0;
            return value;
        }
        for i in 0..shown {
            let address = pointer.wrapping_add(i * size);
            let bytes: Vec<Result<u8, Unavailable>> = match self.memory.read(address, size as usize)
            {
                Some(raw) => raw.iter().copied().map(Ok).collect(),
                None => vec![Err(Unavailable::NotCaptured); size as usize],
            };
            value
                .fields
                .push(self.read(&element_name(i as usize), element, &bytes, depth + 1));
        }
        value.truncated = length > shown;
        value
    }

    /// The member at `path` (through base classes), from a struct type.
    fn find(&self, info: &TypeInfo, path: &[&str]) -> Option<Found> {
        let (first, rest) = path.split_first()?;
        let TypeInfo::Struct { members, .. } = info else {
            return None;
        };
        let (offset, type_id) = self.member_named(members, first, 0)?;
        if rest.is_empty() {
            return Some((offset, type_id));
        }
        let (inner, type_id) = self.find(self.resolved(type_id)?, rest)?;
        Some((offset.saturating_add(inner), type_id))
    }

    /// A member named `name`, or one inherited from a base class (two levels of bases).
    fn member_named(&self, members: &[Member], name: &str, bases: usize) -> Option<Found> {
        if let Some(member) = members.iter().find(|m| *m.name == *name) {
            return Some((member.offset, member.type_id));
        }
        if bases >= 2 {
            return None;
        }
        members
            .iter()
            .filter(|m| &*m.name == "<base>")
            .find_map(|base| {
                let Some(TypeInfo::Struct { members, .. }) = self.resolved(base.type_id) else {
                    return None;
                };
                let (offset, type_id) = self.member_named(members, name, bases + 1)?;
                Some((base.offset.saturating_add(offset), type_id))
            })
    }

    /// The integer or pointer at `path`, read from the value's bytes (or why they are not
    /// known); `None` when there is no such member.
    fn word_of(
        &self,
        info: &TypeInfo,
        bytes: &[Result<u8, Unavailable>],
        path: &[&str],
    ) -> Option<Word> {
        let (offset, type_id) = self.find(info, path)?;
        let size = self.size_of(type_id).clamp(1, 8) as usize;
        word_at(bytes, offset, size)
    }

    /// The first pointer inside the member at `path` (Rust hides a `Vec`'s buffer a few
    /// structs deep, type-erased: its type says nothing, its place does).
    fn first_pointer(
        &self,
        info: &TypeInfo,
        bytes: &[Result<u8, Unavailable>],
        path: &[&str],
    ) -> Option<Word> {
        let (mut offset, mut type_id) = self.find(info, path)?;
        for _ in 0..8 {
            match self.resolved(type_id)? {
                TypeInfo::Pointer { size, .. } => {
                    return word_at(bytes, offset, usize::from(*size).clamp(1, 8))
                }
                TypeInfo::Struct { members, .. } => {
                    let next = ["ptr", "pointer", "inner"]
                        .iter()
                        .find_map(|name| members.iter().find(|m| &*m.name == *name))?;
                    offset = offset.saturating_add(next.offset);
                    type_id = next.type_id;
                }
                _ => return None,
            }
        }
        None
    }
}

/// The bytes per character of an MSVC `std::basic_string<…>` of this name, if it is one.
fn msvc_string_width(struct_name: &str) -> Option<usize> {
    let arguments = struct_name.strip_prefix("std::basic_string<")?;
    ["char,", "char8_t,"]
        .iter()
        .any(|c| arguments.starts_with(c))
        .then_some(1)
        .or_else(|| {
            ["wchar_t,", "char16_t,", "unsigned short,"]
                .iter()
                .any(|c| arguments.starts_with(c))
                .then_some(2)
        })
}

/// The little-endian integer of `size` bytes at `offset`, or why they are not known.
fn word_at(bytes: &[Result<u8, Unavailable>], offset: u64, size: usize) -> Option<Word> {
    let start = usize::try_from(offset).ok()?;
    let part = bytes.get(start..start.checked_add(size)?)?;
    Some(known_bytes(part).map(|raw| le_u64(&raw)))
}

/// A value whose parts could not be read.
fn unavailable(mut value: Value, why: Unavailable) -> Value {
    value.unavailable = Some(why);
    value
}

fn known_bytes(bytes: &[Result<u8, Unavailable>]) -> Result<Vec<u8>, Unavailable> {
    bytes.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variables::eval::CapturedMemory;
    use crate::variables::render::{AddressMap, RenderLimits};
    use crate::variables::table::{BaseEncoding, VariablesTable};

    /// Memory where every byte is `0x61` (`a`): any length a hostile value claims is readable.
    struct Everywhere;
    impl CapturedMemory for Everywhere {
        fn read(&self, _address: u64, len: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
            (len <= 1 << 20).then(|| vec![0x61; len].into())
        }
    }
    impl AddressMap for Everywhere {
        fn describe(&self, _address: u64) -> compact_str::CompactString {
            compact_str::CompactString::const_new("heap")
        }
    }

    fn member(name: &str, offset: u64, type_id: TypeId) -> Member {
        Member {
            name: name.into(),
            offset,
            type_id: Some(type_id),
            bits: None,
        }
    }

    fn structure(name: &str, size: u64, members: Vec<Member>) -> TypeInfo {
        TypeInfo::Struct {
            keyword: "struct".into(),
            name: Some(name.into()),
            size,
            members,
            variants: None,
            element: None,
        }
    }

    /// A `&str` and a `Vec<u8>` claiming 2^64 - 1 bytes show 256 bytes of text and 64
    /// elements, truncated (a `Vec` of gigabyte elements none); an `Option<u8>` shows the variant its discriminant chooses, and
    /// the default variant for any other value (a niche).
    #[test]
    fn hostile_lengths_are_bounded_and_variants_chosen_by_discriminant() {
        let table = VariablesTable::new(
            0,
            Vec::new(),
            vec![
                TypeInfo::Base {
                    name: "u8".into(),
                    size: 1,
                    encoding: BaseEncoding::Unsigned,
                },
                TypeInfo::Pointer {
                    size: 8,
                    target: Some(0),
                    reference: false,
                },
                TypeInfo::Base {
                    name: "usize".into(),
                    size: 8,
                    encoding: BaseEncoding::Unsigned,
                },
                structure(
                    "&str",
                    16,
                    vec![member("data_ptr", 0, 1), member("length", 8, 2)],
                ),
                TypeInfo::Struct {
                    keyword: "struct".into(),
                    name: Some("Vec<u8>".into()),
                    size: 16,
                    members: vec![member("buf", 0, 1), member("len", 8, 2)],
                    variants: None,
                    element: Some(0),
                },
                structure("Some", 2, vec![member("__0", 1, 0)]),
                structure("None", 2, Vec::new()),
                TypeInfo::Struct {
                    keyword: "struct".into(),
                    name: Some("Option<u8>".into()),
                    size: 2,
                    members: Vec::new(),
                    variants: Some(Box::new(Variants {
                        discriminant: Some(member("", 0, 0)),
                        variants: vec![
                            (Some(0), member("None", 0, 6)),
                            (None, member("Some", 0, 5)),
                        ],
                    })),
                    element: None,
                },
                TypeInfo::Array {
                    element: Some(0),
                    count: Some(1_000_000_000),
                },
                TypeInfo::Struct {
                    keyword: "struct".into(),
                    name: Some("Vec<[u8; 1000000000]>".into()),
                    size: 16,
                    members: vec![member("buf", 0, 1), member("len", 8, 2)],
                    variants: None,
                    element: Some(8),
                },
            ],
        );
        let renderer = Renderer {
            table: &table,
            memory: &Everywhere,
            map: &Everywhere,
            limits: RenderLimits::default(),
        };
        let huge: Vec<Result<u8, Unavailable>> = [0x1000u64.to_le_bytes(), u64::MAX.to_le_bytes()]
            .concat()
            .into_iter()
            .map(Ok)
            .collect();
        let text = renderer.value("s", Some(3), &huge);
        assert_eq!(text.text.as_deref().map(str::len), Some(256));
        assert!(text.truncated);
        let vec = renderer.value("v", Some(4), &huge);
        assert_eq!(vec.fields.len(), 64);
        assert_eq!(vec.fields[63].value.as_deref(), Some("97"));
        assert!(vec.truncated);
        // Elements of a gigabyte each are not copied out of the dump.
        let giants = renderer.value("g", Some(9), &huge);
        assert!(giants.fields.is_empty() && giants.truncated);
        let option = |bytes: [u8; 2]| {
            let bytes: Vec<_> = bytes.into_iter().map(Ok).collect();
            renderer.value("o", Some(7), &bytes)
        };
        assert_eq!(option([0, 9]).summary(), "None");
        assert_eq!(option([1, 9]).summary(), "Some(9)");
        assert_eq!(option([5, 9]).variant.as_deref(), Some("Some"));
        let missing = renderer.value("s", Some(3), &[Err(Unavailable::NotCaptured); 16]);
        assert_eq!(missing.unavailable, Some(Unavailable::NotCaptured));
    }

    /// MSVC's layouts, as a PDB's types give them: a `std::vector<int>` (`_Mypair._Myval2`'s
    /// `_Myfirst` to `_Mylast`) shows its elements; a `std::wstring` on the heap claiming 2^32
    /// characters shows 128 of them, truncated.
    #[test]
    fn msvc_vectors_and_wide_strings_read_through_their_layouts() {
        let table =
            VariablesTable::new(
                0,
                Vec::new(),
                vec![
                TypeInfo::Base {
                    name: "int".into(),
                    size: 4,
                    encoding: BaseEncoding::Signed,
                },
                TypeInfo::Pointer {
                    size: 4,
                    target: Some(0),
                    reference: false,
                },
                structure(
                    "std::_Vector_val<std::_Simple_types<int> >",
                    12,
                    vec![
                        member("_Myfirst", 0, 1),
                        member("_Mylast", 4, 1),
                        member("_Myend", 8, 1),
                    ],
                ),
                structure("std::_Compressed_pair<…>", 12, vec![member("_Myval2", 0, 2)]),
                structure(
                    "std::vector<int,std::allocator<int> >",
                    12,
                    vec![member("_Mypair", 0, 3)],
                ),
                TypeInfo::Base {
                    name: "wchar_t".into(),
                    size: 2,
                    encoding: BaseEncoding::Utf,
                },
                TypeInfo::Pointer {
                    size: 4,
                    target: Some(5),
                    reference: false,
                },
                TypeInfo::Base {
                    name: "unsigned int".into(),
                    size: 4,
                    encoding: BaseEncoding::Unsigned,
                },
                structure("std::_String_val<…>::_Bxty", 16, vec![member("_Ptr", 0, 6)]),
                structure(
                    "std::_String_val<std::_Simple_types<wchar_t> >",
                    24,
                    vec![
                        member("_Bx", 0, 8),
                        member("_Mysize", 16, 7),
                        member("_Myres", 20, 7),
                    ],
                ),
                structure("std::_Compressed_pair<…>", 24, vec![member("_Myval2", 0, 9)]),
                structure("std::_String_alloc<…>", 24, vec![member("_Mypair", 0, 10)]),
                structure(
                    "std::basic_string<wchar_t,std::char_traits<wchar_t>,std::allocator<wchar_t> >",
                    24,
                    vec![member("<base>", 0, 11)],
                ),
            ],
            );
        let renderer = Renderer {
            table: &table,
            memory: &Everywhere,
            map: &Everywhere,
            limits: RenderLimits::default(),
        };
        let words = |words: &[u32]| -> Vec<Result<u8, Unavailable>> {
            words.iter().flat_map(|w| w.to_le_bytes()).map(Ok).collect()
        };
        let vector = renderer.value("v", Some(4), &words(&[0x1000, 0x100c, 0x1010]));
        assert_eq!(vector.fields.len(), 3, "{vector:?}");
        assert_eq!(vector.fields[2].value.as_deref(), Some("1633771873"));
        assert!(!vector.truncated);
        let heap = words(&[0x2000, 0, 0, 0, u32::MAX, u32::MAX]);
        let text = renderer.value("s", Some(12), &heap);
        // Every byte is 0x61: each UTF-16 unit is U+6161.
        assert_eq!(text.text.as_deref(), Some(&*"\\u{6161}".repeat(128)));
        assert!(text.truncated);
    }
}
