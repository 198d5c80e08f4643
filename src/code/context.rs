//! Source context: the lines around each frame of the crashing thread that has a file and a
//! line, from the sources stored with its module (a source bundle, embedded sources) or else
//! from the repository at the release's commit, found through the project's code mappings.
//! Asked for when a crash page or the API wants it, never while a crash is processed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::{links, CodeAt, CodeError};
use crate::pipeline::CrashView;
use crate::symbols::sources::StoredSource;
use crate::symbols::SymbolStore;

/// Lines shown before and after a frame's line.
pub const CONTEXT_LINES: usize = 5;
/// Frames of the crashing thread given context (a deep recursion stops here).
const MAX_FRAMES: usize = 64;
/// The longest line kept (a minified file's line is cut).
const MAX_LINE_CHARS: usize = 400;

/// Where a frame's lines came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContextSource {
    /// Sources stored with the module (source bundle or embedded in its debug file).
    StoredSources {
        /// The module's debug ID.
        debug_id: String,
    },
    /// The repository at the release's commit.
    Repository {
        /// Its name.
        repository: String,
        /// The commit.
        commit: String,
        /// The path in the repository.
        path: String,
        /// The code mapping's stack root, and who made it (`user`, `derived`).
        stack_root: String,
        /// `user` or `derived`.
        mapping: &'static str,
    },
}

/// One frame's lines.
#[derive(Debug, Clone, Serialize)]
pub struct FrameContext {
    /// The frame's position in the crashing thread.
    pub frame: usize,
    /// The frame's file, as the debug information names it.
    pub file: String,
    /// Its line.
    pub line: u32,
    /// Up to five lines before.
    pub pre_context: Vec<String>,
    /// The line itself.
    pub context_line: String,
    /// Up to five lines after.
    pub post_context: Vec<String>,
    /// Where they came from.
    pub source: ContextSource,
    /// The line in the repository's web view at that commit, or the file's Source Link URL
    /// (a .NET PDB's: the file at the commit it was built from).
    pub link: Option<String>,
}

/// A frame that has a file and a line but no context, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NoContext {
    /// The frame's position.
    pub frame: usize,
    /// Its file.
    pub file: String,
    /// Why: no mapping, an ambiguous derivation (the files named), a file absent at the commit,
    /// a file a PDB's Source Link names without embedding it.
    pub reason: String,
    /// Where the file can be read: its Source Link URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The source context of a crash's crashing thread.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceContext {
    /// Frames with lines.
    pub frames: Vec<FrameContext>,
    /// Frames without, and why.
    pub missing: Vec<NoContext>,
}

/// A frame asking for context.
struct Wanted {
    frame: usize,
    file: String,
    line: u32,
    debug_id: Option<String>,
}

impl super::Code {
    /// The lines around each frame of the crashing thread, stored sources first, then the
    /// repositories at `heads` (the crash's release's commits).
    pub async fn source_context(
        &self,
        symbols: &SymbolStore,
        project_id: i64,
        view: &CrashView<'_>,
        heads: &[CodeAt],
    ) -> Result<SourceContext, CodeError> {
        let wanted = wanted_frames(view);
        let mut context = SourceContext::default();
        // Files read per (repository, commit), each once.
        let mut from_repos: BTreeMap<(String, String), Vec<(Wanted, super::Located)>> =
            BTreeMap::new();
        for want in wanted {
            match stored_source(symbols, &want).await {
                Some(StoredSource {
                    text: Some(text),
                    url,
                }) => {
                    let debug_id = want.debug_id.clone().unwrap_or_default();
                    let source = ContextSource::StoredSources { debug_id };
                    context.frames.push(around(&want, &text, source, url));
                    continue;
                }
                // Linked, not embedded: the link is the answer (fetching it is the browser's).
                Some(StoredSource {
                    text: None,
                    url: Some(url),
                }) => {
                    context.missing.push(NoContext {
                        frame: want.frame,
                        reason:
                            "the module's PDB links this file (Source Link) without embedding it"
                                .into(),
                        file: want.file,
                        link: Some(url),
                    });
                    continue;
                }
                _ => {}
            }
            match self.locate(project_id, &want.file, heads).await? {
                Ok(Some(located)) => from_repos
                    .entry((located.repository.clone(), located.commit.clone()))
                    .or_default()
                    .push((want, located)),
                Ok(None) => context.missing.push(NoContext {
                    frame: want.frame,
                    reason: "no code mapping or repository file matches this path".into(),
                    file: want.file,
                    link: None,
                }),
                Err(files) => context.missing.push(NoContext {
                    frame: want.frame,
                    reason: format!(
                        "several repository files match equally ({}); add a code mapping",
                        files.join(", ")
                    ),
                    file: want.file,
                    link: None,
                }),
            }
        }
        for ((repository, commit), frames) in from_repos {
            let Some(repo) = self.repository_by_name(&repository).await? else {
                continue;
            };
            let paths: Vec<String> = frames.iter().map(|(_, l)| l.path.clone()).collect();
            let texts = self.texts_at(&repo, &commit, &paths).await?;
            for ((want, located), text) in frames.into_iter().zip(texts) {
                let Some(text) = text else {
                    context.missing.push(NoContext {
                        frame: want.frame,
                        reason: format!("{} is not in {repository} at {commit}", located.path),
                        file: want.file,
                        link: None,
                    });
                    continue;
                };
                let link = repo
                    .web_url_template
                    .as_deref()
                    .map(|t| links::line_link(t, &commit, &located.path, want.line));
                let source = ContextSource::Repository {
                    repository: repository.clone(),
                    commit: commit.clone(),
                    path: located.path,
                    stack_root: located.mapping.stack_root,
                    mapping: located.mapping.origin.as_str(),
                };
                context.frames.push(around(&want, &text, source, link));
            }
        }
        context.frames.sort_by_key(|f| f.frame);
        context.missing.sort_by_key(|f| f.frame);
        Ok(context)
    }

