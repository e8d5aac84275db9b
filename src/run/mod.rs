//! A run, wired in one place. `cqrs-bench run` (`orchestrate`) prepares the scenario from
//! its flags (`prepare`), serves the live metrics (`metrics`), connects the target
//! (`connect`), calls `drive`, then builds, writes and prints the results.
//!
//! `drive`, here: setup, then the load on the generator with the probes riding along,
//! then the drain, the settling of lag probes, the read-back (`[verify]`) and the bus
//! accounting (`[bus]`). The generator paces and sends; the probes observe and read back;
//! neither knows the other, and both reach the target through `operation::Executor`.
//!
//! Shutdown order: stop generating → let in-flight and backlogged operations finish
//! within a grace → abort the rest → let lag probes finish theirs → read the read
//! model back.

pub mod bound;
mod bus;
mod check;
pub mod clock;
mod connect;
mod metrics;
mod observe;
mod orchestrate;
mod prepare;
mod setup;

pub use check::check_probe_answers;
pub use connect::{connect, target_label};
pub use orchestrate::{RunOutcome, run, verdict_code};
pub use prepare::{default_out_dir_for, generator_threads};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::generator::mix::{OpChooser, OpKeys};
use crate::generator::{self, Limits, LoadPlan, OpenSchedule, Running};
use crate::live::{Gauges, Phase};
use crate::measure::intervals::{IntervalSink, timeline_step};
use crate::operation::{Executor, PreparedOp, captures, created};
use crate::probe::actions;
use crate::probe::backlog::BacklogProbe;
use crate::probe::bus::{self as bus_probe, BusProbe};
use crate::probe::lag::{self as lag_probe, LagProbe};
use crate::probe::lag_figures::{self, Keep, LagCollecting};
use crate::probe::ledger::Ledger;
use crate::probe::resolve::IdResolver;
use crate::probe::stale_reads::TrafficJudge;
use crate::probe::staleness::StalenessProbe;
use crate::probe::verify;
use crate::scenario::{ExpectedValue, LoadModel, OpKind, Scenario};
use crate::target::Target;
use observe::RunObserver;

// What `drive` returns, defined below `results` (which reads it), named here as before.
pub use crate::results::outcome::{BusOutcome, LagOutcome, LoadOutcome, ProbeOutcome, SetupOutcome, StalenessOutcome};

/// Lag records waiting for the lag collector; probes wait (never drop) when it is full.
const LAG_CHANNEL: usize = 64 * 1024;
/// Lead time between planning the load and its first operation, so it is not late.
/// The generator threads open their first connections in it (`Target::warm_up`).
const START_LEAD: Duration = Duration::from_millis(50);

/// Identity of this run in every `{{ref}}`, and when its load starts.
#[derive(Debug, Clone, Copy)]
pub struct RunIds {
    pub run_id: u32,
    pub shard: u32,
    /// The wall-clock time the load starts at (`--start-at`): the shards of one run line
    /// up their schedules on it. `None`: right after the setup.
    pub start_at: Option<SystemTime>,
}

impl RunIds {
    /// A run of one process: a random run id, shard 0, starting after its setup.
    pub fn single() -> RunIds {
        RunIds { run_id: rand::random(), shard: 0, start_at: None }
    }
}

/// The instant and wall-clock time of load offset 0: `start_at` when it is still ahead,
/// else `START_LEAD` from now (a shard whose setup ran past the common start begins at
/// once; its result says how late).
fn load_start(start_at: Option<SystemTime>) -> (Instant, SystemTime) {
    let (now, wall) = (Instant::now(), SystemTime::now());
    match start_at.and_then(|at| at.duration_since(wall).ok()) {
        Some(ahead) if ahead >= START_LEAD => (now + ahead, wall + ahead),
        _ => (now + START_LEAD, wall + START_LEAD),
    }
}

