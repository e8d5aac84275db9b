//! Values per second over the run: latency p50/p99 per operation, offered vs achieved
//! throughput and errors, projection lag. SLO thresholds as dashed lines, `[[action]]`s
//! as labelled vertical lines.

use plotters::coord::Shift;
use plotters::prelude::*;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};

use super::{FONT, LABEL_SIZE, LINE_WIDTH, Marker, Plot, TITLE_SIZE, Threshold, colour, err};

pub struct Series {
    pub name: String,
    /// (seconds, value) points; missing seconds are simply absent (the line joins its
    /// neighbours), while a NaN value breaks the line: an unknown stretch is a gap.
    pub points: Vec<(f64, f64)>,
    /// Drawn thinner and dashed (e.g. p50 beside p99).
    pub secondary: bool,
    /// Index into the palette.
    pub colour: usize,
}

pub struct TimeSeriesPlot {
    pub name: String,
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Context drawn thin and light behind the series (the generator's send lag beside the
    /// latencies). It never stretches the y axis down: below the series' lowest value it
    /// is drawn at the bottom (a send lag far under every latency does not matter).
    pub faint: Vec<Series>,
    pub thresholds: Vec<Threshold>,
    pub markers: Vec<Marker>,
    /// Length of the run in seconds (the x axis).
    pub duration_s: f64,
    /// Log-scaled y axis (latencies: a 500 ms SLO line beside sub-millisecond values).
    pub log_y: bool,
}

impl Plot for TimeSeriesPlot {
    fn name(&self) -> &str {
        &self.name
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let main = || self.series.iter().flat_map(|s| s.points.iter().map(|(_, v)| *v));
        let lowest = main().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
        let faint = self.faint.iter().flat_map(|s| s.points.iter().map(|(_, v)| *v)).filter(|v| *v >= lowest);
        let values = super::axis_values(main().chain(faint), &self.thresholds);
        super::draw_on_y_axis(self, root, values, self.log_y, None)
    }
}

impl super::OnYAxis for TimeSeriesPlot {
    fn draw_on<DB, Y>(&self, root: &DrawingArea<DB, Shift>, y: Y, bottom: f64, top: f64) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let max_x = self.duration_s.max(1.0);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..max_x, y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since start of load (s)")
            .y_desc(&self.y_label)
            .y_label_formatter(&|v| super::tick(*v))
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE + 1))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        super::draw_markers(&mut chart, &self.markers, (bottom, top), max_x)?;
        for series in &self.faint {
            let style = colour(series.colour).mix(0.35).stroke_width(1);
            let mut runs = known_runs(&series.points).into_iter();
            let first = runs.next().unwrap_or_default();
            let drawn = chart
                .draw_series(LineSeries::new(first.iter().map(|(t, v)| (*t, v.clamp(bottom, top))), style))
                .map_err(err)?;
            drawn.label(&series.name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            for run in runs {
                chart
                    .draw_series(LineSeries::new(run.iter().map(|(t, v)| (*t, v.clamp(bottom, top))), style))
                    .map_err(err)?;
            }
        }
        for series in &self.series {
            let c = colour(series.colour);
            let style = if series.secondary { c.mix(0.6).stroke_width(1) } else { c.stroke_width(LINE_WIDTH) };
            let mut runs = known_runs(&series.points).into_iter();
            let first = runs.next().unwrap_or_default();
            let drawn = chart
                .draw_series(LineSeries::new(first.iter().map(|(t, v)| (*t, v.max(bottom))), style))
                .map_err(err)?;
            drawn.label(&series.name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            // A lone known point between gaps is a dot (a line of one point draws nothing).
            for run in runs {
                chart.draw_series(LineSeries::new(run.iter().map(|(t, v)| (*t, v.max(bottom))), style)).map_err(err)?;
            }
            for dot in lone_points(&series.points) {
                chart
                    .draw_series(std::iter::once(Circle::new((dot.0, dot.1.max(bottom)), 2, c.filled())))
                    .map_err(err)?;
            }
        }
        super::thresholds_and_legend(
            &mut chart,
            &self.thresholds,
            (0.0, max_x),
            (bottom, top),
            SeriesLabelPosition::UpperRight,
        )?;
        Ok(())
    }
}

/// The stretches of known (finite) values, in order: a NaN ends one.
fn known_runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for point in points {
        match point.1.is_finite() {
            true => runs.last_mut().expect("one run at least").push(*point),
            false if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
            false => {}
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// Known points with a gap (or the series' end) on both sides.
fn lone_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let runs = known_runs(points);
    if runs.len() < 2 {
        return Vec::new();
    }
    runs.into_iter().filter(|r| r.len() == 1).map(|r| r[0]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue33_an_unknown_value_breaks_the_line() {
        let points = [(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, f64::NAN), (4.0, 5.0), (5.0, f64::NAN)];
        assert_eq!(known_runs(&points), vec![vec![(0.0, 1.0), (1.0, 2.0)], vec![(4.0, 5.0)]]);
        assert_eq!(lone_points(&points), vec![(4.0, 5.0)]);
        assert!(known_runs(&[(0.0, f64::NAN)]).is_empty());
    }
}
