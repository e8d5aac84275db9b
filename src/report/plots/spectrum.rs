//! Latency by percentile, HdrHistogram style: the x axis is 1/(1−q) on a log scale,
//! labelled 0 %, 90 %, 99 %, 99.9 %, … so the tail gets the room it deserves.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FONT, LABEL_SIZE, LINE_WIDTH, Plot, TITLE_SIZE, Threshold, colour, err, log_bounds};

pub struct SpectrumPlot {
    pub name: String,
    pub title: String,
    pub y_label: String,
    /// Per series: name and (percentile 0–100, value) points in increasing percentile.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    pub thresholds: Vec<Threshold>,
}

/// 1/(1−q) for a percentile, capped so 100 % stays on the axis.
pub fn x_of(percentile: f64) -> f64 {
    1.0 / (1.0 - (percentile / 100.0).min(0.999_999))
}

fn label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    match p {
        p if p < 1e-9 => "0%".into(),
        p if (p - p.round()).abs() < 1e-6 => format!("{p:.0}%"),
        p => {
            let decimals = ((x.log10().round() as i64 - 2).clamp(1, 6)) as usize;
            format!("{p:.decimals$}%")
        }
    }
}

impl SpectrumPlot {
    /// Points of an HdrHistogram (values in µs) as (percentile, milliseconds).
    pub fn points(histogram: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = histogram
            .iter_quantiles(1)
            .map(|v| {
                (v.quantile_iterated_to() * 100.0, histogram.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0)
            })
            .collect();
        points.dedup_by(|a, b| a.0 == b.0);
        points
    }
}

impl Plot for SpectrumPlot {
    fn name(&self) -> &str {
        &self.name
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let max_x =
            self.series.iter().flat_map(|(_, p)| p.iter().map(|(q, _)| x_of(*q))).fold(100.0, f64::max).max(1000.0);
        let values =
            super::axis_values(self.series.iter().flat_map(|(_, p)| p.iter().map(|(_, v)| *v)), &self.thresholds);
        // Log scale: sub-millisecond medians and a 500 ms SLO line both stay readable.
        let (low, high) = log_bounds(values.into_iter());
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d((1.0..max_x).log_scale(), (low..high).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc(&self.y_label)
            .x_label_formatter(&label)
            .x_labels(8)
            .y_label_formatter(&|v| super::tick(*v))
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE + 1))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (i, (name, points)) in self.series.iter().enumerate() {
            let style = colour(i).stroke_width(LINE_WIDTH);
            chart
                .draw_series(LineSeries::new(points.iter().map(|(q, v)| (x_of(*q), v.max(low))), style))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour(i).stroke_width(LINE_WIDTH)));
        }
        super::thresholds_and_legend(
            &mut chart,
            &self.thresholds,
            (1.0, max_x),
            (low, high),
            SeriesLabelPosition::UpperLeft,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(label(&1.0), "0%");
        assert_eq!(label(&10.0), "90%");
        assert_eq!(label(&100.0), "99%");
        assert_eq!(label(&1000.0), "99.9%");
        assert_eq!(label(&10000.0), "99.99%");
        assert_eq!(label(&100000.0), "99.999%");
    }
}