/// What a caller plugs into a load.
pub struct Hooks<F: FnOnce()> {
    /// Fires right before the first load operation (the embedded target restarts its
    /// fault clock there).
    pub on_load_start: F,
    /// Where each closed second's histograms are written during the load: `run` writes
    /// the .hlog files there (issue 15); `None` keeps nothing (capacity steps).
    pub intervals: Option<Box<dyn IntervalSink>>,
    /// The same for the lag probes, per second of acknowledgement (projection-lag.hlog).
    pub lag_intervals: Option<Box<dyn IntervalSink>>,
    /// Keep every lag probe's (acknowledged, lag) record (16 bytes a probe): the capacity
    /// steps read their trend. Runs with `[[action]]`s keep them anyway (recovery times).
    pub keep_lag_records: bool,
}

/// Where the load's seconds go as they close, and what the lag collector keeps.
struct Sinks {
    intervals: Option<Box<dyn IntervalSink>>,
    lag: Option<Box<dyn IntervalSink>>,
    keep_lag_records: bool,
}

/// Runs setup then load against `target` on `threads` generator threads.
pub async fn drive<T: Target>(
    scenario: &Scenario,
    target: Arc<T>,
    ids: RunIds,
    threads: usize,
    shutdown: CancellationToken,
    gauges: Arc<Gauges>,
    hooks: Hooks<impl FnOnce()>,
) -> anyhow::Result<LoadOutcome> {
    let common = &scenario.target.headers;
    let mut load_ops =
        scenario.operations.iter().map(|o| PreparedOp::for_operation(o, common)).collect::<anyhow::Result<Vec<_>>>()?;
    // `[verify] deltas`: the commands that change the read model's number carry their change.
    for (index, value) in scenario.verify.iter().flat_map(|v| v.values.iter()).enumerate() {
        if let ExpectedValue::Deltas { deltas, .. } = &value.expected {
            for (op, delta) in deltas {
                load_ops[*op].deltas.push((index, delta.clone()));
            }
        }
    }
    let setup_ops = scenario
        .setup
        .iter()
        .enumerate()
        .map(|(i, s)| PreparedOp::new(&format!("setup {}", i + 1), &s.request, common))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let wants_captures = scenario
        .operations
        .iter()
        .map(|o| &o.request)
        .chain(scenario.setup.iter().map(|s| &s.request))
        .any(|r| !r.captures.is_empty() || r.uses_captures());
    // Setup and load share one capture store and one sequence space.
    let captures = wants_captures.then(|| Arc::new(captures::CaptureStore::new()));
    let created = Arc::new(created::CreatedKeys::default());
    // Lag probes that read the probed command's facts (issue 31): the commands that change
    // what `until` reads are watched for overlaps, the probed ones keep their bodies.
    let facts = scenario.projection.as_ref().map(crate::probe::key_facts::FactsUsed::of).unwrap_or_default();
    if let Some(projection) = scenario.projection.as_ref().filter(|_| facts.per_key()) {
        for op in &mut load_ops {
            op.watched |= !op.deltas.is_empty();
        }
        for &op in &projection.commands {
            load_ops[op].watched = true;
        }
    }
    if let Some(projection) = scenario.projection.as_ref().filter(|_| facts.body) {
        for &op in &projection.commands {
            load_ops[op].keep_body = true;
        }
    }
    let executor = |ops, flights| {
        Arc::new(Executor {
            target: target.clone(),
            ops,
            key_prefix: scenario.mix.keys.prefix.clone(),
            run_id: ids.run_id,
            shard: ids.shard,
            seed: scenario.seed,
            timeout: scenario.target.timeout,
            captures: captures.clone(),
            created: created.clone(),
            next_seq: AtomicU64::new(1),
            flights,
        })
    };
    let setup_exec = executor(setup_ops, None);
    let load_exec = executor(load_ops, facts.per_key().then(Arc::default));

    let setup = setup::run(scenario, &setup_exec, threads, &shutdown).await?;
    load_exec.next_seq.store(setup_exec.next_seq.load(Ordering::Relaxed), Ordering::Relaxed);
    if !shutdown.is_cancelled() {
        gauges.set_phase(Phase::Load);
        (hooks.on_load_start)();
    }
    // Interrupted during setup (issue 16): no load, but still an outcome, so the run
    // writes its (empty, interrupted) results. With the token cancelled, `run_load`
    // sends nothing and skips reconciliation.
    let sinks =
        Sinks { intervals: hooks.intervals, lag: hooks.lag_intervals, keep_lag_records: hooks.keep_lag_records };
    let mut outcome = run_load(scenario, load_exec, ids.start_at, threads, gauges, shutdown, sinks).await?;
    outcome.setup = setup;
    Ok(outcome)
}

