//! How events group. A native event signs like a minidump crash: the same signature rules over
//! its failing stack's symbolicated frames (inlined calls included) and a fault class read from
//! its exception, so it joins the group of a minidump crash with the same frames. Other events
//! (JavaScript, Python…) group by their in-app frames — frames the SDK did not mark otherwise
//! and not under `node_modules/` — each as module (or file name), function and source line;
//! an event without such frames groups by exception type and message, with the parts that vary
//! between occurrences (numbers, hex, UUIDs, quoted strings) replaced.

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::event::{Event, EventException, EventFrame};
use super::stacks::{EventPlatform, ProcessedFrame, ProcessedStack};
use crate::classify::frames::FrameRef;
use crate::classify::rules::NEAR_NULL;
use crate::classify::FaultClass;
use crate::group::signature::{fingerprint, signature, Signature, SignatureRules};
use crate::group::CrashClass;
use crate::symbols::identify::base_name;

/// Version of the non-native event grouping (a change regroups new events).
pub const EVENT_GROUPING_VERSION: u32 = 1;
/// Frames shown in a non-native event's signature.
const SIGNATURE_FRAMES: usize = 3;
/// Longest source line used as a grouping component (longer ones are minified code).
const MAX_CONTEXT_LINE: usize = 200;

/// What an event's group is, and why.
#[derive(Debug, Clone, Serialize)]
pub struct EventGrouping {
    /// The signature people read.
    pub signature: String,
    /// Frames of the signature (function names), innermost first.
    pub frames: Vec<String>,
    /// The grouping hash.
    pub fingerprint: String,
    /// `native_frames`, `in_app_frames` or `message`.
    pub method: &'static str,
    /// The fault class (native events) or `exception` / `message`.
    pub fault_class: CrashClass,
    /// What the fingerprint was computed from (non-native events).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

/// Groups `event` by its failing stack.
pub fn group(
    rules: &SignatureRules,
    event: &Event,
    failing: Option<&ProcessedStack>,
    platform: EventPlatform,
) -> EventGrouping {
    let main = event.main_exception();
    if let (EventPlatform::Native, Some(stack)) = (platform, failing) {
        let class = native_fault_class(main);
        let frames = native_frames(stack);
        let sig: Signature = signature(rules, class, &frames, &event.annotations());
        return EventGrouping {
            fingerprint: fingerprint(class, &sig),
            signature: sig.text,
            frames: sig.frames,
            method: "native_frames",
            fault_class: class.into(),
            components: Vec::new(),
        };
    }
    let in_app: Vec<&ProcessedFrame> = failing
        .map(|s| {
            s.frames
                .iter()
                .rev()
                .filter(|f| f.frame.in_app != Some(false) && !under_node_modules(&f.frame))
                .filter(|f| f.frame.function.is_some() || f.frame.context_line.is_some())
                .collect()
        })
        .unwrap_or_default();
    let kind = main.and_then(|e| e.kind.clone());
    if !in_app.is_empty() {
        let components: Vec<String> = in_app.iter().map(|f| component(&f.frame)).collect();
        let frames: Vec<String> = in_app
            .iter()
            .filter_map(|f| f.frame.function.clone())
            .collect();
        let shown: Vec<&str> = frames
            .iter()
            .take(SIGNATURE_FRAMES)
            .map(String::as_str)
            .collect();
        let signature = match (&kind, shown.is_empty()) {
            (Some(kind), false) => format!("{kind} | {}", shown.join(" | ")),
            (None, false) => shown.join(" | "),
            (Some(kind), true) => kind.clone(),
            (None, true) => "<unknown>".to_owned(),
        };
        return EventGrouping {
            fingerprint: digest("in_app_frames", kind.as_deref(), &components),
            signature,
            frames,
            method: "in_app_frames",
            fault_class: CrashClass::Exception,
            components,
        };
    }
    let message = main
        .and_then(|e| e.value.as_deref())
        .or(event.message.as_deref())
        .map(normalize_message)
        .unwrap_or_default();
    let signature = match (&kind, message.is_empty()) {
        (Some(kind), false) => format!("{kind}: {message}"),
        (Some(kind), true) => kind.clone(),
        (None, false) => message.clone(),
        (None, true) => "<no message>".to_owned(),
    };
    EventGrouping {
        fingerprint: digest("message", kind.as_deref(), std::slice::from_ref(&message)),
        signature,
        frames: Vec::new(),
        method: "message",
        fault_class: if main.is_some() {
            CrashClass::Exception
        } else {
            CrashClass::Message
        },
        components: vec![message],
    }
}

fn digest(method: &str, kind: Option<&str>, components: &[String]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "faultline-event-grouping-v{EVENT_GROUPING_VERSION}\n{method}\n{}\n",
        kind.unwrap_or_default()
    ));
    for component in components {
        hasher.update(component.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(&hasher.finalize()[..16])
}

/// What an in-app frame contributes to the fingerprint: where it is (module, else file name),
/// its function, and its source line when short (minified names and columns change from build
/// to build; the code rarely does).
fn component(fr: &EventFrame) -> String {
    let place = fr
        .module
        .clone()
        .or_else(|| fr.filename.as_deref().map(|n| base_name(n).to_owned()))
        .or_else(|| fr.abs_path.as_deref().map(|n| base_name(n).to_owned()))
        .unwrap_or_default();
    let line = fr
        .context_line
        .as_deref()
        .map(str::trim)
        .filter(|l| l.len() <= MAX_CONTEXT_LINE)
        .unwrap_or_default();
    format!(
        "{place}\t{}\t{line}",
        fr.function.as_deref().unwrap_or_default()
    )
}

fn under_node_modules(frame: &EventFrame) -> bool {
    [&frame.abs_path, &frame.filename, &frame.module]
        .iter()
        .any(|p| p.as_deref().is_some_and(|p| p.contains("node_modules/")))
}

/// The failing stack as the minidump grouping reads a crashing thread: innermost first, each
/// frame's inlined calls before it.
fn native_frames(stack: &ProcessedStack) -> Vec<FrameRef> {
    let mut out = Vec::new();
    for (index, f) in stack.frames.iter().rev().enumerate() {
        let module = f.frame.package.as_deref().map(|p| base_name(p).to_owned());
        for inline in &f.inlines {
            out.push(FrameRef {
                index: out.len(),
                frame: index,
                inlined: true,
                function: Some(inline.function.clone()),
                module: module.clone(),
                file: inline.abs_path.clone(),
                line: inline.lineno,
            });
        }
        let symbolicated = f.status == "symbolicated";
        out.push(FrameRef {
            index: out.len(),
            frame: index,
            inlined: false,
            function: f.frame.function.clone().filter(|_| symbolicated),
            module,
            file: f.frame.abs_path.clone().filter(|_| symbolicated),
            line: f.frame.lineno.filter(|_| symbolicated),
        });
    }
    out
}

/// The fault class a native event's exception names (signal or Windows exception code). A
/// segmentation fault is a null or wild read when the event gives the address it touched
/// (`mechanism.data.relevant_address`, as an Apple crash report's codes do: near null is a null
/// read with an offset); without it, `unknown`: only a dump's memory would tell.
pub fn native_fault_class(exception: Option<&EventException>) -> FaultClass {
    let Some(e) = exception else {
        return FaultClass::Unknown;
    };
    let signal = e.mechanism["meta"]["signal"]["name"].as_str();
    let code = e.mechanism["meta"]["signal"]["number"].as_i64();
    let kind = e.kind.as_deref().unwrap_or_default();
    let named = signal.unwrap_or(kind).to_ascii_uppercase();
    let address = e.mechanism["data"]["relevant_address"]
        .as_str()
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
    if let (Some(address), "SIGSEGV", _) | (Some(address), _, Some(11)) =
        (address, named.as_str(), code)
    {
        return if address < NEAR_NULL {
            FaultClass::NullRead
        } else {
            FaultClass::WildRead
        };
    }
    match (named.as_str(), code) {
        (_, Some(6)) | ("SIGABRT", _) => FaultClass::Abort,
        (_, Some(8)) | ("SIGFPE" | "EXCEPTION_INT_DIVIDE_BY_ZERO", _) => FaultClass::DivideByZero,
        (_, Some(4)) | ("SIGILL" | "EXCEPTION_ILLEGAL_INSTRUCTION", _) => {
            FaultClass::IllegalInstruction
        }
        (_, Some(7)) | ("SIGBUS", _) => FaultClass::BusError,
        (_, Some(5)) | ("SIGTRAP" | "EXCEPTION_BREAKPOINT", _) => FaultClass::Breakpoint,
        ("EXCEPTION_STACK_OVERFLOW", _) => FaultClass::StackOverflow,
        _ => FaultClass::Unknown,
    }
}

fn patterns() -> &'static [(Regex, &'static str)] {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            (r#""[^"]*"|'[^']*'|`[^`]*`"#, "<str>"),
            (
                r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
                "<uuid>",
            ),
            (r"\b0[xX][0-9a-fA-F]+\b", "<hex>"),
            (
                r"\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b",
                "<hex>",
            ),
            (
                r"\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b",
                "<hex>",
            ),
            (r"\d+(?:\.\d+)?", "<n>"),
        ]
        .into_iter()
        .map(|(p, r)| (Regex::new(p).expect("fixed pattern"), r))
        .collect()
    })
}

