//! Loss curves drawn to a PNG or SVG file (`--plot FILE`): for every run, training loss dashed
//! and validation loss solid in the run's colour, with axes, a legend and a title.
//!
//! PNGs are rasterized in memory and encoded with the `png` crate; their text is drawn with a
//! font embedded in the binary (Noto Sans), so no system font is needed. SVGs are written as text.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use strata_proto::EpochRecord;

use crate::render::scale::YScale;

/// Size of the picture, in pixels (SVG user units).
pub const PLOT_WIDTH_PX: u32 = 1000;
pub const PLOT_HEIGHT_PX: u32 = 600;

/// The font family every text element asks for; the embedded font is registered under it.
pub(crate) const FONT_FAMILY: &str = "sans-serif";

/// Distinct colours for up to ten runs (matplotlib's tab10), then they repeat.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One run's curves: `(epoch, loss)` points.
#[derive(Clone, Debug)]
pub struct RunCurves {
    pub label: String,
    pub train: Vec<(f64, f64)>,
    pub val: Vec<(f64, f64)>,
}

impl RunCurves {
    pub fn of(label: impl Into<String>, epochs: &[EpochRecord]) -> RunCurves {
        RunCurves {
            label: label.into(),
            train: epochs
                .iter()
                .map(|e| (f64::from(e.epoch), e.train_loss))
                .collect(),
            val: epochs
                .iter()
                .map(|e| (f64::from(e.epoch), e.val_loss))
                .collect(),
        }
    }
}

/// The file formats `--plot` writes, chosen by the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotFormat {
    Png,
    Svg,
}

impl PlotFormat {
    pub fn of(path: &Path) -> Result<PlotFormat, String> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("png") => Ok(PlotFormat::Png),
            Some("svg") => Ok(PlotFormat::Svg),
            _ => Err(format!(
                "--plot: '{}' must end in .png or .svg",
                path.display()
            )),
        }
    }
}

fn register_embedded_font() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // The bytes are a valid TrueType font shipped by the crate; registering cannot fail.
        let _ =
            plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, ttf_noto_sans::REGULAR);
    });
}

/// Draws `runs` into `path` (PNG or SVG by its extension), titled `title`.
pub fn plot_file(path: &Path, title: &str, runs: &[RunCurves]) -> Result<(), String> {
    write_picture(
        path,
        |area| draw(area, title, runs),
        |area| draw(area, title, runs),
    )
}

/// Draws a picture into `path`, PNG or SVG by its extension: `svg` or `png` draws it on a
/// [`PLOT_WIDTH_PX`] × [`PLOT_HEIGHT_PX`] area of that backend (the same drawing, twice, since a
/// closure cannot be generic over the backend).
pub(crate) fn write_picture(
    path: &Path,
    svg: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
    png: impl FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    let size = (PLOT_WIDTH_PX, PLOT_HEIGHT_PX);
    // Both backends lay text out with the registered font (the SVG one to measure it).
    register_embedded_font();
    let bytes = match PlotFormat::of(path)? {
        PlotFormat::Svg => {
            let mut text = String::new();
            svg(SVGBackend::with_string(&mut text, size).into_drawing_area())?;
            text.into_bytes()
        }
        PlotFormat::Png => {
            let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
            png(BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area())?;
            encode_png(&rgb, size)?
        }
    };
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| format!("cannot encode the PNG: {e}"))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| format!("cannot encode the PNG: {e}"))?;
    writer
        .finish()
        .map_err(|e| format!("cannot encode the PNG: {e}"))?;
    Ok(out)
}

/// A tick label with up to four significant digits.
pub(crate) fn tick(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-3..1e5).contains(&magnitude) {
        return format!("{value:.1e}");
    }
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.to_string()
    }
}

pub(crate) fn drawing<E: std::fmt::Display>(err: E) -> String {
    format!("cannot draw the plot: {err}")
}

