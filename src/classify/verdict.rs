//! The classifier's decision in sentences, written once for every reader (the crash page, the
//! CLI's report and its Markdown): the evidence line, the address with its access, the frame
//! to blame, and one sentence per signal. Renderers escape them for their medium.

use super::frames::FrameRef;
use super::{Evidence, Signals};

/// A crash reason and what decided the class in one line (`SIGSEGV /SEGV_MAPERR: write to a
/// near-null address`, or an SDK event's `TypeError: x is undefined`), the reason left out when
/// the rule already starts with it.
pub fn evidence_line(reason: Option<&str>, rule: &str) -> String {
    match reason {
        Some(reason) if !rule.starts_with(reason) => format!("{reason}: {rule}"),
        _ => rule.to_owned(),
    }
}

impl Evidence {
    /// The crash reason and the rule that fired (`SIGSEGV /SEGV_MAPERR: write to a near-null
    /// address`), the reason left out when the rule already starts with it.
    pub fn summary(&self) -> String {
        evidence_line(self.crash_reason.as_deref(), &self.rule)
    }

    /// The crash address with the kind of access and the faulting instruction
    /// (`0x0000000000000000 (write access, instruction `mov dword ptr [rax], 0x2a`)`).
    pub fn address_line(&self) -> Option<String> {
        let address = self.address.as_deref()?;
        let access = serde_json::to_value(self.access)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let instruction = self
            .instruction
            .as_deref()
            .map(|i| format!(", instruction `{i}`"))
            .unwrap_or_default();
        Some(format!("{address} ({access} access{instruction})"))
    }
}

impl FrameRef {
    /// `#3 crash in crash at /work/linux/main.cpp:23`: its index, function (`??` when not
    /// symbolicated), module and source.
    pub fn describe(&self) -> String {
        let source = self.source();
        format!(
            "#{} {}{}{}",
            self.index,
            self.function.as_deref().unwrap_or("??"),
            self.module
                .as_deref()
                .map(|m| format!(" in {m}"))
                .unwrap_or_default(),
            if source.is_empty() {
                String::new()
            } else {
                format!(" at {source}")
            }
        )
    }

    /// `file:line`, the file alone, or nothing.
    pub fn source(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            (Some(file), None) => file.clone(),
            _ => String::new(),
        }
    }
}

impl Signals {
    /// One sentence per signal, the strongest first.
    pub fn sentences(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.likely_use_after_free {
            out.push("likely use-after-free (a freed-memory pattern)".to_owned());
        }
        if self.guard_page {
            out.push("the access hit a guard page".to_owned());
        }
        if let Some(variable) = &self.fault_variable {
            out.push(variable.sentence());
        }
        if let Some(adjusted) = &self.adjusted_address {
            out.push(adjusted_sentence(adjusted));
        }
        for poison in &self.poison {
            out.push(format!(
                "poison value {} in {}: {}",
                poison.value, poison.register, poison.pattern
            ));
        }
        out.extend(self.possible_bit_flips.iter().map(bit_flip_sentence));
        out.extend(
            self.crash_inconsistencies
                .iter()
                .map(|issue| format!("inconsistency: {issue}")),
        );
        out
    }
}

/// minidump-processor's corrected address: a null pointer plus an offset, or a non-canonical
/// address.
fn adjusted_sentence(adjusted: &serde_json::Value) -> String {
    let field = |name: &str| adjusted[name].as_str().unwrap_or_default().to_owned();
    match adjusted["kind"].as_str() {
        Some("null-pointer") => format!("a null pointer plus offset {}", field("offset")),
        Some("non-canonical") => format!("a non-canonical address {}", field("address")),
        _ => format!("adjusted address: {}", one_line(adjusted)),
    }
}

/// A valid address one bit away from the crash address.
fn bit_flip_sentence(flip: &serde_json::Value) -> String {
    let Some(address) = flip["address"].as_str() else {
        return format!("possible bit flip: {}", one_line(flip));
    };
    let register = flip["source_register"]
        .as_str()
        .map(|r| format!(" (from {r})"))
        .unwrap_or_default();
    let confidence = flip["confidence"]
        .as_f64()
        .map(|c| format!(", confidence {c:.2}"))
        .unwrap_or_default();
    format!("possible bit flip: the address may have been {address}{register}{confidence}")
}

/// A JSON value as text: a string as itself, anything else compact.
fn one_line(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::signals::PoisonValue;

    fn frame(function: Option<&str>, file: Option<&str>, line: Option<u32>) -> FrameRef {
        FrameRef {
            index: 2,
            frame: 1,
            inlined: false,
            function: function.map(str::to_owned),
            module: Some("crash".to_owned()),
            file: file.map(str::to_owned),
            line,
        }
    }

    #[test]
    fn frames_read_as_sentences() {
        assert_eq!(
            frame(Some("main"), Some("a.c"), Some(3)).describe(),
            "#2 main in crash at a.c:3"
        );
        assert_eq!(frame(None, None, None).describe(), "#2 ?? in crash");
        assert_eq!(frame(None, Some("a.c"), None).source(), "a.c");
    }

    #[test]
    fn signals_read_as_sentences() {
        let signals = Signals {
            adjusted_address: Some(serde_json::json!({"kind": "null-pointer", "offset": "0x10"})),
            possible_bit_flips: vec![serde_json::json!(
                {"address": "0x400045", "confidence": 0.25, "source_register": null}
            )],
            crash_inconsistencies: vec!["the address is not where the instruction points".into()],
            guard_page: true,
            fault_variable: Some(crate::variables::FaultVariable {
                expression: "node->next".into(),
                value: 0,
                offset: 0x10,
                field: Some("name".into()),
            }),
            poison: vec![PoisonValue {
                register: "rax".into(),
                value: "0xdddddddd".into(),
                pattern: "freed".into(),
                freed: true,
            }],
            likely_use_after_free: true,
        };
        assert_eq!(
            signals.sentences(),
            [
                "likely use-after-free (a freed-memory pattern)",
                "the access hit a guard page",
                "0x10 = `node->next` (0x0) + 0x10, field `name`",
                "a null pointer plus offset 0x10",
                "poison value 0xdddddddd in rax: freed",
                "possible bit flip: the address may have been 0x400045, confidence 0.25",
                "inconsistency: the address is not where the instruction points",
            ]
        );
    }
}
