//! Capacity planning (issue 10, PRODUCT §8): from measuring to deciding.
//!
//! ```text
//! saturate: scenario ──search──▶ steps (run::drive at one rate each, judged) ──▶ bracket
//! capacity: for N in counts: scale::scale_to(N) ──▶ saturate ──▶ point (N, max events/s)
//!           points ──usl::fit──▶ λ, σ, κ, peak ──▶ predictions, answer for --target-rate
//! ```
//!
//! `search` decides which rate comes next, `step` runs and judges one rate, `trend` says
//! whether a backlog grows, `scale` gets the target to N projectors, `usl` fits the
//! scalability law, `report` writes the answers down.

pub mod report;
pub mod scale;
pub mod search;
pub mod step;
pub mod trend;
pub mod usl;

use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(test)]
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::exit::{self, Usage};
use crate::scenario::{self, LoadModel, Scenario};
use search::{Bracket, Search};
use step::Step;

/// Version of saturate.json and capacity.json.
pub const SCHEMA_VERSION: u32 = 1;
/// Highest projector count a `--target-rate` answer may name.
const MAX_ANSWER: usize = scenario::MAX_PROJECTORS;

/// What `saturate` and `capacity` share from the command line.
#[derive(Debug, Clone)]
pub struct SearchArgs {
    pub scenario: PathBuf,
    pub overrides: Vec<String>,
    pub out: Option<PathBuf>,
    pub seed: Option<u64>,
    pub threads: usize,
    pub quiet: bool,
}

/// One saturation search, as saturate.json holds it (and capacity.json per count).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saturation {
    pub schema_version: u32,
    pub scenario: String,
    pub target: String,
    /// Projector count, when known (capacity, or an embedded target).
    pub projectors: Option<usize>,
    /// Highest offered rate (operations/s) that passed a whole step.
    pub highest_pass: Option<f64>,
    /// Lowest offered rate that failed.
    pub lowest_fail: Option<f64>,
    /// Events/s acknowledged at the highest passing step: the sustainable event rate.
    pub max_events_per_s: Option<f64>,
    /// One sentence: the answer, or why there is none.
    pub answer: String,
    /// Why the lowest failing step failed.
    pub failed_because: Vec<String>,
    pub precision: f64,
    pub steps: Vec<Step>,
    /// Things that may make the answer less exact (a backlog that never drained, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The latency and lag SLOs (ms), for the plot: `report` redraws from this file alone.
    #[serde(default)]
    pub slo_lines: Vec<SloLine>,
    pub interrupted: bool,
    pub elapsed_s: f64,
}

impl Saturation {
    fn step_at(&self, rate: Option<f64>) -> Option<&Step> {
        rate.and_then(|r| self.steps.iter().find(|s| s.rate == r))
    }
}

