//! Plots of a run, each drawn once per backend: SVG (inlined in report.html) and PNG.
//! Chart shapes: a percentile spectrum, a time series, an x-y plot, stacked parts of a
//! whole per second, and a bar chart. Text uses DejaVu Sans embedded in the binary: no system fonts needed.

mod bars;
mod spectrum;
mod stacked;
mod timeseries;
mod xy;

use std::path::Path;
use std::sync::Once;

use anyhow::Context as _;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

pub use bars::BarPlot;
pub use spectrum::{SpectrumPlot, x_of as spectrum_x};
pub use stacked::StackedPlot;
pub use timeseries::{Series, TimeSeriesPlot};
pub use xy::{XyPlot, XySeries};

/// Size of every plot in pixels (the SVG scales to the page in report.html).
pub const WIDTH: u32 = 1100;
/// Height of every plot in pixels.
pub const HEIGHT: u32 = 540;
/// Width of the legend panel right of the plotting area: legends never hide data.
pub const LEGEND_WIDTH: u32 = 250;
/// Space around the chart.
pub const MARGIN: u32 = 16;
/// Room for the x tick labels and the x axis title.
pub const X_LABEL_AREA: u32 = 52;
/// Room for the y tick labels and the y axis title.
pub const Y_LABEL_AREA: u32 = 76;
/// Font family; DejaVu Sans is registered under this name.
pub const FONT: &str = "sans-serif";
/// Chart titles.
pub const TITLE_SIZE: u32 = 24;
/// Tick labels, legend and annotations.
pub const LABEL_SIZE: u32 = 15;
/// Axis titles.
pub const AXIS_TITLE_SIZE: u32 = 16;
/// Main series.
pub const LINE_WIDTH: u32 = 2;
/// Height of one legend row.
pub const LEGEND_ROW: i32 = 24;

/// Series colours (colour-blind friendly, Okabe–Ito), in order of use.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
];
/// SLO thresholds.
pub const THRESHOLD: RGBColor = RGBColor(200, 30, 30);
/// `[[action]]` markers.
pub const MARKER: RGBColor = RGBColor(90, 90, 90);
/// Grid lines.
pub const GRID: RGBColor = RGBColor(228, 231, 236);
/// The warmup window of a time series (excluded from the SLO verdicts).
pub const WARMUP_SHADE: RGBColor = RGBColor(242, 243, 246);
/// Secondary text: warmup and marker labels.
pub const MUTED: RGBColor = RGBColor(95, 100, 110);

/// A horizontal line: an SLO threshold.
#[derive(Debug, Clone)]
pub struct Threshold {
    pub label: String,
    pub value: f64,
}

/// A vertical line: an action at a time (seconds).
#[derive(Debug, Clone)]
pub struct Marker {
    pub label: String,
    pub at_s: f64,
}

/// A chart that can draw itself on any plotters backend.
pub trait Plot {
    /// File name without extension, e.g. `latency-spectrum`.
    fn name(&self) -> &str;
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in; registering it cannot fail for a valid TTF.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Draws `plot` into `dir/NAME.svg` and `dir/NAME.png`; returns the SVG text.
pub fn render<P: Plot>(plot: &P, dir: &Path) -> anyhow::Result<String> {
    register_font();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        plot.draw(&root)?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    crate::results::write_atomic(&dir.join(format!("{}.svg", plot.name())), svg.as_bytes())?;
    let png = dir.join(format!("{}.png", plot.name()));
    let tmp = dir.join(format!(".{}.tmp{}.png", plot.name(), std::process::id()));
    let drawn = (|| {
        let root = BitMapBackend::new(&tmp, (WIDTH, HEIGHT)).into_drawing_area();
        plot.draw(&root)?;
        root.present().map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))
    })();
    if drawn.is_err() {
        let _ = std::fs::remove_file(&tmp); // a full disk leaves no temporary file (issue 18)
    }
    drawn?;
    let renamed = std::fs::rename(&tmp, &png).with_context(|| format!("writing {}", png.display()));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    Ok(svg)
}

/// How far above the data (its largest value, at least `THRESHOLD_FLOOR`) a threshold
/// still stretches the y axis. A farther one is named in the legend as off the chart
/// (issue 18: `min_throughput = 1.7976931348623157e308` made the axis infinite and
/// drawing never ended).
pub const THRESHOLD_REACH: f64 = 100.0;
/// See `THRESHOLD_REACH`.
pub const THRESHOLD_FLOOR: f64 = 1000.0;

/// The values a y axis must show: the finite data, and the thresholds within reach of it.
pub fn axis_values(data: impl Iterator<Item = f64>, thresholds: &[Threshold]) -> Vec<f64> {
    let mut values: Vec<f64> = data.filter(|v| v.is_finite()).collect();
    let reach = values.iter().fold(THRESHOLD_FLOOR, |m, v| m.max(v.abs())) * THRESHOLD_REACH;
    values.extend(thresholds.iter().map(|t| t.value).filter(|v| v.is_finite() && v.abs() <= reach));
    values
}

