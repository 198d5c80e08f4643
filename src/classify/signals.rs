//! Hints in register values and addresses: allocator poison patterns (a freed or uninitialized
//! object being used) and ASCII-looking addresses (a pointer overwritten with string data).

use serde::{Deserialize, Serialize};

/// A fill pattern allocators and runtimes write into memory, and what finding it means.
struct Pattern {
    word: u32,
    meaning: &'static str,
    freed: bool,
}

const PATTERNS: &[Pattern] = &[
    Pattern {
        word: 0xe5e5_e5e5,
        meaning: "jemalloc/mozjemalloc freed-memory poison",
        freed: true,
    },
    Pattern {
        word: 0xa5a5_a5a5,
        meaning: "freed-memory poison (jemalloc opt.junk, FreeBSD malloc)",
        freed: true,
    },
    Pattern {
        word: 0xdddd_dddd,
        meaning: "MSVC debug heap freed memory",
        freed: true,
    },
    Pattern {
        word: 0xfeee_feee,
        meaning: "Windows HeapFree freed memory",
        freed: true,
    },
    Pattern {
        word: 0xdead_beef,
        meaning: "deadbeef marker (freed or invalidated object)",
        freed: true,
    },
    Pattern {
        word: 0xcdcd_cdcd,
        meaning: "MSVC debug heap uninitialized memory",
        freed: false,
    },
];

/// A register (or the crash address) holding a poison pattern.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoisonValue {
    /// Register name, or `crash_address`.
    pub register: String,
    /// The value, hex.
    pub value: String,
    /// What the pattern means.
    pub pattern: std::borrow::Cow<'static, str>,
    /// Whether the pattern marks freed memory (a likely use-after-free).
    pub freed: bool,
}

/// Whether `value` is (or points within a page of) a poison pattern: its low 32 bits, or both
/// halves of a 64-bit value, repeat the pattern.
fn poison_of(value: u64) -> Option<&'static Pattern> {
    PATTERNS.iter().find(|p| {
        let word = u64::from(p.word);
        let low = value & 0xffff_ffff;
        let high = value >> 32;
        let near = |v: u64, target: u64| v.abs_diff(target) < 4096;
        (high == 0 || high == word || high == 0xffff_ffff) && near(low, word) && low != 0
            || near(value, (word << 32) | word)
    })
}

/// Every register (and the crash address) holding a poison pattern.
pub fn poison_values(registers: &[(String, u64)], crash_address: Option<u64>) -> Vec<PoisonValue> {
    registers
        .iter()
        .map(|(name, value)| (name.as_str(), *value))
        .chain(crash_address.map(|a| ("crash_address", a)))
        .filter_map(|(name, value)| {
            let pattern = poison_of(value)?;
            Some(PoisonValue {
                register: name.to_owned(),
                value: format!("{value:#x}"),
                pattern: pattern.meaning.into(),
                freed: pattern.freed,
            })
        })
        .collect()
}

/// Whether an address looks like ASCII text (every byte of its low 32 bits printable, e.g.
/// 0x41414141): a pointer overwritten by string data.
pub fn looks_ascii(address: u64) -> bool {
    let low = (address & 0xffff_ffff) as u32;
    let high = address >> 32;
    (high == 0 || high == u64::from(low))
        && low.to_le_bytes().iter().all(|b| (0x20..0x7f).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_patterns_are_found_with_offsets() {
        let regs = vec![
            ("rax".to_owned(), 0xe5e5_e5e5_e5e5_e5e5),
            ("rbx".to_owned(), 0x1234),
            ("rcx".to_owned(), 0xfeee_fef6),
            ("rdx".to_owned(), 0xcdcd_cdcd),
        ];
        let found = poison_values(&regs, Some(0xdead_beef));
        let names: Vec<&str> = found.iter().map(|p| p.register.as_str()).collect();
        assert_eq!(names, ["rax", "rcx", "rdx", "crash_address"]);
        assert!(found[0].freed && !found[2].freed);
        assert!(poison_values(&[("rsi".into(), 0x7fff_5ae4_aa20)], None).is_empty());
    }

    #[test]
    fn ascii_addresses() {
        assert!(looks_ascii(0x4141_4141));
        assert!(looks_ascii(0x6162_6364_6162_6364));
        assert!(!looks_ascii(0x45));
        assert!(!looks_ascii(0x7fff_5ae4_aa20));
    }
}
