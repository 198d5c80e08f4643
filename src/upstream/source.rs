//! One configured source, ready to ask: what it holds (layout, file types, path patterns), how
//! it is reached, its download cap and limits, its health; and how a symstore file is looked
//! for (the plain file, its CAB-compressed `_` form, the `file.ptr` pointing elsewhere).

use std::path::Path;
use std::time::Duration;

use super::health::Health;
use super::transport::{DownloadError, DownloadLimits, Transport};
use super::{count, Candidate, CandidateOutcome, ModuleRef};
use crate::config::{SourceConfig, SourceFileType, SourceKind, SourceLayout};

/// One configured source, ready to ask.
pub(super) struct Source {
    pub(super) id: String,
    pub(super) kind: SourceKind,
    pub(super) layout: SourceLayout,
    filetypes: Option<Vec<SourceFileType>>,
    patterns: Option<globset::GlobSet>,
    pub(super) serve: bool,
    pub(super) transport: Transport,
    pub(super) downloads: tokio::sync::Semaphore,
    max_downloads: usize,
    pub(super) limits: DownloadLimits,
    pub(super) not_found_ttl: Duration,
    pub(super) error_ttl: Duration,
    pub(super) health: Health,
}

impl Source {
    pub(super) async fn open(config: &SourceConfig) -> Result<Source, String> {
        let kind = config
            .kind
            .ok_or_else(|| format!("symbols source {:?}: `type` is not set", config.id))?;
        // Present in /metrics from the start, not only after a first download.
        metrics::gauge!("faultline_symbol_source_downloads", "source" => config.id.clone())
            .set(0.0);
        let layout = match kind {
            SourceKind::Debuginfod => SourceLayout::Debuginfod,
            _ => config.layout.unwrap_or(SourceLayout::Native),
        };
        let patterns = match &config.path_patterns {
            None => None,
            Some(patterns) => {
                let mut set = globset::GlobSetBuilder::new();
                for pattern in patterns {
                    let glob = globset::GlobBuilder::new(pattern)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| {
                            format!(
                                "symbols source {:?}: path pattern {pattern:?}: {e}",
                                config.id
                            )
                        })?;
                    set.add(glob);
                }
                Some(set.build().map_err(|e| e.to_string())?)
            }
        };
        Ok(Source {
            id: config.id.clone(),
            kind,
            layout,
            filetypes: config.filetypes.clone(),
            patterns,
            serve: config.serve,
            transport: Transport::open(config).await?,
            downloads: tokio::sync::Semaphore::new(config.max_concurrent_downloads.max(1)),
            max_downloads: config.max_concurrent_downloads.max(1),
            limits: DownloadLimits {
                max_bytes: config.max_download_bytes,
                first_byte: Duration::from_millis(config.timeouts.first_byte_ms.max(1)),
                total: Duration::from_millis(config.timeouts.total_ms.max(1)),
            },
            not_found_ttl: Duration::from_secs(config.not_found_ttl_secs),
            error_ttl: Duration::from_secs(config.error_ttl_secs),
            health: Health::new(Duration::from_secs(config.unhealthy_secs.max(1))),
        })
    }

    pub(super) fn downloads_in_flight(&self) -> usize {
        self.max_downloads
            .saturating_sub(self.downloads.available_permits())
    }

    /// The order file types are asked of this source: as given, except that a Breakpad
    /// (`native`) layout is asked for `.sym` files first, the files such servers mostly hold.
    pub(super) fn order(&self, types: impl Iterator<Item = SourceFileType>) -> Vec<SourceFileType> {
        let mut types: Vec<SourceFileType> = types.collect();
        if self.layout == SourceLayout::Native {
            types.sort_by_key(|t| *t != SourceFileType::Breakpad);
        }
        types
    }

    /// Whether this source is asked for files of `file_type` (a source bundle only when listed).
    pub(super) fn asks_for(&self, file_type: SourceFileType) -> bool {
        match &self.filetypes {
            Some(types) => types.contains(&file_type),
            None => file_type != SourceFileType::Sourcebundle,
        }
    }

    /// Why the source is not asked for `module` at all, if it is not.
    pub(super) fn skip_reason(&self, module: &ModuleRef) -> Option<String> {
        if let Some(patterns) = &self.patterns {
            let names = [&module.debug_file, &module.code_file];
            if !names
                .iter()
                .filter_map(|n| n.as_deref())
                .any(|n| patterns.is_match(n))
            {
                return Some(format!(
                    "no path pattern of the source matches {}",
                    module.display_name()
                ));
            }
        }
        if let Some(until) = self.health.skipped_until() {
            return Some(format!(
                "the source failed repeatedly; not asked until {until} (Unix time)"
            ));
        }
        None
    }

    pub(super) fn skipped(&self, detail: String) -> Candidate {
        count(&self.id, CandidateOutcome::Skipped);
        Candidate {
            source: self.id.clone(),
            location: self.transport.location(""),
            file_type: None,
            outcome: CandidateOutcome::Skipped.as_str().to_owned(),
            detail: Some(detail),
            age_secs: None,
        }
    }

    /// The file at `path`, or for symstore layouts its compressed form (`name.pd_`) or the
    /// file its `file.ptr` points to; with the location that answered.
    pub(super) async fn download_any(
        &self,
        path: &str,
        scratch: &Path,
    ) -> Result<(tempfile::NamedTempFile, String), DownloadError> {
        let located = |p: &str| self.transport.location(p);
        let symstore = matches!(
            self.layout,
            SourceLayout::Symstore | SourceLayout::SymstoreIndex2 | SourceLayout::Ssqp
        );
        match self.transport.download(path, scratch, self.limits).await {
            Err(DownloadError::NotFound) if symstore => {}
            other => return other.map(|file| (file, located(path))),
        }
        let compressed = format!("{}_", &path[..path.len() - 1]);
        match self
            .transport
            .download(&compressed, scratch, self.limits)
            .await
        {
            Err(DownloadError::NotFound) => {}
            other => return other.map(|file| (file, located(&compressed))),
        }
        let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
        let pointer_path = format!("{folder}/file.ptr");
        let pointer = self
            .transport
            .download(&pointer_path, scratch, self.limits)
            .await?;
        let target = read_pointer(pointer.path())?;
        self.transport
            .download(&target, scratch, self.limits)
            .await
            .map(|file| (file, located(&target)))
    }
}

