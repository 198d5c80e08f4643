//! An error event as Sentry SDKs send it, read leniently from its JSON: exceptions with their
//! stack traces, threads, `debug_meta` images (native modules and source maps), release,
//! environment, user, tags and contexts. Frames are oldest first, as in the event.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::process::symbolicate::{Addr, AddrMode};

/// Most exceptions, threads, images and frames per stack read from one event.
const MAX_EXCEPTIONS: usize = 32;
const MAX_THREADS: usize = 256;
const MAX_IMAGES: usize = 2048;
const MAX_FRAMES: usize = 512;
/// Longest text kept from one field (messages, function names, paths).
const MAX_TEXT: usize = 4096;
/// Most tags kept (each becomes an annotation of the crash).
const MAX_TAGS: usize = 100;
/// Most registers read from one stack, and the longest register name.
const MAX_REGISTERS: usize = 128;
const MAX_REGISTER_NAME: usize = 16;
/// Longest tag name or value kept (Sentry's own limits are 32 and 200 characters).
const MAX_TAG_TEXT: usize = 200;

/// One error event.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Event {
    /// The SDK's event ID (32 hex digits).
    pub event_id: Option<String>,
    /// `javascript`, `node`, `native`, `python`…
    pub platform: Option<String>,
    /// `fatal`, `error`, `warning`…
    pub level: Option<String>,
    /// The log message (`message`, `logentry.formatted` or `logentry.message`).
    pub message: Option<String>,
    /// Exceptions, the innermost cause first and the one that was thrown last (Sentry's order).
    pub exceptions: Vec<EventException>,
    /// Threads with their stacks.
    pub threads: Vec<EventThread>,
    /// Native modules and source maps the frames fall in.
    pub images: Vec<EventImage>,
    /// Release.
    pub release: Option<String>,
    /// Distribution of the release.
    pub dist: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// The user's fields (`id`, `email`, `username`, `ip_address`).
    pub user: Value,
    /// Tags as (name, value).
    pub tags: Vec<(String, String)>,
    /// Contexts (`os`, `device`, `runtime`, `browser`…), as sent.
    pub contexts: Value,
    /// The SDK that sent it (`name`, `version`).
    pub sdk: Value,
}

/// One exception.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventException {
    /// Exception type (`TypeError`, `EXCEPTION_ACCESS_VIOLATION_READ`, `SIGSEGV`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Its message.
    pub value: Option<String>,
    /// Module the type is declared in.
    pub module: Option<String>,
    /// How it was caught (`type`, `handled`, `meta.signal`…), as sent.
    pub mechanism: Value,
    /// Frames, oldest first.
    pub frames: Vec<EventFrame>,
    /// The thread it was thrown on.
    pub thread_id: Option<String>,
    /// The registers of its innermost frame (`stacktrace.registers`), in the CPU's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registers: Vec<(String, Addr)>,
}

/// One thread.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventThread {
    /// Thread ID as sent.
    pub id: Option<String>,
    /// Thread name.
    pub name: Option<String>,
    /// Whether this thread crashed.
    pub crashed: bool,
    /// Frames, oldest first.
    pub frames: Vec<EventFrame>,
    /// The registers of its innermost frame (`stacktrace.registers`), in the CPU's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registers: Vec<(String, Addr)>,
}

