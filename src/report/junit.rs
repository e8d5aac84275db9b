//! junit.xml: one test case per SLO, so CI systems show which SLO failed and by how much.

use std::fmt::Write as _;

use super::summary::format_value;
use crate::results::model::RunResult;

pub fn render(result: &RunResult) -> String {
    let name = result.scenario.get("name").and_then(|v| v.as_str()).unwrap_or("scenario");
    let failures = result.slo.iter().filter(|s| !s.pass).count();
    // A run that could not be carried out (issue 18) is one more test case, in error.
    let errors = usize::from(result.verdict_reason.is_some());
    let tests = result.slo.len() + errors;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"cqrs-bench\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
        result.duration_s
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\" timestamp=\"{}\">",
        escape(name),
        result.duration_s,
        escape(&result.started_at)
    );
    for slo in &result.slo {
        let observed = crate::report::summary::observed_text(slo);
        let threshold = format_value(slo.threshold, &slo.unit);
        let _ = write!(xml, "    <testcase classname=\"slo\" name=\"{}\" time=\"0\"", escape(&slo.name));
        if slo.pass {
            xml.push_str("/>\n");
        } else {
            let message = format!("observed {observed}, threshold {} {threshold}", slo.comparison);
            let _ = writeln!(
                xml,
                ">\n      <failure message=\"{}\" type=\"SloViolation\">{}</failure>\n    </testcase>",
                escape(&message),
                escape(&message)
            );
        }
    }
    if let Some(reason) = &result.verdict_reason {
        let _ = writeln!(
            xml,
            "    <testcase classname=\"run\" name=\"could_not_run\" time=\"0\">\n      <error message=\"{}\" type=\"CouldNotRun\">{}</error>\n    </testcase>",
            escape(reason),
            escape(reason)
        );
    }
    if result.interrupted {
        xml.push_str("    <system-err>the run was interrupted; figures cover what ran</system-err>\n");
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// Escapes text for XML and HTML attribute and element content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
