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
use minidump::Module;

use crate::classify::frames::{thread_frames, FrameRef};
use crate::classify::Rating;
use crate::pipeline::CrashReport;
use crate::process::modules::SymbolStatus;

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

fn frame_source(frame: &FrameRef) -> String {
    match (&frame.file, frame.line) {
        (Some(file), Some(line)) => format!("{}:{line}", printable(file)),
        (Some(file), None) => printable(file),
        _ => String::new(),
    }
}

fn frame_function(frame: &FrameRef) -> String {
    frame
        .function
        .as_deref()
        .map_or_else(|| "??".to_owned(), printable)
}

/// Renders `report` for a person.
pub fn render(report: &CrashReport, style: ReportStyle) -> String {
    let mut w = Writer {
        out: String::new(),
        style,
    };
    verdict(&mut w, report);
    let state = &report.processed.state;
    let fault_index = report.classification.fault_frame.as_ref().map(|f| f.index);
    let crashing = state.requesting_thread;
    let mut order: Vec<usize> = crashing.into_iter().collect();
    if style.threads == Threads::All || crashing.is_none() {
        order.extend((0..state.threads.len()).filter(|i| Some(*i) != crashing));
    }
    for index in order {
        let Some(thread) = state.threads.get(index) else {
            continue;
        };
        let name = thread
            .thread_name
            .as_deref()
            .map(|n| format!(" \"{}\"", printable(n)))
            .unwrap_or_default();
        let heading = format!(
            "{} {index}{name} (tid {})",
            if Some(index) == crashing {
                "Crashing thread"
            } else {
                "Thread"
            },
            thread.thread_id
        );
        let frames = thread_frames(thread);
        let fault = if Some(index) == crashing {
            fault_index
        } else {
            None
        };
        let view = ThreadView {
            heading,
            thread,
            frames,
            fault,
        };
        match style.format {
            Format::Text => text_thread(&mut w, &view),
            Format::Markdown => markdown_thread(&mut w, &view),
        }
    }
    missing_symbols(&mut w, report);
    w.out
}

fn verdict(w: &mut Writer, report: &CrashReport) {
    let c = &report.classification;
    let e = &c.evidence;
    let rating = c.exploitability.rating;
    let access = serde_json::to_value(e.access)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let address = e.address.as_deref().map(|a| {
        let instruction = e
            .instruction
            .as_deref()
            .map(|i| format!(", instruction `{}`", printable(i)))
            .unwrap_or_default();
        format!("{a} ({access} access{instruction})")
    });
    let fault_frame = c.fault_frame.as_ref().map(|f| {
        let source = frame_source(f);
        format!(
            "#{} {}{}{}",
            f.index,
            frame_function(f),
            f.module
                .as_deref()
                .map(|m| format!(" in {}", printable(m)))
                .unwrap_or_default(),
            if source.is_empty() {
                String::new()
            } else {
                format!(" at {source}")
            }
        )
    });
    let mut signals = Vec::new();
    if c.signals.likely_use_after_free {
        signals.push("likely use-after-free (freed-memory pattern)".to_owned());
    }
    if c.signals.guard_page {
        signals.push("hit a guard page".to_owned());
    }
    if !c.signals.possible_bit_flips.is_empty() {
        signals.push(format!(
            "{} possible bit flip(s) of the address",
            c.signals.possible_bit_flips.len()
        ));
    }
    signals.extend(c.signals.crash_inconsistencies.iter().map(|s| printable(s)));
    let signature = printable(&report.signature.text);
    match w.style.format {
        Format::Text => {
            let class = w.paint(Style::new().bold(), c.fault_class.as_str());
            let rated = w.paint(rating_style(rating), rating.as_str());
            w.line(&format!("Crash:          {class}: {}", printable(&e.rule)));
            w.line(&format!("Exploitability: {rated}"));
            for reason in &c.exploitability.reasons {
                w.line(&format!("                - {}", printable(reason)));
            }
            if let Some(address) = address {
                w.line(&format!("Address:        {address}"));
            }
            if let Some(frame) = fault_frame {
                let frame = w.paint(Style::new().bold(), &frame);
                w.line(&format!("Fault frame:    {frame}"));
            }
            w.line(&format!("Signature:      {signature}"));
            if !signals.is_empty() {
                w.line(&format!("Signals:        {}", signals.join("; ")));
            }
        }
        Format::Markdown => {
            w.line(&format!(
                "### {}: exploitability {}",
                c.fault_class.as_str(),
                rating.as_str()
            ));
            w.line("");
            w.line(&format!("- **Rule**: {}", prose(&e.rule)));
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
struct ThreadView<'a> {
    heading: String,
    thread: &'a minidump_unwind::CallStack,
    frames: Vec<FrameRef>,
    fault: Option<usize>,
}

fn trust(thread: &minidump_unwind::CallStack, frame: &FrameRef) -> String {
    if frame.inlined {
        return "inlined".to_owned();
    }
    thread
        .frames
        .get(frame.frame)
        .map(|f| f.trust.as_str().to_owned())
        .unwrap_or_default()
}

fn text_thread(w: &mut Writer, view: &ThreadView<'_>) {
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
        let source = frame_source(frame);
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
    }
}

fn markdown_thread(w: &mut Writer, view: &ThreadView<'_>) {
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
            markdown(&frame_source(frame)),
            trust(thread, frame)
        ));
    }
}

fn missing_symbols(w: &mut Writer, report: &CrashReport) {
    let processed = &report.processed;
    let missing: Vec<(String, String)> = processed
        .state
        .modules
        .iter()
        .zip(&processed.modules)
        .filter(|(_, r)| r.status == SymbolStatus::Missing)
        .filter_map(|(m, _)| {
            let id = m.debug_identifier()?.breakpad().to_string();
            let file = m.debug_file().unwrap_or_else(|| m.code_file());
            Some((printable(&file), id))
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