/// One frame as the SDK sent it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EventFrame {
    /// Function name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Module (JavaScript module path, Python module).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// File name relative to the project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Absolute path or URL of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    /// Line (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u32>,
    /// Column (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colno: Option<u32>,
    /// The source line, when the SDK sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_line: Option<String>,
    /// Native: the instruction address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction_addr: Option<Addr>,
    /// Native: what the address counts from (`abs`, or `rel:N`: the start of image N of
    /// `debug_meta`, as WebAssembly frames are given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr_mode: Option<AddrMode>,
    /// .NET: the method (metadata token); `instruction_addr` is then its IL offset, and
    /// `addr_mode` names the assembly's `pe_dotnet` image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_id: Option<Addr>,
    /// Native: the containing image (code file), when the SDK named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Whether the SDK marked it the application's own code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_app: Option<bool>,
    /// The frame's platform when it differs from the event's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl EventFrame {
    /// A frame symbolicated by address: native code, or a .NET method's IL offset (it has a
    /// `function_id`).
    pub fn is_native(&self) -> bool {
        self.instruction_addr.is_some()
    }

    /// A Java or Kotlin frame a ProGuard mapping can de-obfuscate: a class and a method, no
    /// address, on the `java` platform (the frame's or the event's).
    pub fn is_java(&self, event_platform: Option<&str>) -> bool {
        let platform = self.platform.as_deref().or(event_platform);
        !self.is_native()
            && self.module.is_some()
            && self.function.is_some()
            && platform == Some("java")
    }

    /// A JavaScript frame that a source map can resolve: a file URL and a line, no address.
    pub fn is_javascript(&self, event_platform: Option<&str>) -> bool {
        let platform = self.platform.as_deref().or(event_platform);
        !self.is_native()
            && self.abs_path.is_some()
            && self.lineno.is_some()
            && matches!(platform, Some("javascript" | "node"))
    }
}

/// A `debug_meta` image.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventImage {
    /// `sourcemap`, `elf`, `macho`, `pe`, `symbolic`…
    #[serde(rename = "type")]
    pub kind: String,
    /// The module's debug ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug_id: Option<String>,
    /// Code ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_id: Option<String>,
    /// Code file (a native module's path, or the minified file's URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_file: Option<String>,
    /// Debug file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug_file: Option<String>,
    /// Native: load address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_addr: Option<Addr>,
    /// Native: size in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
}

/// Why an event could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON.
    #[error("the event is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("the event is not a JSON object")]
    NotAnObject,
}

fn text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some(cut(text))
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn number(value: &Value) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn addr(value: &Value) -> Option<Addr> {
    match value {
        Value::Number(_) | Value::String(_) => Addr::deserialize(value).ok(),
        _ => None,
    }
}

