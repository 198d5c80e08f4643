//! JavaScript frames to original source, in symbolicator's `/symbolicate-js` request and answer
//! shapes. Each frame's module is found by the debug ID the request gives for its file, then by
//! the `//# debugId` of the minified file stored for its URL, then by release + dist + URL (the
//! minified file's `sourceMappingURL` naming the map). Positions are 1-based on the wire and
//! 0-based in the cache. The function comes from the enclosing scope, with the caller's token
//! name for anonymous functions; webpack paths are cleaned up; five lines of context come from
//! the map's `sourcesContent`. A frame that cannot be resolved stays as it was and the reason is
//! listed in `errors`, in symbolicator's terms.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use symbolic::common::DebugId;
use symbolic_sourcemapcache::{ScopeLookupResult, SourceMapCache, SourcePosition};

use super::paths::{
    candidate_urls, clean_webpack_path, display_line, fold_function_name, in_app, join_reference,
    module_name,
};
use super::{
    ArtifactKey, ArtifactKind, ArtifactMeta, CacheProblem, SourceMapError, SourceMapStore,
};

/// Lines of context on each side of a frame's line.
const CONTEXT_LINES: usize = 5;
/// Names that say nothing; the caller's name for the function is used instead.
const USELESS_NAMES: [&str; 3] = ["<anonymous>", "__webpack_require__", "__webpack_modules__"];

/// A `/symbolicate-js` request.
#[derive(Debug, Clone, Deserialize)]
pub struct SymbolicateJsRequest {
    /// Stack traces, each oldest frame first (as Sentry events order them).
    pub stacktraces: Vec<JsStacktrace>,
    /// The modules the event's `debug_meta` names: minified file → debug ID.
    #[serde(default)]
    pub modules: Vec<JsModule>,
    /// The release files without debug ID were uploaded for.
    #[serde(default)]
    pub release: Option<String>,
    /// The release's distribution.
    #[serde(default)]
    pub dist: Option<String>,
}

/// One JavaScript module of an event: a minified file and the debug ID of its map.
#[derive(Debug, Clone, Deserialize)]
pub struct JsModule {
    /// Always `sourcemap`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The minified file's URL, as frames name it in `abs_path`.
    pub code_file: String,
    /// The debug ID.
    pub debug_id: String,
}

/// A stack trace.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct JsStacktrace {
    /// Frames, oldest first.
    pub frames: Vec<JsFrame>,
}

/// One JavaScript frame, minified on the way in, original on the way out.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct JsFrame {
    /// Function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The original file's name as the map gives it (webpack prefixes cleaned up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// A module name made from the path, for webpack and URL sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The file's URL or path.
    pub abs_path: String,
    /// 1-based line.
    pub lineno: u32,
    /// 1-based column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colno: Option<u32>,
    /// Lines before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_context: Vec<String>,
    /// The line itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_line: Option<String>,
    /// Lines after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_context: Vec<String>,
    /// Whether the frame is the application's own code (not under `node_modules/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app: Option<bool>,
    /// How the frame was resolved.
    #[serde(default)]
    pub data: JsFrameData,
}

/// How a frame was resolved.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct JsFrameData {
    /// The map used (its URL or name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sourcemap: Option<String>,
    /// `debug-id` or `release`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_with: Option<String>,
    /// The position was found in the map.
    #[serde(default)]
    pub symbolicated: bool,
}

/// Why a frame stayed minified (symbolicator's `JsModuleErrorKind`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum JsErrorKind {
    /// Line 0, or a position the map does not cover.
    InvalidLocation {
        /// The frame's line.
        line: u32,
        /// Its column.
        col: Option<u32>,
    },
    /// No minified file is stored for the frame's file.
    MissingSource,
    /// No source map is stored for it.
    MissingSourcemap,
    /// The map could not be read.
    MalformedSourcemap {
        /// Which map.
        url: String,
    },
    /// The map has no `sourcesContent` for the original file.
    MissingSourceContent {
        /// The original file.
        source: String,
        /// The map.
        sourcemap: String,
    },
}

/// A frame's error.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct JsError {
    /// The frame's file.
    pub abs_path: String,
    /// What went wrong.
    #[serde(flatten)]
    pub kind: JsErrorKind,
}

