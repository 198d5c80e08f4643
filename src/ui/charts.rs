//! Crash counts over time drawn as inline SVG on the server (numbers only, so the markup is
//! safe to emit unescaped): a sparkline per group on the groups page, bars on a group's page.

use std::fmt::Write;

/// Hourly counts as one value per hour from `start` (Unix seconds, an hour boundary) for
/// `hours` hours; `counts` are (hour start, events) pairs, hours without crashes absent.
pub fn per_hour(counts: &[(i64, i64)], start: i64, hours: usize) -> Vec<i64> {
    let mut out = vec![0; hours];
    for &(hour, events) in counts {
        let slot = (hour - start).div_euclid(3600);
        if (0..hours as i64).contains(&slot) {
            out[slot as usize] += events;
        }
    }
    out
}

/// The start of the hour `hours - 1` hours before the one `now` is in: the first slot of a
/// chart ending with the current hour.
pub fn window_start(now: i64, hours: usize) -> i64 {
    now.div_euclid(3600) * 3600 - (hours as i64 - 1) * 3600
}

/// A small line of `values` (the groups page): 120 × 24 units, its own scale.
pub fn sparkline(values: &[i64]) -> String {
    let (w, h) = (120.0, 24.0);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        w / (values.len() - 1) as f64
    } else {
        w
    };
    let mut points = String::new();
    for (i, v) in values.iter().enumerate() {
        let x = i as f64 * step;
        let y = h - 1.0 - (*v as f64 / max) * (h - 2.0);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    let total: i64 = values.iter().sum();
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"{total} crashes in the last {} hours\"><polyline points=\"{}\"/></svg>",
        values.len(),
        points.trim_end()
    )
}

/// Bars of `values` (a group's page), with the largest count as its label.
pub fn bars(values: &[i64]) -> String {
    let n = values.len().max(1) as f64;
    let (w, h) = (n * 4.0, 80.0);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut out = format!(
        "<svg class=\"bars\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"crashes per hour, at most {} in an hour\">",
        max as i64
    );
    for (i, v) in values.iter().enumerate() {
        if *v == 0 {
            continue;
        }
        let bar = (*v as f64 / max) * (h - 1.0);
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"3\" height=\"{:.1}\"><title>{v}</title></rect>",
            i * 4,
            h - bar,
            bar
        );
    }
    out.push_str("</svg>");
    out
}

/// Crash-free sessions per 24 hours of an hourly window, as the points of a line on the same
/// x scale as `bars` (4 units an hour) and 80 units high: (points, the lowest percentage the
/// scale shows). Days without sessions have no point.
pub fn crash_free_line(sessions: &[i64], crashed: &[i64]) -> (String, f64) {
    let days: Vec<(usize, f64)> = sessions
        .chunks(24)
        .zip(crashed.chunks(24))
        .enumerate()
        .filter_map(|(day, (s, c))| {
            let (s, c): (i64, i64) = (s.iter().sum(), c.iter().sum());
            (s > 0).then(|| (day, 100.0 * (s - c.min(s)) as f64 / s as f64))
        })
        .collect();
    let lowest = days.iter().map(|d| d.1).fold(100.0f64, f64::min);
    let floor = (lowest.floor() - 1.0).clamp(0.0, 99.0);
    let h = 80.0;
    let mut points = String::new();
    for (day, percent) in days {
        let x = day as f64 * 96.0 + 48.0;
        let y = h - 1.0 - (percent - floor) / (100.0 - floor) * (h - 2.0);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    (points.trim_end().to_owned(), floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_land_in_their_slots() {
        let start = window_start(10 * 3600 + 59, 4);
        assert_eq!(start, 7 * 3600);
        let values = per_hour(&[(6 * 3600, 9), (7 * 3600, 1), (10 * 3600, 5)], start, 4);
        assert_eq!(
            values,
            vec![1, 0, 0, 5],
            "the hour before the window is left out"
        );
    }

    #[test]
    fn charts_are_numbers_only() {
        let line = sparkline(&[0, 2, 1]);
        assert!(
            line.contains("points=\"0.0,23.0 60.0,1.0 120.0,12.0\""),
            "{line}"
        );
        assert!(line.contains("3 crashes"));
        let bars = bars(&[0, 4, 2]);
        assert_eq!(bars.matches("<rect").count(), 2, "empty hours draw nothing");
        assert!(bars.contains("<title>4</title>"));
    }

    #[test]
    fn crash_free_days_are_points_on_their_own_scale() {
        let mut sessions = vec![0; 72];
        let mut crashed = vec![0; 72];
        sessions[0] = 100;
        crashed[0] = 5;
        sessions[50] = 10;
        let (points, floor) = crash_free_line(&sessions, &crashed);
        assert_eq!(floor, 94.0, "95 % is the lowest day");
        assert_eq!(
            points, "48.0,66.0 240.0,1.0",
            "day 1 at 95 %, day 2 empty, day 3 at 100 %"
        );
    }
}