    /// Files' text at a commit, kept in memory by (repository, commit, path): a file at a
    /// commit never changes.
    pub(crate) async fn texts_at(
        &self,
        repo: &super::Repository,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<Option<Arc<str>>>, CodeError> {
        let mut texts = vec![None; paths.len()];
        let mut unread = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let key = (repo.id, commit.to_owned(), path.clone());
            match self.texts.get(&key).await {
                Some(text) => texts[i] = Some(text),
                None => unread.push(i),
            }
        }
        if unread.is_empty() {
            return Ok(texts);
        }
        let asked: Vec<String> = unread.iter().map(|&i| paths[i].clone()).collect();
        let read = self.mirror(repo).files_text_at(commit, &asked).await?;
        for (i, text) in unread.into_iter().zip(read) {
            if let Some(text) = text {
                let text: Arc<str> = text.into();
                let key = (repo.id, commit.to_owned(), paths[i].clone());
                self.texts.insert(key, Arc::clone(&text)).await;
                texts[i] = Some(text);
            }
        }
        Ok(texts)
    }
}

/// The crashing thread's frames with a file and a line (an inlined call counts as the frame's
/// own line: the outer file and line are what a person reads first).
fn wanted_frames(view: &CrashView<'_>) -> Vec<Wanted> {
    let Some(thread) = view
        .crashing_index()
        .and_then(|i| view.parts.threads.get(i))
    else {
        return Vec::new();
    };
    thread
        .frames
        .iter()
        .enumerate()
        .filter_map(|(i, frame)| {
            let (file, line) = (frame.file.as_deref()?, frame.line?);
            let debug_id = frame.module.as_deref().and_then(|name| {
                view.parts
                    .modules
                    .iter()
                    .find(|m| m.filename == name)
                    .map(|m| m.debug_id.clone())
            });
            (line > 0).then(|| Wanted {
                frame: i,
                file: file.to_owned(),
                line,
                debug_id,
            })
        })
        .take(MAX_FRAMES)
        .collect()
}

/// The frame's file from its module's stored sources, or its Source Link URL.
async fn stored_source(symbols: &SymbolStore, want: &Wanted) -> Option<StoredSource> {
    let id = want.debug_id.as_deref()?.parse().ok()?;
    symbols.source_file(&id, &want.file).await.ok().flatten()
}

/// The lines around the frame's line in `text`.
fn around(want: &Wanted, text: &str, source: ContextSource, link: Option<String>) -> FrameContext {
    let lines: Vec<&str> = text.lines().collect();
    let at = (want.line as usize).saturating_sub(1);
    let cut = |l: &&str| l.chars().take(MAX_LINE_CHARS).collect::<String>();
    FrameContext {
        frame: want.frame,
        file: want.file.clone(),
        line: want.line,
        pre_context: lines[at.saturating_sub(CONTEXT_LINES).min(lines.len())..at.min(lines.len())]
            .iter()
            .map(cut)
            .collect(),
        context_line: lines.get(at).map(cut).unwrap_or_default(),
        post_context: lines
            .get(at + 1..(at + 1 + CONTEXT_LINES).min(lines.len()))
            .unwrap_or_default()
            .iter()
            .map(cut)
            .collect(),
        source,
        link,
    }
}
