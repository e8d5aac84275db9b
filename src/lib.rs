//! cqrs-bench: a load-testing and benchmark harness for CQRS systems.
//!
//! The pipeline, one stage per module:
//!
//! ```text
//! scenario file ──scenario::load──▶ Scenario ──target::connect──▶ Target
//!      ──run::drive──▶ LoadOutcome ──results::build──▶ RunResult (+ SLO verdicts)
//!      ──report──▶ summary, result.json, … ──▶ exit code
//! ```
//!
//! `run` wires a run: the `generator` paces and sends, the `probe`s observe and read
//! back; neither imports the other. Both reach the target through `operation` (one
//! operation, rendered and classified) and `target` (the adapters); `live` holds the
//! counters they share with the progress display and the `--metrics-listen` endpoint.
//! `measure` (the histogram shape and codec, per-second intervals, timeline rows) sits
//! below all of them and below `results`; no two modules import each other
//! (tests/it/layering.rs).
//!
//! `capacity` sits on top: `saturate` runs `run::drive` at one rate per step and judges
//! each; `capacity` does that per projector count and fits the scalability law.
//!
//! `reference/` holds the reference CQRS systems the harness tests itself against;
//! it is reached only through a `Target`, like any external system.

pub mod capacity;
pub mod cli;
pub mod exit;
pub mod generator;
pub mod live;
pub mod measure;
pub mod merge;
pub mod operation;
pub mod probe;
pub mod reference;
pub mod refs;
pub mod repeat;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod target;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use cli::RunArgs;
use exit::{RunFailure, Usage};
use results::{RunResult, Verdict};
use scenario::{Scenario, Stage, TargetKind, limits};
use target::{AnyTarget, EmbeddedTarget, HttpTarget, KafkaTarget, Routed};

/// What a finished run hands back to `main`.
pub struct RunOutcome {
    pub result: RunResult,
    pub out_dir: PathBuf,
}

/// `cqrs-bench run`: every stage on one screen.
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<RunOutcome> {
    let mut secrets = Vec::new();
    run_stages(args, shutdown, &mut secrets).await.map_err(|e| redact_error(e, &secrets))
}

