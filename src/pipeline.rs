//! The one path every crash takes, whoever submits it (CLI, synchronous API, the ingest
//! queue's workers): process the minidump, classify it, sign and fingerprint it. Recording it in the crash
//! index is the caller's step (the offline CLI does not record).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::ser::SerializeMap;
use serde::Serialize;
use serde_json::Value;

use crate::classify::frames::crashing_frames;
use crate::classify::{Classification, Classifier};
use crate::config::Config;
use crate::group::signature::{
    fingerprint, signature, Signature, SignatureRules, GROUPING_VERSION,
};
use crate::process::modules::SymbolSource;
use crate::process::{ProcessError, ProcessedCrash, Processor};

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
        map.serialize_entry("classification", &self.classification)?;
        map.serialize_entry(
            "grouping",
            &Grouping {
                signature: &self.signature.text,
                fingerprint: &self.fingerprint,
                grouping_version: GROUPING_VERSION,
            },
        )
    }

    /// The processed-crash JSON as a tree (for tests; the server and the CLI serialize directly).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("crash reports serialize")
    }
}

/// The `grouping` block of the processed-crash JSON.
#[derive(Serialize)]
struct Grouping<'a> {
    signature: &'a str,
    fingerprint: &'a str,
    grouping_version: u32,
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
    /// Crashpad annotations are added to them.
    pub async fn run(
        &self,
        dump: Bytes,
        annotations: &BTreeMap<String, String>,
    ) -> Result<CrashReport, ProcessError> {
        let processed = self.processor.process(dump).await?;
        let classification = self.classifier.classify(&processed);
        let mut all = processed
            .crashpad
            .as_ref()
            .map(|c| c.simple.clone())
            .unwrap_or_default();
        all.extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        let frames = crashing_frames(&processed.state);
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
    fn fault_class(&self) -> &str {
        self.classification.fault_class.as_str()
    }
    fn serialize_fields<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        CrashReport::serialize_fields(self, map)
    }
    fn json_size_hint(&self) -> usize {
        self.processed.json_size_hint()
    }
}
