//! What an uploaded JavaScript artifact is: a source map (regular, index map with sections, or a
//! React Native Hermes map) or a minified file, and the debug ID that keys it. A map's ID is
//! its `debug_id` field, else its `debugId` (the TC39 proposal's spelling; symbolic reads them
//! in that order); a minified file's is its last `//# debugId=` comment (sentry-cli
//! `sourcemaps inject` appends it). A broken map is refused with the parser's reason.

use serde::Deserialize;
use symbolic::common::DebugId;
use symbolic::debuginfo::js::{
    discover_debug_id, discover_sourcemap_embedded_debug_id, discover_sourcemaps_location,
};
use symbolic_sourcemapcache::SourceMapCacheWriter;

/// File name endings of JavaScript bundles and their maps.
const JS_ENDINGS: [&str; 7] = [
    ".js",
    ".mjs",
    ".cjs",
    ".jsx",
    ".bundle",
    ".jsbundle",
    ".map",
];

/// The two halves of a JavaScript module's debug information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// The minified file as browsers and runtimes run it (empty for a Hermes bundle).
    MinifiedSource,
    /// Its source map.
    SourceMap,
}

/// An uploaded artifact, identified.
#[derive(Debug, Clone)]
pub struct IdentifiedArtifact {
    /// Minified file or map.
    pub kind: ArtifactKind,
    /// The debug ID it names, if any.
    pub debug_id: Option<DebugId>,
    /// A minified file's `//# sourceMappingURL=` (query and fragment removed).
    pub sourcemap_url: Option<String>,
    /// A Hermes (React Native) map: it carries its own scopes, no minified file is needed.
    pub hermes: bool,
}

/// Why an artifact was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactRejection {
    /// Not UTF-8 text.
    #[error("not a JavaScript file or source map: it is not UTF-8 text")]
    NotText,
    /// A `.map` that is no source map.
    #[error("not a source map: {0}")]
    NotSourceMap(String),
    /// A source map the parser refuses.
    #[error("broken source map: {0}")]
    BrokenSourceMap(String),
}

/// Whether `name` and the first bytes of the file make it a JavaScript artifact (then it is
/// handled here, not as a native debug file).
pub fn is_candidate(name: &str, head: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    if JS_ENDINGS.iter().any(|end| lower.ends_with(end)) {
        return true;
    }
    // A map under another name: JSON with the source map fields.
    let text = String::from_utf8_lossy(head);
    text.trim_start().starts_with('{')
        && text.contains("\"version\"")
        && (text.contains("\"mappings\"") || text.contains("\"sections\""))
}

/// The fields of a map this module reads.
#[derive(Deserialize)]
struct MapHead {
    version: Option<serde_json::Value>,
    #[serde(default)]
    mappings: Option<serde_json::Value>,
    #[serde(default)]
    sections: Option<serde_json::Value>,
    #[serde(default)]
    x_facebook_sources: Option<serde_json::Value>,
    #[serde(default)]
    x_hermes_function_offsets: Option<serde_json::Value>,
}