/// The commands the ledger records: `[verify]`'s, or every command when only `[bus]`
/// is set; plus those whose `[verify] deltas` the value accounting sums, and those
/// `[verify] count` counts.
fn ledger_for(scenario: &Scenario) -> Option<(Ledger, Vec<bool>)> {
    let verified: Vec<usize> = match (&scenario.verify, &scenario.bus) {
        (Some(v), _) => v.commands.clone(),
        (None, Some(_)) => {
            scenario.operations.iter().enumerate().filter(|(_, o)| o.kind == OpKind::Command).map(|(i, _)| i).collect()
        }
        (None, None) => Vec::new(),
    };
    let valued: Vec<usize> = scenario
        .verify
        .iter()
        .flat_map(|v| v.values.iter())
        .flat_map(|value| match &value.expected {
            ExpectedValue::Deltas { deltas, .. } => deltas.iter().map(|(op, _)| *op).collect(),
            ExpectedValue::WriteSide { .. } => Vec::new(),
        })
        .collect();
    let counted: Vec<usize> = match scenario.verify.as_ref().and_then(|v| v.count.as_ref()) {
        Some(count) => count.rows.iter().map(|(op, _)| *op).collect(),
        None => Vec::new(),
    };
    if verified.is_empty() && valued.is_empty() && counted.is_empty() {
        return None;
    }
    let n = scenario.operations.len();
    let mut ledger = if scenario.bus.is_some() { Ledger::timing_acks() } else { Ledger::default() };
    ledger.refs_of = (0..n).map(|op| verified.contains(&op)).collect();
    ledger.counted = (0..n).map(|op| counted.contains(&op)).collect();
    let ledgered = (0..n).map(|op| verified.contains(&op) || valued.contains(&op) || counted.contains(&op)).collect();
    Some((ledger, ledgered))
}

