//! The report `faultline process` prints for a person: the verdict first (class, evidence,
//! exploitability with its reasons, the frame to blame), then the crashing thread with inlined
//! calls and source lines, then (with `--threads all`) the other threads, then the modules whose
//! symbols are missing and what to upload. As plain text (colored on a terminal) or as Markdown
//! for pasting into a ticket.
//!
//! Everything in a dump is attacker-controlled: control characters (terminal escape sequences
//! in a thread name or a function) are shown escaped, and Markdown's table and code delimiters
//! are neutralized.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use crate::classify::frames::{view_frames, FrameRef};
use crate::classify::{Classification, Rating};
use crate::pipeline::{CrashView, Grouping};
use crate::process::modules::SymbolStatus;
use crate::process::view::{ModuleView, ThreadView};
use crate::variables::Variable;

/// Plain text or Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text, colored when `color` is on.
    Text,
    /// Markdown: headings, lists and tables.
    Markdown,
}

/// Which threads to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Threads {
    /// Only the thread that crashed.
    Crashing,
    /// Every thread, the crashing one first.
    All,
}

/// How to render.
#[derive(Debug, Clone, Copy)]
pub struct ReportStyle {
    /// Text or Markdown.
    pub format: Format,
    /// Which threads.
    pub threads: Threads,
    /// ANSI colors (text only).
    pub color: bool,
}

/// `text` safe to print: control characters (escape sequences included) written as `\u{…}`.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` for a Markdown table cell (code spans in it included): printable, `|` escaped (GFM
/// tables unescape it inside code spans too), backticks replaced.
fn markdown(text: &str) -> String {
    code(text).replace('|', "\\|")
}

/// `text` for an inline code span outside a table.
fn code(text: &str) -> String {
    printable(text).replace('`', "'")
}