/// The path a symstore `file.ptr` points to (`PATH:` followed by a path relative to the
/// store's root); a `MSG:` pointer or one that leaves the store is "not found".
fn read_pointer(file: &Path) -> Result<String, DownloadError> {
    let mut text = String::new();
    use std::io::Read;
    std::fs::File::open(file)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(|_| DownloadError::NotFound)?;
    let target = text
        .trim()
        .strip_prefix("PATH:")
        .ok_or(DownloadError::NotFound)?;
    let target = target.replace('\\', "/");
    let target = target.trim_start_matches('/');
    let inside = !target.is_empty()
        && target.split('/').all(|segment| {
            !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(':')
        });
    if inside {
        Ok(target.to_owned())
    } else {
        Err(DownloadError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_ptr_is_followed_only_inside_the_store() {
        let read = |text: &str| {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), text).unwrap();
            read_pointer(file.path())
        };
        assert_eq!(read("PATH:sub\\a.pdb\r\n"), Ok("sub/a.pdb".to_owned()));
        for outside in [
            "PATH:..\\..\\etc\\passwd",
            "PATH:\\\\server\\share\\..\\x",
            "PATH:C:\\symbols\\a.pdb",
            "MSG: not available",
            "PATH:",
        ] {
            assert_eq!(read(outside), Err(DownloadError::NotFound), "{outside}");
        }
    }
}