async fn run_load<T: Target>(
    scenario: &Scenario,
    executor: Arc<Executor<T>>,
    start_at: Option<SystemTime>,
    threads: usize,
    gauges: Arc<Gauges>,
    shutdown: CancellationToken,
    mut sinks: Sinks,
) -> anyhow::Result<LoadOutcome> {
    let chooser =
        OpChooser::new(scenario).context("the mix chooses no operation: check weights and read_write_ratio")?;
    let timeline_step = timeline_step(scenario.load_duration())?;
    let (start, started_at) = load_start(start_at);
    for sink in sinks.intervals.iter_mut().chain(sinks.lag.iter_mut()) {
        sink.begin(started_at); // the logs' StartTime and BaseTime
    }
    // The bus probe starts reading at the log end before the first operation.
    let bus_probe = match &scenario.bus {
        Some(spec) => Some(
            BusProbe::start(
                spec.clone(),
                executor.run_id,
                executor.shard,
                start,
                bus_tracing(scenario),
                gauges.clone(),
            )
            .await
            .map_err(crate::exit::RunFailure)?,
        ),
        None => None,
    };
    // Every `[[backlog]]` source is read once now: one that does not answer stops the run.
    let backlog_sources = shard_backlog(scenario, executor.shard);
    let backlog_probe = match backlog_sources.is_empty() {
        true => None,
        false => Some(
            BacklogProbe::start(backlog_sources, start, scenario.target.timeout)
                .await
                .map_err(crate::exit::RunFailure)?,
        ),
    };

    // Probes ride along: lag probes start after sampled commands, actions on their schedule.
    let (lag_tx, lag_rx) = mpsc::channel(LAG_CHANNEL);
    let lag = scenario.projection.as_ref().map(|spec| {
        let mut probe = LagProbe::new(
            executor.clone(),
            spec.clone(),
            scenario.operations.len(),
            scenario.seed,
            lag_tx.clone(),
            gauges.clone(),
            scenario.verify.as_ref(),
        );
        // A create whose id is found by reading is probed by that search (issue 31).
        for (op, _) in scenario.operations.iter().enumerate().filter(|(_, o)| o.resolve.is_some()) {
            probe.hand_over(op);
        }
        Arc::new(probe)
    });
    drop(lag_tx);
    // Late probes are recorded at the probe timeout (issue 12).
    let probe_timeout = scenario.projection.as_ref().map_or(Duration::ZERO, |spec| spec.timeout);
    // Lag attribution (the only reader of the seen probes) needs the bus or told stage times.
    let attributes = scenario.projection.as_ref().is_some_and(|spec| {
        scenario.bus.is_some() || spec.stages.received_at.is_some() || spec.stages.applied_at.is_some()
    });
    let collecting = LagCollecting {
        start,
        timeout: probe_timeout,
        step: timeline_step,
        keep: Keep { records: sinks.keep_lag_records || !scenario.actions.is_empty(), seen: attributes },
        outstanding: lag.as_ref().map_or_else(Arc::default, |probe| probe.outstanding.clone()),
        sink: sinks.lag,
        gauges: gauges.clone(),
    };
    let lag_collecting = tokio::spawn(lag_figures::collect(collecting, lag_rx));
    let actions_stop = shutdown.child_token();
    let acting = tokio::spawn(actions::run(
        shard_actions(scenario, executor.shard),
        executor.target.clone(),
        start,
        actions_stop.clone(),
        shutdown.clone(),
    ));

    let staleness = scenario.staleness.as_ref().map(|spec| {
        Arc::new(StalenessProbe::new(
            executor.clone(),
            spec.clone(),
            scenario.operations.len(),
            scenario.seed,
            start + scenario.load.warmup,
        ))
    });
    let traffic = scenario.staleness.as_ref().and_then(|spec| {
        TrafficJudge::new(executor.clone(), spec, scenario.operations.len(), start + scenario.load.warmup).map(Arc::new)
    });
    let resolver = IdResolver::new(executor.clone(), &scenario.operations).map(|mut resolver| {
        resolver.lag = lag.clone();
        Arc::new(resolver)
    });
    let observer = Arc::new(RunObserver {
        ledger: ledger_for(scenario).map(|(mut ledger, ledgered)| {
            ledger.origin = Some(start);
            (Mutex::new(ledger), ledgered)
        }),
        lag: lag.clone(),
        staleness: staleness.clone(),
        traffic: traffic.clone(),
        resolver: resolver.clone(),
    });
    let plan = LoadPlan {
        executor: executor.clone(),
        gauges: gauges.clone(),
        observer: Some(observer.clone() as Arc<dyn generator::Observer>),
        threads,
        start,
        warmup: scenario.load.warmup,
        names: scenario.operations.iter().map(|o| o.name.clone()).collect(),
        stop: shutdown.clone(),
        intervals: sinks.intervals,
        timeline_step,
    };
    let running = start_generator(scenario, plan, chooser, &executor)?;
    let (generated, load_elapsed) = drain(scenario, running, start, &gauges, &shutdown).await?;
    let interrupted = shutdown.is_cancelled();
    actions_stop.cancel();
    // What the abort left behind: never sent (still in a backlog) or never answered.
    let never_sent = gauges.backlog.load(Ordering::Relaxed);
    let unfinished = gauges.in_flight.load(Ordering::Relaxed);

    let lag_outcome = match (&lag, &scenario.projection) {
        (Some(probe), Some(spec)) => {
            let probe_grace = if interrupted { Duration::from_secs(1) } else { spec.timeout + Duration::from_secs(1) };
            gauges.set_phase(Phase::Settling);
            settle(&probe.tracker, &probe.abort, probe_grace, &shutdown).await;
            Some((
                probe.polls.load(Ordering::Relaxed),
                probe.poll_errors.load(Ordering::Relaxed),
                probe.skipped.load(Ordering::Relaxed),
                probe.ambiguous.load(Ordering::Relaxed),
                spec.poll_interval,
                probe.misfit.get().cloned(),
            ))
        }
        _ => None,
    };
    // Ids still looked for get the resolve timeout (the last create's id may be used by
    // nothing, but it is counted as resolved or not).
    let created_outcome = match &resolver {
        Some(resolver) => {
            let timeout = scenario.operations.iter().filter_map(|o| o.resolve.as_ref()).map(|r| r.timeout).max();
            let grace =
                if interrupted { Duration::from_secs(1) } else { timeout.unwrap_or_default() + Duration::from_secs(1) };
            gauges.set_phase(Phase::Settling);
            settle(&resolver.tracker, &resolver.abort, grace, &shutdown).await;
            resolver.stats()
        }
        None => Default::default(),
    };
    drop(resolver);
    let staleness_outcome = match &staleness {
        Some(probe) => Some(finish_staleness(probe, traffic.as_deref(), scenario, interrupted, &shutdown).await),
        None => None,
    };
    drop(lag);
    // The observer holds the last reference to the lag probe's record channel.
    let mut observer = Arc::try_unwrap(observer).map_err(|_| anyhow::anyhow!("a generator thread is still running"))?;
    observer.lag = None;
    observer.staleness = None;
    observer.traffic = None;
    observer.resolver = None;
    let lag_figures = lag_collecting.await.context("lag collector")?;
    let actions_ran = acting.await.context("actions")?;

    let ledger = observer.take_ledger().map(Arc::new);
    let ledger_bytes = ledger.as_ref().map_or(0, |l| l.approximate_bytes());
    let totals = generated.totals;
    let threads = generated.threads;
    // Nothing answered (a target that accepts and never answers, issue 18): the run could
    // not be carried out, and reading every written key back would only wait out its
    // timeouts.
    let answered: u64 = totals.measured.iter().chain(&totals.warmup).map(|f| f.ok + f.rejected + f.conflicts).sum();
    let verify_outcome = match (&scenario.verify, ledger.clone()) {
        // An interrupted run is not reconciled: the user asked to stop, and settling can take
        // `settle`. A signal during the reconciliation cuts it short (issue 18).
        // (A signal after the load gives an outcome with `cut_short`, so the result says so.)
        (Some(spec), Some(ledger)) if !interrupted && answered > 0 => {
            gauges.set_phase(Phase::Verifying);
            let evidence = scenario.projection.as_ref().and_then(|_| verify::LagEvidence::of(&lag_figures));
            Some(verify::reconcile(executor.clone(), spec, ledger, evidence, &shutdown).await)
        }
        _ => None,
    };

    // After `[verify]`: the backlog sources are read until they drain (or `settle`).
    let mut backlog_outcome = match backlog_probe {
        Some(probe) => {
            gauges.set_phase(Phase::BusDrain);
            probe.finish(start + scenario.load_duration(), &shutdown).await
        }
        None => Vec::new(),
    };

    let bus_outcome = match (bus_probe, &ledger) {
        (Some(probe), Some(ledger)) => {
            let settle = scenario.verify.as_ref().map_or(Duration::from_secs(10), |v| v.settle);
            gauges.set_phase(Phase::BusDrain);
            let times = (start, start + scenario.load_duration());
            let spec = scenario.bus.as_ref().expect("a bus probe has its spec");
            Some(bus::finish(probe, ledger, settle, times, started_at, spec, &shutdown).await?)
        }
        _ => None,
    };
    // The consumer groups' lag is the deployment's backlog too: shard 0 gives it, as it
    // gives the `[[backlog]]` sources (`shard_backlog`).
    if executor.shard == 0
        && let Some(bus) = &bus_outcome
    {
        backlog_outcome.extend(bus.backlog.iter().cloned());
    }

    let mut dispatched = generated.dispatched;
    if matches!(scenario.load.model, LoadModel::Closed { .. }) {
        // Closed model: an operation is offered when a user starts it; `achieved` is
        // goodput, so the errors are added back (issue 12; the timeline's rows the same,
        // in `results::build`).
        dispatched.offered = totals.completed + unfinished;
        dispatched.offered_measured = totals.measured.iter().map(|f| f.count).sum::<u64>() + unfinished;
    }
    dispatched.dropped += never_sent;
    dispatched.dropped_measured += never_sent;
    Ok(LoadOutcome {
        probes: ProbeOutcome {
            lag: lag_outcome.map(|(polls, poll_errors, skipped, ambiguous, resolution, misfit)| LagOutcome {
                figures: lag_figures,
                polls,
                poll_errors,
                skipped,
                ambiguous,
                resolution,
                misfit,
            }),
            staleness: staleness_outcome,
            verify: verify_outcome,
            bus: bus_outcome,
            backlog: backlog_outcome,
            actions: actions_ran,
            created: created_outcome,
            ledger_bytes,
        },
        totals,
        timeline: generated.timeline,
        timeline_step,
        dispatched,
        setup: SetupOutcome::default(), // `drive` puts the setup's in
        started_at,
        // A run that was not interrupted covered its whole schedule (the last operation is due
        // just before the end), so rates are per scheduled second.
        load_elapsed: if interrupted { load_elapsed.min(scenario.load_duration()) } else { scenario.load_duration() },
        // A signal after the load (drain, probe grace, verify, bus) also marks the run.
        interrupted: shutdown.is_cancelled(),
        threads,
        unfinished,
        max_in_flight: gauges.max_in_flight.load(Ordering::Relaxed),
        max_backlog: gauges.max_backlog.load(Ordering::Relaxed),
        warnings: executor.created.warning().into_iter().collect(),
    })
}