/// Identifies an artifact from its bytes (the whole file) and name.
pub fn identify(name: &str, bytes: &[u8]) -> Result<IdentifiedArtifact, ArtifactRejection> {
    let text = std::str::from_utf8(bytes).map_err(|_| ArtifactRejection::NotText)?;
    let looks_like_json = text.trim_start().starts_with('{');
    let named_map = name.to_ascii_lowercase().ends_with(".map");
    if looks_like_json {
        match serde_json::from_str::<MapHead>(text) {
            Ok(head)
                if head.version.is_some()
                    && (head.mappings.is_some() || head.sections.is_some()) =>
            {
                // The parser behind the lookup cache decides whether the map is usable.
                SourceMapCacheWriter::new("", text)
                    .map_err(|e| ArtifactRejection::BrokenSourceMap(e.to_string()))?;
                return Ok(IdentifiedArtifact {
                    kind: ArtifactKind::SourceMap,
                    debug_id: discover_sourcemap_embedded_debug_id(text),
                    sourcemap_url: None,
                    hermes: head.x_facebook_sources.is_some()
                        || head.x_hermes_function_offsets.is_some(),
                });
            }
            Ok(_) if named_map => {
                return Err(ArtifactRejection::NotSourceMap(
                    "JSON without `version` and `mappings` (or `sections`)".into(),
                ))
            }
            Err(e) if named_map => return Err(ArtifactRejection::NotSourceMap(e.to_string())),
            _ => {}
        }
    } else if named_map {
        return Err(ArtifactRejection::NotSourceMap(
            "not JSON (a linker map file?)".into(),
        ));
    }
    Ok(IdentifiedArtifact {
        kind: ArtifactKind::MinifiedSource,
        debug_id: discover_debug_id(text),
        sourcemap_url: discover_sourcemaps_location(text).map(str::to_owned),
        hermes: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "2f259f80-58b7-44cb-d7cd-ed1e3d26f28a";
    const OTHER: &str = "0e67d2c0-4f9e-4b4b-9f73-6a1f0a3e2a11";

    #[test]
    fn debug_ids_are_found_in_both_spellings_and_in_comments() {
        let map = |field: &str| {
            format!(r#"{{"version":3,"sources":[],"names":[],"mappings":"","{field}":"{ID}"}}"#)
        };
        for field in ["debugId", "debug_id"] {
            let found = identify("a.js.map", map(field).as_bytes()).unwrap();
            assert_eq!(found.kind, ArtifactKind::SourceMap);
            assert_eq!(found.debug_id, Some(ID.parse().unwrap()), "{field}");
        }
        // Both spelled: `debug_id` wins, as symbolic reads it.
        let both = format!(
            r#"{{"version":3,"sources":[],"names":[],"mappings":"","debugId":"{OTHER}","debug_id":"{ID}"}}"#
        );
        let found = identify("a.js.map", both.as_bytes()).unwrap();
        assert_eq!(found.debug_id, Some(ID.parse().unwrap()));

        // A trailing comment after the code, and a sourceMappingURL after it.
        let js = format!("function a(){{}}\n//# debugId={ID}\n//# sourceMappingURL=a.js.map?v=2\n");
        let found = identify("a.js", js.as_bytes()).unwrap();
        assert_eq!(found.kind, ArtifactKind::MinifiedSource);
        assert_eq!(found.debug_id, Some(ID.parse().unwrap()));
        assert_eq!(found.sourcemap_url.as_deref(), Some("a.js.map"));
        // None at all.
        let found = identify("a.js", b"function a(){}\n").unwrap();
        assert_eq!((found.debug_id, found.sourcemap_url), (None, None));
    }

    #[test]
    fn broken_maps_and_non_maps_are_refused_with_a_reason() {
        let broken = br#"{"version":3,"sources":["a.js"],"names":[],"mappings":"!!!!"}"#;
        let err = identify("a.js.map", broken).unwrap_err();
        assert!(
            matches!(err, ArtifactRejection::BrokenSourceMap(_)),
            "{err}"
        );
        let err =
            identify("app.map", b"Archive member included to satisfy reference\n").unwrap_err();
        assert!(err.to_string().contains("linker map"), "{err}");
        let err = identify("a.js.map", br#"{"name":"x"}"#).unwrap_err();
        assert!(matches!(err, ArtifactRejection::NotSourceMap(_)), "{err}");
        assert!(matches!(
            identify("a.js", &[0xff, 0xfe, 0]).unwrap_err(),
            ArtifactRejection::NotText
        ));
    }

    #[test]
    fn candidates_are_js_names_or_map_shaped_json() {
        assert!(is_candidate("static/js/main.4f3a.js", b"!function(){}"));
        assert!(is_candidate("index.android.bundle", b""));
        assert!(is_candidate("x", br#"{"version":3,"mappings":""}"#));
        assert!(!is_candidate("crash.pdb", b"Microsoft C/C++ MSF 7.00"));
        assert!(!is_candidate("crash.sym", b"MODULE Linux x86_64"));
    }
}
