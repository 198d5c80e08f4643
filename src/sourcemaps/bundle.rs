//! Sentry artifact bundles (what `sentry-cli sourcemaps upload` sends): a zip, optionally behind
//! an 8-byte `SYSB` header, whose `manifest.json` lists each file's zip path with its `type`
//! (`minified_source`, `source_map`, …), `url` and `headers` (`debug-id`, `sourcemap`). Read
//! within the archive caps uploads have; entries are read only as the manifest names them.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use serde::Deserialize;
use symbolic::common::DebugId;

use super::ArtifactKind;

/// One JavaScript file of a bundle.
#[derive(Debug, Clone)]
pub struct BundleFile {
    /// Minified file or map.
    pub kind: ArtifactKind,
    /// Its URL (`~/static/js/app.js`).
    pub url: String,
    /// The debug ID its headers give (the minified file's, also given to its map).
    pub debug_id: Option<DebugId>,
    /// A minified file's `sourcemap` header.
    pub sourcemap: Option<String>,
    /// The contents.
    pub contents: Vec<u8>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    files: HashMap<String, ManifestEntry>,
}

#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
}

/// The bundle's zip and manifest. A `SYSB` header stays in place: the zip's offsets count from
/// the start of the file, and the zip reader finds the archive behind it.
fn manifest(bytes: &[u8]) -> Option<(zip::ZipArchive<Cursor<&[u8]>>, Manifest)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let mut text = String::new();
    archive
        .by_name("manifest.json")
        .ok()?
        .take(16 << 20)
        .read_to_string(&mut text)
        .ok()?;
    let manifest: Manifest = serde_json::from_str(&text).ok()?;
    Some((archive, manifest))
}

fn kind_of(entry: &ManifestEntry) -> Option<ArtifactKind> {
    match entry.kind.as_deref()? {
        "minified_source" => Some(ArtifactKind::MinifiedSource),
        "source_map" => Some(ArtifactKind::SourceMap),
        _ => None,
    }
}

/// Whether `bytes` are an artifact bundle: a manifest listing JavaScript files (a source bundle
/// of a native module lists only `source` files and is a debug file).
pub fn is_artifact_bundle(bytes: &[u8]) -> bool {
    manifest(bytes).is_some_and(|(_, m)| m.files.values().any(|e| kind_of(e).is_some()))
}

/// The minified files and maps of a bundle, in zip-path order; at most `max_entries` files and
/// `max_bytes` of contents. A map without a `debug-id` header takes the ID of the minified file
/// whose `sourcemap` header names it.
pub fn read_artifact_bundle(
    bytes: &[u8],
    max_entries: usize,
    max_bytes: u64,
) -> Result<Vec<BundleFile>, String> {
    let (mut archive, manifest) =
        manifest(bytes).ok_or("not an artifact bundle: no readable manifest.json")?;
    let mut entries: Vec<(&String, &ManifestEntry, ArtifactKind)> = manifest
        .files
        .iter()
        .filter_map(|(path, entry)| Some((path, entry, kind_of(entry)?)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    if entries.len() > max_entries {
        return Err(format!(
            "the bundle lists {} files, more than the {max_entries} allowed (limits.max_archive_entries)",
            entries.len()
        ));
    }
    let header = |entry: &ManifestEntry, name: &str| {
        entry
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    // Map URL → the debug ID of the minified file that names it.
    let mut map_ids: HashMap<String, DebugId> = HashMap::new();
    for (_, entry, kind) in &entries {
        if *kind != ArtifactKind::MinifiedSource {
            continue;
        }
        let (Some(id), Some(map), Some(url)) = (
            header(entry, "debug-id").and_then(|v| v.parse().ok()),
            header(entry, "sourcemap").or_else(|| header(entry, "x-sourcemap")),
            entry.url.as_deref(),
        ) else {
            continue;
        };
        let dir = url.rsplit_once('/').map_or("", |(dir, _)| dir);
        let map_url = if map.contains("://") || map.starts_with('~') || map.starts_with('/') {
            map
        } else {
            format!("{dir}/{map}")
        };
        map_ids.insert(map_url, id);
    }
    let mut budget = max_bytes;
    let mut files = Vec::with_capacity(entries.len());
    for (path, entry, kind) in entries {
        let url = entry.url.clone().unwrap_or_else(|| path.clone());
        let mut file = archive
            .by_name(path)
            .map_err(|e| format!("{path}: listed in the manifest but not readable: {e}"))?;
        let mut contents = Vec::new();
        (&mut file)
            .take(budget + 1)
            .read_to_end(&mut contents)
            .map_err(|e| format!("{path}: {e}"))?;
        if contents.len() as u64 > budget {
            return Err(format!(
                "the bundle unpacks to more than {max_bytes} bytes (limits.max_archive_unpacked_bytes)"
            ));
        }
        budget -= contents.len() as u64;
        let debug_id = header(entry, "debug-id")
            .and_then(|v| v.parse().ok())
            .or_else(|| map_ids.get(&url).copied());
        files.push(BundleFile {
            kind,
            url,
            debug_id,
            sourcemap: header(entry, "sourcemap").or_else(|| header(entry, "x-sourcemap")),
            contents,
        });
    }
    Ok(files)
}