/// The answer: frames resolved, the frames as received, and what could not be resolved.
#[derive(Debug, Clone, Serialize)]
pub struct SymbolicateJsResponse {
    /// Original frames (unresolvable ones as received).
    pub stacktraces: Vec<JsStacktrace>,
    /// The frames as received.
    pub raw_stacktraces: Vec<JsStacktrace>,
    /// Why frames stayed minified.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<JsError>,
    /// The artifacts that were looked for and not found: an upload of one of them can resolve
    /// these frames (events are reprocessed when it arrives). Not part of the wire answer.
    #[serde(skip)]
    pub missing: Vec<MissingArtifact>,
    /// The store IDs of the artifacts that resolved frames (retention keeps them). Not part of
    /// the wire answer.
    #[serde(skip)]
    pub used: Vec<String>,
}

/// A minified file or source map a frame needed and the store lacks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingArtifact {
    /// The store's ID of the wanted key (a debug ID, or `url-` and a digest of project,
    /// release, dist and URL): what an upload announces.
    pub id: String,
    /// The file's URL (or the debug ID's minified file as the frames name it).
    pub url: String,
    /// Whether the map (rather than the minified file) is what is missing.
    pub sourcemap: bool,
}

/// Where a file's lookup cache comes from.
struct Resolved {
    cache: Result<bytes::Bytes, CacheProblem>,
    resolved_with: &'static str,
    sourcemap: String,
    /// When the cache is missing: the keys an upload would have to fill.
    wanted: Vec<MissingArtifact>,
    /// The store IDs of the files the cache is built from.
    from: Vec<String>,
}

impl Resolved {
    /// `wanted` for a missing cache (kept only when the cache is in fact missing).
    fn wanting(mut self, keys: impl IntoIterator<Item = (ArtifactKey, String)>) -> Resolved {
        let sourcemap = match &self.cache {
            Err(CacheProblem::MissingSource) => false,
            Err(CacheProblem::MissingSourcemap) => true,
            _ => return self,
        };
        self.wanted = keys
            .into_iter()
            .map(|(key, url)| MissingArtifact {
                id: key.id(),
                url,
                sourcemap,
            })
            .collect();
        self
    }
}

/// Sets the frame's context from `source` around its (1-based) line.
fn apply_context(frame: &mut JsFrame, source: &str) -> bool {
    let lines: Vec<&str> = source.lines().collect();
    let index = frame.lineno as usize;
    if index == 0 || index > lines.len() {
        return false;
    }
    let column = frame.colno.unwrap_or(0) as usize;
    let at = index - 1;
    frame.pre_context = lines[at.saturating_sub(CONTEXT_LINES)..at]
        .iter()
        .map(|l| display_line(l, column))
        .collect();
    frame.context_line = Some(display_line(lines[at], column));
    frame.post_context = lines[at + 1..(at + 1 + CONTEXT_LINES).min(lines.len())]
        .iter()
        .map(|l| display_line(l, column))
        .collect();
    true
}

/// Symbolicates `request` against `store`; `project` is the project release files were
/// uploaded for; no file larger than `limit` is read.
pub async fn symbolicate(
    store: &SourceMapStore,
    request: SymbolicateJsRequest,
    project: i64,
    limit: u64,
) -> Result<SymbolicateJsResponse, SourceMapError> {
    let modules: HashMap<&str, DebugId> = request
        .modules
        .iter()
        .filter(|m| m.kind == "sourcemap")
        .filter_map(|m| Some((m.code_file.as_str(), m.debug_id.parse().ok()?)))
        .collect();
    let mut resolved: HashMap<String, Resolved> = HashMap::new();
    let mut errors = BTreeSet::new();
    let mut stacktraces = Vec::with_capacity(request.stacktraces.len());
    for raw in &request.stacktraces {
        let mut frames = Vec::with_capacity(raw.frames.len());
        // The token name at the previous (calling) frame names the function called there.
        let mut caller_token: Option<String> = None;
        for raw_frame in &raw.frames {
            let token = caller_token.take();
            match frame(
                store,
                &modules,
                &request,
                project,
                limit,
                &mut resolved,
                raw_frame,
                token.as_deref(),
                &mut errors,
            )
            .await?
            {
                Ok((frame, token)) => {
                    caller_token = token;
                    frames.push(frame);
                }
                Err(kind) => {
                    errors.insert(JsError {
                        abs_path: raw_frame.abs_path.clone(),
                        kind,
                    });
                    frames.push(raw_frame.clone());
                }
            }
        }
        stacktraces.push(JsStacktrace { frames });
    }
    let used: BTreeSet<String> = resolved
        .values()
        .filter(|r| r.cache.is_ok())
        .flat_map(|r| r.from.iter().cloned())
        .collect();
    let missing: BTreeSet<MissingArtifact> =
        resolved.into_values().flat_map(|r| r.wanted).collect();
    Ok(SymbolicateJsResponse {
        stacktraces,
        raw_stacktraces: request.stacktraces,
        errors: errors.into_iter().collect(),
        missing: missing.into_iter().collect(),
        used: used.into_iter().collect(),
    })
}