/// The `[[backlog]]` sources this process samples: as with actions, only shard 0 (the
/// backlog is the deployment's, not a shard's: N shards reading it would give N copies of
/// one figure, and `merge` keeps shard 0's).
fn shard_backlog(scenario: &Scenario, shard: u32) -> &[crate::scenario::BacklogSpec] {
    if shard == 0 { &scenario.backlog } else { &[] }
}

/// The `[[action]]`s this process runs: in a run spread over shards, shard 0 runs them
/// all, once (a crash ordered by every shard would be N crashes).
fn shard_actions(scenario: &Scenario, shard: u32) -> Vec<crate::scenario::ActionSpec> {
    if shard == 0 { scenario.actions.clone() } else { Vec::new() }
}

/// With `[projection]`, the bus probe places the lag probe's commands' events, and
/// follows the committed offsets of `[projection.stages] group` (default: the first of
/// `[bus] consumer_groups`) more finely, for lag attribution.
fn bus_tracing(scenario: &Scenario) -> Option<bus_probe::Tracing> {
    let projection = scenario.projection.as_ref()?;
    // A read model that tells when its projector took the event needs no offsets.
    let group = match projection.stages.received_at {
        Some(_) => None,
        None => projection.stages.group.clone().or_else(|| scenario.bus.as_ref()?.consumer_groups.first().cloned()),
    };
    Some(bus_probe::Tracing { probed: lag_probe::sampling(projection, scenario.seed), group })
}

