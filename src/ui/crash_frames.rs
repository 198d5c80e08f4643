//! The frame rows of a crash page's thread table: a real frame or a call inlined into it, which
//! rows "most relevant" keeps, the source lines under a row, and the frame's variables.

use crate::classify::frames::{view_frames, FrameRef, InAppRules};
use crate::process::view::ThreadView;
use crate::variables::{Variable, VariableKind};

/// One row of a thread's table: a real frame or a call inlined into it.
pub struct FrameRow {
    pub index: usize,
    /// The real frame it belongs to (an inlined call shares its caller's).
    pub frame: usize,
    pub module: String,
    pub function: String,
    pub location: String,
    /// The generated code `location` was mapped from (IL2CPP's C++ line), on the real frame's
    /// row.
    pub generated: String,
    pub trust: String,
    pub inlined: bool,
    pub fault: bool,
    pub missing: bool,
    pub offset: String,
    /// The lines around it (crashing thread, when the sources or the repository have them).
    pub source: Option<super::crash_source::SourceLines>,
    /// Its parameters and locals (on the real frame's row), shown open on the fault frame.
    pub variables: Vec<VariableRow>,
    /// Whether the variables start open (the fault frame's).
    pub variables_open: bool,
}

/// A parameter or local of a frame, on one line.
pub struct VariableRow {
    pub name: String,
    pub type_name: String,
    pub kind: &'static str,
    pub value: String,
}

/// The rows of one thread: inlined calls first within each real frame, as the classifier
/// counts them (so the fault frame's index points at the right row).
pub fn frame_rows(thread: &ThreadView<'_>, fault_index: Option<usize>) -> Vec<FrameRow> {
    let rows = view_frames(thread);
    let fault_frame = fault_index.and_then(|i| rows.get(i)).map(|r| r.frame);
    rows.into_iter()
        .map(|row| {
            let frame = &thread.frames[row.frame];
            let variables = match (&frame.variables, row.inlined) {
                (Some(variables), false) => variables.iter().map(variable_row).collect(),
                _ => Vec::new(),
            };
            let module = row.module.clone().unwrap_or_default();
            let function = match (&row.function, row.inlined) {
                (Some(f), _) => f.clone(),
                (None, _) if !module.is_empty() => format!(
                    "{module} + {}",
                    frame
                        .module_offset
                        .map(|o| o.to_string())
                        .unwrap_or_default()
                ),
                (None, _) => frame.offset.map(|o| o.to_string()).unwrap_or_default(),
            };
            FrameRow {
                index: row.index,
                frame: row.frame,
                function,
                location: row.source(),
                generated: match (&frame.generated_file, frame.generated_line, row.inlined) {
                    (Some(file), Some(line), false) => format!("{file}:{line}"),
                    _ => String::new(),
                },
                trust: if row.inlined {
                    "inlined".to_owned()
                } else {
                    frame.trust.to_string()
                },
                inlined: row.inlined,
                fault: fault_index == Some(row.index),
                missing: !row.inlined && frame.missing_symbols,
                offset: if row.inlined {
                    String::new()
                } else {
                    frame.offset.map(|o| o.to_string()).unwrap_or_default()
                },
                module,
                source: None,
                variables,
                variables_open: fault_frame == Some(row.frame),
            }
        })
        .collect()
}

fn variable_row(variable: &Variable) -> VariableRow {
    VariableRow {
        name: variable.value.name.to_string(),
        type_name: variable.value.type_name.to_string(),
        kind: match variable.kind {
            VariableKind::Parameter => "parameter",
            VariableKind::Local => "local",
        },
        value: variable.value.summary(),
    }
}

/// Which rows "most relevant" keeps: the fault frame (with the calls inlined into it), then
/// with in-app rules configured the application's frames, and without them the symbolicated
/// frames below the fault frame (frames above it are the crash machinery the skip list passed
/// over).
pub fn relevant(rows: &[FrameRow], in_app: &InAppRules) -> Vec<bool> {
    let fault = rows
        .iter()
        .find(|r| r.fault)
        .map_or((0, 0), |r| (r.index, r.frame));
    rows.iter()
        .map(|row| {
            if row.frame == fault.1 {
                return true;
            }
            if in_app.is_configured() {
                let (file, _) = row.location.rsplit_once(':').unwrap_or((&row.location, ""));
                return in_app.matches(&FrameRef {
                    index: row.index,
                    frame: 0,
                    inlined: row.inlined,
                    function: Some(row.function.clone()),
                    module: Some(row.module.clone()).filter(|m| !m.is_empty()),
                    file: Some(file.to_owned()).filter(|f| !f.is_empty()),
                    line: None,
                });
            }
            row.index > fault.0 && !row.missing && !row.location.is_empty()
        })
        .collect()
}

/// Puts each frame's source lines under its row (not an inlined call's), open under the fault
/// frame, or under the first frame with lines when none is the fault.
pub fn attach_sources(
    rows: &mut [FrameRow],
    sources: Vec<(usize, super::crash_source::SourceLines)>,
) {
    for (frame, mut lines) in sources {
        if let Some(row) = rows.iter_mut().find(|r| r.frame == frame && !r.inlined) {
            lines.open = row.fault;
            row.source = Some(lines);
        }
    }
    if !rows.iter().any(|r| r.fault && r.source.is_some()) {
        if let Some(lines) = rows.iter_mut().find_map(|r| r.source.as_mut()) {
            lines.open = true;
        }
    }
}