/// Finds the lookup cache for the file at `abs_path` (see the module comment for the order).
async fn resolve(
    store: &SourceMapStore,
    modules: &HashMap<&str, DebugId>,
    request: &SymbolicateJsRequest,
    project: i64,
    limit: u64,
    abs_path: &str,
) -> Result<Resolved, SourceMapError> {
    if let Some(id) = modules.get(abs_path) {
        let key = ArtifactKey::DebugId(*id);
        let label = store
            .meta(&key, ArtifactKind::SourceMap)
            .await?
            .map_or_else(|| abs_path.to_owned(), |m| m.name);
        return Ok(Resolved {
            cache: store.lookup_cache(&key, &key, limit).await?,
            resolved_with: "debug-id",
            sourcemap: label,
            wanted: Vec::new(),
            from: vec![key.id()],
        }
        .wanting([(key, abs_path.to_owned())]));
    }
    let Some(release) = &request.release else {
        return Ok(Resolved {
            cache: Err(CacheProblem::MissingSource),
            resolved_with: "release",
            sourcemap: abs_path.to_owned(),
            wanted: Vec::new(),
            from: Vec::new(),
        });
    };
    let keys = ReleaseKeys {
        project,
        release,
        dist: request.dist.as_deref().unwrap_or_default(),
    };
    let url_key = |url: &str| keys.key(url);
    for candidate in candidate_urls(abs_path) {
        let source_key = url_key(&candidate);
        let Some(source) = store
            .meta(&source_key, ArtifactKind::MinifiedSource)
            .await?
        else {
            continue;
        };
        return by_minified_source(store, &keys, source, candidate, abs_path, limit).await;
    }
    let wanted: Vec<_> = candidate_urls(abs_path)
        .into_iter()
        .map(|url| (url_key(&url), url))
        .collect();
    Ok(Resolved {
        cache: Err(CacheProblem::MissingSource),
        resolved_with: "release",
        sourcemap: abs_path.to_owned(),
        wanted: Vec::new(),
        from: Vec::new(),
    }
    .wanting(wanted))
}

/// The artifact keys of one project's release and dist.
struct ReleaseKeys<'a> {
    project: i64,
    release: &'a str,
    dist: &'a str,
}

impl ReleaseKeys<'_> {
    fn key(&self, url: &str) -> ArtifactKey {
        ArtifactKey::Url {
            project: self.project,
            release: self.release.to_owned(),
            dist: self.dist.to_owned(),
            url: url.to_owned(),
        }
    }
}

/// The map of a stored minified file (stored at `candidate`): under the debug ID the file
/// names, else at the URL its `sourceMappingURL` (or `{candidate}.map`) gives.
async fn by_minified_source(
    store: &SourceMapStore,
    keys: &ReleaseKeys<'_>,
    source: ArtifactMeta,
    candidate: String,
    abs_path: &str,
    limit: u64,
) -> Result<Resolved, SourceMapError> {
    let source_key = keys.key(&candidate);
    if let Some(id) = source.debug_id.as_deref().and_then(|id| id.parse().ok()) {
        let key = ArtifactKey::DebugId(id);
        return Ok(Resolved {
            cache: store.lookup_cache(&key, &key, limit).await?,
            resolved_with: "debug-id",
            sourcemap: source.sourcemap_url.unwrap_or_else(|| abs_path.to_owned()),
            wanted: Vec::new(),
            from: vec![source_key.id(), key.id()],
        }
        .wanting([(key, candidate)]));
    }
    let reference = source
        .sourcemap_url
        .clone()
        .unwrap_or_else(|| format!("{candidate}.map"));
    let map_url = join_reference(&candidate, &reference);
    for map_candidate in candidate_urls(&map_url) {
        let map_key = keys.key(&map_candidate);
        if store
            .meta(&map_key, ArtifactKind::SourceMap)
            .await?
            .is_some()
        {
            return Ok(Resolved {
                cache: store.lookup_cache(&source_key, &map_key, limit).await?,
                resolved_with: "release",
                sourcemap: map_url,
                wanted: Vec::new(),
                from: vec![source_key.id(), map_key.id()],
            });
        }
    }
    let wanted: Vec<_> = candidate_urls(&map_url)
        .into_iter()
        .map(|url| (keys.key(&url), url))
        .collect();
    Ok(Resolved {
        cache: Err(CacheProblem::MissingSourcemap),
        resolved_with: "release",
        sourcemap: map_url,
        wanted: Vec::new(),
        from: Vec::new(),
    }
    .wanting(wanted))
}