async fn run_stages(
    args: RunArgs,
    shutdown: CancellationToken,
    secrets: &mut Vec<String>,
) -> anyhow::Result<RunOutcome> {
    let mut scenario = scenario::load(&args.scenario, &args.overrides)?; // file -> checked plan
    secrets.extend(scenario.bus.iter().flat_map(|b| b.client.iter().map(|(_, value)| value.clone())));
    secrets.extend(scenario.secrets.iter().cloned()); // `${ENV}` values (issue 32)
    apply_cli_adjustments(&mut scenario, &args)?;
    let out_dir = args.out.clone().unwrap_or_else(|| match args.shard {
        Some((index, count)) => default_out_dir_for(&scenario, Some(&format!("shard-{index}-of-{count}"))),
        None => default_out_dir(&scenario),
    });
    let ids = run_ids(&scenario, &args);
    // Bound before anything is written or sent: a busy address is a usage error.
    // `--live` alone listens on loopback, on a port the system picks (issue 35): the live
    // view is for the person running the load, not the network.
    let listen = args.metrics_listen.clone().or_else(|| args.live.then(|| "127.0.0.1:0".to_owned()));
    let (gauges, metrics_server) = match &listen {
        Some(listen) => {
            let (gauges, server) = serve_metrics(listen, &scenario, ids).await?;
            (gauges, Some(server))
        }
        None => (Arc::new(live::Gauges::default()), None),
    };
    let rotate_s = report::hlog::rotate_seconds().map_err(Usage)?;
    results::intervals::timeline_step(scenario.load_duration()).map_err(Usage)?;
    report::prepare_dir(&out_dir)?; // before the first request (issue 18)
    let target = Arc::new(connect(&scenario).await?); // adapter chosen by config
    let progress_stop = shutdown.child_token();
    let progress = report::progress::spawn(
        gauges.clone(),
        scenario.load_duration(),
        args.quiet || args.json,
        progress_stop.clone(),
    );
    let on_load_start = || {
        if let AnyTarget::Embedded(embedded) = &target.main {
            embedded.app().restart_fault_clock();
        }
    };
    let threads = generator_threads(args.threads);
    // A shard measures its clock against the target's before it starts (up to ~1 s).
    let clock = match args.shard {
        Some(_) => Some(run::clock::estimate(&*target, Duration::from_millis(1500)).await),
        None => None,
    };
    let linger_stop = shutdown.clone();
    // The operations' .hlog files are written as seconds close (issue 15), not at the end.
    let op_names: Vec<String> = scenario.operations.iter().map(|o| o.name.clone()).collect();
    let intervals = report::hlog::IntervalLogs::operations(&out_dir, op_names.clone(), rotate_s);
    let lag_log = report::hlog::IntervalLogs::lag(&out_dir, rotate_s);
    let log_failures = [intervals.failures(), lag_log.failures()];
    let hooks = run::Hooks {
        on_load_start,
        intervals: Some(Box::new(intervals)),
        lag_intervals: scenario
            .projection
            .is_some()
            .then(|| Box::new(lag_log) as Box<dyn results::intervals::IntervalSink>),
        keep_lag_records: false,
    };
    // The run ends within a bound printed now (issue 32), whatever the target does: past
    // it, the run stops as on a signal (results written, exit 3).
    let wait = args.start_at.and_then(|at| at.duration_since(std::time::SystemTime::now()).ok()).unwrap_or_default();
    let bound = run::bound::RunBound::of(&scenario, wait);
    let ends_by = humantime::format_rfc3339_seconds(std::time::SystemTime::now() + bound.total());
    eprintln!("bound: this run ends by {ends_by} ({}); it is stopped there", bound.describe());
    let bounded = shutdown.child_token();
    let bound_timer = tokio::spawn({
        let (bounded, total) = (bounded.clone(), bound.total());
        async move {
            tokio::time::sleep(total).await;
            bounded.cancel();
        }
    });
    let outcome = run::drive(&scenario, target.clone(), ids, threads, bounded.clone(), gauges.clone(), hooks).await?;
    bound_timer.abort();
    let stopped_at_bound = bounded.is_cancelled() && !shutdown.is_cancelled();
    progress_stop.cancel();
    let _ = progress.await;
    if let Some(metrics) = &gauges.metrics {
        let d = &outcome.dispatched;
        let (offered, dropped) = (d.offered - d.offered_measured, d.dropped - d.dropped_measured);
        metrics.finish([offered, d.offered_measured], [dropped, d.dropped_measured]);
    }
    let mut result = results::build(results::BuildInput {
        scenario: &scenario,
        outcome: &outcome,
        run_id: ids.run_id,
        target_label: target_label(&scenario),
    });
    result.shard = args.shard.map(|(index, count)| results::model::ShardInfo {
        index,
        count,
        start_at: args.start_at.map(|at| humantime::format_rfc3339_millis(at).to_string()),
        start_late_ms: args
            .start_at
            .and_then(|at| outcome.started_at.duration_since(at).ok())
            .map_or(0.0, |late| late.as_secs_f64() * 1e3),
        clock_offset_ms: clock.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.offset_ms),
        clock_offset_error_ms: clock.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.error_ms),
        clock_unknown: clock.as_ref().and_then(|c| c.as_ref().err()).cloned(),
        merged_from: Vec::new(),
        clock_spread_ms: None,
    });
    match &target.main {
        AnyTarget::Embedded(embedded) => {
            result.target_truth = serde_json::to_value(embedded.app().ground_truth()).ok();
        }
        AnyTarget::Http(http) => {
            result.generator.truncated_bodies = http.truncated_bodies();
            let starved = http.starved_bodies();
            if starved > 0 {
                result.warnings.push(format!(
                    "{starved} answers were cut short (counted in truncated_bodies): the answers being read at once \
                     held the {} MiB the harness keeps for them (issue 32); lower [target] max_body or max_in_flight",
                    scenario::limits::MAX_ANSWER_BYTES_IN_FLIGHT.max(scenario.target.max_body) >> 20
                ));
            }
        }
    }
    if stopped_at_bound {
        result.warnings.push(format!(
            "the run reached its bound, {}, and was stopped there as on a signal (issue 32)",
            bound.describe()
        ));
    }
    let mut warnings = outcome.timeline.warnings.clone();
    if let Some(lag) = &outcome.probes.lag {
        warnings.extend(lag.figures.warnings.iter().cloned());
    }
    // Even for interrupted runs; what could not be written fails the run once the summary
    // is out (issue 32), with the interval logs that stopped during it.
    let mut unwritten = report::write_all(&result, &out_dir);
    for failures in &log_failures {
        unwritten.0.extend(failures.lock().expect("never held across a panic").drain(..));
    }
    // A warning the progress display already printed is not printed again.
    let shown_live = gauges.warning.get().filter(|_| gauges.warning_shown.load(std::sync::atomic::Ordering::Relaxed));
    for warning in result.warnings.iter().chain(&warnings).filter(|w| Some(*w) != shown_live) {
        eprintln!("warning: {warning}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else if args.quiet {
        // Like k6: --quiet drops the live progress and the big summary, not the verdict.
        println!("{} ({})", report::summary::verdict_line(&result), out_dir.display());
    } else {
        print!("{}", report::summary::render(&result, &out_dir));
    }
    if let Some(server) = metrics_server {
        linger(server, args.metrics_linger, &linger_stop).await;
    }
    unwritten.into_result()?;
    Ok(RunOutcome { result, out_dir })
}

