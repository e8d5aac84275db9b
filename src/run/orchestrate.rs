//! `cqrs-bench run`, every stage on one screen: the scenario from its file and flags, the
//! metrics endpoint, the target, the load with its probes (`drive`), the results built,
//! written and printed, and the error that ends a run told without secrets.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::connect::{connect, target_label};
use super::metrics::{linger, serve_metrics};
use super::prepare::{apply_cli_adjustments, default_out_dir, default_out_dir_for, generator_threads, run_ids};
use crate::cli::RunArgs;
use crate::exit::{self, RunFailure, Usage};
use crate::results::{self, RunResult, Verdict};
use crate::target::AnyTarget;
use crate::{live, report, scenario};

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
        Some(_) => Some(super::clock::estimate(&*target, Duration::from_millis(1500)).await),
        None => None,
    };
    let linger_stop = shutdown.clone();
    // The operations' .hlog files are written as seconds close (issue 15), not at the end.
    let op_names: Vec<String> = scenario.operations.iter().map(|o| o.name.clone()).collect();
    let intervals = report::hlog::IntervalLogs::operations(&out_dir, op_names.clone(), rotate_s);
    let lag_log = report::hlog::IntervalLogs::lag(&out_dir, rotate_s);
    let log_failures = [intervals.failures(), lag_log.failures()];
    let hooks = super::Hooks {
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
    let bound = super::bound::RunBound::of(&scenario, wait);
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
    let outcome = super::drive(&scenario, target.clone(), ids, threads, bounded.clone(), gauges.clone(), hooks).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
