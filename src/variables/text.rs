//! Text in a crash's values as debuggers print it: printable ASCII as it is, any other byte
//! as `\xNN`, UTF-16 characters outside ASCII as `\u{…}`; C strings up to their NUL and
//! character arrays whole.

use std::fmt::Write;

use compact_str::CompactString;

use super::eval::Unavailable;

/// One byte as shown in text: printable ASCII as is (`\\` and `"` escaped), anything else as
/// `\\xNN`.
pub(super) fn push_escaped(out: &mut impl std::fmt::Write, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Writing to a string in memory cannot fail.
    let _ = match b {
        b'\\' => out.write_str("\\\\"),
        b'"' => out.write_str("\\\""),
        0x20..=0x7e => out.write_char(b as char),
        _ => out.write_str("\\x").and_then(|()| {
            out.write_char(HEX[usize::from(b >> 4)] as char)?;
            out.write_char(HEX[usize::from(b & 0xf)] as char)
        }),
    };
}

/// Bytes as text, each as [`push_escaped`] writes it (kept inline, without an allocation, up to
/// 24 bytes).
pub fn escape(bytes: &[u8]) -> CompactString {
    let mut out = CompactString::with_capacity(bytes.len());
    for &b in bytes {
        push_escaped(&mut out, b);
    }
    out
}

/// Text of `width`-byte code units (1: bytes, shown as [`escape`] does; 2: UTF-16, each
/// character outside printable ASCII as `\\u{…}`).
pub fn escape_text(bytes: &[u8], width: usize) -> CompactString {
    if width != 2 {
        return escape(bytes);
    }
    let units = bytes
        .chunks_exact(2)
        .map(|unit| u16::from_le_bytes([unit[0], unit[1]]));
    let mut out = CompactString::with_capacity(bytes.len() / 2);
    for decoded in char::decode_utf16(units) {
        let _ = match decoded {
            Ok(c) if c.is_ascii() => {
                push_escaped(&mut out, c as u8);
                Ok(())
            }
            Ok(c) => write!(out, "\\u{{{:x}}}", u32::from(c)),
            Err(lone) => write!(out, "\\u{{{:x}}}", lone.unpaired_surrogate()),
        };
    }
    out
}

/// The text of a character array, `width` bytes a character: all of it but its trailing NULs
/// (at most `limit` bytes), if every byte is known.
pub(super) fn array_text(
    bytes: &[Result<u8, Unavailable>],
    width: usize,
    limit: usize,
) -> Option<CompactString> {
    let known: Vec<u8> = bytes.iter().map(|b| b.ok()).collect::<Option<_>>()?;
    let mut end = known.len() / width * width;
    while end >= width && known[end - width..end].iter().all(|b| *b == 0) {
        end -= width;
    }
    Some(escape_text(&known[..end.min(limit / width * width)], width))
}

/// The text of a 1-byte integer array (Rust's `[u8; N]`): up to its NUL, if every byte up to
/// there is known.
pub(super) fn text_of<'a>(
    bytes: impl Iterator<Item = &'a Result<u8, Unavailable>>,
    width: usize,
) -> Option<CompactString> {
    let mut text = Vec::new();
    for byte in bytes {
        text.push((*byte).ok()?);
        if text.len() % width == 0 && text[text.len() - width..].iter().all(|b| *b == 0) {
            text.truncate(text.len() - width);
            break;
        }
    }
    text.truncate(text.len() / width * width);
    Some(escape_text(&text, width))
}
