//! The plots of [`crate::report::plots`] as chart specs for report.html's interactive
//! charts (issue 35): the same points, thresholds and markers the PNG/SVG files are drawn
//! from, as JSON the page's script hands to uPlot. No figure is computed here.

use serde::Serialize;

use crate::report::plots::{self, BarPlot, Marker, SpectrumPlot, StackedPlot, Threshold, TimeSeriesPlot, XyPlot};

/// One interactive chart of report.html.
#[derive(Debug, Serialize)]
pub struct Chart {
    /// The plot's file stem (`latency-over-time`): the element id, and the link to the
    /// static plots/NAME.svg and .png.
    pub id: String,
    pub title: String,
    pub kind: Kind,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub series: Vec<ChartSeries>,
    /// SLO thresholds (horizontal lines); `in_reach: false` ones are only named.
    pub thresholds: Vec<Line>,
    /// `[[action]]`s and other vertical lines, at x.
    pub markers: Vec<Line>,
    /// The right end of the x axis (the run's length for time charts).
    pub x_max: Option<f64>,
    /// A fixed top of the y axis (percentages).
    pub y_max: Option<f64>,
    /// Labels of x = 0, 1, 2, … (bars, staleness delays); empty for numeric x.
    pub categories: Vec<String>,
}

/// How the page draws a chart and its x axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Seconds of the run: zoomed, panned and hovered together with the other time charts.
    Time,
    /// Stacked layers over the seconds of the run (also synced with the time charts).
    Stacked,
    /// x = 1/(1−q) on a log axis, labelled as percentiles (HdrHistogram's plotter).
    Spectrum,
    /// Values against categories or another quantity.
    Xy,
    /// One bar per category.
    Bars,
}

/// A line of a chart: its own (x, y) points, y `None` where the value is unknown (a gap).
#[derive(Debug, Serialize)]
pub struct ChartSeries {
    pub name: String,
    /// `#rrggbb`, the static plot's colour.
    pub colour: String,
    /// `main`, `secondary` (thin, dashed) or `faint` (context behind the series).
    pub style: &'static str,
    /// Draw each point (measurements); lines otherwise.
    pub points: bool,
    pub x: Vec<f64>,
    pub y: Vec<Option<f64>>,
}

/// A labelled threshold (y) or marker (x).
#[derive(Debug, Serialize)]
pub struct Line {
    pub label: String,
    pub at: f64,
    /// False for a threshold too far from the data to stretch the axis to (issue 18).
    pub in_reach: bool,
}

fn colour(i: usize) -> String {
    let c = plots::colour(i);
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// A value for JSON: NaN and infinities are unknown (JSON has no NaN).
fn known(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn thresholds(list: &[Threshold], data: impl Iterator<Item = f64>) -> Vec<Line> {
    let values = plots::axis_values(data, &[]);
    let reach = values.iter().fold(plots::THRESHOLD_FLOOR, |m, v| m.max(v.abs())) * plots::THRESHOLD_REACH;
    list.iter()
        .map(|t| Line { label: t.label.clone(), at: t.value, in_reach: t.value.is_finite() && t.value.abs() <= reach })
        .collect()
}

fn markers(list: &[Marker]) -> Vec<Line> {
    list.iter().map(|m| Line { label: m.label.clone(), at: m.at_s, in_reach: true }).collect()
}

fn line(name: &str, colour_index: usize, style: &'static str, points: &[(f64, f64)]) -> ChartSeries {
    ChartSeries {
        name: name.to_owned(),
        colour: colour(colour_index),
        style,
        points: false,
        x: points.iter().map(|p| p.0).collect(),
        y: points.iter().map(|p| known(p.1)).collect(),
    }
}

impl From<&TimeSeriesPlot> for Chart {
    fn from(p: &TimeSeriesPlot) -> Self {
        let mut series: Vec<ChartSeries> = p
            .series
            .iter()
            .map(|s| line(&s.name, s.colour, if s.secondary { "secondary" } else { "main" }, &s.points))
            .collect();
        series.extend(p.faint.iter().map(|s| line(&s.name, s.colour, "faint", &s.points)));
        let data = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1));
        Chart {
            id: p.name.clone(),
            title: p.title.clone(),
            kind: Kind::Time,
            x_label: "seconds of the run".into(),
            y_label: p.y_label.clone(),
            log_y: p.log_y,
            series,
            thresholds: thresholds(&p.thresholds, data),
            markers: markers(&p.markers),
            x_max: Some(p.duration_s),
            y_max: None,
            categories: Vec::new(),
        }
    }
}

impl From<&SpectrumPlot> for Chart {
    fn from(p: &SpectrumPlot) -> Self {
        let series = p
            .series
            .iter()
            .enumerate()
            .map(|(i, (name, points))| {
                // x = 1/(1−q): the page labels it back as the percentile.
                let at: Vec<(f64, f64)> = points.iter().map(|(q, v)| (plots::spectrum_x(*q), *v)).collect();
                line(name, i, "main", &at)
            })
            .collect();
        let data = p.series.iter().flat_map(|(_, s)| s.iter().map(|q| q.1));
        Chart {
            id: p.name.clone(),
            title: p.title.clone(),
            kind: Kind::Spectrum,
            x_label: "percentile".into(),
            y_label: p.y_label.clone(),
            log_y: true,
            series,
            thresholds: thresholds(&p.thresholds, data),
            markers: Vec::new(),
            x_max: None,
            y_max: None,
            categories: Vec::new(),
        }
    }
}