/// `--metrics-listen`: the run's live metrics, fed through its gauges, and their endpoint.
async fn serve_metrics(
    listen: &str,
    scenario: &Scenario,
    ids: run::RunIds,
) -> anyhow::Result<(Arc<live::Gauges>, live::serve::MetricsServer)> {
    let operations: Vec<_> = scenario.operations.iter().map(|o| (o.name.clone(), o.kind)).collect();
    let metrics = Arc::new(live::metrics::LiveMetrics::new(&scenario.name, ids.run_id, &operations));
    let step = results::intervals::timeline_step(scenario.load_duration()).map_err(Usage)?;
    let view = Arc::new(report::live_view::LiveView::new(scenario, step));
    let gauges = Arc::new(live::Gauges::with_live(metrics.clone(), view));
    let server = live::serve::MetricsServer::bind(listen, metrics, gauges.clone()).await?;
    eprintln!("metrics: http://{}/metrics", server.addr);
    eprintln!("live view: http://{}/", server.addr);
    Ok((gauges, server))
}

/// `--metrics-linger`: the endpoint stays up with the final totals (a signal ends it).
async fn linger(server: live::serve::MetricsServer, linger: Duration, shutdown: &CancellationToken) {
    if !linger.is_zero() && !shutdown.is_cancelled() {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(linger) => {}
        }
    }
    server.stop().await;
}

/// An error that ends a run, as `main` will print it, without secrets (issue 16): URL
/// userinfo and Kafka client option values (a broker library may quote them) are masked.
/// The exit-code class (usage or run failure) is kept.
fn redact_error(error: anyhow::Error, secrets: &[String]) -> anyhow::Error {
    let text = format!("{error:#}");
    let mut redacted = scenario::redact::redact_urls(&text);
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        redacted = redacted.replace(secret.as_str(), scenario::redact::MASK);
    }
    if redacted == text {
        return error;
    }
    let message = anyhow::anyhow!(redacted);
    match exit::code_for(&error) {
        exit::USAGE => Usage(message).into(),
        _ => RunFailure(message).into(),
    }
}

/// `validate --target URL`: reads one answer of each probe and verify query (GETs only,
/// with the first key) and says where a selector does not fit its shape (issue 12).
/// With `write_one`, first sends one create, so queries on created keys are read with
/// the id it made (issue 31), said in `notes`.
pub async fn check_probe_answers(
    scenario: &Scenario,
    base_url: &str,
    write_one: bool,
) -> anyhow::Result<probe::shape::SampleChecks> {
    let http = Arc::new(HttpTarget::new(base_url, 4, scenario.target.max_body).map_err(Usage)?);
    preflight(base_url, &scenario::redact::redact_urls(base_url), scenario.target.timeout).await?;
    let written = match write_one {
        true => probe::write_one::write_one(scenario, http.clone()).await?,
        false => None,
    };
    let created = match (&written, write_one) {
        (Some(one), _) => Some(one.id.clone()),
        (None, true) => Some(Err("--write-one found no operation with `creates_key` to send".to_owned())),
        (None, false) => None,
    };
    let mut checks = probe::shape::check_sample_answers(scenario, http.as_ref(), created.as_ref()).await;
    if let Some(one) = written {
        checks.notes.push(format!("--write-one: {}", one.note));
    }
    Ok(checks)
}

/// Exit code of a finished run: 0 when every SLO holds, 1 otherwise; 3 when it was
/// interrupted or no operation got a successful answer (`verdict_reason`: its results are
/// written, but it is not a verdict on the scenario; issue 18).
pub fn verdict_code(result: &RunResult) -> i32 {
    match result.verdict {
        _ if result.interrupted || result.verdict_reason.is_some() => exit::RUN_FAILED,
        Verdict::Pass => exit::PASS,
        Verdict::Fail => exit::SLO_VIOLATED,
    }
}

pub(crate) async fn connect(scenario: &Scenario) -> anyhow::Result<Routed> {
    let kafka = match &scenario.bus {
        Some(bus) if scenario.operations.iter().any(|o| o.request.kafka.is_some()) => {
            Some(KafkaTarget::new(bus).map_err(RunFailure)?)
        }
        _ => None,
    };
    Ok(Routed { main: connect_main(scenario).await?, kafka })
}

