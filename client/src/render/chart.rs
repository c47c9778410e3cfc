//! A small line chart for the terminal, in plain ASCII: one marker character per series, the
//! y axis labelled at the top, middle and bottom, the x axis with its first and last value.
//! Losses spanning more than two decades (a run that blew up) are drawn on a log scale.

use crate::render::scale::YScale;

/// One curve: `(x, y)` points in x order; non-finite points are skipped.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Marker of the n-th series (they repeat after eight).
pub const MARKERS: [char; 8] = ['*', 'o', '+', 'x', '#', '@', '%', '&'];

/// A value with four significant digits, for axis labels.
fn axis_value(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-3..1e5).contains(&magnitude) {
        return format!("{value:.2e}");
    }
    let decimals = if magnitude == 0.0 {
        0
    } else {
        (3 - magnitude.log10().floor() as i32).clamp(0, 6) as usize
    };
    format!("{value:.decimals$}")
}

/// The chart, `width` columns by `height` rows of plot area, titled, with a legend; x is the
/// epoch.
pub fn line_chart(title: &str, series: &[Series], width: usize, height: usize) -> String {
    line_chart_over("epoch", title, series, width, height)
}

/// [`line_chart`] with x named `x_axis`.
pub fn line_chart_over(
    x_axis: &str,
    title: &str,
    series: &[Series],
    width: usize,
    height: usize,
) -> String {
    let (width, height) = (width.max(10), height.max(3));
    let Some(frame) = Frame::around(series, width, height) else {
        return format!("{title}: nothing to draw yet");
    };
    let grid = draw(series, &frame);
    lay_out(title, x_axis, series, &frame, &grid)
}

/// Where the plot area puts values: x from `x_min` (first column) to `x_max` (last column), y
/// from `low` (bottom row) to `high` (top row), both in the drawn scale.
struct Frame {
    width: usize,
    height: usize,
    x_min: f64,
    x_max: f64,
    x_span: f64,
    scale: YScale,
    low: f64,
    high: f64,
}

impl Frame {
    /// The frame around every finite point of `series`; `None` when there is none.
    fn around(series: &[Series], width: usize, height: usize) -> Option<Frame> {
        let finite: Vec<&(f64, f64)> = series
            .iter()
            .flat_map(|s| &s.points)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if finite.is_empty() {
            return None;
        }
        let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
            finite.iter().map(|p| pick(p)).fold(init, f)
        };
        let (x_min, x_max) = (
            fold(f64::min, f64::INFINITY, |p| p.0),
            fold(f64::max, f64::NEG_INFINITY, |p| p.0),
        );
        let (y_min, y_max) = (
            fold(f64::min, f64::INFINITY, |p| p.1),
            fold(f64::max, f64::NEG_INFINITY, |p| p.1),
        );
        let scale = YScale::for_range(y_min, y_max);
        let (mut low, mut high) = (scale.axis_at(y_min), scale.axis_at(y_max));
        if high - low <= f64::EPSILON * high.abs().max(1.0) {
            let pad = (high.abs() * 0.1).max(1e-9);
            (low, high) = (low - pad, high + pad);
        }
        Some(Frame {
            width,
            height,
            x_min,
            x_max,
            x_span: if x_max > x_min { x_max - x_min } else { 1.0 },
            scale,
            low,
            high,
        })
    }

    /// The x value of a column.
    fn x_at(&self, column: usize) -> f64 {
        self.x_min + column as f64 / (self.width - 1) as f64 * self.x_span
    }

    /// The row a value falls in.
    fn row_of(&self, y: f64) -> usize {
        let fraction = (self.high - self.scale.axis_at(y)) / (self.high - self.low);
        ((fraction * (self.height - 1) as f64).round() as usize).min(self.height - 1)
    }

    /// A series' value at `x`: interpolated between its points (in the drawn scale, so
    /// log-scale lines stay straight), or its only point within half a column of `x`.
    fn value_at(&self, points: &[(f64, f64)], x: f64) -> Option<f64> {
        match points {
            [] => None,
            [only] => {
                ((only.0 - x).abs() <= self.x_span / (2.0 * self.width as f64)).then_some(only.1)
            }
            _ => points.windows(2).find_map(|pair| {
                let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
                (x >= x0 && x <= x1 && x1 > x0).then(|| {
                    let t = (x - x0) / (x1 - x0);
                    let (from, to) = (self.scale.axis_at(y0), self.scale.axis_at(y1));
                    self.scale.value_at(from + t * (to - from))
                })
            }),
        }
    }
}