/// Names the original file a token points into: its path (joined to the minified file's URL
/// when relative), its webpack module, and whether it is the application's code.
fn place_in_original_file(frame: &mut JsFrame, minified_path: &str, name: &str) {
    let filename = if name.starts_with("webpack:") {
        let clean = clean_webpack_path(name);
        frame.module = Some(module_name(&clean));
        clean
    } else {
        name.to_owned()
    };
    frame.abs_path = if name.contains("://") || name.starts_with('/') {
        name.to_owned()
    } else {
        join_reference(minified_path, name)
    };
    if frame.module.is_none()
        && ["http:", "https:", "app:"]
            .iter()
            .any(|scheme| frame.abs_path.starts_with(scheme))
    {
        frame.module = Some(module_name(&frame.abs_path));
    }
    frame.in_app = in_app(&frame.abs_path, &filename);
    frame.filename = Some(filename);
}

/// One frame: the original frame and its token name, or why it stays as it is.
#[allow(clippy::too_many_arguments)]
async fn frame(
    store: &SourceMapStore,
    modules: &HashMap<&str, DebugId>,
    request: &SymbolicateJsRequest,
    project: i64,
    limit: u64,
    resolved: &mut HashMap<String, Resolved>,
    raw: &JsFrame,
    caller_token: Option<&str>,
    errors: &mut BTreeSet<JsError>,
) -> Result<Result<(JsFrame, Option<String>), JsErrorKind>, SourceMapError> {
    let invalid = || JsErrorKind::InvalidLocation {
        line: raw.lineno,
        col: raw.colno,
    };
    if raw.lineno == 0 {
        return Ok(Err(invalid()));
    }
    if !resolved.contains_key(&raw.abs_path) {
        let found = resolve(store, modules, request, project, limit, &raw.abs_path).await?;
        resolved.insert(raw.abs_path.clone(), found);
    }
    let found = &resolved[&raw.abs_path];
    let bytes = match &found.cache {
        Ok(bytes) => bytes,
        Err(CacheProblem::MissingSource) => return Ok(Err(JsErrorKind::MissingSource)),
        Err(CacheProblem::MissingSourcemap) => return Ok(Err(JsErrorKind::MissingSourcemap)),
        Err(CacheProblem::Malformed(_)) => {
            return Ok(Err(JsErrorKind::MalformedSourcemap {
                url: found.sourcemap.clone(),
            }))
        }
    };
    let Ok(cache) = SourceMapCache::parse(bytes) else {
        return Ok(Err(JsErrorKind::MalformedSourcemap {
            url: found.sourcemap.clone(),
        }));
    };
    let column = raw.colno.unwrap_or(1).max(1);
    let Some(token) = cache.lookup(SourcePosition::new(raw.lineno - 1, column - 1)) else {
        return Ok(Err(invalid()));
    };
    let mut frame = raw.clone();
    frame.data = JsFrameData {
        sourcemap: Some(found.sourcemap.clone()),
        resolved_with: Some(found.resolved_with.to_owned()),
        symbolicated: true,
    };
    let scope_name = match token.scope() {
        ScopeLookupResult::NamedScope(name) => name.to_owned(),
        ScopeLookupResult::AnonymousScope => "<anonymous>".to_owned(),
        ScopeLookupResult::Unknown => raw.function.clone().unwrap_or_else(|| "<unknown>".into()),
    };
    let function = if !USELESS_NAMES.contains(&scope_name.as_str()) {
        scope_name
    } else if let Some(caller) = caller_token.filter(|n| !n.is_empty()) {
        caller.to_owned()
    } else if let Some(minified) = &raw.function {
        minified.clone()
    } else {
        scope_name
    };
    frame.function = Some(fold_function_name(&function));
    if let Some(name) = token.file_name().filter(|name| !name.is_empty()) {
        place_in_original_file(&mut frame, &raw.abs_path, name);
    }
    frame.lineno = token.line().saturating_add(1);
    frame.colno = Some(token.column().saturating_add(1));
    frame.pre_context.clear();
    frame.context_line = None;
    frame.post_context.clear();
    match token.file().and_then(|file| file.source()) {
        Some(source) => {
            apply_context(&mut frame, source);
        }
        None => {
            errors.insert(JsError {
                abs_path: raw.abs_path.clone(),
                kind: JsErrorKind::MissingSourceContent {
                    source: token.file_name().unwrap_or_default().to_owned(),
                    sourcemap: found.sourcemap.clone(),
                },
            });
        }
    }
    Ok(Ok((frame, token.name().map(str::to_owned))))
}