async fn connect_main(scenario: &Scenario) -> anyhow::Result<AnyTarget> {
    match &scenario.target.kind {
        TargetKind::Embedded(config) => Ok(AnyTarget::Embedded(EmbeddedTarget::start((**config).clone()))),
        TargetKind::Http { base_url, label } => {
            let max_connections = match scenario.load.model {
                scenario::LoadModel::Open { max_in_flight, .. } => max_in_flight,
                scenario::LoadModel::Closed { .. } => schedule_users(scenario),
            };
            let http = HttpTarget::new(base_url, max_connections, scenario.target.max_body).map_err(Usage)?;
            preflight(base_url, label, scenario.target.timeout).await?;
            Ok(AnyTarget::Http(http))
        }
    }
}

/// `--threads`, or one generator thread per core.
pub fn generator_threads(threads: Option<u16>) -> usize {
    threads.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from)
}

fn schedule_users(scenario: &Scenario) -> usize {
    generator::schedule::max_users(&scenario.load.stages).max(1)
}

/// Fails fast (exit 3) when nothing listens at the target, instead of a run of connect errors.
/// Messages name the target by `label` (no userinfo, no `${ENV}` values).
async fn preflight(base_url: &str, label: &str, timeout: Duration) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(base_url).with_context(|| format!("target base_url `{label}`")).map_err(Usage)?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(RunFailure(anyhow::anyhow!("target {label} is unreachable: {e}")).into()),
        Err(_) => {
            Err(RunFailure(anyhow::anyhow!("target {label} is unreachable: no connection within {timeout:?}")).into())
        }
    }
}

pub(crate) fn target_label(scenario: &Scenario) -> String {
    match &scenario.target.kind {
        TargetKind::Embedded(config) => {
            let plural = if config.projectors == 1 { "" } else { "s" };
            format!("embedded:memory ({} projector{plural})", config.projectors)
        }
        TargetKind::Http { label, .. } => label.clone(),
    }
}

/// The run id, shard and start. Shards of one run share a run id (so each tells its
/// siblings' refs from other runs'): `--run-id`, else one derived from `--start-at` and the
/// scenario's name, which every shard of one launch is given alike.
fn run_ids(scenario: &Scenario, args: &RunArgs) -> run::RunIds {
    let derived = args.start_at.map(|at| {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (scenario.name.as_str(), at).hash(&mut hasher);
        hasher.finish() as u32
    });
    run::RunIds {
        run_id: args.run_id.or(derived).unwrap_or_else(rand::random),
        shard: args.shard.map_or(0, |(i, _)| i),
        start_at: args.start_at,
    }
}