impl From<&StackedPlot> for Chart {
    fn from(p: &StackedPlot) -> Self {
        let x: Vec<f64> = p.rows.iter().map(|r| r.0).collect();
        let series = p
            .layers
            .iter()
            .enumerate()
            .map(|(i, (name, c))| ChartSeries {
                name: name.clone(),
                colour: colour(*c),
                style: "main",
                points: false,
                x: x.clone(),
                y: p.rows.iter().map(|r| r.1.get(i).copied().and_then(known)).collect(),
            })
            .collect();
        Chart {
            id: p.name.clone(),
            title: p.title.clone(),
            kind: Kind::Stacked,
            x_label: "seconds of the run".into(),
            y_label: p.y_label.clone(),
            log_y: false,
            series,
            thresholds: Vec::new(),
            markers: markers(&p.markers),
            x_max: Some(p.duration_s),
            y_max: None,
            categories: Vec::new(),
        }
    }
}

impl From<&XyPlot> for Chart {
    fn from(p: &XyPlot) -> Self {
        let series = p
            .series
            .iter()
            .map(|s| ChartSeries {
                name: s.name.clone(),
                colour: colour(s.colour),
                style: if s.secondary { "secondary" } else { "main" },
                points: s.markers,
                x: s.points.iter().map(|q| q.0).collect(),
                y: s.points.iter().map(|q| known(q.1)).collect(),
            })
            .collect();
        let data = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1));
        Chart {
            id: p.name.clone(),
            title: p.title.clone(),
            kind: Kind::Xy,
            x_label: p.x_label.clone(),
            y_label: p.y_label.clone(),
            log_y: p.log_y,
            series,
            thresholds: thresholds(&p.thresholds, data),
            markers: markers(&p.markers),
            x_max: None,
            y_max: p.y_max,
            categories: p.x_categories.clone(),
        }
    }
}

impl From<&BarPlot> for Chart {
    fn from(p: &BarPlot) -> Self {
        Chart {
            id: p.name.clone(),
            title: p.title.clone(),
            kind: Kind::Bars,
            x_label: String::new(),
            y_label: p.y_label.clone(),
            log_y: false,
            series: vec![ChartSeries {
                name: p.y_label.clone(),
                colour: colour(0),
                style: "main",
                points: false,
                x: (0..p.bars.len()).map(|i| i as f64).collect(),
                y: p.bars.iter().map(|b| Some(b.1 as f64)).collect(),
            }],
            thresholds: Vec::new(),
            markers: Vec::new(),
            x_max: None,
            y_max: None,
            categories: p.bars.iter().map(|b| b.0.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plots::Series;

    fn plot(points: Vec<(f64, f64)>, thresholds: Vec<Threshold>) -> TimeSeriesPlot {
        TimeSeriesPlot {
            name: "t".into(),
            title: "t".into(),
            y_label: "ms".into(),
            series: vec![Series { name: "deposit p99".into(), points, secondary: false, colour: 1 }],
            faint: Vec::new(),
            thresholds,
            markers: vec![Marker { label: "kill projector".into(), at_s: 3.0 }],
            duration_s: 10.0,
            log_y: true,
        }
    }

    /// The chart carries the plot's points as they are: an unknown value is a gap (null
    /// in JSON), never 0; colours and markers as the static plot draws them.
    #[test]
    fn a_time_series_keeps_its_points_gaps_and_markers() {
        let chart = Chart::from(&plot(vec![(0.5, 1.25), (1.5, f64::NAN), (2.5, 3.0)], Vec::new()));
        let json = serde_json::to_value(&chart).unwrap();
        assert_eq!(json["kind"], "time");
        assert_eq!(json["series"][0]["x"], serde_json::json!([0.5, 1.5, 2.5]));
        assert_eq!(json["series"][0]["y"], serde_json::json!([1.25, null, 3.0]));
        assert_eq!(json["series"][0]["colour"], "#d55e00");
        assert_eq!(json["markers"][0]["at"], 3.0);
        assert_eq!(json["x_max"], 10.0);
    }

    /// Issue 18's absurd thresholds are named, not drawn (the axis would be infinite).
    #[test]
    fn a_threshold_far_from_the_data_is_out_of_reach() {
        let thresholds = vec![
            Threshold { label: "SLO near".into(), value: 50.0 },
            Threshold { label: "SLO far".into(), value: 1e300 },
        ];
        let chart = Chart::from(&plot(vec![(0.5, 1.0)], thresholds));
        let reach: Vec<bool> = chart.thresholds.iter().map(|t| t.in_reach).collect();
        assert_eq!(reach, [true, false]);
    }

    /// The spectrum's x is 1/(1−q), as the static plot's axis.
    #[test]
    fn spectrum_x_is_one_over_one_minus_q() {
        let p = SpectrumPlot {
            name: "s".into(),
            title: "s".into(),
            y_label: "ms".into(),
            series: vec![("q".into(), vec![(0.0, 1.0), (90.0, 2.0), (99.0, 5.0)])],
            thresholds: Vec::new(),
        };
        let chart = Chart::from(&p);
        let x = &chart.series[0].x;
        assert!((x[0] - 1.0).abs() < 1e-9 && (x[1] - 10.0).abs() < 1e-9 && (x[2] - 100.0).abs() < 1e-6, "{x:?}");
        assert!(chart.log_y);
    }
}
