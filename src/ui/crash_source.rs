//! The source lines under a crash page's frames: from the module's stored sources or the
//! repository at the crash's release (`releases::Releases::source_context`), shown collapsed
//! under each frame except the fault frame, with a link to the line at that commit (or, for a
//! file a .NET PDB's Source Link names without embedding it, the link alone).

use crate::app::App;
use crate::code::context::{ContextSource, FrameContext};
use crate::group::index::CrashRow;
use crate::pipeline::CrashView;

/// One line of context: its number, its text, whether it is the frame's line.
pub struct SourceLine {
    pub number: u32,
    pub text: String,
    pub current: bool,
}

/// The lines under one frame.
pub struct SourceLines {
    pub lines: Vec<SourceLine>,
    /// Where they came from, in words.
    pub origin: String,
    pub link: Option<String>,
    /// Shown open: the fault frame's, or the first frame's with lines when none is the fault.
    pub open: bool,
}

fn lines_of(context: &FrameContext) -> SourceLines {
    let first = context
        .line
        .saturating_sub(context.pre_context.len() as u32);
    let mut lines = Vec::new();
    let all = context
        .pre_context
        .iter()
        .chain(std::iter::once(&context.context_line))
        .chain(&context.post_context);
    for (i, text) in all.enumerate() {
        let number = first + i as u32;
        lines.push(SourceLine {
            number,
            text: text.clone(),
            current: number == context.line,
        });
    }
    let origin = match &context.source {
        ContextSource::StoredSources { debug_id } => {
            format!("from the sources stored with module {debug_id}")
        }
        ContextSource::Repository {
            repository,
            commit,
            path,
            mapping,
            ..
        } => format!(
            "{path} in {repository} at {} ({mapping} code mapping)",
            commit.chars().take(10).collect::<String>()
        ),
    };
    SourceLines {
        lines,
        origin,
        link: context.link.clone(),
        open: false,
    }
}

/// The source lines of the crashing thread's frames, by frame position (none for a crash
/// whose repository cannot be read: the page shows its frames without).
pub async fn lines_by_frame(
    state: &App,
    crash: &CrashRow,
    view: &CrashView<'_>,
) -> Vec<(usize, SourceLines)> {
    let attributes = &crash.attributes;
    let context = state
        .releases
        .source_context(
            &state.symbols,
            attributes.project_id,
            attributes.release.as_deref(),
            view,
        )
        .await;
    match context {
        Ok(context) => {
            // A file a PDB's Source Link names without embedding it: its link, no lines.
            let linked = context.missing.iter().filter_map(|m| {
                let link = m.link.clone()?;
                let lines = Vec::new();
                let origin = m.reason.clone();
                let open = false;
                Some((
                    m.frame,
                    SourceLines {
                        lines,
                        origin,
                        link: Some(link),
                        open,
                    },
                ))
            });
            context
                .frames
                .iter()
                .map(|f| (f.frame, lines_of(f)))
                .chain(linked)
                .collect()
        }
        Err(e) => {
            tracing::warn!(crash = %attributes.id, error = %e, "source context unavailable");
            Vec::new()
        }
    }
}