/// The plot area: each series drawn with its marker, line by line.
fn draw(series: &[Series], frame: &Frame) -> Vec<Vec<char>> {
    let mut grid = vec![vec![' '; frame.width]; frame.height];
    // The first series is drawn last, so it stays on top where curves cross.
    for (index, s) in series.iter().enumerate().rev() {
        let marker = MARKERS[index % MARKERS.len()];
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && frame.scale.shows(*y))
            .collect();
        let mut previous_row: Option<usize> = None;
        for column in 0..frame.width {
            let Some(value) = frame.value_at(&points, frame.x_at(column)) else {
                previous_row = None;
                continue;
            };
            let row = frame.row_of(value);
            // Fill the rows between this column and the last one, so steep lines stay joined.
            let (from, to) = match previous_row {
                Some(prev) if prev < row => (prev + 1, row),
                Some(prev) if prev > row => (row, prev - 1),
                _ => (row, row),
            };
            for line in grid.iter_mut().take(to + 1).skip(from) {
                line[column] = marker;
            }
            grid[row][column] = marker;
            previous_row = Some(row);
        }
    }
    grid
}

/// The title, the plot area's rows with the y axis labelled at the top, middle and bottom, the
/// x axis with its first and last value, and the legend.
fn lay_out(
    title: &str,
    x_axis: &str,
    series: &[Series],
    frame: &Frame,
    grid: &[Vec<char>],
) -> String {
    let Frame {
        width,
        height,
        scale,
        low,
        high,
        ..
    } = *frame;
    let labels: Vec<(usize, String)> = vec![
        (0, axis_value(scale.value_at(high))),
        (
            (height - 1) / 2,
            axis_value(scale.value_at((high + low) / 2.0)),
        ),
        (height - 1, axis_value(scale.value_at(low))),
    ];
    let label_width = labels.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let mut lines = vec![if scale.log {
        format!("{title} (log scale)")
    } else {
        title.to_string()
    }];
    for (row, cells) in grid.iter().enumerate() {
        let label = labels
            .iter()
            .find(|(r, _)| *r == row)
            .map_or("", |(_, l)| l.as_str());
        let cells: String = cells.iter().collect();
        lines.push(format!("{label:>label_width$} |{}", cells.trim_end()));
    }
    lines.push(format!("{:label_width$} +{}", "", "-".repeat(width)));
    let x_label = |x: f64| {
        if x.fract() == 0.0 && x.abs() < 1e9 {
            format!("{x:.0}")
        } else {
            axis_value(x)
        }
    };
    let (first, last) = (x_label(frame.x_min), x_label(frame.x_max));
    let gap = width.saturating_sub(first.len() + last.len()).max(1);
    lines.push(format!(
        "{:label_width$}  {first}{}{last}  {x_axis}",
        "",
        " ".repeat(gap)
    ));
    let legend: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{} {}", MARKERS[i % MARKERS.len()], s.label))
        .collect();
    lines.push(format!("{:label_width$}  {}", "", legend.join("   ")));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(label: &str, ys: &[f64]) -> Series {
        Series {
            label: label.into(),
            points: ys
                .iter()
                .enumerate()
                .map(|(i, y)| (i as f64 + 1.0, *y))
                .collect(),
        }
    }

    #[test]
    fn a_falling_curve_goes_from_top_left_to_bottom_right() {
        let chart = line_chart("Validation loss", &[series("a", &[1.0, 0.5, 0.25])], 20, 5);
        let lines: Vec<&str> = chart.lines().collect();
        assert_eq!(lines[0], "Validation loss");
        assert!(lines[1].starts_with(" 1.000 |*"), "{chart}");
        assert!(lines[5].ends_with('*'), "{chart}");
        assert!(
            lines[5].starts_with("0.2500 |") || lines[5].starts_with("0.250"),
            "{chart}"
        );
        assert_eq!(lines[6].trim(), format!("+{}", "-".repeat(20)));
        assert_eq!(
            lines[7].trim(),
            format!("1{}3  epoch", " ".repeat(18)),
            "{chart}"
        );
        assert_eq!(lines[8].trim(), "* a");
        // Every row of the plot area has a marker: the line is joined.
        assert!(lines[1..6].iter().all(|l| l.contains('*')), "{chart}");
    }

    #[test]
    fn series_get_their_own_markers_and_the_first_stays_on_top() {
        let chart = line_chart(
            "t",
            &[series("first", &[1.0, 1.0]), series("second", &[1.0, 1.0])],
            10,
            3,
        );
        assert!(chart.contains("* first   o second"), "{chart}");
        assert!(!chart.lines().take(4).any(|l| l.contains('o')), "{chart}");
    }

    #[test]
    fn huge_ranges_use_a_log_scale_and_non_finite_points_are_skipped() {
        let chart = line_chart("t", &[series("x", &[1e6, f64::NAN, 1.0, 0.5])], 20, 5);
        assert!(chart.starts_with("t (log scale)"), "{chart}");
        assert!(!chart.contains("NaN"), "{chart}");
        assert_eq!(
            line_chart("t", &[series("x", &[f64::NAN])], 20, 5),
            "t: nothing to draw yet"
        );
    }
}
