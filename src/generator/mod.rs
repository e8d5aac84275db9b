//! The load: setup requests, then the scenario's stages, open or closed model.
//!
//! `drive` runs the phases in order and hands back what the collector gathered.
//! Shutdown order: stop generating → let in-flight and backlogged operations finish
//! within a grace → cancel the rest → close the sample channel → collector returns.

mod captures;
mod collector;
pub mod created;
pub mod executor;
mod mix;
mod open;
pub mod schedule;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use collector::{Collected, Gauges, Interval, LAG_LATE, LAG_NONE, OpFigures, Phase, Sample};
pub use executor::Outcome;
use executor::{Executor, PreparedOp};
use mix::OpChooser;
pub use open::{BACKLOG_SLOT_BYTES, Dispatched};
use open::{Limits, OpTaskContext};
use schedule::OpenSchedule;

use crate::probe::actions::{self, ActionRun};
use crate::probe::bus::{self, BusProbe};
use crate::probe::lag::{self as lag_probe, LagFigures, LagProbe};
use crate::probe::ledger as probe_ledger;
use crate::probe::verify::{self, VerifyOutcome};
use crate::scenario::{ExpectedValue, LoadModel, OpKind, Scenario};
use crate::target::Target;

/// Samples waiting for the collector; operations wait (never drop) when it is full.
const SAMPLE_CHANNEL: usize = 64 * 1024;
/// Longest wait for the last setup requests after their schedule ended.
const SETUP_GRACE: Duration = Duration::from_secs(300);
/// Lead time between planning the load and its first operation, so it is not late.
const START_LEAD: Duration = Duration::from_millis(20);

/// Identity of this run in every `{{ref}}`.
#[derive(Debug, Clone, Copy)]
pub struct RunIds {
    pub run_id: u32,
    pub shard: u32,
}

/// Setup phase totals.
#[derive(Debug, Clone, Default)]
pub struct SetupOutcome {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub duration: Duration,
}

/// What the probes found (present when the scenario asks for them).
#[derive(Default)]
pub struct ProbeOutcome {
    pub lag: Option<LagOutcome>,
    pub bus: Option<BusOutcome>,
    pub verify: Option<VerifyOutcome>,
    pub actions: Vec<ActionRun>,
    /// Bytes held by the ledger of refs.
    pub ledger_bytes: usize,
}

pub struct BusOutcome {
    pub counts: bus::BusCounts,
    pub messages: u64,
    pub foreign: u64,
    pub timestamp_type: String,
    /// Acknowledgement → broker timestamp, microseconds.
    pub e2e: hdrhistogram::Histogram<u64>,
    pub consumer_lag: std::collections::BTreeMap<String, bus::GroupLag>,
}

pub struct LagOutcome {
    pub figures: LagFigures,
    pub polls: u64,
    pub poll_errors: u64,
    pub skipped: u64,
    pub resolution: Duration,
    /// Why `until` may never hold (from the first late probe), if it looked so.
    pub misfit: Option<String>,
}

/// What the load produced.
pub struct LoadOutcome {
    pub probes: ProbeOutcome,
    pub collected: Collected,
    pub dispatched: Dispatched,
    pub setup: SetupOutcome,
    /// Wall-clock start of the load phase.
    pub started_at: SystemTime,
    /// How long the load phase ran (the schedule, or until interrupted).
    pub load_elapsed: Duration,
    pub interrupted: bool,
    /// Sent but unanswered when the drain grace ended.
    pub unfinished: u64,
    pub max_in_flight: u64,
    pub max_backlog: u64,
}

