//! The one path every crash takes, whoever submits it (CLI, synchronous API, the ingest
//! queue's workers): process the minidump, classify it, sign and fingerprint it. Recording it in the crash
//! index is the caller's step (the offline CLI does not record).

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::classify::evidence_line;
use crate::classify::frames::judged_frames;
use crate::classify::{Classification, Classifier};
use crate::config::{Config, VariablesScope};
use crate::group::signature::{
    fingerprint, signature, Signature, SignatureRules, GROUPING_VERSION,
};
use crate::process::source::SymbolSource;
use crate::process::view::{
    field_name, CrashInfoView, Hex, ModuleView, ProcessedParts, ThreadView,
};
use crate::process::{
    crashing_thread_view, module_views, thread_views, ProcessError, ProcessedCrash, Processor,
};

/// A crash through every stage so far.
pub struct CrashReport {
    /// Symbolicated threads, modules, crash info.
    pub processed: ProcessedCrash,
    /// Fault class, evidence, exploitability, fault frame.
    pub classification: Classification,
    /// The signature people read.
    pub signature: Signature,
    /// The grouping hash.
    pub fingerprint: String,
}

impl Serialize for CrashReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.serialize_fields(&mut map)?;
        map.end()
    }
}

impl CrashReport {
    /// Writes the processed-crash fields (docs/OUTPUT.md) followed by the `classification` and
    /// `grouping` blocks into `map`.
    pub fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        self.processed.serialize_fields(map)?;
        map.serialize_entry(field_name!(CrashView, classification), &self.classification)?;
        map.serialize_entry(
            field_name!(CrashView, grouping),
            &Grouping {
                signature: Cow::Borrowed(&self.signature.text),
                fingerprint: Cow::Borrowed(&self.fingerprint),
                grouping_version: GROUPING_VERSION,
            },
        )
    }

    /// The processed-crash JSON as a tree (for tests; the server and the CLI serialize directly).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("crash reports serialize")
    }

    /// The crash as its readers see it, borrowing from the report (what the stored JSON reads
    /// back as, without writing it).
    pub fn view(&self) -> CrashView<'_> {
        let state = &self.processed.state;
        CrashView {
            parts: ProcessedParts {
                crash_info: CrashInfoView {
                    crashing_thread: state.requesting_thread,
                },
                threads: thread_views(&self.processed),
                crashing_thread: crashing_thread_view(&self.processed),
                modules: module_views(&self.processed),
                uncaught_exception: self.processed.thrown.clone(),
            },
            classification: Some(Cow::Borrowed(&self.classification)),
            grouping: Some(Grouping {
                signature: Cow::Borrowed(&self.signature.text),
                fingerprint: Cow::Borrowed(&self.fingerprint),
                grouping_version: GROUPING_VERSION,
            }),
            event_evidence: None,
        }
    }
}

/// The `grouping` block of the processed-crash JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grouping<'a> {
    /// The signature people read.
    pub signature: Cow<'a, str>,
    /// The grouping hash.
    pub fingerprint: Cow<'a, str>,
    /// The version of the grouping rules that made them (events' grouping has its own).
    #[serde(default)]
    pub grouping_version: u32,
}

/// A processed crash as every reader sees it — the crash page, the CLI's report, its Markdown
/// for tickets: read back from the stored JSON ([`CrashView::read`]) or borrowed from a report
/// in hand ([`CrashReport::view`]). Every block is optional: an SDK event's processed JSON has
/// none of a minidump's threads and modules.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CrashView<'a> {
    /// Which thread crashed, the threads, the crashing thread's registers, the modules.
    #[serde(flatten)]
    pub parts: ProcessedParts<'a>,
    /// Fault class, evidence, exploitability, fault frame.
    #[serde(default)]
    pub classification: Option<Cow<'a, Classification>>,
    /// Signature and fingerprint.
    #[serde(default)]
    pub grouping: Option<Grouping<'a>>,
    /// An SDK event's verdict in words (its exception type and message), which has no
    /// classification.
    #[serde(skip)]
    pub event_evidence: Option<String>,
}

/// What an SDK event's processed JSON holds for the readers of processed crashes: its stacks
/// as threads, the failing one, its exception as evidence (docs/OUTPUT.md, "Events"), and its
/// native images' names and debug IDs (what finds a frame's stored sources).
#[derive(Deserialize)]
struct EventParts<'a> {
    #[serde(default)]
    crash_info: CrashInfoView,
    #[serde(default)]
    modules: Vec<EventImage>,
    #[serde(default)]
    threads: Vec<ThreadView<'a>>,
    #[serde(default)]
    crashing_thread: Option<ThreadView<'a>>,
    #[serde(default)]
    classification: Option<EventClassification>,
    #[serde(default)]
    grouping: Option<Grouping<'a>>,
}

#[derive(Deserialize)]
struct EventClassification {
    evidence: EventEvidence,
}

