//! The one path every crash takes, whoever submits it (CLI, synchronous API, later the ingest
//! queue): process the minidump, then classify it. Later stages (grouping) join here.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::classify::{Classification, Classifier};
use crate::config::Config;
use crate::process::{ProcessError, ProcessedCrash, Processor};
use crate::symbols::SymbolStore;

/// A crash through every stage so far.
pub struct CrashReport {
    /// Symbolicated threads, modules, crash info.
    pub processed: ProcessedCrash,
    /// Fault class, evidence, exploitability, fault frame.
    pub classification: Classification,
}

impl CrashReport {
    /// The processed-crash JSON (docs/OUTPUT.md) with the `classification` block.
    pub fn to_json(&self) -> Value {
        let mut json = self.processed.to_json();
        json["classification"] =
            serde_json::to_value(&self.classification).expect("classifications serialize");
        json
    }

    /// The readable report, headed by the classification.
    pub fn to_text(&self) -> String {
        let c = &self.classification;
        let mut out = format!(
            "Fault class:    {} ({})\nExploitability: {}\n",
            c.fault_class.as_str(),
            c.evidence.rule,
            c.exploitability.rating.as_str(),
        );
        if let Some(frame) = &c.fault_frame {
            out.push_str(&format!(
                "Fault frame:    {} {}{}\n",
                frame.index,
                frame.module.as_deref().unwrap_or("???"),
                frame
                    .function
                    .as_deref()
                    .map(|f| format!("!{f}"))
                    .unwrap_or_default(),
            ));
        }
        out.push('\n');
        out.push_str(&self.processed.to_text());
        out
    }
}

/// Processing plus classification, shared by every entry point.
pub struct Pipeline {
    /// Minidump processing (and the shared module-symbol cache).
    pub processor: Processor,
    /// Fault classification.
    pub classifier: Classifier,
}

impl Pipeline {
    /// The pipeline the configuration describes, reading symbols from `symbols`.
    pub fn from_config(config: &Config, symbols: Arc<SymbolStore>) -> anyhow::Result<Pipeline> {
        Ok(Pipeline {
            processor: Processor::from_config(config, symbols),
            classifier: Classifier::new(&config.classify)
                .map_err(|e| anyhow::anyhow!("{e} (fix the pattern in the configuration)"))?,
        })
    }

    /// Runs one minidump through every stage.
    pub async fn run(&self, dump: Bytes) -> Result<CrashReport, ProcessError> {
        let processed = self.processor.process(dump).await?;
        let classification = self.classifier.classify(&processed);
        Ok(CrashReport {
            processed,
            classification,
        })
    }
}
