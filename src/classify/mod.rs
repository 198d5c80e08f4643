//! Classification: what kind of fault a processed crash is (`fault_class`, from the catalogue in
//! [`catalogue`]), the evidence that decided it, how exploitable it looks, other signals
//! (adjusted address, bit flips, poison patterns), and the frame to blame.
//!
//! `docs/CLASSIFIERS.md` documents every rule and where it comes from.

pub mod catalogue;
pub mod dataflow;
pub mod exploitability;
pub mod frames;
mod pattern_lines;
pub mod patterns;
pub mod rules;
pub mod signals;
mod verdict;

use std::collections::BTreeMap;

use minidump_processor::AdjustedAddress;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::ClassifyConfig;
use crate::process::facts::Region;
use crate::process::ProcessedCrash;
pub use catalogue::FaultClass;
pub use exploitability::{Exploitability, Rating};
pub use frames::FrameRef;
use frames::{fault_frame, judged_frames, InAppRules, SkipList};
use patterns::PatternError;
use rules::{Access, AccessSource, Inputs};
use signals::{poison_values, PoisonValue};
pub use verdict::evidence_line;

/// What decided the fault class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// The rule that fired, in words.
    pub rule: String,
    /// minidump-processor's crash reason (`SIGSEGV /SEGV_MAPERR`, `EXCEPTION_ACCESS_VIOLATION_WRITE`).
    pub crash_reason: Option<String>,
    /// Signal number, NTSTATUS or Mach exception type, hex.
    pub code: Option<String>,
    /// `si_code`, Mach subcode or Windows exception flags, hex.
    pub subcode: Option<String>,
    /// Exception parameters, hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
    /// The faulting access: read, write, exec or unknown.
    pub access: Access,
    /// Where the access type came from.
    pub access_source: AccessSource,
    /// The crash address, hex.
    pub address: Option<String>,
    /// Whether the address counted as near null (≤ 4096, or a null base register plus an
    /// offset by instruction analysis).
    pub near_null: bool,
    /// The faulting instruction, disassembled.
    pub instruction: Option<String>,
    /// The crashing thread's registers at the fault, hex.
    pub registers: BTreeMap<String, String>,
    /// The memory region of the crash address (`null`: unmapped, or no memory map).
    pub address_memory: Option<Region>,
    /// The memory region of the instruction pointer.
    pub instruction_memory: Option<Region>,
    /// The memory region of the stack pointer.
    pub stack_memory: Option<Region>,
    /// Frames that decided the class (sentinels such as `__assert_fail`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<FrameRef>,
}

/// Other signals from the fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signals {
    /// minidump-processor's correction of the address (null base + offset, non-canonical).
    pub adjusted_address: Option<Value>,
    /// Valid addresses one bit away from the crash address: possible hardware bit flips.
    pub possible_bit_flips: Vec<Value>,
    /// Things in the dump that contradict the crash reason.
    pub crash_inconsistencies: Vec<String>,
    /// The access hit a guard page.
    pub guard_page: bool,
    /// Registers or the crash address holding allocator poison patterns.
    pub poison: Vec<PoisonValue>,
    /// A freed-memory pattern was found: likely use-after-free.
    pub likely_use_after_free: bool,
    /// The crashing frame's variable the fault address is, or is a small offset from
    /// (docs/VARIABLES.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_variable: Option<crate::variables::FaultVariable>,
}

/// The `classification` block of a processed crash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Classification {
    /// The class.
    pub fault_class: FaultClass,
    /// What decided it.
    pub evidence: Evidence,
    /// Exploitability rating and reasons.
    pub exploitability: Exploitability,
    /// Other signals.
    pub signals: Signals,
    /// The frame to blame: the first crashing-thread frame (inlined ones included) not on the
    /// skip list.
    pub fault_frame: Option<FrameRef>,
    /// The first in-app frame, when in-app rules are configured.
    pub in_app_frame: Option<FrameRef>,
}

/// Classifies processed crashes with the configured lists.
#[derive(Debug, Clone)]
pub struct Classifier {
    skip: SkipList,
    in_app: InAppRules,
}