/// The points that can be drawn at all: both coordinates finite.
pub(crate) fn finite(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// The ranges of the axes: epochs from 1 to `x_max`, and losses from `low` to `high` in the
/// drawn scale, padded so that no curve runs along the frame.
struct Axes {
    x_max: f64,
    scale: YScale,
    low: f64,
    high: f64,
}

impl Axes {
    fn around(runs: &[RunCurves]) -> Axes {
        let all: Vec<(f64, f64)> = runs
            .iter()
            .flat_map(|r| finite(&r.train).into_iter().chain(finite(&r.val)))
            .collect();
        let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max).max(2.0);
        let y_min = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let y_max = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let scale = YScale::for_range(y_min, y_max);
        let (mut low, mut high) = if all.is_empty() {
            (0.0, 1.0)
        } else {
            (scale.axis_at(y_min), scale.axis_at(y_max))
        };
        let pad = ((high - low) * 0.05).max(1e-6);
        if !scale.log {
            low = (low - pad).max(if y_min >= 0.0 { 0.0 } else { f64::MIN });
        } else {
            low -= pad;
        }
        high += pad;
        Axes {
            x_max,
            scale,
            low,
            high,
        }
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    runs: &[RunCurves],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(drawing)?;
    let Axes {
        x_max,
        scale,
        low,
        high,
    } = Axes::around(runs);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT_FAMILY, 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(1.0..x_max, low..high)
        .map_err(drawing)?;
    let y_description = if scale.log {
        "loss (log scale)"
    } else {
        "loss"
    };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_description)
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|v| tick(scale.value_at(*v)))
        .label_style((FONT_FAMILY, 15))
        .axis_desc_style((FONT_FAMILY, 17))
        .draw()
        .map_err(drawing)?;

    for (index, run) in runs.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let style = colour.stroke_width(2);
        let on_axis = |points: &[(f64, f64)]| -> Vec<(f64, f64)> {
            finite(points)
                .into_iter()
                .filter(|(_, y)| scale.shows(*y))
                .map(|(x, y)| (x, scale.axis_at(y)))
                .collect()
        };
        chart
            .draw_series(LineSeries::new(on_axis(&run.val), style))
            .map_err(drawing)?
            .label(format!("{} validation", run.label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart
            .draw_series(DashedLineSeries::new(on_axis(&run.train), 8, 5, style))
            .map_err(drawing)?
            .label(format!("{} training", run.label))
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (8, 0)], style)
                    + PathElement::new(vec![(13, 0), (24, 0)], style)
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
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

    fn runs() -> Vec<RunCurves> {
        let epochs: Vec<EpochRecord> = (1..=10)
            .map(|e| EpochRecord {
                epoch: e,
                train_loss: 1.0 / f64::from(e),
                val_loss: 1.1 / f64::from(e) + 0.05,
                ..EpochRecord::default()
            })
            .collect();
        vec![
            RunCurves::of("a", &epochs),
            RunCurves::of("b", &epochs[..5]),
        ]
    }

    #[test]
    fn the_extension_picks_the_format() {
        assert_eq!(PlotFormat::of(Path::new("x.PNG")), Ok(PlotFormat::Png));
        assert_eq!(PlotFormat::of(Path::new("dir/x.svg")), Ok(PlotFormat::Svg));
        let err = PlotFormat::of(Path::new("x.pdf")).unwrap_err();
        assert!(err.contains(".png or .svg"), "{err}");
    }

    #[test]
    fn png_has_the_promised_size_and_is_not_blank() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.png");
        plot_file(
            &path,
            "Training (dashed) and validation (solid) loss",
            &runs(),
        )
        .unwrap();
        let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (PLOT_WIDTH_PX, PLOT_HEIGHT_PX));
        let pixels = &pixels[..info.buffer_size()];
        // Curves in the first two palette colours, and dark text (title, ticks, legend).
        for colour in [PALETTE[0], PALETTE[1], RGBColor(0, 0, 0)] {
            let found = pixels
                .chunks(3)
                .any(|p| p == [colour.0, colour.1, colour.2]);
            assert!(found, "no pixel of {colour:?}");
        }
    }

    #[test]
    fn svg_has_title_legend_and_dashed_training_curves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        plot_file(&path, "Loss of two runs", &runs()).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        assert!(svg.contains(r#"width="1000" height="600""#));
        for text in [
            "Loss of two runs",
            "a validation",
            "b training",
            "epoch",
            "loss",
        ] {
            assert!(svg.contains(text), "no '{text}' in the SVG");
        }
    }

    #[test]
    fn diverged_runs_switch_to_a_log_scale() {
        let epochs = vec![
            EpochRecord {
                epoch: 1,
                train_loss: 4e17,
                val_loss: 29.0,
                ..EpochRecord::default()
            },
            EpochRecord {
                epoch: 2,
                train_loss: f64::NAN,
                val_loss: 0.5,
                ..EpochRecord::default()
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        plot_file(&path, "t", &[RunCurves::of("x", &epochs)]).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("log scale"));
    }
}