/// Draws the SLO threshold lines (dashed, across `x_from..x_to`) and the legend box;
/// a threshold outside `y_from..=y_to` is only named in the legend.
pub(crate) fn thresholds_and_legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    thresholds: &[Threshold],
    (x_from, x_to): (f64, f64),
    (y_from, y_to): (f64, f64),
    position: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for t in thresholds {
        if !(y_from..=y_to).contains(&t.value) {
            chart
                .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
                .map_err(err)?
                .label(format!("{} (off the chart)", t.label))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], THRESHOLD));
            continue;
        }
        chart
            .draw_series(DashedLineSeries::new([(x_from, t.value), (x_to, t.value)], 8, 5, THRESHOLD.stroke_width(1)))
            .map_err(err)?
            .label(&t.label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], THRESHOLD));
    }
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, LABEL_SIZE))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// A chart whose y axis is chosen at run time: linear from zero, or log-scaled.
pub(crate) trait OnYAxis {
    fn draw_on<DB, Y>(&self, root: &DrawingArea<DB, Shift>, y: Y, bottom: f64, top: f64) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>;
}

/// A white page, then `plot` on the y axis `values` need: log-scaled, or from 0 to `top`
/// (default: a nice bound above the values).
pub(crate) fn draw_on_y_axis<P: OnYAxis, DB: DrawingBackend>(
    plot: &P,
    root: &DrawingArea<DB, Shift>,
    values: Vec<f64>,
    log_y: bool,
    top: Option<f64>,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    if log_y {
        let (low, high) = log_bounds(values.into_iter());
        plot.draw_on(root, (low..high).log_scale(), low, high)
    } else {
        let top = top.unwrap_or_else(|| nice_max(values.into_iter().fold(0.0, f64::max)));
        plot.draw_on(root, 0.0..top, 0.0, top)
    }
}

/// Draws `[[action]]`-style markers: a dashed vertical line at each `at_s`, labelled.
pub(crate) fn draw_markers<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    markers: &[Marker],
    (bottom, top): (f64, f64),
    max_x: f64,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for marker in markers {
        chart
            .draw_series(DashedLineSeries::new(
                [(marker.at_s, bottom), (marker.at_s, top)],
                4,
                4,
                MARKER.stroke_width(1),
            ))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                marker.label.clone(),
                // On a log axis "near the top" is a factor below it.
                (marker.at_s + max_x * 0.005, if bottom > 0.0 { top / 1.4 } else { top * 0.97 }),
                (FONT, LABEL_SIZE - 2).into_font().color(&MARKER),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// Converts a plotters error (generic over the backend) into anyhow.
pub(crate) fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
}

/// Colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A "nice" upper bound for an axis: 1, 2 or 5 × 10^n above `max`.
pub fn nice_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    if max > f64::MAX / 20.0 {
        return max; // no rounder bound is finite
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * magnitude >= max * 1.05 {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// Bounds of a log-scaled axis: one decade step around the data (values ≤ 0 ignored).
pub fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut low, mut high) = (f64::MAX, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        low = low.min(v);
        high = high.max(v);
    }
    if high <= 0.0 {
        return (0.01, 1.0);
    }
    let low = 10f64.powf(low.log10().floor()).max(0.001);
    (low, nice_max(high).max(low * 10.0))
}

/// Axis tick text: no trailing zeros, three significant figures.
pub fn tick(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: `min_throughput = 1.7976931348623157e308` made the y axis infinite and
    /// drawing never ended. Every plot shape, with absurd thresholds, draws in a moment.
    #[test]
    fn issue18_absurd_thresholds_do_not_stretch_the_axis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for value in [f64::MAX, 1e300, -f64::MAX, 1e-300] {
                let thresholds = vec![Threshold { label: format!("SLO {value}"), value }];
                let series = [Series {
                    name: "achieved".into(),
                    points: vec![(0.5, 400.0), (1.5, 500.0)],
                    secondary: false,
                    colour: 0,
                }];
                for log_y in [false, true] {
                    let plot = TimeSeriesPlot {
                        name: format!("t{log_y}"),
                        title: "t".into(),
                        y_label: "ops/s".into(),
                        series: series
                            .iter()
                            .map(|s| Series { points: s.points.clone(), name: s.name.clone(), ..*s })
                            .collect(),
                        faint: Vec::new(),
                        thresholds: thresholds.clone(),
                        markers: Vec::new(),
                        duration_s: 2.0,
                        log_y,
                    };
                    render(&plot, &path).unwrap();
                }
                let spectrum = SpectrumPlot {
                    name: "s".into(),
                    title: "s".into(),
                    y_label: "ms".into(),
                    series: vec![("q".into(), vec![(0.0, 1.0), (99.0, 5.0)])],
                    thresholds,
                };
                render(&spectrum, &path).unwrap();
            }
            let _ = done.send(());
        });
        finished.recv_timeout(std::time::Duration::from_secs(60)).expect("plots with absurd thresholds finish");
        assert!(
            !std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp"))
        );
    }

    #[test]
    fn nice_bounds() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(87.0), 100.0);
        assert_eq!(nice_max(101.0), 200.0);
        assert_eq!(nice_max(3.3), 5.0);
    }
}
