//! The identifiers crash reporters and build systems use to name a module's debug file: the
//! debug ID (PDB GUID + age, Mach-O UUID, ELF build ID folded into a GUID) and the code ID
//! (PE timestamp + image size, full ELF build ID, Mach-O UUID), in every spelling clients send.

use symbolic::common::{CodeId, DebugId};

/// Parses a debug ID in any spelling clients use: hyphenated (`c0bcc3f1-9827-fe65-3058-
/// 404b2831d9e6-0`), Breakpad (`C0BCC3F19827FE653058404B2831D9E60`, 33+ hex digits), any case.
/// The nil ID is refused: it identifies nothing.
pub fn parse_debug_id(text: &str) -> Result<DebugId, String> {
    let text = text.trim();
    match text.parse::<DebugId>() {
        Ok(id) if !id.is_nil() => Ok(id),
        Ok(_) => Err(format!("debug ID {text:?} is the nil ID")),
        Err(_) => Err(format!(
            "{text:?} is not a debug ID: expected a GUID plus age, hyphenated \
             (c0bcc3f1-9827-fe65-3058-404b2831d9e6-0) or in Breakpad form (33+ hex digits)"
        )),
    }
}

/// Parses a code ID: hex digits only (PE `TIMESTAMPSIZE`, ELF build ID, Mach-O UUID with or
/// without hyphens), normalized to lowercase.
pub fn parse_code_id(text: &str) -> Result<CodeId, String> {
    let cleaned: String = text.trim().chars().filter(|c| *c != '-').collect();
    if cleaned.is_empty() || cleaned.len() > 80 || !cleaned.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not a code ID: expected hex digits (PE timestamp+size, ELF build ID or Mach-O UUID)"
        ));
    }
    Ok(CodeId::new(cleaned.to_lowercase()))
}

/// The debug ID that symbolic and Breakpad derive from an ELF build ID: its first 16 bytes
/// (zero-padded) read as a little-endian GUID, with age 0. `None` if `code_id` is not hex.
pub fn debug_id_from_build_id(code_id: &CodeId) -> Option<DebugId> {
    let bytes = hex::decode(code_id.as_str()).ok()?;
    let mut guid = [0u8; 16];
    let n = bytes.len().min(16);
    guid[..n].copy_from_slice(&bytes[..n]);
    DebugId::from_guid_age(&guid, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakpad_and_hyphenated_spellings_are_the_same_id() {
        let a = parse_debug_id("C0BCC3F19827FE653058404B2831D9E60").unwrap();
        let b = parse_debug_id("c0bcc3f1-9827-fe65-3058-404b2831d9e6-0").unwrap();
        let c = parse_debug_id("c0bcc3f19827fe653058404b2831d9e6").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(
            a.breakpad().to_string(),
            "C0BCC3F19827FE653058404B2831D9E60"
        );
        let pdb = parse_debug_id("3249D99D0C4049318610F4E4FB0B69361").unwrap();
        assert_eq!(pdb.to_string(), "3249d99d-0c40-4931-8610-f4e4fb0b6936-1");
    }

    #[test]
    fn bad_debug_ids_are_refused_with_a_reason() {
        assert!(parse_debug_id("nope")
            .unwrap_err()
            .contains("not a debug ID"));
        assert!(parse_debug_id("00000000-0000-0000-0000-000000000000")
            .unwrap_err()
            .contains("nil"));
    }

    #[test]
    fn elf_build_ids_fold_like_breakpad() {
        // From debug-files/linux/crash.sym: INFO CODE_ID and MODULE lines of the same file.
        let code = parse_code_id("F1C3BCC0279865FE3058404B2831D9E64135386C").unwrap();
        assert_eq!(code.as_str(), "f1c3bcc0279865fe3058404b2831d9e64135386c");
        let id = debug_id_from_build_id(&code).unwrap();
        assert_eq!(
            id.breakpad().to_string(),
            "C0BCC3F19827FE653058404B2831D9E60"
        );
        // Short build IDs are zero-padded.
        let short = debug_id_from_build_id(&parse_code_id("01020304").unwrap()).unwrap();
        assert_eq!(short.to_string(), "04030201-0000-0000-0000-000000000000");
    }

    #[test]
    fn code_ids_are_hex_only() {
        assert_eq!(
            parse_code_id("5AB380779000").unwrap().as_str(),
            "5ab380779000"
        );
        assert!(parse_code_id("xyz").is_err());
        assert!(parse_code_id("").is_err());
    }
}
