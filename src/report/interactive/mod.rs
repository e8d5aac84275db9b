//! The interactive part of report.html (issue 35): the chart specs as JSON, uPlot and the
//! page's script, all inline so the page stays one file that needs no network.
//!
//! uPlot 1.6.32 (MIT, © Leon Sorokin; `assets/uPlot.LICENSE`), the `dist/uPlot.iife.min.js`
//! and `dist/uPlot.min.css` of the npm package, vendored unchanged: 51 KB + 2 KB, canvas
//! drawing that stays fast on 3,600-row series. ECharts 5.6 (Apache-2.0) was the other
//! candidate: 1,034 KB minified (335 KB gzip), 20× the weight on every report, and 3–6×
//! slower to draw 8 charts × 9 series × 3,600 rows here (1.0–1.3 s against 0.16–0.34 s;
//! docs/fragments/interactive-report.md). To update: `npm pack
//! uplot@1.6.x`, copy those two files and the LICENSE, change the version here.

mod chart;

pub use chart::{Chart, ChartSeries, Kind, Line};

use serde::Serialize;

/// uPlot's minified script.
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
/// uPlot's stylesheet.
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
/// The page's own script: builds the charts from the JSON specs.
const REPORT_JS: &str = include_str!("assets/report.js");
/// The version vendored in `assets/`.
pub const UPLOT_VERSION: &str = "1.6.32";

/// The page's Content-Security-Policy: inline script and style only, nothing fetched,
/// so a page that tried to load anything would fail loudly in the browser (and its tests).
pub const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/// Styles of the charts, beside the report's own.
pub const CHART_STYLE: &str = r#"
.chart-box { width: 100%; min-height: 330px; }
.chart-note { font-size: 12px; color: #b3261e; margin-top: 4px; }
.uplot .u-legend { font-size: 12px; text-align: left; } .uplot .u-title { font-size: 15px; }
.zoom { position: sticky; top: 0; z-index: 5; background: #fafbfc; padding: 6px 0; font-size: 13px; color: #5b6472; }
.zoom button { font: inherit; margin-right: 4px; padding: 2px 8px; border: 1px solid #c9ced6; background: white; border-radius: 4px; cursor: pointer; }
"#;

/// The data of the page's charts.
#[derive(Serialize)]
struct Page<'a> {
    charts: &'a [&'a Chart],
    /// Shaded on the time charts (excluded from the SLO verdicts).
    warmup_s: f64,
}

/// `<style>` for the head: uPlot's and the charts'.
pub fn style() -> String {
    format!("<style>{UPLOT_CSS}{CHART_STYLE}</style>")
}

/// The scripts for the end of the body: the chart data as JSON (not executed), uPlot,
/// and the script that draws `charts` into their `chart-ID` boxes.
pub fn scripts(charts: &[&Chart], warmup_s: f64) -> String {
    let data = json_for_script(&Page { charts, warmup_s });
    format!(
        "<script type=\"application/json\" id=\"charts-data\">{data}</script>\n<script>{UPLOT_JS}</script>\n<script>{REPORT_JS}</script>\n"
    )
}

/// JSON safe inside a `<script>` element: `<`, `>` and `&` only occur inside strings,
/// where `\u003c` … mean the same, so a `</script>` or `<!--` in an operation name cannot
/// end the element or open a comment.
pub fn json_for_script<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_string(value).expect("chart specs serialize: strings and numbers only");
    json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_end_in_a_name_stays_inside_the_json() {
        let json = json_for_script(&vec!["</script><script>alert(1)</script><!--&"]);
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'));
        let back: Vec<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0], "</script><script>alert(1)</script><!--&");
    }

    #[test]
    fn vendored_assets_cannot_end_their_elements() {
        for asset in [UPLOT_JS, REPORT_JS] {
            assert!(!asset.to_ascii_lowercase().contains("</script"));
        }
        assert!(!UPLOT_CSS.to_ascii_lowercase().contains("</style"));
    }
}