/// Lets a probe's tasks finish within `grace` (a signal cuts it short), then aborts
/// what is left and waits for it to stop.
async fn settle(tracker: &TaskTracker, abort: &CancellationToken, grace: Duration, shutdown: &CancellationToken) {
    tracker.close();
    let finished = tokio::select! {
        biased;
        _ = shutdown.cancelled() => false,
        finished = tokio::time::timeout(grace, tracker.wait()) => finished.is_ok(),
    };
    if !finished {
        abort.cancel();
        tracker.wait().await;
    }
}

/// Lets the read-your-writes reads of the last sampled commands finish (their longest
/// delay, plus a timeout), then takes the figures.
async fn finish_staleness<T: Target>(
    probe: &StalenessProbe<T>,
    traffic: Option<&TrafficJudge<T>>,
    scenario: &Scenario,
    interrupted: bool,
    shutdown: &CancellationToken,
) -> StalenessOutcome {
    let grace = if interrupted {
        Duration::from_secs(1)
    } else {
        probe.longest_delay() + scenario.target.timeout + Duration::from_secs(1)
    };
    settle(&probe.tracker, &probe.abort, grace, shutdown).await;
    StalenessOutcome {
        figures: probe.figures(),
        sampled: probe.sampled.load(Ordering::Relaxed),
        skipped: probe.skipped.load(Ordering::Relaxed),
        traffic: traffic.map(TrafficJudge::figures).unwrap_or_default(),
        traffic_untracked: traffic.map_or(0, |t| t.history.untracked.load(Ordering::Relaxed)),
    }
}

