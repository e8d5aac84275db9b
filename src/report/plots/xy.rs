//! A value against a quantity other than time: the saturation knee (latency and lag p99
//! per offered rate) and the scalability curve (rate per projector count). Lines through
//! points, each point drawn (hollow where a step failed), thresholds and markers as in
//! the time series.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::{FONT, LABEL_SIZE, LINE_WIDTH, Marker, Plot, TITLE_SIZE, Threshold, colour, err};

pub struct XySeries {
    pub name: String,
    /// (x, y, filled) points, drawn in x order.
    pub points: Vec<(f64, f64, bool)>,
    /// Join the points with a line (off: points only, e.g. measurements).
    pub line: bool,
    /// Draw each point (off: a curve only, e.g. a fitted model).
    pub markers: bool,
    /// Thin and dashed (a model beside the measurements).
    pub secondary: bool,
    pub colour: usize,
}

pub struct XyPlot {
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<XySeries>,
    pub thresholds: Vec<Threshold>,
    /// Vertical lines at x (`at_s` holds the x value).
    pub markers: Vec<Marker>,
    pub log_y: bool,
    /// Where the legend goes: where the data leaves room.
    pub legend: SeriesLabelPosition,
    /// A fixed top of the y axis (e.g. 100 for percentages); `None`: from the data.
    pub y_max: Option<f64>,
    /// Evenly spaced x positions with these labels, the points' x being their index
    /// (delays of 0 ms to 1 s read better side by side than on a linear axis).
    pub x_categories: Vec<String>,
}

impl Plot for XyPlot {
    fn name(&self) -> &str {
        &self.name
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let values =
            super::axis_values(self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), &self.thresholds);
        super::draw_on_y_axis(self, root, values, self.log_y, self.y_max)
    }
}

impl super::OnYAxis for XyPlot {
    fn draw_on<DB, Y>(&self, root: &DrawingArea<DB, Shift>, y: Y, bottom: f64, top: f64) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let xs =
            self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).chain(self.markers.iter().map(|m| m.at_s));
        let categories = self.x_categories.len();
        let (min_x, max_x) = if categories > 0 {
            (-0.5, categories as f64 - 0.5)
        } else {
            (0.0, xs.filter(|x| x.is_finite()).fold(0.0, f64::max).max(1.0) * 1.08)
        };
        let x_tick = |v: &f64| {
            if categories == 0 {
                return super::tick(*v);
            }
            let i = v.round();
            if (v - i).abs() < 0.01 && i >= 0.0 {
                self.x_categories.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(min_x..max_x, y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(if categories > 0 { categories * 4 + 1 } else { 10 })
            .x_label_formatter(&x_tick)
            .y_label_formatter(&|v| super::tick(*v))
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE + 1))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        super::draw_markers(&mut chart, &self.markers, (bottom, top), max_x)?;
        for series in &self.series {
            let c = colour(series.colour);
            let style = if series.secondary { c.mix(0.7).stroke_width(1) } else { c.stroke_width(LINE_WIDTH) };
            let mut points: Vec<(f64, f64, bool)> =
                series.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let line: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1.max(bottom))).collect();
            let drawn = if !series.line {
                chart.draw_series(std::iter::empty::<PathElement<(f64, f64)>>()).map_err(err)?
            } else if series.secondary {
                chart.draw_series(DashedLineSeries::new(line.clone(), 8, 5, style)).map_err(err)?
            } else {
                chart.draw_series(LineSeries::new(line.clone(), style)).map_err(err)?
            };
            let (with_line, with_marker) = (series.line, series.markers);
            drawn.label(&series.name).legend(move |(x, y)| {
                let line = PathElement::new(if with_line { vec![(0, 0), (20, 0)] } else { vec![] }, style);
                // A curve's legend has no dot: a dot of no size.
                let marker = Circle::new((10, 0), if with_marker { 4 } else { 0 }, c.filled());
                EmptyElement::at((x, y)) + line + marker
            });
            if series.markers {
                chart
                    .draw_series(points.iter().map(|&(x, y, filled)| {
                        let shape = if filled { c.filled() } else { c.stroke_width(2) };
                        Circle::new((x, y.max(bottom)), 5, shape)
                    }))
                    .map_err(err)?;
            }
        }
        super::thresholds_and_legend(&mut chart, &self.thresholds, (min_x, max_x), (bottom, top), self.legend.clone())?;
        Ok(())
    }
}
