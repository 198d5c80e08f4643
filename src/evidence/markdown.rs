//! A group's evidence as Markdown, for a ticket, a chat or a coding assistant: short sections
//! in the order an engineer reads them, each claim with its numbers and a link.

use std::fmt::Write;

use super::GroupEvidence;

/// `text` inside an inline code span: one line, no backticks, no control characters.
fn code(text: &str) -> String {
    text.chars()
        .take(300)
        .filter(|c| !c.is_control())
        .map(|c| if c == '`' { '\'' } else { c })
        .collect()
}

/// Text from a crash report in Markdown: one line, no markup characters that could turn it
/// into a link, an image or a heading.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().take(300) {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// Unix seconds as `2026-12-05 14:02 UTC`.
fn when(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// The evidence as Markdown.
pub fn render(e: &GroupEvidence) -> String {
    let mut out = String::new();
    let g = &e.group;
    let _ = writeln!(out, "## Group {}: {}\n", g.id, plain(&g.signature));
    let _ = writeln!(
        out,
        "{} crashes from {} users, {} → {}; state {}. [Open in faultline]({})\n",
        g.event_count,
        g.user_count,
        when(g.first_seen),
        when(g.last_seen),
        g.state.as_str(),
        e.links.group
    );
    verdict(&mut out, e);
    suspects(&mut out, e);
    correlations(&mut out, e);
    timeline(&mut out, e);
    history(&mut out, e);
    regression(&mut out, e);
    rates(&mut out, e);
    out
}

/// A few lines of what explains the group, for alert messages and tickets (`None` when nothing
/// does yet): what is over-represented, the deploy it followed, the groups that failed the same
/// way; first, when the channel opted in (`with_variables`), the variable the fault address
/// came from and the fault frame's variables.
pub fn summary(e: &GroupEvidence, with_variables: bool) -> Option<String> {
    let mut lines = Vec::new();
    if with_variables {
        if let Some(sentence) = &e.verdict.fault_variable {
            lines.push(format!("Fault address: {}", plain(sentence)));
        }
        if !e.verdict.variables.is_empty() {
            let values: Vec<String> = e
                .verdict
                .variables
                .iter()
                .take(8)
                .map(|v| format!("{} = {}", plain(&v.name), plain(&v.value)))
                .collect();
            lines.push(format!("Fault frame's variables: {}", values.join(", ")));
        }
    }
    if let Some(block) = &e.correlations {
        for d in block
            .report
            .deviations
            .iter()
            .filter(|d| d.group_share > d.reference_share)
            .take(3)
        {
            let items: Vec<String> = d
                .items
                .iter()
                .map(|(k, v)| format!("{} = {}", plain(k), plain(v)))
                .collect();
            lines.push(format!(
                "Over-represented: {} ({} in this group vs {} overall)",
                items.join(" and "),
                percent(d.group_share),
                percent(d.reference_share)
            ));
        }
    }
    if let (Some(release), Some(d)) = (&e.timeline.first_release, &e.timeline.deploy) {
        lines.push(format!(
            "First seen in {}, {} minutes after its deploy to {} finished",
            plain(release),
            d.minutes_before,
            plain(&d.environment)
        ));
    }
    for other in e.history.iter().take(3) {
        let fixed = other
            .resolved_in
            .as_deref()
            .map(|r| format!(", resolved in {}", plain(r)))
            .unwrap_or_default();
        lines.push(format!(
            "Failed the same way before: group {} ({}{fixed})",
            other.id, other.state
        ));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn verdict(out: &mut String, e: &GroupEvidence) {
    let v = &e.verdict;
    let _ = writeln!(out, "### Verdict\n");
    let mut line = format!("- **{}**", plain(&v.fault_class));
    if let Some(reason) = &v.crash_reason {
        let _ = write!(line, ": {}", plain(reason));
    }
    if let Some(address) = &v.address {
        let _ = write!(line, " at `{}`", plain(address));
    }
    let _ = writeln!(out, "{line}");
    if let Some(rule) = &v.rule {
        let _ = writeln!(out, "- Why: {}", plain(rule));
    }
    if let Some(frame) = &v.fault_frame {
        let mut place = frame
            .function
            .as_deref()
            .map(plain)
            .unwrap_or_else(|| "an unsymbolicated frame".into());
        if let Some(module) = &frame.module {
            let _ = write!(place, " in {}", plain(module));
        }
        if let (Some(file), Some(line)) = (&frame.file, frame.line) {
            let _ = write!(place, " ({}:{line})", plain(file));
        }
        let _ = writeln!(out, "- Fault frame: {place}");
    }
    if let Some(sentence) = &v.fault_variable {
        let _ = writeln!(out, "- The address: {}", plain(sentence));
    }
    if !v.variables.is_empty() {
        let listed: Vec<String> = v
            .variables
            .iter()
            .map(|l| format!("`{} = {}`", code(&l.name), code(&l.value)))
            .collect();
        let _ = writeln!(out, "- Its variables: {}", listed.join(", "));
    }
    if let Some(crash) = &e.links.crash {
        let _ = writeln!(out, "- [The crash, at its fault frame]({crash})");
    }
    out.push('\n');
}

fn suspects(out: &mut String, e: &GroupEvidence) {
    let _ = writeln!(out, "### Suspect commits\n");
    if e.suspects.is_empty() {
        let why = e
            .suspects_note
            .as_deref()
            .unwrap_or("none found (or not computed yet)");
        let _ = writeln!(out, "None: {}.\n", plain(why));
        return;
    }
    for s in e.suspects.iter().take(3) {
        let c = &s.commit;
        let sha: String = c.sha.chars().take(10).collect();
        let sha = match &c.link {
            Some(link) => format!("[`{sha}`]({link})"),
            None => format!("`{sha}`"),
        };
        let _ = writeln!(
            out,
            "- {sha} {} — {} (score {:.2})",
            plain(&c.summary),
            plain(&c.author_name),
            s.score
        );
        for reason in s.reasons.iter().take(3) {
            let _ = writeln!(out, "  - {}", plain(&reason.words));
        }
    }
    out.push('\n');
}

fn correlations(out: &mut String, e: &GroupEvidence) {
    let _ = writeln!(out, "### Correlations\n");
    let Some(block) = &e.correlations else {
        let _ = writeln!(out, "Not computed yet (a group needs 5 crashes).\n");
        return;
    };
    let r = &block.report;
    let _ = writeln!(
        out,
        "{} crashes of the group against {} of the project since {}{}, computed {}{}:\n",
        r.group_crashes,
        r.reference_crashes,
        when(r.since),
        if r.releases.is_empty() {
            String::new()
        } else {
            format!(" in {}", plain(&r.releases.join(", ")))
        },
        when(r.computed_at),
        if block.stale { " (stale)" } else { "" }
    );
    if r.deviations.is_empty() {
        let _ = writeln!(out, "Nothing is over-represented.\n");
        return;
    }
    for d in r.deviations.iter().take(10) {
        let items: Vec<String> = d
            .items
            .iter()
            .map(|(k, v)| format!("`{} = {}`", plain(k), plain(v)))
            .collect();
        let _ = writeln!(
            out,
            "- ({} in this group vs {} overall) {}",
            percent(d.group_share),
            percent(d.reference_share),
            items.join(" ∧ ")
        );
    }
    out.push('\n');
}

fn timeline(out: &mut String, e: &GroupEvidence) {
    let t = &e.timeline;
    let _ = writeln!(out, "### Timeline\n");
    let mut line = format!("- First seen {}", when(t.first_seen));
    if let Some(release) = &t.first_release {
        let _ = write!(line, " in {}", plain(release));
    }
    if let Some(d) = &t.deploy {
        let _ = write!(
            line,
            ", {} minutes after the deploy{} to {} finished",
            d.minutes_before,
            d.name
                .as_deref()
                .map(|n| format!(" `{}`", plain(n)))
                .unwrap_or_default(),
            plain(&d.environment)
        );
    }
    if let Some(adoption) = t.adoption_then {
        let _ = write!(line, "; that release had {adoption:.0}% of sessions then");
    }
    let _ = writeln!(out, "{line}.");
    if let Some(spike) = &t.spike {
        let together: Vec<String> = spike.together.iter().map(|g| g.id.to_string()).collect();
        let _ = writeln!(
            out,
            "- Spiked at {} with {} crashes in the hour ({:.1} an hour the day before){}.",
            when(spike.hour),
            spike.events,
            spike.before_per_hour,
            if together.is_empty() {
                String::new()
            } else {
                format!(", together with groups {}", together.join(", "))
            }
        );
    }
    for other in &t.started_together {
        let _ = writeln!(
            out,
            "- Group {} started within the hour ({} shared frames): {}",
            other.id,
            other.shared_frames,
            plain(&other.signature)
        );
    }
    out.push('\n');
}

fn history(out: &mut String, e: &GroupEvidence) {
    let _ = writeln!(out, "### Has this failed before\n");
    if e.history.is_empty() {
        let _ = writeln!(out, "No other group fails in the same function.\n");
        return;
    }
    for other in &e.history {
        let fixed = other
            .resolved_in
            .as_deref()
            .map(|r| format!(", resolved in {}", plain(r)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- Group {} ({}{fixed}), last seen {}: {}",
            other.id,
            other.state,
            when(other.last_seen),
            plain(&other.signature)
        );
    }
    out.push('\n');
}

fn regression(out: &mut String, e: &GroupEvidence) {
    let Some(r) = &e.regression else {
        return;
    };
    let _ = writeln!(out, "### It came back\n");
    let _ = writeln!(
        out,
        "Resolved in {}, back in {}. Commits in between that changed its frames' files:",
        plain(&r.resolved_in),
        plain(&r.came_back_in)
    );
    if r.commits.is_empty() {
        let _ = writeln!(
            out,
            "\nNone recorded (releases need their commits: `sentry-cli releases set-commits`)."
        );
    }
    for c in &r.commits {
        let sha: String = c.sha.chars().take(10).collect();
        let files: Vec<String> = c.files.iter().map(|f| plain(f)).collect();
        let _ = writeln!(
            out,
            "- `{sha}` {} — {} ({}; {})",
            plain(&c.summary),
            plain(c.author.as_deref().unwrap_or("unknown")),
            plain(&c.release),
            files.join(", ")
        );
    }
    out.push('\n');
}

fn rates(out: &mut String, e: &GroupEvidence) {
    if e.rates.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Rate per release\n");
    for r in &e.rates {
        let per = r
            .per_1000_sessions
            .map(|p| format!("{p:.3} per 1,000 sessions"))
            .unwrap_or_else(|| "no sessions recorded".into());
        let _ = writeln!(out, "- {}: {} crashes, {per}", plain(&r.release), r.crashes);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_text_cannot_become_markup_and_dates_read_as_dates() {
        assert_eq!(
            plain("[x](http://evil) `y`\n# h"),
            "\\[x\\](http://evil) \\`y\\` \\# h"
        );
        assert_eq!(when(1_796_479_320), "2026-12-05 14:02 UTC");
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
    }
}