/// A message with its variable parts replaced: quoted strings, UUIDs, hex, numbers.
pub fn normalize_message(message: &str) -> String {
    let mut text = message.trim().to_owned();
    for (pattern, replacement) in patterns() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_differing_only_in_variable_parts_normalize_alike() {
        let a = normalize_message(
            "Request 1234 to 'https://a/x' failed after 2.5s: id 3f2a9c1e-0b7d-4c2e-9f00-123456789abc at 0x7ffe12",
        );
        let b = normalize_message(
            "Request 98 to 'https://b/y?q=1' failed after 30s: id 00000000-1111-2222-3333-444444444444 at 0xdeadbeef",
        );
        assert_eq!(a, b);
        assert_eq!(
            a,
            "Request <n> to <str> failed after <n>s: id <uuid> at <hex>"
        );
        // Words stay words (hex-looking letters alone are not numbers).
        assert_eq!(normalize_message("bad face cafe"), "bad face cafe");
        assert_eq!(normalize_message("hash deadbeef01"), "hash <hex>");
        assert_ne!(
            normalize_message("user not found"),
            normalize_message("user not allowed")
        );
    }

    #[test]
    fn native_classes_from_signals_and_codes() {
        let exception = |kind: &str, mechanism: serde_json::Value| EventException {
            kind: Some(kind.to_owned()),
            mechanism,
            ..EventException::default()
        };
        assert_eq!(
            native_fault_class(Some(&exception("SIGABRT", serde_json::Value::Null))),
            FaultClass::Abort
        );
        assert_eq!(
            native_fault_class(Some(&exception(
                "x",
                serde_json::json!({"meta": {"signal": {"number": 8}}})
            ))),
            FaultClass::DivideByZero
        );
        assert_eq!(
            native_fault_class(Some(&exception(
                "EXCEPTION_ACCESS_VIOLATION_READ",
                serde_json::Value::Null
            ))),
            FaultClass::Unknown
        );
        let segv_at = |address: &str| {
            exception(
                "EXC_BAD_ACCESS (SIGSEGV)",
                serde_json::json!({"meta": {"signal": {"name": "SIGSEGV", "number": 11}}, "data": {"relevant_address": address}}),
            )
        };
        assert_eq!(
            native_fault_class(Some(&segv_at("0x88"))),
            FaultClass::NullRead
        );
        assert_eq!(
            native_fault_class(Some(&segv_at("0x7ffee0001000"))),
            FaultClass::WildRead
        );
    }
}