/// Starts the scenario's load model; each worker chooses its operations with its own
/// random stream (seeded from the run's seed and the worker's index).
fn start_generator<T: Target>(
    scenario: &Scenario,
    plan: LoadPlan<T>,
    chooser: OpChooser,
    executor: &Arc<Executor<T>>,
) -> anyhow::Result<Running> {
    let chooser = Arc::new(chooser);
    let pickers = |worker: usize| {
        let chooser = chooser.clone();
        let mut rng = SmallRng::seed_from_u64(scenario.seed.wrapping_add(worker as u64));
        let mut keys = OpKeys::new(scenario, executor.created.clone());
        move |_slot: u64| {
            let op = chooser.choose(&mut rng, keys.created_any());
            (op, keys.pick(op, &mut rng))
        }
    };
    match scenario.load.model {
        LoadModel::Open { max_in_flight, max_backlog } => generator::start_open(
            plan,
            OpenSchedule::new(&scenario.load.stages),
            Limits { max_in_flight, max_backlog },
            pickers,
        ),
        LoadModel::Closed { think_time } => generator::start_closed(plan, &scenario.load.stages, think_time, pickers),
    }
}

/// Waits for the end of the schedule, then lets what is under way finish within a grace
/// (short when interrupted; a signal during the drain cuts it, issue 18). Returns the
/// figures and how long the load phase ran.
async fn drain(
    scenario: &Scenario,
    mut running: Running,
    start: Instant,
    gauges: &Gauges,
    shutdown: &CancellationToken,
) -> anyhow::Result<(generator::Generated, Duration)> {
    running.schedule_ended().await;
    let load_elapsed = start.elapsed();
    let interrupted = shutdown.is_cancelled();
    let grace = if interrupted {
        scenario.target.timeout.min(Duration::from_secs(2))
    } else {
        scenario.target.timeout + Duration::from_secs(1)
    };
    gauges.set_phase(Phase::Draining);
    let generated = running.finish(grace, (!interrupted).then_some(shutdown)).await?;
    Ok((generated, load_elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::OpFigures;

    /// Issue 30: the setup keeps which statuses and failures its errors were, and the
    /// requests that never got an answer.
    #[test]
    fn setup_errors_keep_their_kind() {
        let mut outcome = SetupOutcome::default();
        let figures = OpFigures {
            ok: 997,
            errors: 2,
            errors_by_class: [("status", 1), ("timeout", 1)].into(),
            errors_by_status: [(500, 1)].into(),
            ..Default::default()
        };
        outcome.add(&figures, 1);
        outcome.add(
            &OpFigures {
                errors: 1,
                errors_by_class: [("status", 1)].into(),
                errors_by_status: [(409, 1)].into(),
                ..Default::default()
            },
            0,
        );
        assert_eq!((outcome.ok, outcome.errors), (997, 4));
        let by_class: Vec<(&str, u64)> = outcome.errors_by_class.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        assert_eq!(by_class, [("status", 2), ("timeout", 1), ("unanswered", 1)]);
        let by_status: Vec<(&str, u64)> = outcome.errors_by_status.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(by_status, [("409", 1), ("500", 1)]);
    }
}
