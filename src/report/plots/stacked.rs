//! Parts of a whole per second, stacked: where the projection lag comes from, stage by
//! stage (issue 14). Each layer's band is drawn from the sum of the layers below it to
//! that sum plus its own value, so the top edge is the whole.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FONT, LABEL_SIZE, Marker, Plot, TITLE_SIZE, colour, err, nice_max};

pub struct StackedPlot {
    pub name: String,
    pub title: String,
    pub y_label: String,
    /// (name, palette index), bottom layer first.
    pub layers: Vec<(String, usize)>,
    /// (seconds, one value per layer) rows, in time order.
    pub rows: Vec<(f64, Vec<f64>)>,
    pub markers: Vec<Marker>,
    /// Length of the run in seconds (the x axis).
    pub duration_s: f64,
}

impl Plot for StackedPlot {
    fn name(&self) -> &str {
        &self.name
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let top = nice_max(self.rows.iter().map(|(_, v)| v.iter().sum::<f64>()).fold(0.0, f64::max));
        let max_x = self.duration_s.max(1.0);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..max_x, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("acknowledged at, time since start of load (s)")
            .y_desc(&self.y_label)
            .y_label_formatter(&|v| super::tick(*v))
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE + 1))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        // Cumulative sums per row: layer k spans [below[k], below[k] + value[k]].
        let cumulative: Vec<(f64, Vec<f64>)> = self
            .rows
            .iter()
            .map(|(t, values)| {
                let mut sum = 0.0;
                let mut edges = vec![0.0];
                for v in values {
                    sum += v.max(0.0);
                    edges.push(sum);
                }
                (*t, edges)
            })
            .collect();
        for (k, (name, c)) in self.layers.iter().enumerate() {
            let fill = colour(*c);
            let upper = cumulative.iter().map(|(t, e)| (*t, e[k + 1]));
            let lower = cumulative.iter().rev().map(|(t, e)| (*t, e[k]));
            let band: Vec<(f64, f64)> = upper.chain(lower).collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, fill.mix(0.75).filled())))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], fill.mix(0.75).filled()));
        }
        super::draw_markers(&mut chart, &self.markers, (0.0, top), max_x)?;
        super::thresholds_and_legend(&mut chart, &[], (0.0, max_x), (0.0, top), SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}