/// `--target`, `--duration`, `--rate`, `--seed`, `--shard`: applied to the checked scenario
/// and noted under `cli` in the recorded scenario.
fn apply_cli_adjustments(scenario: &mut Scenario, args: &RunArgs) -> anyhow::Result<()> {
    let mut noted = serde_json::Map::new();
    if let Some(url) = &args.target {
        let label = scenario::redact::redact_urls(url);
        scenario.target.kind = TargetKind::Http { base_url: url.clone(), label: label.clone() };
        noted.insert("target".into(), label.into());
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
        noted.insert("seed".into(), seed.into());
    }
    if let Some(duration) = args.duration {
        if duration.is_zero() || duration > limits::MAX_LOAD {
            return Err(Usage(anyhow::anyhow!(
                "--duration must be more than zero and at most {}",
                limits::MAX_DURATION_TEXT
            ))
            .into());
        }
        // The warmup is excluded from every SLO figure: a load no longer than it leaves every
        // SLO without data (issue 18). Refused as the scenario file's own check does.
        if duration <= scenario.load.warmup {
            let shown = |d: Duration| humantime::format_duration(d).to_string();
            return Err(Usage(anyhow::anyhow!(
                "--duration {}: the load ({}) is shorter than its warmup ({}); lengthen it or pass --set load.warmup=…",
                shown(duration),
                shown(duration),
                shown(scenario.load.warmup)
            ))
            .into());
        }
        scenario.load.stages = fit_stages(&scenario.load.stages, duration);
        noted.insert("duration".into(), humantime::format_duration(duration).to_string().into());
    }
    if let Some(rate) = args.rate {
        let peak = scenario.load.stages.iter().map(|s| s.from.max(s.to)).fold(0.0, f64::max);
        if !(rate > 0.0 && rate.is_finite()) || peak <= 0.0 {
            return Err(
                Usage(anyhow::anyhow!("--rate must be a positive number and the stages must have a rate")).into()
            );
        }
        // The bounds of the scenario file (issue 16: `--rate 1e308` never ended).
        match scenario.load.model {
            scenario::LoadModel::Closed { .. } if rate > limits::MAX_USERS => {
                return Err(
                    Usage(anyhow::anyhow!("--rate: a closed model has at most {} users", limits::MAX_USERS)).into()
                );
            }
            scenario::LoadModel::Closed { .. } => {}
            scenario::LoadModel::Open { .. } => {
                limits::check_rate(rate, false).map_err(|e| Usage(anyhow::anyhow!("--rate: {e}")))?;
            }
        }
        for stage in &mut scenario.load.stages {
            stage.from *= rate / peak;
            stage.to *= rate / peak;
        }
        noted.insert("rate".into(), rate.into());
    }
    if let Some((index, count)) = args.shard {
        for stage in &mut scenario.load.stages {
            stage.from /= f64::from(count);
            stage.to /= f64::from(count);
        }
        // Each shard its own random stream (keys, operations, values): shard 0 keeps the
        // scenario's, so a one-shard run equals an unsharded one.
        scenario.seed ^= u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // A shard carries 1/N of the load: alone it is judged on 1/N of the throughput
        // floor (`merge` judges the whole against the whole floor again).
        for rule in scenario.slo.iter_mut().filter(|r| r.metric == scenario::SloMetric::MinThroughput) {
            rule.threshold /= f64::from(count);
        }
        noted.insert("shard".into(), format!("{index}/{count}").into());
    }
    if let Some(at) = args.start_at {
        noted.insert("start_at".into(), humantime::format_rfc3339_millis(at).to_string().into());
    }
    if !noted.is_empty()
        && let Some(object) = scenario.recorded.as_object_mut()
    {
        object.insert("cli".into(), noted.into());
    }
    Ok(())
}

/// Cuts the stages at `total`, or stretches the last one to reach it.
fn fit_stages(stages: &[Stage], total: Duration) -> Vec<Stage> {
    let mut fitted = Vec::new();
    let mut left = total;
    for stage in stages {
        if left.is_zero() {
            break;
        }
        let duration = stage.duration.min(left);
        let to = stage.from
            + (stage.to - stage.from) * duration.as_secs_f64() / stage.duration.as_secs_f64().max(f64::MIN_POSITIVE);
        fitted.push(Stage { duration, from: stage.from, to });
        left -= duration;
    }
    if let Some(last) = fitted.last_mut() {
        last.duration += left;
    }
    fitted
}

fn default_out_dir(scenario: &Scenario) -> PathBuf {
    default_out_dir_for(scenario, None)
}

/// `reports/<scenario>[-<what>]-<UTC timestamp>/`.
pub(crate) fn default_out_dir_for(scenario: &Scenario, what: Option<&str>) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace([':', '-'], "");
    let safe: String = scenario
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    let what = what.map_or_else(String::new, |w| format!("-{w}"));
    Path::new("reports").join(format!("{safe}{what}-{stamp}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(secs: u64, from: f64, to: f64) -> Stage {
        Stage { duration: Duration::from_secs(secs), from, to }
    }

    #[test]
    fn issue16_errors_are_redacted_and_keep_their_exit_code() {
        let secrets = ["sasl-password-value".to_owned()];
        let usage: anyhow::Error = Usage(anyhow::anyhow!("bad http://u:pw@h/ and sasl-password-value")).into();
        let redacted = redact_error(usage, &secrets);
        assert_eq!(format!("{redacted:#}"), "bad http://u:***@h/ and ***");
        assert_eq!(exit::code_for(&redacted), exit::USAGE);
        let failure: anyhow::Error = RunFailure(anyhow::anyhow!("target http://u:pw@h is unreachable")).into();
        let redacted = redact_error(failure.context("connecting"), &secrets);
        assert_eq!(format!("{redacted:#}"), "connecting: target http://u:***@h is unreachable");
        assert_eq!(exit::code_for(&redacted), exit::RUN_FAILED);
    }

    #[test]
    fn fit_cuts_and_stretches() {
        let stages = [stage(10, 100.0, 100.0), stage(10, 100.0, 200.0)];
        assert_eq!(fit_stages(&stages, Duration::from_secs(15)), [stage(10, 100.0, 100.0), stage(5, 100.0, 150.0)]);
        assert_eq!(fit_stages(&stages, Duration::from_secs(30)), [stage(10, 100.0, 100.0), stage(20, 100.0, 200.0)]);
    }
}
