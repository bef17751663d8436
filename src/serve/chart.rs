//! Server-rendered SVG charts for the dashboard (pure): a job's snapshot sizes over a window of days as a
//! line with points, so the page needs no script. Text in the SVG is escaped; numbers only otherwise.

use std::fmt::Write;

pub const WIDTH: f64 = 320.0;
pub const HEIGHT: f64 = 80.0;
const PAD: f64 = 4.0;

/// A line chart of `points` (time in µs, value) over `[now - days, now]`: an `<svg>` element with a
/// `<title>` saying what it shows (read by screen readers and shown on hover), or a short text when there
/// is nothing to draw. Points outside the window are left out.
pub fn trend(points: &[(i64, u64)], now_us: i64, days: u32, title: &str) -> String {
    let from = now_us - i64::from(days) * 86_400_000_000;
    let shown: Vec<(i64, u64)> = points.iter().copied().filter(|(t, _)| *t >= from && *t <= now_us).collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"trend\" role=\"img\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
        escape(title)
    );
    if shown.is_empty() {
        let _ = write!(svg, "<text x=\"{PAD}\" y=\"{}\">no snapshot in {days} days</text></svg>", HEIGHT / 2.0);
        return svg;
    }
    let max = shown.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let span = (now_us - from).max(1) as f64;
    let xy = |(t, v): (i64, u64)| {
        let x = PAD + (t - from) as f64 / span * (WIDTH - 2.0 * PAD);
        let y = HEIGHT - PAD - v as f64 / max * (HEIGHT - 2.0 * PAD);
        (x, y)
    };
    let path: Vec<String> = shown.iter().map(|&p| xy(p)).map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(svg, "<polyline class=\"line\" fill=\"none\" points=\"{}\"/>", path.join(" "));
    for &p in &shown {
        let (x, y) = xy(p);
        let _ = write!(svg, "<circle class=\"point\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\"/>");
    }
    svg.push_str("</svg>");
    svg
}

/// Text for XML: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn points_are_placed_by_time_and_value() {
        let now = 100 * DAY;
        let svg = trend(&[(now - 90 * DAY, 0), (now - 45 * DAY, 50), (now, 100)], now, 90, "sizes");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3);
        // Oldest at the left edge and bottom, newest at the right edge and top, the middle in between.
        assert!(svg.contains("points=\"4.0,76.0 160.0,40.0 316.0,4.0\""), "{svg}");
    }

    #[test]
    fn points_outside_the_window_are_left_out_and_an_empty_chart_says_so() {
        let now = 100 * DAY;
        let svg = trend(&[(now - 91 * DAY, 5), (now - DAY, 5)], now, 90, "t");
        assert_eq!(svg.matches("<circle").count(), 1);
        let empty = trend(&[(now - 91 * DAY, 5)], now, 90, "t");
        assert!(empty.contains("no snapshot in 90 days") && !empty.contains("<circle"), "{empty}");
    }

    #[test]
    fn the_title_is_escaped() {
        let svg = trend(&[], 0, 90, "<script>alert('x')</script> & \"q\"");
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"), "{svg}");
    }

    #[test]
    fn equal_values_and_a_single_point_stay_inside_the_box() {
        let now = 10 * DAY;
        for pts in [vec![(now, 0u64)], vec![(now - DAY, 7), (now, 7)]] {
            let svg = trend(&pts, now, 90, "t");
            for n in svg.split(['"', ',', ' ']).filter_map(|w| w.parse::<f64>().ok()) {
                assert!((0.0..=WIDTH).contains(&n), "{n} in {svg}");
            }
        }
    }
}
