//! `strata lr-find --plot FILE`: every probed group's smoothed loss against its rate (log
//! scale), one colour per group, with a dot at the rate `--apply` would use — fastai's
//! `plot_lr_find`, for several groups in one picture.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::render::plot::{drawing, finite, tick, write_picture, FONT_FAMILY, PALETTE};
use crate::render::scale::YScale;

/// One group's curve: `(rate, smoothed loss)` in sweep order, and the suggested point.
#[derive(Clone, Debug)]
pub struct RateCurve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub suggested: Option<(f64, f64)>,
}

/// Draws `curves` into `path` (PNG or SVG by its extension), titled `title`.
pub fn plot_rates(path: &Path, title: &str, curves: &[RateCurve]) -> Result<(), String> {
    write_picture(
        path,
        |area| draw(area, title, curves),
        |area| draw(area, title, curves),
    )
}

/// The drawable points: finite, with a positive rate (the x axis is logarithmic).
fn drawable(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    finite(points)
        .into_iter()
        .filter(|(x, _)| *x > 0.0)
        .collect()
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    curves: &[RateCurve],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(drawing)?;
    let all: Vec<(f64, f64)> = curves.iter().flat_map(|c| drawable(&c.points)).collect();
    let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
        all.iter().map(pick).fold(init, f)
    };
    let (x_min, x_max) = match all.is_empty() {
        true => (1e-7, 10.0),
        false => (
            fold(f64::min, f64::INFINITY, |p| p.0),
            fold(f64::max, f64::NEG_INFINITY, |p| p.0),
        ),
    };
    let x_max = if x_max > x_min { x_max } else { x_min * 10.0 };
    let (y_min, y_max) = (
        fold(f64::min, f64::INFINITY, |p| p.1),
        fold(f64::max, f64::NEG_INFINITY, |p| p.1),
    );
    let scale = YScale::for_range(y_min, y_max);
    let (low, high) = if all.is_empty() {
        (0.0, 1.0)
    } else {
        (scale.axis_at(y_min), scale.axis_at(y_max))
    };
    let pad = ((high - low) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT_FAMILY, 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((x_min..x_max).log_scale(), (low - pad)..(high + pad))
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("learning rate of the probed group (log scale)")
        .y_desc(if scale.log {
            "smoothed loss (log scale)"
        } else {
            "smoothed loss"
        })
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .y_label_formatter(&|v| tick(scale.value_at(*v)))
        .label_style((FONT_FAMILY, 15))
        .axis_desc_style((FONT_FAMILY, 17))
        .draw()
        .map_err(drawing)?;
    for (index, curve) in curves.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let style = colour.stroke_width(2);
        let on_axis: Vec<(f64, f64)> = drawable(&curve.points)
            .into_iter()
            .filter(|(_, y)| scale.shows(*y))
            .map(|(x, y)| (x, scale.axis_at(y)))
            .collect();
        chart
            .draw_series(LineSeries::new(on_axis, style))
            .map_err(drawing)?
            .label(curve.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        if let Some((lr, loss)) = curve
            .suggested
            .filter(|(lr, loss)| lr.is_finite() && *lr > 0.0 && scale.shows(*loss))
        {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (lr, scale.axis_at(loss)),
                    6,
                    colour.filled(),
                )))
                .map_err(drawing)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 15))
        .draw()
        .map_err(drawing)?;
    root.present().map_err(drawing)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curves() -> Vec<RateCurve> {
        let points = |shift: f64| -> Vec<(f64, f64)> {
            (0..100)
                .map(|i| {
                    let lr = 1e-7 * 10f64.powf(f64::from(i) * 0.08);
                    let x = lr.log10() - shift;
                    (lr, 1.0 + 0.1 * x * x)
                })
                .collect()
        };
        vec![
            RateCurve {
                label: "layer0 (valley 1e-3)".into(),
                points: points(-3.0),
                suggested: Some((1e-3, 1.0)),
            },
            RateCurve {
                label: "head (valley 1e-2)".into(),
                points: points(-2.0),
                suggested: None,
            },
        ]
    }

    #[test]
    fn svg_names_every_group_and_the_log_axis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rates.svg");
        plot_rates(&path, "Learning-rate range test", &curves()).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in [
            "Learning-rate range test",
            "layer0 (valley 1e-3)",
            "head (valley 1e-2)",
            "log scale",
        ] {
            assert!(svg.contains(text), "no '{text}' in the SVG");
        }
    }

    #[test]
    fn png_draws_each_group_in_its_colour() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rates.png");
        plot_rates(&path, "t", &curves()).unwrap();
        let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        let pixels = &pixels[..info.buffer_size()];
        for colour in [PALETTE[0], PALETTE[1]] {
            assert!(
                pixels
                    .chunks(3)
                    .any(|p| p == [colour.0, colour.1, colour.2]),
                "no pixel of {colour:?}"
            );
        }
    }
}