/// `text` as Markdown prose: printable, with every character Markdown could read as markup
/// (links, emphasis, HTML) escaped.
fn prose(text: &str) -> String {
    let mut out = String::new();
    for c in printable(text).chars() {
        if "\\`*_[]<>|#!".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

struct Writer {
    out: String,
    style: ReportStyle,
}

impl Writer {
    fn paint(&self, style: Style, text: &str) -> String {
        if self.style.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }

    fn line(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
    }
}

fn rating_style(rating: Rating) -> Style {
    let color = match rating {
        Rating::High => AnsiColor::Red,
        Rating::Medium => AnsiColor::Yellow,
        Rating::Low | Rating::Interesting => AnsiColor::Cyan,
        Rating::None | Rating::NotAnalyzed => AnsiColor::Green,
    };
    Style::new().bold().fg_color(Some(color.into()))
}

fn frame_function(frame: &FrameRef) -> String {
    frame
        .function
        .as_deref()
        .map_or_else(|| "??".to_owned(), printable)
}

/// Renders a processed crash for a person.
pub fn render(crash: &CrashView<'_>, style: ReportStyle) -> String {
    let mut w = Writer {
        out: String::new(),
        style,
    };
    if let Some(classification) = &crash.classification {
        verdict(&mut w, classification, crash.grouping.as_ref());
    }
    let fault_index = crash
        .classification
        .as_ref()
        .and_then(|c| c.fault_frame.as_ref())
        .map(|f| f.index);
    let crashing = crash.crashing_index();
    let mut order: Vec<usize> = crashing.into_iter().collect();
    if style.threads == Threads::All || crashing.is_none() {
        order.extend((0..crash.parts.threads.len()).filter(|i| Some(*i) != crashing));
    }
    for index in order {
        let Some(thread) = crash.parts.threads.get(index) else {
            continue;
        };
        let view = ThreadRows {
            heading: thread_heading(index, thread, Some(index) == crashing),
            thread,
            frames: view_frames(thread),
            fault: fault_index.filter(|_| Some(index) == crashing),
        };
        match style.format {
            Format::Text => text_thread(&mut w, &view),
            Format::Markdown => markdown_thread(&mut w, &view),
        }
    }
    missing_symbols(&mut w, &crash.parts.modules);
    w.out
}

fn thread_heading(index: usize, thread: &ThreadView<'_>, crashing: bool) -> String {
    let name = thread
        .thread_name
        .as_deref()
        .map(|n| format!(" \"{}\"", printable(n)))
        .unwrap_or_default();
    let tid = thread
        .thread_id
        .map(|tid| format!(" (tid {tid})"))
        .unwrap_or_default();
    let what = if crashing {
        "Crashing thread"
    } else {
        "Thread"
    };
    format!("{what} {index}{name}{tid}")
}

fn verdict(w: &mut Writer, c: &Classification, grouping: Option<&Grouping<'_>>) {
    let e = &c.evidence;
    let rating = c.exploitability.rating;
    let summary = e.summary();
    let address = e.address_line();
    let fault_frame = c.fault_frame.as_ref().map(FrameRef::describe);
    let signals = c.signals.sentences();
    let signature = printable(grouping.map_or("", |g| &g.signature));
    match w.style.format {
        Format::Text => {
            let class = w.paint(Style::new().bold(), c.fault_class.as_str());
            let rated = w.paint(rating_style(rating), rating.as_str());
            w.line(&format!("Crash:          {class}: {}", printable(&summary)));
            w.line(&format!("Exploitability: {rated}"));
            for reason in &c.exploitability.reasons {
                w.line(&format!("                - {}", printable(reason)));
            }
            if let Some(address) = address {
                w.line(&format!("Address:        {}", printable(&address)));
            }
            if let Some(frame) = fault_frame {
                let frame = w.paint(Style::new().bold(), &printable(&frame));
                w.line(&format!("Fault frame:    {frame}"));
            }
            w.line(&format!("Signature:      {signature}"));
            if !signals.is_empty() {
                w.line(&format!(
                    "Signals:        {}",
                    printable(&signals.join("; "))
                ));
            }
        }
        Format::Markdown => {
            w.line(&format!(
                "### {}: exploitability {}",
                c.fault_class.as_str(),
                rating.as_str()
            ));
            w.line("");
            w.line(&format!("- **Rule**: {}", prose(&summary)));
            for reason in &c.exploitability.reasons {
                w.line(&format!("- **Exploitability**: {}", prose(reason)));
            }
            if let Some(address) = address {
                w.line(&format!("- **Address**: {}", prose(&address)));
            }
            if let Some(frame) = fault_frame {
                w.line(&format!("- **Fault frame**: `{}`", code(&frame)));
            }
            w.line(&format!("- **Signature**: `{}`", code(&signature)));
            for signal in &signals {
                w.line(&format!("- **Signal**: {}", prose(signal)));
            }
        }
    }
}

/// One thread as the report shows it: its heading, its frames (inlined ones expanded) and the
/// index of the fault frame, when it is the crashing thread.
struct ThreadRows<'a> {
    heading: String,
    thread: &'a ThreadView<'a>,
    frames: Vec<FrameRef>,
    fault: Option<usize>,
}

fn trust(thread: &ThreadView<'_>, frame: &FrameRef) -> String {
    if frame.inlined {
        return "inlined".to_owned();
    }
    thread
        .frames
        .get(frame.frame)
        .map(|f| f.trust.to_string())
        .unwrap_or_default()
}

fn text_thread(w: &mut Writer, view: &ThreadRows<'_>) {
    let (thread, fault) = (view.thread, view.fault);
    w.line("");
    let heading = w.paint(Style::new().bold().underline(), &view.heading);
    w.line(&heading);
    let module_width = view
        .frames
        .iter()
        .map(|f| {
            f.module
                .as_deref()
                .map_or(3, |m| printable(m).chars().count())
        })
        .max()
        .unwrap_or(3)
        .min(32);
    for frame in &view.frames {
        let marker = if Some(frame.index) == fault {
            "▶"
        } else {
            " "
        };
        let module = frame.module.as_deref().map_or("???".to_owned(), printable);
        let function = if frame.inlined {
            format!("  ↳ {}", frame_function(frame))
        } else {
            frame_function(frame)
        };
        let source = printable(&frame.source());
        let row = format!(
            "{marker}{:>4}  {module:<module_width$}  {function}{}  [{}]",
            frame.index,
            if source.is_empty() {
                String::new()
            } else {
                format!("  {source}")
            },
            trust(thread, frame)
        );
        let row = if Some(frame.index) == fault {
            w.paint(
                Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
                &row,
            )
        } else if frame.inlined {
            w.paint(Style::new().dimmed(), &row)
        } else {
            row
        };
        w.line(&row);
        if !frame.inlined {
            for variable in frame_variables(thread, frame) {
                let inlined = variable
                    .inlined
                    .as_deref()
                    .map(|f| format!("  (in {}, inlined)", printable(f)))
                    .unwrap_or_default();
                let line = format!(
                    "{:width$}{} = {}{inlined}",
                    "",
                    printable(&variable.value.name),
                    printable(&variable.value.summary()),
                    width = module_width + 10
                );
                w.line(&w.paint(Style::new().dimmed(), &line));
            }
        }
    }
}

/// The parameters and locals of the real frame `frame` belongs to.
fn frame_variables<'a>(thread: &'a ThreadView<'_>, frame: &FrameRef) -> &'a [Variable] {
    thread
        .frames
        .get(frame.frame)
        .and_then(|f| f.variables.as_deref())
        .unwrap_or(&[])
}

fn markdown_thread(w: &mut Writer, view: &ThreadRows<'_>) {
    let (thread, fault) = (view.thread, view.fault);
    w.line("");
    w.line(&format!("#### {}", markdown(&view.heading)));
    w.line("");
    w.line("| # | module | function | source | trust |");
    w.line("| ---: | --- | --- | --- | --- |");
    for frame in &view.frames {
        let bold = |text: String| {
            if Some(frame.index) == fault {
                format!("**{text}**")
            } else {
                text
            }
        };
        let function = format!("`{}`", markdown(&frame_function(frame)));
        let function = if frame.inlined {
            format!("↳ {function} (inlined)")
        } else {
            function
        };
        w.line(&format!(
            "| {} | {} | {} | {} | {} |",
            bold(frame.index.to_string()),
            markdown(frame.module.as_deref().unwrap_or("???")),
            bold(function),
            markdown(&frame.source()),
            trust(thread, frame)
        ));
    }
    let with_variables = view.frames.iter().filter(|f| !f.inlined);
    let mut first = true;
    for frame in with_variables {
        let variables = frame_variables(thread, frame);
        if variables.is_empty() {
            continue;
        }
        if first {
            w.line("");
            w.line("Variables:");
            w.line("");
            first = false;
        }
        let listed: Vec<String> = variables
            .iter()
            .map(|v| format!("`{} = {}`", code(&v.value.name), code(&v.value.summary())))
            .collect();
        w.line(&format!(
            "- frame {} `{}`: {}",
            frame.index,
            code(&frame_function(frame)),
            listed.join(", ")
        ));
    }
}

fn missing_symbols(w: &mut Writer, modules: &[ModuleView<'_>]) {
    let missing: Vec<(String, &str)> = modules
        .iter()
        .filter(|m| {
            m.symbols
                .as_ref()
                .is_some_and(|s| s.symbol_status == SymbolStatus::Missing)
        })
        .map(|m| {
            let file = if m.debug_file.is_empty() {
                &m.filename
            } else {
                &m.debug_file
            };
            (printable(file), m.debug_id.as_str())
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    w.line("");
    match w.style.format {
        Format::Text => {
            let heading = w.paint(
                Style::new().bold().underline(),
                "Missing symbols (upload these debug files)",
            );
            w.line(&heading);
            for (file, id) in &missing {
                w.line(&format!("  {file}  {id}"));
            }
        }
        Format::Markdown => {
            w.line("#### Missing symbols");
            w.line("");
            for (file, id) in &missing {
                w.line(&format!("- `{}` `{id}`", code(file)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_text_cannot_drive_the_terminal_or_break_a_table() {
        assert_eq!(printable("evil\x1b[2Jname"), "evil\\u{1b}[2Jname");
        assert_eq!(printable("tab\there"), "tab\\u{9}here");
        assert_eq!(markdown("a|b`c"), "a\\|b'c");
        assert_eq!(prose("[x](http://e) <b>"), "\\[x\\](http://e) \\<b\\>");
        assert_eq!(printable("std::vector<int>::at"), "std::vector<int>::at");
    }
}