/// Runs setup then load against `target`. `on_load_start` fires right before the first
/// load operation (the embedded target restarts its fault clock there).
pub async fn drive<T: Target>(
    scenario: &Scenario,
    target: Arc<T>,
    ids: RunIds,
    shutdown: CancellationToken,
    gauges: Arc<Gauges>,
    on_load_start: impl FnOnce(),
) -> anyhow::Result<LoadOutcome> {
    let common = &scenario.target.headers;
    let load_ops =
        scenario.operations.iter().map(|o| PreparedOp::for_operation(o, common)).collect::<anyhow::Result<Vec<_>>>()?;
    // `[verify] deltas`: the commands that change the read model's number carry their change.
    let mut load_ops = load_ops;
    if let Some(ExpectedValue::Deltas { deltas, .. }) =
        scenario.verify.as_ref().and_then(|v| v.values.as_ref()).map(|v| &v.expected)
    {
        for (op, delta) in deltas {
            load_ops[*op].delta = Some(delta.clone());
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
    let executor = |ops| {
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
        })
    };
    let setup_exec = executor(setup_ops);
    let load_exec = executor(load_ops);

    let setup = run_setup(scenario, &setup_exec, &shutdown).await?;
    load_exec.next_seq.store(setup_exec.next_seq.load(Ordering::Relaxed), Ordering::Relaxed);
    if shutdown.is_cancelled() {
        // Interrupted during setup (issue 16): no load, but still an outcome, so the run
        // writes its (empty, interrupted) results. With the token cancelled, `run_load`
        // sends nothing and skips reconciliation.
        return run_load(scenario, load_exec, gauges, shutdown, setup).await;
    }

    gauges.set_phase(Phase::Load);
    on_load_start();
    run_load(scenario, load_exec, gauges, shutdown, setup).await
}