/// A list sent either as `{"values": [...]}` or as the bare array.
fn values(value: &Value) -> &[Value] {
    let list = value.get("values").unwrap_or(value);
    list.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn frames(stacktrace: &Value) -> Vec<EventFrame> {
    let all = stacktrace["frames"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    // The newest frames matter most: a stack cut to size keeps its end.
    let start = all.len().saturating_sub(MAX_FRAMES);
    all[start..].iter().map(frame).collect()
}

/// A stack's registers (`{"rip": "0x…", "rax": 0, …}`), in the CPU's own order (a JSON
/// object's order is not kept on the way): general registers by number, then the named ones as
/// a debugger lists them (x86-64: `rax`…`rsp`, `r8`…`r15`, `rip`, `rflags`; ARM64: `x0`…`x28`,
/// `fp`, `lr`, `sp`, `pc`, `cpsr`). Values that are no address, and overlong names, are left out.
fn registers(value: &Value) -> Vec<(String, Addr)> {
    let Some(map) = value.as_object() else {
        return Vec::new();
    };
    let mut out: Vec<(String, Addr)> = map
        .iter()
        .filter(|(name, _)| !name.is_empty() && name.len() <= MAX_REGISTER_NAME)
        .filter_map(|(name, value)| Some((name.clone(), addr(value)?)))
        .take(MAX_REGISTERS)
        .collect();
    out.sort_by_cached_key(|(name, _)| register_rank(name));
    out
}

/// Where a register comes in a listing: see [`registers`].
fn register_rank(name: &str) -> (u8, usize, String) {
    /// Named registers before the numbered `r8`…: x86's, in the order debuggers show them.
    const FIRST: &[&str] = &[
        "eax", "rax", "ebx", "rbx", "ecx", "rcx", "edx", "rdx", "edi", "rdi", "esi", "rsi", "ebp",
        "rbp", "esp", "rsp",
    ];
    /// Named registers after the numbered ones.
    const LAST: &[&str] = &[
        "fp", "ip", "lr", "sp", "pc", "eip", "rip", "cpsr", "eflags", "rflags", "rfl", "cs", "ds",
        "es", "fs", "gs", "ss", "far", "esr", "cr2", "trap", "err",
    ];
    let numbered = |prefix: char| {
        name.strip_prefix(prefix)
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<usize>().ok())
    };
    if let Some(i) = FIRST.iter().position(|r| *r == name) {
        (0, i, String::new())
    } else if let Some(n) = numbered('x').or_else(|| numbered('r')) {
        (1, n, String::new())
    } else if let Some(i) = LAST.iter().position(|r| *r == name) {
        (2, i, String::new())
    } else {
        (3, 0, name.to_owned())
    }
}

fn frame(value: &Value) -> EventFrame {
    EventFrame {
        function: text(&value["function"])
            .or_else(|| text(&value["raw_function"]))
            .or_else(|| text(&value["symbol"])),
        module: text(&value["module"]),
        filename: text(&value["filename"]),
        abs_path: text(&value["abs_path"]).or_else(|| text(&value["filename"])),
        lineno: number(&value["lineno"]),
        colno: number(&value["colno"]),
        context_line: text(&value["context_line"]),
        instruction_addr: addr(&value["instruction_addr"]),
        addr_mode: value["addr_mode"].as_str().and_then(AddrMode::parse),
        function_id: addr(&value["function_id"]),
        package: text(&value["package"]),
        in_app: value["in_app"].as_bool(),
        platform: text(&value["platform"]),
    }
}

impl Event {
    /// Whether the program died of it: level `fatal`, or an exception its mechanism says was
    /// not handled.
    pub fn is_fatal(&self) -> bool {
        self.level.as_deref() == Some("fatal")
            || self
                .exceptions
                .iter()
                .any(|e| e.mechanism.get("handled") == Some(&Value::Bool(false)))
    }

    /// Reads an event from its JSON text.
    pub fn from_slice(json: &[u8]) -> Result<Event, EventError> {
        let value: Value =
            serde_json::from_slice(json).map_err(|e| EventError::NotJson(e.to_string()))?;
        if !value.is_object() {
            return Err(EventError::NotAnObject);
        }
        Ok(Event::from_value(&value))
    }

    /// Reads an event from its JSON tree.
    pub fn from_value(value: &Value) -> Event {
        let message = text(&value["message"])
            .or_else(|| text(&value["message"]["formatted"]))
            .or_else(|| text(&value["logentry"]["formatted"]))
            .or_else(|| text(&value["logentry"]["message"]))
            .or_else(|| text(&value["message"]["message"]));
        let exceptions = values(&value["exception"])
            .iter()
            .take(MAX_EXCEPTIONS)
            .map(|e| EventException {
                kind: text(&e["type"]),
                value: text(&e["value"]),
                module: text(&e["module"]),
                mechanism: e["mechanism"].clone(),
                frames: frames(&e["stacktrace"]),
                thread_id: text(&e["thread_id"]),
                registers: registers(&e["stacktrace"]["registers"]),
            })
            .collect();
        let threads = values(&value["threads"])
            .iter()
            .take(MAX_THREADS)
            .map(|t| EventThread {
                id: text(&t["id"]),
                name: text(&t["name"]),
                crashed: t["crashed"].as_bool().unwrap_or(false),
                frames: frames(&t["stacktrace"]),
                registers: registers(&t["stacktrace"]["registers"]),
            })
            .collect();
        let images = value["debug_meta"]["images"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .take(MAX_IMAGES)
            .filter_map(|i| {
                Some(EventImage {
                    kind: text(&i["type"])?,
                    // A ProGuard image names its mapping by `uuid`.
                    debug_id: text(&i["debug_id"])
                        .or_else(|| text(&i["id"]))
                        .or_else(|| text(&i["uuid"])),
                    code_id: text(&i["code_id"]),
                    code_file: text(&i["code_file"]),
                    debug_file: text(&i["debug_file"]),
                    image_addr: addr(&i["image_addr"]),
                    image_size: i["image_size"].as_u64(),
                })
            })
            .collect();
        let tag = |k: Option<String>, v: Option<String>| {
            let (k, v) = (k?, v?);
            (k.len() <= MAX_TAG_TEXT && v.len() <= MAX_TAG_TEXT).then_some((k, v))
        };
        let tags = match &value["tags"] {
            Value::Object(map) => map
                .iter()
                .filter_map(|(k, v)| tag(Some(k.clone()), text(v)))
                .take(MAX_TAGS)
                .collect(),
            Value::Array(pairs) => pairs
                .iter()
                .filter_map(|pair| tag(text(&pair[0]), text(&pair[1])))
                .take(MAX_TAGS)
                .collect(),
            _ => Vec::new(),
        };
        Event {
            event_id: text(&value["event_id"]),
            platform: text(&value["platform"]),
            level: text(&value["level"]),
            message,
            exceptions,
            threads,
            images,
            release: text(&value["release"]),
            dist: text(&value["dist"]),
            environment: text(&value["environment"]),
            user: value["user"].clone(),
            tags,
            contexts: value["contexts"].clone(),
            sdk: value["sdk"].clone(),
        }
    }

    /// The stack that failed, oldest frame first: the last exception with frames, else the
    /// crashed thread's, else the first thread with frames.
    pub fn crashing_frames(&self) -> &[EventFrame] {
        if let Some(e) = self.exceptions.iter().rev().find(|e| !e.frames.is_empty()) {
            return &e.frames;
        }
        self.threads
            .iter()
            .find(|t| t.crashed && !t.frames.is_empty())
            .or_else(|| self.threads.iter().find(|t| !t.frames.is_empty()))
            .map(|t| t.frames.as_slice())
            .unwrap_or_default()
    }

    /// The exception that was thrown last (the one the event is about).
    pub fn main_exception(&self) -> Option<&EventException> {
        self.exceptions.last()
    }

    /// The annotations an event contributes to its crash row: release, environment, dist,
    /// platform, user, tags (as the minidump route's `sentry` field does).
    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.insert(k.to_owned(), v.clone());
            }
        };
        put("release", &self.release);
        put("environment", &self.environment);
        put("dist", &self.dist);
        put("sentry_platform", &self.platform);
        put("level", &self.level);
        put("event_id", &self.event_id);
        for (field, name) in [
            ("id", "user_id"),
            ("username", "username"),
            ("email", "user_email"),
        ] {
            if let Some(v) = text(&self.user[field]) {
                out.insert(name.to_owned(), v);
            }
        }
        for (k, v) in &self.tags {
            out.insert(format!("tag.{k}"), v.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_fields_and_both_list_shapes() {
        let event = Event::from_value(&json!({
            "event_id": "abc",
            "platform": "javascript",
            "logentry": {"formatted": "boom 42"},
            "exception": [{"type": "TypeError", "value": "x is undefined",
                "stacktrace": {"frames": [
                    {"function": "a", "abs_path": "http://x/app.js", "lineno": "3", "colno": 7},
                    {"function": "b", "abs_path": "http://x/app.js", "lineno": 1, "colno": {}}
                ]}}],
            "threads": {"values": [{"id": 1, "crashed": true}]},
            "debug_meta": {"images": [{"type": "sourcemap", "code_file": "http://x/app.js",
                "debug_id": "5b65abfb-2338-4f0b-b3b9-64c8f734d43f"}, {"no": "type"}]},
            "tags": [["browser", "Firefox"], ["bad"]],
            "user": {"id": 7},
            "release": ["not", "text"]
        }));
        assert_eq!(event.message.as_deref(), Some("boom 42"));
        assert_eq!(event.exceptions.len(), 1);
        let frames = &event.exceptions[0].frames;
        assert_eq!(frames[0].lineno, Some(3));
        assert_eq!(frames[1].colno, None);
        assert!(frames[0].is_javascript(event.platform.as_deref()));
        assert_eq!(event.threads[0].id.as_deref(), Some("1"));
        assert_eq!(event.images.len(), 1);
        assert_eq!(event.tags, vec![("browser".into(), "Firefox".into())]);
        let many: serde_json::Map<String, Value> = (0..500)
            .map(|i| (format!("t{i}"), json!(i)))
            .chain([("long".to_owned(), json!("x".repeat(300)))])
            .collect();
        let tagged = Event::from_value(&json!({ "tags": many }));
        assert_eq!(tagged.tags.len(), MAX_TAGS);
        assert!(tagged.tags.iter().all(|(k, _)| k != "long"));
        assert_eq!(event.release, None);
        let annotations = event.annotations();
        assert_eq!(annotations["user_id"], "7");
        assert_eq!(annotations["tag.browser"], "Firefox");
        assert_eq!(event.crashing_frames()[1].function.as_deref(), Some("b"));
    }

    #[test]
    fn native_frames_take_hex_or_numbers() {
        let event = Event::from_value(&json!({
            "platform": "native",
            "exception": {"values": [{"type": "SIGSEGV", "stacktrace": {"frames": [
                {"instruction_addr": "0x1000"}, {"instruction_addr": 8192}, {"instruction_addr": "zz"}
            ]}}]}
        }));
        let frames = &event.exceptions[0].frames;
        assert_eq!(frames[0].instruction_addr, Some(Addr(0x1000)));
        assert_eq!(frames[1].instruction_addr, Some(Addr(8192)));
        assert_eq!(frames[2].instruction_addr, None);
        assert!(Event::from_slice(b"[1]").is_err());
        assert!(Event::from_slice(b"{").is_err());
    }

    #[test]
    fn registers_come_in_the_cpus_order_whatever_the_json_order() {
        let names = |json: &str| -> Vec<String> {
            let event = Event::from_slice(json.as_bytes()).unwrap();
            event.threads[0]
                .registers
                .iter()
                .map(|(n, _)| n.clone())
                .collect()
        };
        let x86 = r#"{"threads": [{"stacktrace": {"frames": [], "registers": {
            "rip": "0x10", "r10": "0x1", "rax": 0, "r8": "0x2", "rsp": "0x3", "rflags": "0x246",
            "rbx": "0x4", "trap": "0xe", "weird": "0x5", "bad": "not a number"}}}]}"#;
        assert_eq!(
            names(x86),
            ["rax", "rbx", "rsp", "r8", "r10", "rip", "rflags", "trap", "weird"]
        );
        let arm = r#"{"threads": [{"stacktrace": {"registers": {
            "pc": "0x4", "x10": "0x1", "x2": "0x2", "lr": "0x3", "sp": "0x5", "fp": "0x6",
            "cpsr": "0x0", "x0": "0x0"}}}]}"#;
        assert_eq!(
            names(arm),
            ["x0", "x2", "x10", "fp", "lr", "sp", "pc", "cpsr"]
        );
        let event = Event::from_slice(x86.as_bytes()).unwrap();
        assert_eq!(
            event.threads[0].registers[5],
            ("rip".to_owned(), Addr(0x10))
        );
        // Bounded: a thousand registers, and a name longer than any register's, are cut.
        let many: serde_json::Map<String, Value> = (0..1000)
            .map(|i| (format!("r{i}"), Value::from(i)))
            .chain([("x".repeat(100), Value::from(1))])
            .collect();
        let event = Event::from_value(
            &serde_json::json!({"threads": [{"stacktrace": {"registers": many}}]}),
        );
        assert_eq!(event.threads[0].registers.len(), MAX_REGISTERS);
        assert!(event.threads[0]
            .registers
            .iter()
            .all(|(n, _)| n.len() <= MAX_REGISTER_NAME));
    }
}