/// `cqrs-bench saturate`.
pub async fn saturate(
    args: SearchArgs,
    target_url: Option<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<i32> {
    let mut scenario = load(&args)?;
    if let Some(url) = target_url {
        let label = scenario::redact::redact_urls(&url);
        scenario.target.kind = scenario::TargetKind::Http { base_url: url, label };
    }
    let out = out_dir(&args, &scenario, "saturate");
    crate::report::prepare_dir(&out)?;
    let projectors = match &scenario.target.kind {
        scenario::TargetKind::Embedded(config) => Some(config.projectors),
        scenario::TargetKind::Http { .. } => None,
    };
    let saturation = search(&scenario, projectors, None, &args, &out, &shutdown).await?;
    report::write_saturation(&saturation, &out)?;
    if args.quiet {
        println!("{}", saturation.answer);
    } else {
        print!("{}", report::saturation_summary(&saturation));
    }
    println!("results: {}", out.display());
    Ok(match () {
        _ if saturation.interrupted => exit::RUN_FAILED,
        _ if saturation.highest_pass.is_none() => exit::SLO_VIOLATED,
        _ => exit::PASS,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloLine {
    pub name: String,
    pub threshold_ms: f64,
}

/// One measured projector count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub projectors: usize,
    pub max_events_per_s: Option<f64>,
    pub saturation: Saturation,
}

/// capacity.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityResult {
    pub schema_version: u32,
    pub scenario: String,
    pub points: Vec<Point>,
    /// `None` when no count had a passing rate.
    pub usl: Option<UslOut>,
    /// (projectors, predicted max events/s) for 1 ..= 2 × the largest measured count.
    pub predicted: Vec<Prediction>,
    pub recommendation: Option<Recommendation>,
    /// Partitions of the `[bus]` topic, when it could be read.
    pub partitions: Option<usize>,
    pub notes: Vec<String>,
    pub interrupted: bool,
    pub elapsed_s: f64,
    /// The scenario as recorded (secrets redacted), for the report.
    #[serde(default)]
    pub recorded: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UslOut {
    pub lambda: f64,
    pub sigma: f64,
    pub kappa: f64,
    /// √((1−σ)/κ); `None` when the fitted curve never turns down (κ = 0).
    pub peak_projectors: Option<f64>,
    /// Predicted rate at the peak (the whole count nearest it); with κ = 0 and σ > 0 the
    /// asymptote λ/σ; `None` when unbounded.
    pub peak_rate: Option<f64>,
    pub rms_error_pct: f64,
    pub max_error_pct: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prediction {
    pub projectors: usize,
    pub events_per_s: f64,
    /// Measured at this count (events/s), for comparison.
    pub measured: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recommendation {
    /// The asked event rate.
    pub target_rate: f64,
    pub headroom: f64,
    /// Smallest count whose predicted maximum covers target × (1 + headroom); `None`
    /// when no count does.
    pub projectors: Option<usize>,
    pub predicted_max: Option<f64>,
    pub answer: String,
}

/// `cqrs-bench capacity`.
pub async fn capacity(
    args: SearchArgs,
    counts: Option<Vec<usize>>,
    target_rate: Option<f64>,
    headroom: Option<f64>,
    shutdown: CancellationToken,
) -> anyhow::Result<i32> {
    let began = std::time::Instant::now();
    let mut scenario = load(&args)?;
    if let Some(counts) = counts {
        scenario.capacity.projectors = counts;
    }
    if let Some(headroom) = headroom {
        scenario.capacity.headroom = headroom;
    }
    if scenario.capacity.scaler == scenario::Scaler::None {
        // Said before anything is created or sent.
        return Err(Usage(anyhow::anyhow!(scale::CANNOT_SCALE)).into());
    }
    let out = out_dir(&args, &scenario, "capacity");
    crate::report::prepare_dir(&out)?;
    let partitions = match &scenario.bus {
        Some(bus) if !matches!(scenario.capacity.scaler, scenario::Scaler::Serve(_)) => {
            crate::probe::bus::topic_partitions(bus).await.ok()
        }
        _ => None,
    };
    let mut points: Vec<Point> = Vec::new();
    let mut partitions = partitions;
    let mut hint = None;
    for &n in &scenario.capacity.projectors.clone() {
        if shutdown.is_cancelled() {
            break;
        }
        let count_dir = out.join(format!("projectors-{n}"));
        if !args.quiet {
            eprintln!("── {n} projector{} ──", if n == 1 { "" } else { "s" });
        }
        let scaled = scale::scale_to(&scenario, n, &count_dir).await?;
        if partitions.is_none()
            && let Some(bus) = &scaled.scenario.bus
        {
            partitions = crate::probe::bus::topic_partitions(bus).await.ok();
        }
        let searched = search(&scaled.scenario, Some(n), hint, &args, &count_dir, &shutdown).await;
        scaled.stop().await;
        let saturation = searched?;
        report::write_saturation(&saturation, &count_dir)?;
        // More projectors rarely sustain less: the next search starts at this answer.
        hint = saturation.highest_pass.or(hint);
        points.push(Point { projectors: n, max_events_per_s: saturation.max_events_per_s, saturation });
    }
    let mut result = plan(
        &scenario.name,
        scenario.capacity.headroom,
        points,
        target_rate,
        partitions,
        shutdown.is_cancelled(),
        began.elapsed(),
    );
    result.recorded = scenario.recorded.clone();
    report::write_capacity(&result, &out)?;
    if args.quiet {
        println!("{}", report::capacity_answer(&result));
    } else {
        print!("{}", report::capacity_summary(&result));
    }
    println!("results: {}", out.display());
    Ok(match &result {
        r if r.interrupted => exit::RUN_FAILED,
        r if r.usl.is_none() => exit::RUN_FAILED,
        r if r.recommendation.as_ref().is_some_and(|rec| rec.projectors.is_none()) => exit::SLO_VIOLATED,
        _ => exit::PASS,
    })
}

/// From measured points to the planner's answers.
pub fn plan(
    scenario: &str,
    headroom: f64,
    points: Vec<Point>,
    target_rate: Option<f64>,
    partitions: Option<usize>,
    interrupted: bool,
    elapsed: std::time::Duration,
) -> CapacityResult {
    let measured: Vec<(f64, f64)> =
        points.iter().filter_map(|p| p.max_events_per_s.map(|x| (p.projectors as f64, x))).collect();
    let fitted = usl::fit(&measured);
    let largest = points.iter().map(|p| p.projectors).max().unwrap_or(1);
    let mut notes = Vec::new();
    for p in points.iter().filter(|p| p.max_events_per_s.is_none()) {
        notes.push(format!("{} projectors: no rate passed ({})", p.projectors, p.saturation.answer));
    }
    if let Some(partitions) = partitions {
        for p in points.iter().filter(|p| p.projectors > partitions) {
            notes.push(format!(
                "{} projectors exceed the topic's {partitions} partitions: {} of them idle",
                p.projectors,
                p.projectors - partitions
            ));
        }
    }
    let predicted = fitted.map_or_else(Vec::new, |usl| {
        (1..=2 * largest)
            .map(|n| Prediction {
                projectors: n,
                events_per_s: usl.rate(n as f64),
                measured: points.iter().find(|p| p.projectors == n).and_then(|p| p.max_events_per_s),
            })
            .collect()
    });
    let usl_out = fitted.map(|usl| {
        let peak = usl.peak();
        let peak_rate = match peak {
            Some(n) => {
                let (low, high) = (n.floor().max(1.0), n.ceil().max(1.0));
                Some(usl.rate(low).max(usl.rate(high)))
            }
            None if usl.sigma > 0.0 => Some(usl.lambda / usl.sigma),
            None => None,
        };
        UslOut {
            lambda: usl.lambda,
            sigma: usl.sigma,
            kappa: usl.kappa,
            peak_projectors: peak,
            peak_rate,
            rms_error_pct: usl.rms_error_pct,
            max_error_pct: usl.max_error_pct,
        }
    });
    if measured.len() < 3 && fitted.is_some() {
        notes.push(format!(
            "{} measured count{}: {}",
            measured.len(),
            if measured.len() == 1 { "" } else { "s" },
            if measured.len() == 1 { "σ and κ are taken as 0 (linear)" } else { "κ is taken as 0" }
        ));
    }
    let recommendation =
        target_rate.map(|rate| recommend(rate, headroom, fitted.as_ref(), usl_out.as_ref(), largest, partitions));
    CapacityResult {
        schema_version: SCHEMA_VERSION,
        scenario: scenario.to_owned(),
        points,
        usl: usl_out,
        predicted,
        recommendation,
        partitions,
        notes,
        interrupted,
        elapsed_s: elapsed.as_secs_f64(),
        recorded: serde_json::Value::Null,
    }
}

fn recommend(
    rate: f64,
    headroom: f64,
    fitted: Option<&usl::Usl>,
    usl_out: Option<&UslOut>,
    largest: usize,
    partitions: Option<usize>,
) -> Recommendation {
    let needed = rate * (1.0 + headroom);
    let (Some(usl), Some(out)) = (fitted, usl_out) else {
        return Recommendation {
            target_rate: rate,
            headroom,
            projectors: None,
            predicted_max: None,
            answer: "no answer: no projector count sustained any rate, so there is nothing to fit".into(),
        };
    };
    let Some(n) = usl.smallest_count_for(needed, MAX_ANSWER) else {
        let answer = match (out.peak_projectors, out.peak_rate) {
            (Some(peak), Some(peak_rate)) => format!(
                "{rate:.0} events/s (+{:.0} % headroom = {needed:.0}) is beyond the predicted peak of {peak_rate:.0} events/s \
                 at {peak:.1} projectors: more projectors will not get there; the contention (σ = {:.3}) and \
                 coherency (κ = {:.4}) costs must come down first",
                headroom * 100.0,
                usl.sigma,
                usl.kappa
            ),
            (None, Some(limit)) => format!(
                "{rate:.0} events/s (+{:.0} % headroom = {needed:.0}) is beyond the predicted ceiling of {limit:.0} events/s \
                 (λ/σ): more projectors approach it but never pass it",
                headroom * 100.0
            ),
            _ => format!(
                "{rate:.0} events/s (+{:.0} % headroom) needs more than {MAX_ANSWER} projectors",
                headroom * 100.0
            ),
        };
        return Recommendation { target_rate: rate, headroom, projectors: None, predicted_max: None, answer };
    };
    let predicted = usl.rate(n as f64);
    let mut answer = format!(
        "for {rate:.0} events/s you need {n} projector{} (predicted maximum {predicted:.0} events/s, {:.0} % headroom)",
        if n == 1 { "" } else { "s" },
        (predicted / rate - 1.0) * 100.0
    );
    if n > 2 * largest {
        answer.push_str(&format!(
            "; {n} is beyond twice the largest measured count ({largest}): an extrapolation, measure it"
        ));
    }
    if let Some(partitions) = partitions.filter(|p| n > *p) {
        answer.push_str(&format!(
            "; but the topic has {partitions} partitions, so only {partitions} consumers get work: add partitions first"
        ));
    }
    Recommendation { target_rate: rate, headroom, projectors: Some(n), predicted_max: Some(predicted), answer }
}

/// The saturation search against one deployment (already at its projector count).
async fn search(
    scenario: &Scenario,
    projectors: Option<usize>,
    hint: Option<f64>,
    args: &SearchArgs,
    out: &Path,
    shutdown: &CancellationToken,
) -> anyhow::Result<Saturation> {
    let began = std::time::Instant::now();
    let target = Arc::new(crate::run::connect(scenario).await?);
    let mut search = Search::new(scenario.saturate.clone(), hint);
    let mut steps: Vec<Step> = Vec::new();
    let label = crate::run::target_label(scenario);
    let mut notes = Vec::new();
    // The setup's own events may still be queued: the first step starts on a drained target.
    drain(scenario, &target, args, shutdown, &mut notes, "the setup").await?;
    while let Some(rate) = search.next_rate() {
        if shutdown.is_cancelled() {
            break;
        }
        let index = steps.len() + 1;
        if !args.quiet {
            eprintln!("step {index}: {rate} operations/s for {}", humantime::format_duration(scenario.saturate.step));
        }
        let dir = out.join("steps").join(format!("{index:02}-{rate}"));
        let (step, _) = step::run_step(scenario, index, rate, target.clone(), args.threads, &dir, shutdown).await?;
        if shutdown.is_cancelled() {
            // A step cut short is no verdict on its rate.
            break;
        }
        if !args.quiet {
            eprintln!("  {}", report::step_line(&step));
        }
        search.record(rate, step.pass);
        let mut step = step;
        if !step.pass && search.next_rate().is_some() {
            step.drained_after_s = drain(scenario, &target, args, shutdown, &mut notes, "a failing step").await?;
        }
        steps.push(step);
    }
    if let crate::target::AnyTarget::Embedded(embedded) = &target.main {
        embedded.app().shutdown();
    }
    let bracket = search.bracket();
    let (highest_pass, lowest_fail) = match bracket {
        Bracket::Between { pass, fail } => (Some(pass), Some(fail)),
        Bracket::AtLeast(pass) => (Some(pass), None),
        Bracket::Below(fail) => (None, Some(fail)),
    };
    let mut saturation = Saturation {
        schema_version: SCHEMA_VERSION,
        scenario: scenario.name.clone(),
        target: label,
        projectors,
        highest_pass,
        lowest_fail,
        max_events_per_s: None,
        answer: String::new(),
        failed_because: Vec::new(),
        precision: scenario.saturate.precision,
        steps,
        notes: Vec::new(),
        slo_lines: scenario
            .slo
            .iter()
            .filter(|r| {
                matches!(
                    r.metric,
                    scenario::SloMetric::CommandLatency(_)
                        | scenario::SloMetric::QueryLatency(_)
                        | scenario::SloMetric::ProjectionLag(_)
                )
            })
            .map(|r| SloLine { name: r.name.clone(), threshold_ms: r.threshold })
            .collect(),
        interrupted: shutdown.is_cancelled(),
        elapsed_s: began.elapsed().as_secs_f64(),
    };
    saturation.max_events_per_s = saturation.step_at(highest_pass).map(|s| s.events_per_s);
    saturation.failed_because = saturation.step_at(lowest_fail).map(|s| s.reasons.clone()).unwrap_or_default();
    saturation.answer = report::answer(&saturation, &bracket, &scenario.saturate);
    saturation.notes = notes;
    Ok(saturation)
}

/// `step::wait_for_drain`, said on the terminal and noted when it gave up.
async fn drain(
    scenario: &Scenario,
    target: &Arc<crate::target::Routed>,
    args: &SearchArgs,
    shutdown: &CancellationToken,
    notes: &mut Vec<String>,
    after: &str,
) -> anyhow::Result<f64> {
    if scenario.projection.is_none() {
        return Ok(0.0);
    }
    if !args.quiet {
        eprintln!("waiting for the read model to catch up with {after}");
    }
    let (waited, caught_up) = step::wait_for_drain(scenario, target.clone(), args.threads, shutdown).await?;
    if !caught_up && !shutdown.is_cancelled() {
        let note = format!(
            "the read model had not caught up with {after} after {:.0} s: the next step started on a backlog",
            waited.as_secs_f64()
        );
        eprintln!("warning: {note}");
        notes.push(note);
    }
    Ok(waited.as_secs_f64())
}

fn load(args: &SearchArgs) -> anyhow::Result<Scenario> {
    let mut scenario = scenario::load(&args.scenario, &args.overrides)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if matches!(scenario.load.model, LoadModel::Closed { .. }) {
        return Err(Usage(anyhow::anyhow!(
            "{}: a saturation search offers rates, so it needs load.model = \"open\" (a closed model has users, not a rate)",
            args.scenario.display()
        ))
        .into());
    }
    Ok(scenario)
}

fn out_dir(args: &SearchArgs, scenario: &Scenario, what: &str) -> PathBuf {
    args.out.clone().unwrap_or_else(|| crate::run::default_out_dir_for(scenario, Some(what)))
}

/// `cqrs-bench report DIR` on a `saturate` or `capacity` folder: redraws its plots and
/// report.html from saturate.json / capacity.json. `None`: not such a folder.
pub fn rebuild(dir: &Path) -> Option<anyhow::Result<()>> {
    // Only regular files are read (issue 32: a FIFO hung `report`); writes that fail are exit 3.
    let read = |name: &str| {
        let path = dir.join(name);
        path.symlink_metadata().is_ok().then(|| crate::results::read_regular(&path, crate::results::MAX_RESULT_BYTES))
    };
    let written = |w: anyhow::Result<()>| w.map_err(|e| anyhow::Error::from(crate::exit::OutputFailure(e)));
    if let Some(text) = read("capacity.json") {
        return Some((|| {
            let result: CapacityResult = serde_json::from_str(&text?)?;
            for point in &result.points {
                let at = dir.join(format!("projectors-{}", point.projectors));
                written(report::write_saturation(&point.saturation, &at))?;
            }
            written(report::write_capacity(&result, dir))
        })());
    }
    let text = read("saturate.json")?;
    Some((|| {
        let saturation: Saturation = serde_json::from_str(&text?)?;
        written(report::write_saturation(&saturation, dir))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(projectors: usize, max: Option<f64>) -> Point {
        let saturation = Saturation {
            schema_version: SCHEMA_VERSION,
            scenario: "t".into(),
            target: "t".into(),
            projectors: Some(projectors),
            highest_pass: max,
            lowest_fail: None,
            max_events_per_s: max,
            answer: "fails even at 1 operations/s".into(),
            failed_because: Vec::new(),
            precision: 0.05,
            steps: Vec::new(),
            notes: Vec::new(),
            slo_lines: Vec::new(),
            interrupted: false,
            elapsed_s: 0.0,
        };
        Point { projectors, max_events_per_s: max, saturation }
    }

    fn usl_points(lambda: f64, sigma: f64, kappa: f64, counts: &[usize]) -> Vec<Point> {
        let usl = usl::Usl { lambda, sigma, kappa, rms_error_pct: 0.0, max_error_pct: 0.0 };
        counts.iter().map(|&n| point(n, Some(usl.rate(n as f64)))).collect()
    }

    #[test]
    fn a_target_rate_gets_the_smallest_count_with_headroom() {
        let result = plan("t", 0.2, usl_points(100.0, 0.0, 0.0, &[1, 2, 4]), Some(250.0), None, false, Duration::ZERO);
        let rec = result.recommendation.unwrap();
        assert_eq!(rec.projectors, Some(3), "{}", rec.answer); // 300 needed, 3 × 100
        assert!(rec.answer.starts_with("for 250 events/s you need 3 projectors"), "{}", rec.answer);
        assert_eq!(result.predicted.len(), 8);
        assert_eq!(result.predicted[3].measured, Some(400.0));
    }

    #[test]
    fn a_target_rate_beyond_the_peak_gets_no_count() {
        let points = usl_points(100.0, 0.05, 0.02, &[1, 2, 4, 8]);
        let result = plan("t", 0.2, points, Some(5000.0), Some(4), false, Duration::ZERO);
        let usl = result.usl.as_ref().unwrap();
        assert!(usl.peak_projectors.is_some());
        let rec = result.recommendation.unwrap();
        assert_eq!(rec.projectors, None);
        assert!(rec.answer.contains("beyond the predicted peak"), "{}", rec.answer);
        assert!(
            result.notes.iter().any(|n| n.contains("8 projectors exceed the topic's 4 partitions")),
            "{:?}",
            result.notes
        );
    }

    #[test]
    fn partitions_cap_a_count_and_failed_counts_are_noted() {
        let mut points = usl_points(100.0, 0.0, 0.0, &[1, 2]);
        points.push(point(4, None));
        let result = plan("t", 0.0, points, Some(550.0), Some(4), false, Duration::ZERO);
        let rec = result.recommendation.unwrap();
        assert_eq!(rec.projectors, Some(6));
        assert!(rec.answer.contains("the topic has 4 partitions"), "{}", rec.answer);
        assert!(result.notes.iter().any(|n| n.starts_with("4 projectors: no rate passed")), "{:?}", result.notes);
        assert!(result.notes.iter().any(|n| n.contains("κ is taken as 0")), "{:?}", result.notes);
    }

    #[test]
    fn nothing_sustained_gives_no_fit_and_says_so() {
        let result = plan("t", 0.2, vec![point(1, None)], Some(10.0), None, false, Duration::ZERO);
        assert!(result.usl.is_none() && result.predicted.is_empty());
        assert!(result.recommendation.unwrap().answer.starts_with("no answer"));
    }
}