#[derive(Deserialize)]
struct EventEvidence {
    crash_reason: Option<String>,
    rule: Option<String>,
}

/// A native image of an event, as its processed JSON lists it (symbolicator's module shape).
#[derive(Deserialize)]
struct EventImage {
    #[serde(default)]
    debug_id: Option<String>,
    #[serde(default)]
    code_file: Option<String>,
    #[serde(default)]
    debug_file: Option<String>,
    #[serde(default)]
    code_id: Option<String>,
}

impl EventImage {
    /// The image as a module of the view: names and IDs (an event has no load addresses to
    /// show; frames name the image by its code file's base name).
    fn module(self) -> Option<ModuleView<'static>> {
        let base = |p: &str| crate::symbols::identify::base_name(p).to_owned();
        let zero = Hex {
            value: 0,
            narrow: false,
        };
        Some(ModuleView {
            base_addr: zero,
            debug_file: base(self.debug_file.as_deref().unwrap_or_default()).into(),
            debug_id: self.debug_id?,
            end_addr: zero,
            filename: base(&self.code_file?).into(),
            code_id: self.code_id.unwrap_or_default(),
            version: None,
            cert_subject: None,
            missing_symbols: false,
            loaded_symbols: false,
            corrupt_symbols: false,
            symbol_url: None,
            symbols: None,
        })
    }
}

impl CrashView<'static> {
    /// A stored processed crash (the JSON the worker or the API wrote): a minidump's, or an
    /// SDK event's (`"kind": "event"`).
    pub fn read(json: &[u8]) -> Result<CrashView<'static>, serde_json::Error> {
        #[derive(Deserialize)]
        struct Kind {
            #[serde(default)]
            kind: Option<String>,
        }
        if serde_json::from_slice::<Kind>(json)?.kind.as_deref() != Some("event") {
            return serde_json::from_slice(json);
        }
        let event: EventParts<'static> = serde_json::from_slice(json)?;
        let evidence = event.classification.map(|c| c.evidence);
        Ok(CrashView {
            parts: ProcessedParts {
                crash_info: event.crash_info,
                threads: event.threads,
                crashing_thread: event.crashing_thread,
                modules: event
                    .modules
                    .into_iter()
                    .filter_map(EventImage::module)
                    .collect(),
                ..ProcessedParts::default()
            },
            grouping: event.grouping,
            event_evidence: evidence.map(|e| match e.rule {
                Some(rule) => evidence_line(e.crash_reason.as_deref(), &rule),
                None => e.crash_reason.unwrap_or_default(),
            }),
            ..CrashView::default()
        })
    }
}

impl CrashView<'_> {
    /// The index of the thread that crashed, if one did.
    pub fn crashing_index(&self) -> Option<usize> {
        let parts = &self.parts;
        parts
            .crash_info
            .crashing_thread
            .or_else(|| parts.crashing_thread.as_ref().and_then(|t| t.threads_index))
    }

    /// The evidence in one line: the classifier's, or an SDK event's exception.
    pub fn evidence(&self) -> Option<String> {
        match &self.classification {
            Some(c) => Some(c.evidence.summary()),
            None => self.event_evidence.clone(),
        }
    }

    /// The registers of the crashing thread's first frame.
    pub fn registers(&self) -> &[(Cow<'static, str>, String)] {
        self.parts
            .crashing_thread
            .as_ref()
            .and_then(|t| t.frames.first())
            .and_then(|f| f.registers.as_ref())
            .map_or(&[], |r| r.0.as_slice())
    }
}

/// Processing plus classification, shared by every entry point.
pub struct Pipeline {
    /// Minidump processing (and the shared module-symbol cache).
    pub processor: Processor,
    /// Fault classification.
    pub classifier: Classifier,
    /// Signature lists.
    pub signatures: SignatureRules,
}

impl Pipeline {
    /// The pipeline the configuration describes, reading symbols from `symbols`.
    pub fn from_config(
        config: &Config,
        symbols: impl Into<SymbolSource>,
    ) -> anyhow::Result<Pipeline> {
        Ok(Pipeline {
            processor: Processor::from_config(config, symbols),
            classifier: Classifier::new(&config.classify)
                .map_err(|e| anyhow::anyhow!("{e} (fix the pattern in the configuration)"))?,
            signatures: SignatureRules::new(
                &config.group.signature_sentinels,
                &config.group.signature_prefixes,
                &config.group.signature_irrelevant,
            )
            .map_err(|e| anyhow::anyhow!("{e} (fix the pattern in the configuration)"))?,
        })
    }