/// What else the fault says: minidump-processor's corrected address, possible bit flips,
/// inconsistencies, a guard page, allocator poison (a freed-memory pattern: likely
/// use-after-free).
fn signals_of(
    info: Option<&minidump_processor::ExceptionInfo>,
    poison: Vec<PoisonValue>,
) -> Signals {
    Signals {
        adjusted_address: info
            .and_then(|i| i.adjusted_address.as_ref())
            .map(|a| match a {
                AdjustedAddress::NonCanonical(address) => {
                    json!({"kind": "non-canonical", "address": hex(address.0)})
                }
                AdjustedAddress::NullPointerWithOffset(offset) => {
                    json!({"kind": "null-pointer", "offset": hex(offset.0)})
                }
            }),
        possible_bit_flips: info
            .map(|i| {
                i.possible_bit_flips
                    .iter()
                    .map(|flip| {
                        json!({
                            "address": hex(flip.address.0),
                            "source_register": flip.source_register,
                            "confidence": flip.confidence,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        crash_inconsistencies: info
            .map(|i| i.inconsistencies.iter().map(|c| c.to_string()).collect())
            .unwrap_or_default(),
        guard_page: info
            .and_then(|i| i.memory_access_list.as_ref())
            .is_some_and(|l| l.iter().any(|a| a.address_info.is_likely_guard_page)),
        likely_use_after_free: poison.iter().any(|p| p.freed),
        fault_variable: None,
        poison,
    }
}

/// Messages the crashed process left: Crashpad list and simple annotations of every module,
/// and macOS crash-info records.
fn crash_messages(crash: &ProcessedCrash) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(annotations) = &crash.crashpad {
        for module in &annotations.modules {
            out.extend(module.list.iter().cloned());
            out.extend(module.simple.values().cloned());
        }
    }
    for record in crash.state.mac_crash_info.iter().flatten() {
        out.extend(record.message().map(str::to_owned));
        out.extend(record.message2().map(str::to_owned));
    }
    out
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

impl Classifier {
    /// A classifier with the default skip list plus the configured patterns.
    pub fn new(config: &ClassifyConfig) -> Result<Classifier, PatternError> {
        Ok(Classifier {
            skip: SkipList::new(&config.skip_frames)?,
            in_app: InAppRules::new(&config.in_app_modules, &config.in_app_paths)?,
        })
    }

    /// The configured in-app rules (which frames are the application's own code).
    pub fn in_app(&self) -> &InAppRules {
        &self.in_app
    }

    /// Classifies one crash.
    pub fn classify(&self, crash: &ProcessedCrash) -> Classification {
        let state = &crash.state;
        let facts = &crash.facts;
        let frames = judged_frames(crash);
        let context = state
            .requesting_thread
            .and_then(|i| state.threads.get(i))
            .and_then(|t| t.frames.first())
            .map(|f| &f.context);
        let registers: Vec<(String, u64)> = context
            .map(|c| {
                c.valid_registers()
                    .map(|(n, v)| (n.to_owned(), v))
                    .collect()
            })
            .unwrap_or_default();
        let ip = context.map(|c| c.get_instruction_pointer());
        let sp = context.map(|c| c.get_stack_pointer());
        let info = state.exception_info.as_ref();
        let messages = crash_messages(crash);
        let decision = rules::decide(&Inputs {
            messages: &messages,
            thrown: crash.thrown.as_ref(),
            os: state.system_info.os,
            exception: facts.exception.as_ref(),
            info,
            facts,
            ip,
            sp,
            frames: &frames,
        });
        let address = rules::touched_address(facts.exception.as_ref(), info);
        let poison = poison_values(&registers, address);
        let exploitability = exploitability::assess(
            &decision,
            &exploitability::Context {
                facts,
                address,
                poison: &poison,
            },
        );
        let mut signals = signals_of(info, poison);
        signals.fault_variable = crash.fault_variable.clone();
        let exception = facts.exception.as_ref();
        Classification {
            fault_class: decision.class,
            evidence: Evidence {
                rule: decision.rule,
                crash_reason: match &crash.thrown {
                    Some(thrown) => Some(format!("uncaught NSException: {}", thrown.summary())),
                    None => info.map(|i| i.reason.to_string()),
                },
                code: exception.map(|e| hex(e.code.into())),
                subcode: exception.map(|e| hex(e.flags.into())),
                parameters: exception
                    .map(|e| e.parameters.iter().map(|p| hex(*p)).collect())
                    .unwrap_or_default(),
                access: decision.access,
                access_source: decision.access_source,
                address: address.map(hex),
                near_null: decision.near_null,
                instruction: info.and_then(|i| i.instruction_str.clone()),
                registers: registers
                    .iter()
                    .map(|(n, v)| (n.clone(), hex(*v)))
                    .collect(),
                address_memory: facts.address_region.clone(),
                instruction_memory: facts.ip_region.clone(),
                stack_memory: facts.sp_region.clone(),
                frames: decision.deciding_frames,
            },
            exploitability,
            signals,
            fault_frame: fault_frame(&frames, &self.skip),
            in_app_frame: if self.in_app.is_configured() {
                frames.iter().find(|f| self.in_app.matches(f)).cloned()
            } else {
                None
            },
        }
    }
}
