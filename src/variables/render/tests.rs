//! Values read from bytes as their types say: escaping, bounds on hostile types, bit fields,
//! character arrays.

use super::*;
use crate::variables::table::Member;
use crate::variables::text::escape;

#[test]
fn text_is_escaped_as_debuggers_print_it() {
    assert_eq!(
        escape(b"ok \"q\" \\ \x7f\x00\xff"),
        r#"ok \"q\" \\ \x7f\x00\xff"#
    );
}

struct NoMemory;
impl CapturedMemory for NoMemory {
    fn read(&self, _address: u64, _len: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
        None
    }
}
impl AddressMap for NoMemory {
    fn describe(&self, _address: u64) -> compact_str::CompactString {
        compact_str::CompactString::const_new("not captured")
    }
}

/// Hostile type graphs (a typedef of itself, a struct holding itself by value, an array of
/// a billion of them) end in bounded values, not a hang or an overflow.
#[test]
fn cyclic_and_huge_types_give_bounded_values() {
    let table = VariablesTable::new(
        0,
        Vec::new(),
        vec![
            TypeInfo::Typedef {
                name: "loop".into(),
                target: Some(0),
            },
            TypeInfo::Struct {
                keyword: "struct".into(),
                variants: None,
                element: None,
                name: Some("self".into()),
                size: 8,
                members: vec![Member {
                    name: "me".into(),
                    offset: 0,
                    type_id: Some(1),
                    bits: None,
                }],
            },
            TypeInfo::Array {
                element: Some(1),
                count: Some(1_000_000_000),
            },
        ],
    );
    let renderer = Renderer {
        table: &table,
        memory: &NoMemory,
        map: &NoMemory,
        limits: RenderLimits::default(),
    };
    assert_eq!(renderer.size_of(Some(0)), 0);
    let looped = renderer.value("x", Some(0), &[Ok(1); 8]);
    assert!(looped.value.is_none() && looped.fields.is_empty());
    let nested = renderer.value("s", Some(1), &[Ok(0); 8]);
    let mut depth = 0;
    let mut at = &nested;
    while let Some(inner) = at.fields.first() {
        depth += 1;
        at = inner;
    }
    assert_eq!(depth, 3, "{nested:?}");
    assert!(at.truncated);
    let array = renderer.value("a", Some(2), &[Ok(0); 64]);
    assert_eq!(array.fields.len(), 64);
    assert!(array.truncated);
    assert!(renderer.type_name(Some(0)).len() < 64);
    assert!(nested.summary().chars().count() <= 160);
}

/// Bit fields are read from their first bit, even from a last byte whose storage type
/// would run past the struct.
#[test]
fn bit_fields_read_their_bits() {
    let member = |name: &str, offset: u64, bits: (u16, u16)| Member {
        name: name.into(),
        offset,
        type_id: Some(0),
        bits: Some(bits),
    };
    let table = VariablesTable::new(
        0,
        Vec::new(),
        vec![
            TypeInfo::Base {
                name: "unsigned int".into(),
                size: 4,
                encoding: BaseEncoding::Unsigned,
            },
            TypeInfo::Struct {
                keyword: "struct".into(),
                variants: None,
                element: None,
                name: Some("flags".into()),
                size: 2,
                members: vec![
                    member("a", 0, (0, 3)),
                    member("b", 0, (3, 5)),
                    member("c", 1, (0, 4)),
                ],
            },
        ],
    );
    let renderer = Renderer {
        table: &table,
        memory: &NoMemory,
        map: &NoMemory,
        limits: RenderLimits::default(),
    };
    let value = renderer.value("f", Some(1), &[Ok(0b1010_1101), Ok(0b0000_0110)]);
    let values: Vec<_> = value.fields.iter().map(|f| f.value.as_deref()).collect();
    assert_eq!(values, [Some("5"), Some("21"), Some("6")]);
}

/// A `char` array is its text, every element of it: NULs within it shown, the trailing
/// ones left out; a Rust `[u8; N]` keeps its elements; an array with an unknown byte shows
/// its elements, the unknown one saying why.
#[test]
fn char_arrays_are_their_text() {
    let table = VariablesTable::new(
        0,
        Vec::new(),
        vec![
            TypeInfo::Base {
                name: "char".into(),
                size: 1,
                encoding: BaseEncoding::SignedChar,
            },
            TypeInfo::Array {
                element: Some(0),
                count: Some(8),
            },
            TypeInfo::Base {
                name: "u8".into(),
                size: 1,
                encoding: BaseEncoding::Unsigned,
            },
            TypeInfo::Array {
                element: Some(2),
                count: Some(4),
            },
        ],
    );
    let renderer = Renderer {
        table: &table,
        memory: &NoMemory,
        map: &NoMemory,
        limits: RenderLimits::default(),
    };
    let bytes: Vec<_> = b"FL\x7f\0*\0\0\0".iter().map(|b| Ok(*b)).collect();
    let array = renderer.value("tag", Some(1), &bytes);
    assert_eq!(array.text.as_deref(), Some("FL\\x7f\\x00*"));
    assert!(array.fields.is_empty() && !array.truncated);

    let rust: Vec<_> = [1u8, 2, 0, 4].iter().map(|b| Ok(*b)).collect();
    let array = renderer.value("raw", Some(3), &rust);
    let elements: Vec<_> = array.fields.iter().map(|f| f.value.as_deref()).collect();
    assert_eq!(elements, [Some("1"), Some("2"), Some("0"), Some("4")]);

    let mut partly = bytes.clone();
    partly[3] = Err(Unavailable::NotCaptured);
    let array = renderer.value("tag", Some(1), &partly);
    assert_eq!(array.text, None);
    assert_eq!(array.fields.len(), 8);
    assert_eq!(array.fields[3].unavailable, Some(Unavailable::NotCaptured));
    assert_eq!(array.fields[1].value.as_deref(), Some("76 'L'"));
}