    /// Runs one minidump through every stage. `annotations` are what the client sent with it
    /// (they can carry an abort message or an OOM size for the signature); the dump's own
    /// Crashpad annotations are added to them. `variables` says whose frames get their values
    /// (`ProcessingConfig::variables_for` the crash's project).
    pub async fn run(
        &self,
        dump: Bytes,
        annotations: &BTreeMap<String, String>,
        variables: VariablesScope,
    ) -> Result<CrashReport, ProcessError> {
        let processed = self
            .processor
            .process_with_variables(dump, variables)
            .await?;
        let classification = self.classifier.classify(&processed);
        let mut all = processed
            .crashpad
            .as_ref()
            .map(|c| c.simple.clone())
            .unwrap_or_default();
        all.extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        let frames = judged_frames(&processed);
        let signature = signature(&self.signatures, classification.fault_class, &frames, &all);
        let fingerprint = fingerprint(classification.fault_class, &signature);
        Ok(CrashReport {
            processed,
            classification,
            signature,
            fingerprint,
        })
    }
}

impl crate::group::ProcessedReport for CrashReport {
    fn kind(&self) -> crate::group::index::CrashKind {
        crate::group::index::CrashKind::Minidump
    }
    fn platform(&self) -> Option<String> {
        Some(self.processed.state.system_info.os.long_name().into_owned())
    }
    fn cpu(&self) -> Option<String> {
        Some(self.processed.state.system_info.cpu.to_string())
            .filter(|cpu| !cpu.is_empty() && cpu != "unknown")
    }
    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
    fn signature(&self) -> &str {
        &self.signature.text
    }
    fn signature_frames(&self) -> &[String] {
        &self.signature.frames
    }
    fn fault_class(&self) -> crate::group::CrashClass {
        self.classification.fault_class.into()
    }
    fn facts(&self) -> BTreeMap<String, String> {
        correlation_facts(self)
    }
    fn serialize_fields<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        CrashReport::serialize_fields(self, map)
    }
    fn json_size_hint(&self) -> usize {
        self.processed.json_size_hint()
    }
}

/// The most module versions a crash contributes to its facts.
const MAX_MODULE_FACTS: usize = 16;

/// What the correlations compare about a minidump besides its annotations: the OS version, the
/// CPU's vendor and family, the kind of memory the faulting address was in, and the version of
/// each module on the crashing thread's stack (a driver or an injected library that crashes on
/// one version). Not the fault's rule or access: the group's class implies them. Only the
/// crashing thread's modules: every loaded module of every crash would cost the index a
/// hundred values per crash.
fn correlation_facts(report: &CrashReport) -> BTreeMap<String, String> {
    use minidump::Module;
    let mut facts = BTreeMap::new();
    let sys = &report.processed.state.system_info;
    if let Some(version) = sys.format_os_version() {
        put_fact(&mut facts, "os version".into(), &version);
    }
    if let Some(info) = &sys.cpu_info {
        let mut words = info.split_whitespace();
        if let Some(vendor) = words.next() {
            put_fact(&mut facts, "cpu vendor".into(), vendor);
        }
        if let Some(family) = words.skip_while(|w| *w != "family").nth(1) {
            put_fact(&mut facts, "cpu family".into(), family);
        }
    }
    let evidence = &report.classification.evidence;
    if let Some(region) = &evidence.address_memory {
        if let Ok(Value::String(kind)) = serde_json::to_value(&region.kind) {
            put_fact(&mut facts, "fault address in".into(), &kind);
        }
    }
    let state = &report.processed.state;
    let frames = state
        .requesting_thread
        .and_then(|i| state.threads.get(i))
        .map(|t| t.frames.as_slice())
        .unwrap_or_default();
    let mut modules = 0;
    for module in frames.iter().filter_map(|f| f.module.as_ref()) {
        let Some(version) = module.version() else {
            continue;
        };
        let code_file = module.code_file();
        let key = format!("module {}", crate::symbols::identify::base_name(&code_file));
        if modules < MAX_MODULE_FACTS
            && !facts.contains_key(&key)
            && put_fact(&mut facts, key, &version)
        {
            modules += 1;
        }
    }
    facts
}

/// Keeps a fact whose value is neither empty nor long (an ID or a log is not an attribute), and
/// whose name (a module's, from the dump) is not long either.
fn put_fact(facts: &mut BTreeMap<String, String>, name: String, value: &str) -> bool {
    use crate::group::MAX_ATTRIBUTE_VALUE;
    let value = value.trim();
    let kept = !value.is_empty()
        && value.len() <= MAX_ATTRIBUTE_VALUE
        && name.len() <= MAX_ATTRIBUTE_VALUE;
    if kept {
        facts.insert(name, value.to_owned());
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_from_a_dump_are_short_or_left_out() {
        let mut facts = BTreeMap::new();
        assert!(put_fact(&mut facts, "module a.dll".into(), " 1.2.3 "));
        assert!(!put_fact(&mut facts, "module b.dll".into(), "  "));
        assert!(!put_fact(
            &mut facts,
            "module c.dll".into(),
            &"9".repeat(201)
        ));
        let long_name = format!("module {}.dll", "x".repeat(200));
        assert!(!put_fact(&mut facts, long_name, "1.0"));
        assert_eq!(facts.len(), 1);
        assert_eq!(facts["module a.dll"], "1.2.3");
    }
}
