//! Counts side by side: the event accounting of a run.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FONT, LABEL_SIZE, Plot, TITLE_SIZE, colour, err, nice_max};

pub struct BarPlot {
    pub name: String,
    pub title: String,
    pub y_label: String,
    /// (label, count, palette index).
    pub bars: Vec<(String, u64, usize)>,
}

impl Plot for BarPlot {
    fn name(&self) -> &str {
        &self.name
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.bars.len().max(1);
        let top = nice_max(self.bars.iter().map(|(_, v, _)| *v as f64).fold(0.0, f64::max));
        let labels: Vec<String> = self.bars.iter().map(|(l, _, _)| l.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..n as f64, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x: &f64| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 {
                    labels.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(&self.y_label)
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE + 1))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (i, (_, value, c)) in self.bars.iter().enumerate() {
            let x0 = i as f64 + 0.15;
            let x1 = i as f64 + 0.85;
            chart
                .draw_series(std::iter::once(Rectangle::new([(x0, 0.0), (x1, *value as f64)], colour(*c).filled())))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    value.to_string(),
                    (i as f64 + 0.4, *value as f64 + top * 0.02),
                    (FONT, LABEL_SIZE).into_font(),
                )))
                .map_err(err)?;
        }
        Ok(())
    }
}
