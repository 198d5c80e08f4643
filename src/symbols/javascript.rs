//! JavaScript artifacts arriving through the debug-file uploads: minified files, source maps
//! and Sentry artifact bundles are handed to the source map store and reported like debug files.

use std::path::Path;

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{FileReport, FileStatus, SymbolStore};
use crate::cpu;
use crate::sourcemaps::{ArtifactOutcome, ReleaseContext, SourceMapError};

/// The report for one JavaScript artifact.
fn artifact_report(name: &str, outcome: ArtifactOutcome) -> FileReport {
    let (status, reason, artifact) = match outcome {
        ArtifactOutcome::Stored(meta) => (FileStatus::Stored, None, Some(meta)),
        ArtifactOutcome::AlreadyPresent(meta) => (FileStatus::AlreadyPresent, None, Some(meta)),
        ArtifactOutcome::Rejected(reason) => (FileStatus::Rejected, Some(reason), None),
    };
    FileReport {
        name: name.to_owned(),
        status,
        reason,
        file: None,
        artifact,
    }
}

impl SymbolStore {
    /// A JavaScript minified file, source map or `SYSB` artifact bundle, stored and reported;
    /// `None` for anything else (a native source bundle falls through to the debug files).
    pub(super) async fn javascript(
        &self,
        path: &Path,
        name: &str,
        release: &ReleaseContext,
    ) -> Result<Option<Vec<FileReport>>, SourceMapError> {
        let mut head = [0u8; 512];
        let mut file = tokio::fs::File::open(path).await?;
        let read = file.read(&mut head).await?;
        // An artifact bundle behind symbolic's `SYSB` header is one file, not a zip.
        if head[..read].starts_with(b"SYSB") {
            return self.artifact_bundle(path, name, release).await;
        }
        if !crate::sourcemaps::identify::is_candidate(name, &head[..read]) {
            return Ok(None);
        }
        let bytes = Bytes::from(tokio::fs::read(path).await?);
        let outcome = self
            .sourcemaps
            .ingest(bytes, name, release, &Default::default())
            .await?;
        Ok(Some(vec![artifact_report(name, outcome)]))
    }

    pub(super) async fn artifact_bundle(
        &self,
        path: &Path,
        name: &str,
        release: &ReleaseContext,
    ) -> Result<Option<Vec<FileReport>>, SourceMapError> {
        let bytes = Bytes::from(tokio::fs::read(path).await?);
        let probe = bytes.clone();
        if !cpu::run(move || crate::sourcemaps::bundle::is_artifact_bundle(&probe)).await? {
            return Ok(None);
        }
        let limits = self.limits;
        let outcomes = self
            .sourcemaps
            .ingest_bundle(
                bytes,
                release,
                usize::try_from(limits.max_entries).unwrap_or(usize::MAX),
                limits.max_unpacked_bytes,
            )
            .await?;
        Ok(Some(match outcomes {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|(url, outcome)| artifact_report(&url, outcome))
                .collect(),
            Err(reason) => vec![FileReport::rejected(name, reason)],
        }))
    }
}