async fn run_setup<T: Target>(
    scenario: &Scenario,
    executor: &Arc<Executor<T>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<SetupOutcome> {
    let began = Instant::now();
    let mut outcome = SetupOutcome::default();
    let keys = scenario.mix.keys.count;
    for (index, setup) in scenario.setup.iter().enumerate() {
        let gauges = Arc::new(Gauges::default());
        let ops = vec![(format!("setup{index}"), OpKind::Command)];
        let start = Instant::now() + START_LEAD;
        let (tx, rx) = mpsc::channel(SAMPLE_CHANNEL);
        let collector = collector::Collector::new(start, Duration::ZERO, &ops, gauges.clone(), &[], &[], false);
        let collecting = tokio::spawn(collector.run(rx));
        let ctx = OpTaskContext {
            executor: executor.clone(),
            samples: tx,
            gauges,
            tracker: TaskTracker::new(),
            abort: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            lag: None,
        };
        let rate = setup.rate.max(f64::MIN_POSITIVE);
        let schedule =
            OpenSchedule::constant(rate, Duration::from_secs_f64(keys as f64 / rate + 1.0)).take(keys as usize);
        let mut next_key = 0u64;
        let limits = Limits { max_in_flight: 256, max_backlog: usize::MAX };
        let stop = shutdown.clone();
        let ctx = tokio::task::spawn_blocking(move || {
            open::dispatch(
                &ctx,
                schedule,
                || {
                    next_key += 1;
                    (index, next_key - 1)
                },
                start,
                Duration::ZERO,
                limits,
                &stop,
            );
            ctx
        })
        .await
        .context("setup dispatcher")?;
        // Setup must complete, however slowly the target opens accounts: wait for every
        // request (a stuck one still ends at the target timeout), up to SETUP_GRACE; when
        // interrupted, only a short grace, as for the load.
        let interrupted = shutdown.is_cancelled();
        let grace = if interrupted { scenario.target.timeout.min(Duration::from_secs(2)) } else { SETUP_GRACE };
        finish_operations(&ctx, grace).await;
        drop(ctx);
        let collected = collecting.await.context("setup collector")?;
        let figures = &collected.measured[0];
        if interrupted {
            // Only what was sent: the rest of the keys were never attempted.
            outcome.requests += figures.count;
            outcome.ok += figures.ok + figures.rejected;
            outcome.errors += figures.errors;
            break;
        }
        // Requests never answered (aborted at the grace) count as errors.
        let unanswered = keys.saturating_sub(figures.count);
        outcome.requests += keys;
        outcome.ok += figures.ok + figures.rejected;
        outcome.errors += figures.errors + unanswered;
    }
    outcome.duration = began.elapsed();
    Ok(outcome)
}

async fn run_load<T: Target>(
    scenario: &Scenario,
    executor: Arc<Executor<T>>,
    gauges: Arc<Gauges>,
    shutdown: CancellationToken,
    setup: SetupOutcome,
) -> anyhow::Result<LoadOutcome> {
    let chooser =
        OpChooser::new(scenario).context("the mix chooses no operation: check weights and read_write_ratio")?;
    let op_meta: Vec<(String, OpKind)> = scenario.operations.iter().map(|o| (o.name.clone(), o.kind)).collect();
    let start = Instant::now() + START_LEAD;
    let started_at = SystemTime::now() + START_LEAD;
    let (tx, rx) = mpsc::channel(SAMPLE_CHANNEL);
    // The ledger covers `[verify]`'s commands, or every command when only `[bus]` is set.
    let verified = match (&scenario.verify, &scenario.bus) {
        (Some(v), _) => v.commands.clone(),
        (None, Some(_)) => {
            scenario.operations.iter().enumerate().filter(|(_, o)| o.kind == OpKind::Command).map(|(i, _)| i).collect()
        }
        (None, None) => Vec::new(),
    };
    // `[verify] deltas`: the commands whose changes the value accounting sums.
    let valued: Vec<usize> = match scenario.verify.as_ref().and_then(|v| v.values.as_ref()).map(|v| &v.expected) {
        Some(ExpectedValue::Deltas { deltas, .. }) => deltas.iter().map(|(op, _)| *op).collect(),
        _ => Vec::new(),
    };
    // The bus probe starts reading at the log end before the first operation.
    let bus_probe = match &scenario.bus {
        Some(spec) => Some(
            BusProbe::start(spec.clone(), executor.run_id, executor.shard, start)
                .await
                .map_err(crate::exit::RunFailure)?,
        ),
        None => None,
    };
    let collector = collector::Collector::new(
        start,
        scenario.load.warmup,
        &op_meta,
        gauges.clone(),
        &verified,
        &valued,
        scenario.bus.is_some(),
    );
    let collecting = tokio::spawn(collector.run(rx));

    // Probes ride along: lag probes start after sampled commands, actions on their schedule.
    let (lag_tx, lag_rx) = mpsc::channel(SAMPLE_CHANNEL);
    let lag = scenario.projection.as_ref().map(|spec| {
        Arc::new(LagProbe::new(
            executor.clone(),
            spec.clone(),
            scenario.operations.len(),
            scenario.seed,
            lag_tx.clone(),
            gauges.clone(),
        ))
    });
    drop(lag_tx);
    // Late probes are recorded at the probe timeout (issue 12).
    let probe_timeout = scenario.projection.as_ref().map_or(Duration::ZERO, |spec| spec.timeout);
    let lag_collecting = tokio::spawn(lag_probe::collect(start, probe_timeout, lag_rx, gauges.clone()));
    let actions_stop = shutdown.child_token();
    let acting =
        tokio::spawn(actions::run(scenario.actions.clone(), executor.target.clone(), start, actions_stop.clone()));

    let ctx = OpTaskContext {
        executor: executor.clone(),
        samples: tx,
        gauges: gauges.clone(),
        tracker: TaskTracker::new(),
        abort: CancellationToken::new(),
        runtime: tokio::runtime::Handle::current(),
        lag: lag.clone(),
    };
    let stages = scenario.load.stages.clone();
    let mut rng = SmallRng::seed_from_u64(scenario.seed);
    let mut keys = mix::OpKeys::new(scenario, executor.created.clone());
    let warmup = scenario.load.warmup;

    let (ctx, dispatched) = match scenario.load.model {
        LoadModel::Open { max_in_flight, max_backlog } => {
            let stop = shutdown.clone();
            let limits = Limits { max_in_flight, max_backlog };
            tokio::task::spawn_blocking(move || {
                let pick = || {
                    let op = chooser.choose(&mut rng, keys.created_any());
                    (op, keys.pick(op, &mut rng))
                };
                let dispatched = open::dispatch(&ctx, OpenSchedule::new(&stages), pick, start, warmup, limits, &stop);
                (ctx, dispatched)
            })
            .await
            .context("open-model dispatcher")?
        }
        LoadModel::Closed { think_time } => {
            run_users(&ctx, scenario, chooser, start, think_time, &shutdown).await;
            (ctx, Dispatched::default())
        }
    };
    let load_elapsed = start.elapsed();
    let interrupted = shutdown.is_cancelled();
    // Shutdown order: stop actions → let scheduled operations finish within a grace →
    // let lag probes finish theirs → close the sample channels → read the read model back.
    actions_stop.cancel();
    let grace = if interrupted {
        scenario.target.timeout.min(Duration::from_secs(2))
    } else {
        scenario.target.timeout + Duration::from_secs(1)
    };
    gauges.set_phase(Phase::Draining);
    // A signal during the drain cuts it (issue 18), as it cuts every phase after the load.
    tokio::select! {
        biased;
        _ = finish_operations(&ctx, grace) => {}
        _ = shutdown.cancelled(), if !interrupted => finish_operations(&ctx, Duration::ZERO).await,
    }
    // What the abort left behind: never sent (still in the backlog) or never answered.
    let never_sent = gauges.backlog.load(Ordering::Relaxed);
    let unfinished = gauges.in_flight.load(Ordering::Relaxed);
    drop(ctx);
    let lag_outcome = match (&lag, &scenario.projection) {
        (Some(probe), Some(spec)) => {
            let probe_grace = if interrupted { Duration::from_secs(1) } else { spec.timeout + Duration::from_secs(1) };
            gauges.set_phase(Phase::Settling);
            probe.tracker.close();
            let waited = tokio::select! {
                biased;
                _ = shutdown.cancelled() => false,
                waited = tokio::time::timeout(probe_grace, probe.tracker.wait()) => waited.is_ok(),
            };
            if !waited {
                probe.abort.cancel();
                probe.tracker.wait().await;
            }
            Some((
                probe.polls.load(Ordering::Relaxed),
                probe.poll_errors.load(Ordering::Relaxed),
                probe.skipped.load(Ordering::Relaxed),
                spec.poll_interval,
                probe.misfit.get().cloned(),
            ))
        }
        _ => None,
    };
    drop(lag);
    let lag_figures = lag_collecting.await.context("lag collector")?;
    let actions_ran = acting.await.context("actions")?;
    let mut collected = collecting.await.context("collector")?;

    let ledger = collected.ledger.take().map(Arc::new);
    let ledger_bytes = ledger.as_ref().map_or(0, |l| l.approximate_bytes());
    // Nothing answered (a target that accepts and never answers, issue 18): the run could
    // not be carried out, and reading every written key back would only wait out its
    // timeouts.
    let answered: u64 = collected.measured.iter().chain(&collected.warmup).map(|f| f.ok + f.rejected).sum();
    let verify_outcome = match (&scenario.verify, ledger.clone()) {
        // An interrupted run is not reconciled: the user asked to stop, and settling can take
        // `settle`. A signal during the reconciliation cuts it short (issue 18).
        // (A signal after the load gives an outcome with `cut_short`, so the result says so.)
        (Some(spec), Some(ledger)) if !interrupted && answered > 0 => {
            gauges.set_phase(Phase::Verifying);
            Some(verify::reconcile(executor.clone(), spec, ledger, &shutdown).await)
        }
        _ => None,
    };

    let bus_outcome = match (bus_probe, &ledger) {
        (Some(probe), Some(ledger)) => {
            let settle = scenario.verify.as_ref().map_or(Duration::from_secs(10), |v| v.settle);
            gauges.set_phase(Phase::BusDrain);
            Some(finish_bus(probe, ledger, settle, start, started_at, &shutdown).await?)
        }
        _ => None,
    };

    let mut dispatched = dispatched;
    if matches!(scenario.load.model, LoadModel::Closed { .. }) {
        // Closed model: an operation is offered when a user starts it; `achieved` is
        // goodput, so the errors are added back (issue 12).
        dispatched.offered_per_s = collected.timeline.iter().map(|r| r.achieved + r.errors).collect();
        dispatched.offered = collected.completed + unfinished;
        dispatched.offered_measured = collected.measured.iter().map(|f| f.count).sum::<u64>() + unfinished;
    }
    dispatched.dropped += never_sent;
    dispatched.dropped_measured += never_sent;
    Ok(LoadOutcome {
        probes: ProbeOutcome {
            lag: lag_outcome.map(|(polls, poll_errors, skipped, resolution, misfit)| LagOutcome {
                figures: lag_figures,
                polls,
                poll_errors,
                skipped,
                resolution,
                misfit,
            }),
            verify: verify_outcome,
            bus: bus_outcome,
            actions: actions_ran,
            ledger_bytes,
        },
        collected,
        dispatched,
        setup,
        started_at,
        // A run that was not interrupted covered its whole schedule (the last operation is due
        // just before the end), so rates are per scheduled second.
        load_elapsed: if interrupted { load_elapsed.min(scenario.load_duration()) } else { scenario.load_duration() },
        // A signal after the load (drain, probe grace, verify, bus) also marks the run.
        interrupted: shutdown.is_cancelled(),
        unfinished,
        max_in_flight: gauges.max_in_flight.load(Ordering::Relaxed),
        max_backlog: gauges.max_backlog.load(Ordering::Relaxed),
    })
}

/// Lets the bus drain (until nothing new arrives for a second, or `settle`), then
/// accounts every acknowledged command against what the probe saw.
async fn finish_bus(
    probe: BusProbe,
    ledger: &probe_ledger::Ledger,
    settle: Duration,
    start: Instant,
    started_at: SystemTime,
    stop: &CancellationToken,
) -> anyhow::Result<BusOutcome> {
    let deadline = Instant::now() + settle;
    let (mut last, mut quiet_since) = (probe.messages_read(), Instant::now());
    while !stop.is_cancelled() && Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(1) {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let now = probe.messages_read();
        if now != last {
            (last, quiet_since) = (now, Instant::now());
        }
    }
    let (seen, consumer_lag) = probe.finish().await?;
    let mut e2e = crate::results::histogram::new_latency_histogram();
    for (seq, broker_ms) in &seen.broker_ms {
        if let Some(acked) = ledger.sampled_acks.get(seq) {
            let acked_wall = started_at + acked.saturating_duration_since(start);
            let acked_ms = acked_wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let micros = (broker_ms - acked_ms).max(0) as u64 * 1000;
            crate::results::histogram::record(&mut e2e, Duration::from_micros(micros));
        }
    }
    Ok(BusOutcome {
        counts: bus::account(&seen, ledger),
        messages: seen.messages,
        foreign: seen.foreign,
        timestamp_type: seen.timestamp_type,
        e2e,
        consumer_lag,
    })
}

/// Waits for the operations under way, then cancels what is left after `grace`.
async fn finish_operations<T>(ctx: &OpTaskContext<T>, grace: Duration) {
    ctx.tracker.close();
    if tokio::time::timeout(grace, ctx.tracker.wait()).await.is_err() {
        ctx.abort.cancel();
        ctx.tracker.wait().await;
    }
}

/// Closed model: each user sends its next operation when the last one answered.
async fn run_users<T: Target>(
    ctx: &OpTaskContext<T>,
    scenario: &Scenario,
    chooser: OpChooser,
    start: Instant,
    think_time: Duration,
    shutdown: &CancellationToken,
) {
    let chooser = Arc::new(chooser);
    let stages = Arc::new(scenario.load.stages.clone());
    let total = scenario.load_duration();
    let end = tokio::time::Instant::from_std(start + total);
    tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
    for user in 0..schedule::max_users(&stages) {
        let (executor, samples, gauges, lag) =
            (ctx.executor.clone(), ctx.samples.clone(), ctx.gauges.clone(), ctx.lag.clone());
        let (chooser, stages, stop, abort) = (chooser.clone(), stages.clone(), shutdown.clone(), ctx.abort.clone());
        let mut rng = SmallRng::seed_from_u64(scenario.seed.wrapping_add(user as u64 + 1));
        let mut keys = mix::OpKeys::new(scenario, ctx.executor.created.clone());
        ctx.tracker.spawn(async move {
            let user_loop = async {
                loop {
                    let offset = start.elapsed();
                    if stop.is_cancelled() || offset >= total {
                        break;
                    }
                    if schedule::users_at(&stages, offset) <= user {
                        // Not this user's turn yet (ramp): look again shortly.
                        tokio::select! {
                            biased;
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_millis(10)) => continue,
                        }
                    }
                    let op = chooser.choose(&mut rng, keys.created_any());
                    let key = keys.pick(op, &mut rng);
                    let seq = executor.next_seq();
                    gauges.offered.fetch_add(1, Ordering::Relaxed);
                    gauges.enter_flight();
                    let intended = Instant::now();
                    let executed = executor.execute(op, key, seq).await;
                    gauges.leave_flight();
                    if let Some(lag) = &lag {
                        lag.after(op, seq, &executed);
                    }
                    let sample = executed.sample(op, seq, intended);
                    if samples.send(sample).await.is_err() {
                        break;
                    }
                    if !think_time.is_zero() {
                        // Cut at the end of the stages or on shutdown (issue 16: a 20 s think
                        // time kept a 2 s run going for 22 s).
                        tokio::select! {
                            biased;
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep_until(end) => break,
                            _ = tokio::time::sleep(think_time) => {}
                        }
                    }
                }
            };
            tokio::select! {
                biased;
                _ = abort.cancelled() => {}
                _ = user_loop => {}
            }
        });
    }
    // Users stop by themselves at the end of the stages or on shutdown.
    ctx.tracker.close();
    ctx.tracker.wait().await;
}
