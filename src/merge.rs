//! `cqrs-bench merge SHARD_DIR... --out DIR` (issue 13, PRODUCT §9): one result from the
//! shards of one run, exactly.
//!
//! - Histograms are added, never their percentiles averaged: every operation's latency
//!   and service time, projection lag, bus end-to-end time; and per second, the shards'
//!   interval logs (`<operation>.hlog` and its rotated parts), so the timeline's p50/p99
//!   are exact too; the logs are read and the merged ones written second by second, so
//!   merging holds one second per shard, whatever the run's length (issue 32).
//! - Counts add up; timelines add up per second, aligned on each shard's start.
//! - Event accounting: each shard verified its own refs (its siblings' refs are neither
//!   its own nor foreign), so every acknowledged ref was judged once, by its shard, and
//!   the counts add up to what one process would report.
//! - What every shard observed of one shared thing is taken once, not added: the bus
//!   messages and foreign events its probe read, the consumer groups' lag, the target's
//!   own truth (shard 0's).
//! - Not exactly mergeable, taken from the worst shard and said so: the generator's send
//!   lag percentiles (a property of each generator), warmup latency, the per-second
//!   projection-lag p99; lag attribution stays in each shard's result.
//! - The SLOs are judged again on the merged figures: a shard that passes alone can make
//!   the merged run fail, and the other way round.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;

use crate::report::hlog;
use crate::results::histogram::{
    decode, encode, new_latency_histogram, percentile_ms, percentiles, sampled_percentiles,
};
use crate::results::intervals::row_of;
use crate::results::model::*;
use crate::scenario::{SloMetric, SloRule, slo_metric};

/// Merges the shard folders into one result, written with its report into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<(RunResult, Vec<String>)> {
    let mut shards = Vec::new();
    for dir in dirs {
        let result =
            crate::results::read_result(dir).with_context(|| format!("{} is not a run folder", dir.display()))?;
        let Some(shard) = result.shard.clone() else {
            bail!("{} is not a shard: it was not run with --shard I/N", dir.display());
        };
        shards.push((dir.clone(), shard, result));
    }
    let mut warnings = check_shards(&mut shards)?;
    crate::report::prepare_dir(out)?;
    let results: Vec<&RunResult> = shards.iter().map(|(_, _, r)| r).collect();
    let starts: Vec<f64> = results.iter().map(|r| start_s(r)).collect::<anyhow::Result<_>>()?;
    let first_start = starts.iter().copied().fold(f64::INFINITY, f64::min);
    // Whole seconds after the earliest start each shard's second 0 falls.
    let offsets: Vec<u64> = starts.iter().map(|s| (s - first_start).round() as u64).collect();

    let mut merged = results[0].clone();
    merged.started_at =
        humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(first_start)).to_string();
    merged.interrupted = results.iter().any(|r| r.interrupted);
    merged.duration_s = results.iter().zip(&offsets).map(|(r, o)| r.duration_s + *o as f64).fold(0.0, f64::max);
    merged.measured_s = results.iter().map(|r| r.measured_s).fold(0.0, f64::max);
    merged.operations = merge_operations(&results, |r| &r.operations)?;
    merged.commands = kind_stats(&merged.operations, "command")?;
    merged.queries = kind_stats(&merged.operations, "query")?;
    merged.throughput = throughput(&results, merged.measured_s);
    merged.generator = generator(&results);
    merged.setup = SetupStats {
        requests: results.iter().map(|r| r.setup.requests).sum(),
        ok: results.iter().map(|r| r.setup.ok).sum(),
        errors: results.iter().map(|r| r.setup.errors).sum(),
        errors_by_class: sum_maps(results.iter().map(|r| &r.setup.errors_by_class)),
        errors_by_status: sum_maps(results.iter().map(|r| &r.setup.errors_by_status)),
        duration_s: results.iter().map(|r| r.setup.duration_s).fold(0.0, f64::max),
    };
    merged.warmup = WarmupStats {
        count: results.iter().map(|r| r.warmup.count).sum(),
        errors: results.iter().map(|r| r.warmup.errors).sum(),
        latency_ms: worst(results.iter().map(|r| &r.warmup.latency_ms)),
        // Known only when every shard has it (older results do not).
        send_lag_ms: results
            .iter()
            .map(|r| r.warmup.send_lag_ms.as_ref())
            .collect::<Option<Vec<_>>>()
            .map(|shards| worst(shards.into_iter())),
        operations: merge_operations(&results, |r| &r.warmup.operations)?,
    };
    merged.projection = projection(&results, &mut warnings)?;
    merged.staleness = staleness(&results);
    merged.created = created(&results);
    merged.probe_load = crate::results::probe_load(&merged);
    merged.events = sum_events(&results);
    merged.values = values(&results);
    merged.counts = counts(&results);
    merged.verify = verify(&results);
    merged.bus = bus(&results)?;
    merged.actions = results.iter().flat_map(|r| r.actions.iter().cloned()).collect();
    merged.backlog = shard_zero_backlog(&shards, &starts, first_start, &mut warnings);
    merged.recovery = results.iter().flat_map(|r| r.recovery.iter().cloned()).collect();
    let names: Vec<String> = merged.operations.keys().cloned().collect();
    let dirs: Vec<&Path> = shards.iter().map(|(d, _, _)| d.as_path()).collect();
    let step = results[0].timeline_step();
    if let Some(other) = results.iter().find(|r| r.timeline_step() != step) {
        anyhow::bail!(
            "the shards' timelines have different steps ({step} s and {} s): run them with the same \
             duration and {}",
            other.timeline_step(),
            crate::results::intervals::TIMELINE_ROWS_ENV
        );
    }
    let mut rows = timeline(&results, &offsets, step);
    let merged_start = humantime::parse_rfc3339_weak(&merged.started_at).unwrap_or(SystemTime::UNIX_EPOCH);
    let rotate_s = hlog::rotate_seconds()?;
    for name in &names {
        let (stem, comment) = (hlog::file_safe(name), hlog::operation_comment(name));
        let mut log = MergedLog::new(out, &stem, &comment, merged_start, rotate_s);
        log.create()?; // every operation has its log, as in a run
        let mut row = RowHistogram::new(step);
        merge_seconds(&dirs, &stem, &offsets, |second, histogram| {
            log.append(second, histogram)?;
            row.add(second, histogram, |t_s, h| add_latency(&mut rows, name, t_s, h))
        })?;
        row.finish(|t_s, h| add_latency(&mut rows, name, t_s, h));
        log.flush()?;
    }
    if let Some(projection) = &merged.projection {
        // The lag per row from the shards' lag logs added per second: exact, as one process's.
        let mut log = MergedLog::new(out, hlog::LAG_STEM, hlog::LAG_COMMENT, merged_start, rotate_s);
        let mut row = RowHistogram::new(step);
        let timeout_ms = projection.timeout_ms;
        merge_seconds(&dirs, hlog::LAG_STEM, &offsets, |second, histogram| {
            log.append(second, histogram)?;
            row.add(second, histogram, |t_s, h| add_lag(&mut rows, t_s, h, timeout_ms))
        })?;
        row.finish(|t_s, h| add_lag(&mut rows, t_s, h, timeout_ms));
        log.flush()?;
    }
    merged.timeline = rows.into_values().collect();
    merged.timeline_step_s = step;
    crate::probe::backlog::figures::add_timeline_column(&mut merged.timeline, &merged.backlog, step);
    // Judged again on the merged rows, against the shards' bound (one scenario).
    if let Some(bound) = results.iter().find_map(|r| r.generator.send_lag_over_bound.as_ref()) {
        let bound = (bound.bound_ms, bound.bound_from.clone());
        merged.generator.send_lag_over_bound =
            Some(crate::results::send_lag::over_bound(&merged.timeline, step, merged.warmup_s, bound));
    }
    merged.shard = Some(ShardInfo {
        index: 0,
        count: shards[0].1.count,
        start_at: shards[0].1.start_at.clone(),
        start_late_ms: shards.iter().map(|(_, s, _)| s.start_late_ms).fold(0.0, f64::max),
        clock_offset_ms: None,
        clock_offset_error_ms: None,
        clock_unknown: None,
        merged_from: shards.iter().map(|(d, _, _)| d.display().to_string()).collect(),
        clock_spread_ms: clock_spread(&shards, &mut warnings),
    });
    merged.warnings = results.iter().flat_map(|r| r.warnings.iter().cloned()).chain(warnings.clone()).collect();
    merged.warnings.dedup();
    let rules = rules(&merged, shards[0].1.count)?;
    crate::results::judge_rules(&mut merged, &rules);
    crate::report::write_all(&merged, out).into_result()?;
    Ok((merged, warnings))
}

/// One run's shards: the same scenario and shard count, each index once (a shard twice
/// would count its refs twice). Sorts them by index; warns of missing ones.
fn check_shards(shards: &mut [(PathBuf, ShardInfo, RunResult)]) -> anyhow::Result<Vec<String>> {
    if shards.is_empty() {
        bail!("no shard folders to merge");
    }
    shards.sort_by_key(|(_, s, _)| s.index);
    let (first_dir, first, first_result) = &shards[0];
    let scenario_of = |r: &RunResult| {
        let mut scenario = r.scenario.clone();
        if let Some(cli) = scenario.get_mut("cli").and_then(|c| c.as_object_mut()) {
            cli.remove("shard");
        }
        scenario
    };
    let expected = scenario_of(first_result);
    let mut warnings = Vec::new();
    for pair in shards.windows(2) {
        let ((a_dir, a, _), (b_dir, b, _)) = (&pair[0], &pair[1]);
        if a.index == b.index {
            bail!(
                "{} and {} are both shard {}/{}: their refs overlap (merge each shard once)",
                a_dir.display(),
                b_dir.display(),
                a.index,
                a.count
            );
        }
    }
    for (dir, shard, result) in shards.iter() {
        if shard.count != first.count {
            bail!(
                "{} is shard {}/{} but {} is of {} shards: not one run",
                dir.display(),
                shard.index,
                shard.count,
                first_dir.display(),
                first.count
            );
        }
        if scenario_of(result) != expected {
            bail!(
                "{} ran another scenario than {} (or other --set/--rate/--duration): not one run",
                dir.display(),
                first_dir.display()
            );
        }
        if result.run_id != first_result.run_id {
            warnings.push(format!(
                "{} has run id {} and {} {}: each counted the other's refs as foreign (give every shard the same --start-at or --run-id)",
                dir.display(),
                result.run_id,
                first_dir.display(),
                first_result.run_id
            ));
        }
    }
    if shards.len() < first.count as usize {
        let present: Vec<u32> = shards.iter().map(|(_, s, _)| s.index).collect();
        let missing: Vec<String> = (0..first.count).filter(|i| !present.contains(i)).map(|i| i.to_string()).collect();
        warnings.push(format!(
            "shards {} of {} are missing: the merged run covers part of the load",
            missing.join(", "),
            first.count
        ));
    }
    Ok(warnings)
}

/// Shards on other hosts start at one time by their own clocks: the spread of their
/// offsets against the target's clock is how far apart their schedules were.
const CLOCK_SPREAD_WARNING_MS: f64 = 100.0;

fn clock_spread(shards: &[(PathBuf, ShardInfo, RunResult)], warnings: &mut Vec<String>) -> Option<f64> {
    let offsets: Vec<f64> = shards.iter().filter_map(|(_, s, _)| s.clock_offset_ms).collect();
    if offsets.len() < 2 {
        return None;
    }
    let spread = offsets.iter().copied().fold(f64::MIN, f64::max) - offsets.iter().copied().fold(f64::MAX, f64::min);
    if spread > CLOCK_SPREAD_WARNING_MS {
        warnings.push(format!(
            "the shards' clocks differ by {spread:.0} ms (against the target's): their schedules were that far apart"
        ));
    }
    Some(spread)
}

/// A result's load start, seconds since the Unix epoch.
fn start_s(result: &RunResult) -> anyhow::Result<f64> {
    let at = humantime::parse_rfc3339_weak(&result.started_at)
        .with_context(|| format!("started_at `{}` is not a time", result.started_at))?;
    Ok(at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64())
}

fn add_encoded(into: &mut Histogram<u64>, encoded: &str) -> anyhow::Result<()> {
    if encoded.is_empty() {
        return Ok(());
    }
    into.add(decode(encoded)?).map_err(|e| anyhow::anyhow!("adding histograms: {e:?}"))
}

/// Counts by name, added over the shards.
fn sum_maps<'a>(maps: impl Iterator<Item = &'a BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut sum = BTreeMap::new();
    for (name, n) in maps.flatten() {
        *sum.entry(name.clone()).or_default() += n;
    }
    sum
}

/// Adds up the shards' per-operation figures of one window (`pick`: the load's or the warmup's).
fn merge_operations(
    results: &[&RunResult],
    pick: fn(&RunResult) -> &BTreeMap<String, OperationStats>,
) -> anyhow::Result<BTreeMap<String, OperationStats>> {
    let mut merged: BTreeMap<String, (OperationStats, Histogram<u64>, Histogram<u64>)> = BTreeMap::new();
    for result in results {
        for (name, stats) in pick(result) {
            let entry = merged.entry(name.clone()).or_insert_with(|| {
                let empty = OperationStats {
                    kind: stats.kind.clone(),
                    count: 0,
                    ok: 0,
                    rejected: 0,
                    conflicts: 0,
                    conflict_rate: 0.0,
                    errors: 0,
                    errors_by_class: BTreeMap::new(),
                    errors_by_status: BTreeMap::new(),
                    latency_ms: None,
                    service_time_ms: None,
                    histogram: String::new(),
                    service_time_histogram: String::new(),
                };
                (empty, new_latency_histogram(), new_latency_histogram())
            });
            let (into, latency, service) = entry;
            into.count += stats.count;
            into.ok += stats.ok;
            into.rejected += stats.rejected;
            into.conflicts += stats.conflicts;
            into.errors += stats.errors;
            for (class, n) in &stats.errors_by_class {
                *into.errors_by_class.entry(class.clone()).or_default() += n;
            }
            for (status, n) in &stats.errors_by_status {
                *into.errors_by_status.entry(status.clone()).or_default() += n;
            }
            add_encoded(latency, &stats.histogram).with_context(|| format!("operation `{name}`"))?;
            add_encoded(service, &stats.service_time_histogram).with_context(|| format!("operation `{name}`"))?;
        }
    }
    Ok(merged
        .into_iter()
        .map(|(name, (mut stats, latency, service))| {
            stats.latency_ms = sampled_percentiles(&latency);
            stats.service_time_ms = sampled_percentiles(&service);
            stats.histogram = encode(&latency);
            stats.service_time_histogram = encode(&service);
            stats.conflict_rate = ratio(stats.conflicts, stats.answered());
            (name, stats)
        })
        .collect())
}

fn kind_stats(operations: &BTreeMap<String, OperationStats>, kind: &str) -> anyhow::Result<KindStats> {
    let (mut latency, mut service) = (new_latency_histogram(), new_latency_histogram());
    let mut stats = KindStats::default();
    let mut answered = 0;
    for op in operations.values().filter(|o| o.kind == kind) {
        stats.count += op.count;
        stats.ok += op.ok;
        stats.rejected += op.rejected;
        stats.conflicts += op.conflicts;
        answered += op.answered();
        stats.errors += op.errors;
        add_encoded(&mut latency, &op.histogram)?;
        add_encoded(&mut service, &op.service_time_histogram)?;
    }
    stats.error_rate = if stats.count == 0 { 0.0 } else { stats.errors as f64 / stats.count as f64 };
    stats.conflict_rate = ratio(stats.conflicts, answered);
    stats.latency_ms = percentiles(&latency);
    stats.service_time_ms = percentiles(&service);
    Ok(stats)
}

/// `part / whole`, 0 when `whole` is 0.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn throughput(results: &[&RunResult], measured_s: f64) -> Throughput {
    let sum = |f: fn(&Throughput) -> u64| results.iter().map(|r| f(&r.throughput)).sum::<u64>();
    let per_s = |n: u64| if measured_s > 0.0 { n as f64 / measured_s } else { 0.0 };
    let (offered, achieved, errors) = (sum(|t| t.offered), sum(|t| t.achieved), sum(|t| t.errors));
    Throughput {
        offered_per_s: per_s(offered),
        achieved_per_s: per_s(achieved),
        offered,
        achieved,
        errors,
        errors_per_s: per_s(errors),
        dropped: sum(|t| t.dropped),
        unfinished: sum(|t| t.unfinished),
    }
}

/// Each field's largest value over the shards: the worst shard, for figures that do not add.
fn worst<'a>(all: impl Iterator<Item = &'a Percentiles>) -> Percentiles {
    all.fold(Percentiles::default(), |w, p| Percentiles {
        min: if w.min == 0.0 { p.min } else { w.min.min(p.min) },
        mean: w.mean.max(p.mean),
        p50: w.p50.max(p.p50),
        p90: w.p90.max(p.p90),
        p95: w.p95.max(p.p95),
        p99: w.p99.max(p.p99),
        p999: w.p999.max(p.p999),
        max: w.max.max(p.max),
    })
}

fn generator(results: &[&RunResult]) -> GeneratorStats {
    GeneratorStats {
        threads: Some(results.iter().filter_map(|r| r.generator.threads).sum()),
        // Null when no shard sent anything after the warmup.
        send_lag_ms: results
            .iter()
            .any(|r| r.generator.send_lag_ms.is_some())
            .then(|| worst(results.iter().filter_map(|r| r.generator.send_lag_ms.as_ref()))),
        send_lag_unknown: results
            .iter()
            .find_map(|r| r.generator.send_lag_unknown.clone())
            .filter(|_| results.iter().all(|r| r.generator.send_lag_ms.is_none())),
        send_lag_over_bound: None, // judged on the merged timeline
        // Peaks of different processes need not coincide: their sum bounds the whole.
        max_in_flight: results.iter().map(|r| r.generator.max_in_flight).sum(),
        max_backlog: results.iter().map(|r| r.generator.max_backlog).sum(),
        max_backlog_bytes: results.iter().map(|r| r.generator.max_backlog_bytes).sum(),
        truncated_bodies: results.iter().map(|r| r.generator.truncated_bodies).sum(),
    }
}

fn projection(results: &[&RunResult], warnings: &mut Vec<String>) -> anyhow::Result<Option<ProjectionStats>> {
    let all: Vec<&ProjectionStats> = results.iter().filter_map(|r| r.projection.as_ref()).collect();
    let Some(first) = all.first() else { return Ok(None) };
    let mut histogram = new_latency_histogram();
    for p in &all {
        add_encoded(&mut histogram, &p.histogram).context("projection lag")?;
    }
    if all.iter().any(|p| p.attribution.is_some()) {
        warnings.push("lag attribution is per shard: see each shard's result".into());
    }
    let mut lag_ms = percentiles(&histogram);
    if let Some(at) = first.censored_at_ms {
        for v in [&mut lag_ms.p50, &mut lag_ms.p90, &mut lag_ms.p95, &mut lag_ms.p99, &mut lag_ms.p999, &mut lag_ms.max]
        {
            *v = v.min(at);
        }
        lag_ms.mean = lag_ms.mean.min(at);
    }
    Ok(Some(ProjectionStats {
        probes: all.iter().map(|p| p.probes).sum(),
        late: all.iter().map(|p| p.late).sum(),
        skipped: all.iter().map(|p| p.skipped).sum(),
        ambiguous: all.iter().map(|p| p.ambiguous).sum(),
        polls: all.iter().map(|p| p.polls).sum(),
        poll_errors: all.iter().map(|p| p.poll_errors).sum(),
        resolution_ms: first.resolution_ms,
        timeout_ms: first.timeout_ms,
        censored_at_ms: first.censored_at_ms,
        lag_ms,
        histogram: encode(&histogram),
        attribution: None,
    }))
}

/// Ids found by reading: counts added up; the lag percentiles are each shard's worst
/// (the histograms are not kept), like the warmup's latency.
fn created(results: &[&RunResult]) -> BTreeMap<String, crate::probe::resolve::ResolveStats> {
    let mut merged: BTreeMap<String, crate::probe::resolve::ResolveStats> = BTreeMap::new();
    for (op, c) in results.iter().flat_map(|r| &r.created) {
        let Some(m) = merged.get_mut(op) else {
            merged.insert(op.clone(), c.clone());
            continue;
        };
        m.to_resolve += c.to_resolve;
        m.resolved += c.resolved;
        m.unresolved += c.unresolved;
        m.abandoned += c.abandoned;
        m.skipped += c.skipped;
        m.not_kept += c.not_kept;
        m.polls += c.polls;
        m.poll_errors += c.poll_errors;
        m.lag_ms = match (m.lag_ms.take(), &c.lag_ms) {
            (Some(a), Some(b)) => Some(worst([&a, b].into_iter())),
            (a, b) => a.or_else(|| b.clone()),
        };
    }
    merged
}

fn staleness(results: &[&RunResult]) -> Option<StalenessStats> {
    use crate::probe::staleness::{DelayFigures, share_with_interval, visible_at};
    let all: Vec<&StalenessStats> = results.iter().filter_map(|r| r.staleness.as_ref()).collect();
    let first = all.first()?;
    let mut points = first.points.clone();
    for (i, point) in points.iter_mut().enumerate() {
        point.reads = all.iter().filter_map(|s| s.points.get(i)).map(|p| p.reads).sum();
        point.fresh = all.iter().filter_map(|s| s.points.get(i)).map(|p| p.fresh).sum();
        point.errors = all.iter().filter_map(|s| s.points.get(i)).map(|p| p.errors).sum();
        let waited: f64 =
            all.iter().filter_map(|s| s.points.get(i)).map(|p| p.mean_actual_delay_ms * p.reads as f64).sum();
        point.mean_actual_delay_ms = if point.reads > 0 { waited / point.reads as f64 } else { 0.0 };
        (point.p_fresh, point.p_fresh_low, point.p_fresh_high) = share_with_interval(point.fresh, point.reads);
    }
    let figures: Vec<DelayFigures> = points
        .iter()
        .map(|p| DelayFigures {
            delay: Duration::from_secs_f64(p.delay_ms / 1e3),
            reads: p.reads,
            fresh: p.fresh,
            errors: p.errors,
            mean_actual: Duration::ZERO,
        })
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut traffic = first.traffic.clone();
    for t in &mut traffic {
        let same = || all.iter().flat_map(|s| s.traffic.iter().filter(|o| o.query == t.query));
        t.reads = same().map(|o| o.reads).sum();
        t.stale = same().map(|o| o.stale).sum();
        t.unjudged = same().map(|o| o.unjudged).sum();
        (t.stale_rate, t.stale_rate_low, t.stale_rate_high) = share_with_interval(t.stale, t.reads);
    }
    Some(StalenessStats {
        sampled: all.iter().map(|s| s.sampled).sum(),
        skipped: all.iter().map(|s| s.skipped).sum(),
        reads: all.iter().map(|s| s.reads).sum(),
        errors: all.iter().map(|s| s.errors).sum(),
        fresh_p99_at_ms: visible_at(&figures, 0.99).map(ms),
        fresh_p999_at_ms: visible_at(&figures, 0.999).map(ms),
        points,
        traffic,
        traffic_untracked: all.iter().map(|s| s.traffic_untracked).sum(),
    })
}

fn sum_events(results: &[&RunResult]) -> Option<EventCounts> {
    let all: Vec<&EventCounts> = results.iter().filter_map(|r| r.events.as_ref()).collect();
    if all.is_empty() {
        return None;
    }
    let sum = |f: fn(&EventCounts) -> u64| all.iter().map(|e| f(e)).sum::<u64>();
    Some(EventCounts {
        acked: sum(|e| e.acked),
        missed: sum(|e| e.missed),
        duplicates: sum(|e| e.duplicates),
        unexpected: sum(|e| e.unexpected),
        indeterminate: sum(|e| e.indeterminate),
        recovered: sum(|e| e.recovered),
        reordered: sum(|e| e.reordered),
        // Rows of other runs each shard read: a key read by two shards counts in both.
        foreign: sum(|e| e.foreign),
        keys_checked: sum(|e| e.keys_checked),
        read_errors: sum(|e| e.read_errors),
        unknown: sum(|e| e.unknown),
        pending: sum(|e| e.pending),
        // Each shard's first refs of each class, by ref (shards' refs differ in their shard).
        examples: {
            let mut examples: Vec<_> = all.iter().flat_map(|e| e.examples.iter().cloned()).collect();
            examples.sort_by(|a, b| a.class.cmp(&b.class).then_with(|| a.op_ref.cmp(&b.op_ref)));
            examples
        },
        unknown_because: all.iter().flat_map(|e| e.unknown_because.iter().cloned()).collect(),
    })
}

fn values(results: &[&RunResult]) -> Option<crate::probe::values::ValueCounts> {
    let all: Vec<&crate::probe::values::ValueCounts> = results.iter().filter_map(|r| r.values.as_ref()).collect();
    let mut merged = (*all.first()?).clone();
    for v in &all[1..] {
        absorb_values(&mut merged, v);
        // Several values (issue 31): each value's figures by its name.
        for one in &v.by_value {
            match merged.by_value.iter_mut().find(|m| m.name == one.name) {
                Some(into) => absorb_values(into, one),
                None => merged.by_value.push(one.clone()),
            }
        }
    }
    merged.mismatches.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.value.cmp(&b.value)));
    for one in &mut merged.by_value {
        one.mismatches.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Some(merged)
}

fn absorb_values(merged: &mut crate::probe::values::ValueCounts, v: &crate::probe::values::ValueCounts) {
    merged.keys_checked += v.keys_checked;
    merged.matched += v.matched;
    merged.mismatched += v.mismatched;
    merged.absent += v.absent;
    merged.unsure += v.unsure;
    merged.unreadable += v.unreadable;
    merged.largest_difference = merged.largest_difference.max(v.largest_difference);
    merged.total_difference += v.total_difference;
    merged.mismatches.extend(v.mismatches.iter().cloned());
}

/// Count accounting over the shards: sums, the first wrong keys by key text.
fn counts(results: &[&RunResult]) -> Option<crate::probe::counts::RowCounts> {
    let mut all = results.iter().filter_map(|r| r.counts.as_ref());
    let mut merged = all.next()?.clone();
    for c in all {
        merged.absorb(c);
    }
    Some(merged)
}

fn verify(results: &[&RunResult]) -> Option<VerifyStats> {
    let all: Vec<&VerifyStats> = results.iter().filter_map(|r| r.verify.as_ref()).collect();
    if all.is_empty() {
        return None;
    }
    Some(VerifyStats {
        sweeps: all.iter().map(|v| v.sweeps).max().unwrap_or(0),
        settled_after_s: all.iter().map(|v| v.settled_after_s).fold(0.0, f64::max),
        ledger_bytes: all.iter().map(|v| v.ledger_bytes).sum(),
        cut_short: all.iter().any(|v| v.cut_short),
        // The shards stopped each for its own reason: see each shard's result.
        stopped: None,
        stopped_because: None,
        lag_bound_ms: None,
    })
}

fn bus(results: &[&RunResult]) -> anyhow::Result<Option<BusStats>> {
    let all: Vec<&BusStats> = results.iter().filter_map(|r| r.bus.as_ref()).collect();
    let Some(first) = all.first() else { return Ok(None) };
    let mut e2e = new_latency_histogram();
    for b in &all {
        add_encoded(&mut e2e, &b.e2e_histogram).context("bus end-to-end times")?;
    }
    let sum = |f: fn(&BusStats) -> u64| all.iter().map(|b| f(b)).sum::<u64>();
    Ok(Some(BusStats {
        topic: first.topic.clone(),
        // Every shard's probe read the whole topic: one reading, not N.
        messages: all.iter().map(|b| b.messages).max().unwrap_or(0),
        seen: sum(|b| b.seen),
        missed: sum(|b| b.missed),
        duplicates: sum(|b| b.duplicates),
        unexpected: sum(|b| b.unexpected),
        foreign: all.iter().map(|b| b.foreign).max().unwrap_or(0),
        timestamp_type: first.timestamp_type.clone(),
        e2e_ms: percentiles(&e2e),
        e2e_samples: e2e.len(),
        e2e_histogram: encode(&e2e),
        // The same groups, watched by every shard: the one that saw the most lag.
        consumer_lag: all
            .iter()
            .max_by_key(|b| b.consumer_lag.values().map(|l| l.max_messages).max().unwrap_or(0))
            .map(|b| b.consumer_lag.clone())
            .unwrap_or_default(),
    }))
}

/// The seconds of one interval log over the shards, added and handed to `each` in time
/// order, read as they come (issue 32: `merge` held every second of every shard, up to
/// 1.8 GB for 10,000 seconds). A k-way merge of the shards' logs, each in time order as a
/// run writes it: at any moment it holds one decoded second per shard and their sum, so its
/// memory does not grow with the run's length. A shard without the log adds nothing.
fn merge_seconds(
    dirs: &[&Path],
    stem: &str,
    offsets: &[u64],
    mut each: impl FnMut(u64, &Histogram<u64>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut shards = Vec::new();
    for (dir, offset) in dirs.iter().zip(offsets) {
        if let Some(intervals) = hlog::read::Intervals::open(dir, stem).map_err(crate::exit::input_error)? {
            let mut shard = ShardLog { intervals, offset: *offset, next: None };
            shard.advance()?;
            shards.push(shard);
        }
    }
    while let Some(second) = shards.iter().filter_map(|s| s.next.as_ref().map(|(t, ..)| *t)).min() {
        let mut sum = new_latency_histogram();
        for shard in &mut shards {
            while let Some((t, histogram, at)) = &shard.next
                && *t == second
            {
                sum.add(histogram).map_err(|e| crate::exit::input_error(anyhow::anyhow!("{at}: {e:?}")))?;
                shard.advance()?;
            }
        }
        each(second, &sum)?;
    }
    Ok(())
}

/// One shard's interval log, read one interval ahead.
struct ShardLog {
    intervals: hlog::read::Intervals,
    /// Whole seconds between the earliest shard's start and this one's.
    offset: u64,
    /// The next interval: (second of the merged run, histogram, file:line).
    next: Option<(u64, Histogram<u64>, String)>,
}

impl ShardLog {
    /// Reads the next interval; one earlier than the last is an error (the k-way merge
    /// relies on time order, which a run's logs keep: seconds are written as they close).
    fn advance(&mut self) -> anyhow::Result<()> {
        let previous = self.next.take().map(|(t, ..)| t);
        self.next = match self.intervals.next_interval().map_err(crate::exit::input_error)? {
            None => None,
            Some((second, histogram, at)) => {
                let second = second + self.offset;
                if let Some(previous) = previous.filter(|p| second < *p) {
                    let (second, previous) = (second - self.offset, previous - self.offset);
                    return Err(crate::exit::input_error(anyhow::anyhow!(
                        "{at}: second {second} comes after second {previous}: not in time order, as cqrs-bench \
                         writes interval logs"
                    )));
                }
                Some((second, histogram, at))
            }
        };
        Ok(())
    }
}

/// The merged `<stem>.hlog` (rotated as a run's would be), written as its seconds come;
/// created on the first second unless [`create`](Self::create) asks for it before. A write
/// that fails is exit 3 ([`crate::exit::OutputFailure`]).
struct MergedLog<'a> {
    out: &'a Path,
    stem: &'a str,
    comment: &'a str,
    started_at: SystemTime,
    rotate_s: u64,
    log: Option<hlog::IntervalLog>,
}

impl<'a> MergedLog<'a> {
    fn new(out: &'a Path, stem: &'a str, comment: &'a str, started_at: SystemTime, rotate_s: u64) -> MergedLog<'a> {
        MergedLog { out, stem, comment, started_at, rotate_s, log: None }
    }

    fn failed(&self, error: anyhow::Error) -> anyhow::Error {
        crate::exit::OutputFailure(error.context(format!("writing the merged {}.hlog", self.stem))).into()
    }

    fn create(&mut self) -> anyhow::Result<&mut hlog::IntervalLog> {
        if self.log.is_none() {
            let log = hlog::IntervalLog::create(self.out, self.stem, self.comment, self.started_at, self.rotate_s)
                .map_err(|e| self.failed(e))?;
            self.log = Some(log);
        }
        Ok(self.log.as_mut().expect("created above"))
    }

    fn append(&mut self, second: u64, histogram: &Histogram<u64>) -> anyhow::Result<()> {
        let appended = self.create()?.append(second, histogram);
        appended.map_err(|e| self.failed(e))
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let flushed = self.log.as_mut().map_or(Ok(()), |log| log.flush());
        flushed.map_err(|e| self.failed(e))
    }
}

/// The merged seconds added into one histogram per timeline row, one row at a time (the
/// seconds come in time order), handed on as each row ends.
struct RowHistogram {
    step: u64,
    row: Option<(u64, Histogram<u64>)>,
}

impl RowHistogram {
    fn new(step: u64) -> RowHistogram {
        RowHistogram { step, row: None }
    }

    fn add(
        &mut self,
        second: u64,
        histogram: &Histogram<u64>,
        done: impl FnOnce(u64, &Histogram<u64>),
    ) -> anyhow::Result<()> {
        let t_s = row_of(second, self.step);
        if self.row.as_ref().is_some_and(|(row, _)| *row != t_s) {
            self.finish(done);
        }
        let (_, sum) = self.row.get_or_insert_with(|| (t_s, new_latency_histogram()));
        sum.add(histogram).map_err(|e| anyhow::anyhow!("second {second}: {e:?}"))
    }

    fn finish(&mut self, done: impl FnOnce(u64, &Histogram<u64>)) {
        if let Some((t_s, sum)) = self.row.take() {
            done(t_s, &sum);
        }
    }
}

/// The shards' timeline rows added per row, aligned on their starts (latency and lag
/// apart, which come from the interval logs). A shard whose start is not a whole number
/// of rows after the first shard's puts each of its rows in the row its start falls in.
fn timeline(results: &[&RunResult], offsets: &[u64], step: u64) -> BTreeMap<u64, TimelineRow> {
    let mut rows: BTreeMap<u64, TimelineRow> = BTreeMap::new();
    for (result, offset) in results.iter().zip(offsets) {
        for row in &result.timeline {
            let t_s = row_of(row.t_s + offset, step);
            let into = rows.entry(t_s).or_insert_with(|| TimelineRow { t_s, ..TimelineRow::default() });
            into.offered += row.offered;
            into.achieved += row.achieved;
            into.conflicts += row.conflicts;
            into.errors += row.errors;
            into.dropped += row.dropped;
            into.in_flight += row.in_flight;
            into.backlog += row.backlog;
            into.projection_late += row.projection_late;
            // Replaced by the merged projection-lag.hlog's where the shards have one.
            into.projection_lag_p99_ms = larger(into.projection_lag_p99_ms, row.projection_lag_p99_ms);
            // A p99 does not add up: the latest shard's generator bounds the merged one.
            into.send_lag_p99_ms = larger(into.send_lag_p99_ms, row.send_lag_p99_ms);
        }
    }
    rows
}

/// The larger of two figures either of which may be missing.
fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A row's latency of operation `name`, from its merged histogram.
fn add_latency(rows: &mut BTreeMap<u64, TimelineRow>, name: &str, t_s: u64, h: &Histogram<u64>) {
    let ms = |v: u64| v as f64 / 1000.0;
    let row = rows.entry(t_s).or_insert_with(|| TimelineRow { t_s, ..TimelineRow::default() });
    row.latency_ms.insert(
        name.to_string(),
        IntervalLatency {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        },
    );
}

/// A row's lag p99 from the merged projection-lag.hlog (late probes at the timeout,
/// capped at it, as a run computes it).
fn add_lag(rows: &mut BTreeMap<u64, TimelineRow>, t_s: u64, h: &Histogram<u64>, timeout_ms: f64) {
    let row = rows.entry(t_s).or_insert_with(|| TimelineRow { t_s, ..TimelineRow::default() });
    row.projection_lag_p99_ms = percentile_ms(h, 99.0).map(|p99| p99.min(timeout_ms));
}

/// The SLO rules the shards were judged by, read back from their verdicts.
fn rules(result: &RunResult, count: u32) -> anyhow::Result<Vec<SloRule>> {
    let is_operation = |name: &str| result.operations.contains_key(name);
    result
        .slo
        .iter()
        .map(|s| {
            let metric = slo_metric(&s.name, &is_operation)
                .with_context(|| format!("the shards' SLO `{}` is not one this version knows", s.name))?;
            // Each shard was held to 1/N of the throughput floor: the whole to all of it.
            let threshold = match metric {
                SloMetric::MinThroughput => s.threshold * f64::from(count),
                _ => s.threshold,
            };
            Ok(SloRule { name: s.name.clone(), metric, threshold })
        })
        .collect()
}

/// `[[backlog]]` is sampled by shard 0 alone (the deployment's backlog, read once): its
/// sources are the merged run's, their seconds moved onto the merged clock (counted from
/// the earliest shard's start). Without shard 0 there is no backlog figure, and a warning.
fn shard_zero_backlog(
    shards: &[(PathBuf, ShardInfo, RunResult)],
    starts: &[f64],
    first_start: f64,
    warnings: &mut Vec<String>,
) -> Vec<crate::probe::backlog::BacklogStats> {
    let Some(i) = shards.iter().position(|(_, s, _)| s.index == 0) else {
        if shards.iter().any(|(_, _, r)| r.scenario.get("backlog").is_some()) {
            warnings.push("shard 0 is missing: its [[backlog]] figures are not in the merged result".into());
        }
        return Vec::new();
    };
    let shift = starts[i] - first_start;
    let mut backlog = shards[i].2.backlog.clone();
    for source in &mut backlog {
        source.load_end_s += shift;
        for sample in &mut source.samples {
            sample.t_s += shift;
        }
    }
    backlog
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(conflicts: u64, ok: u64, timeline_conflicts: u64) -> RunResult {
        let mut result = RunResult::default();
        let withdraw =
            OperationStats { kind: "command".into(), count: ok + conflicts, ok, conflicts, ..Default::default() };
        result.operations.insert("withdraw".into(), withdraw);
        result.timeline = vec![TimelineRow { t_s: 0, conflicts: timeline_conflicts, ..Default::default() }];
        result
    }

    /// Issue 31: the shards' conflicts are added up, and the rates recomputed from the sums.
    #[test]
    fn conflicts_are_added_over_shards() {
        let (a, b) = (shard(10, 90, 10), shard(30, 70, 30));
        let operations = merge_operations(&[&a, &b], |r| &r.operations).unwrap();
        assert_eq!(operations["withdraw"].conflicts, 40);
        assert!((operations["withdraw"].conflict_rate - 0.2).abs() < 1e-12);
        let commands = kind_stats(&operations, "command").unwrap();
        assert_eq!(commands.conflicts, 40);
        assert!((commands.conflict_rate - 0.2).abs() < 1e-12);
        let rows = timeline(&[&a, &b], &[0, 0], 1);
        assert_eq!(rows[&0].conflicts, 40);
    }

    /// Issue 33: the merged backlog is shard 0's alone (the only shard that samples it),
    /// on the merged clock; without shard 0 it is absent, with a warning.
    #[test]
    fn issue33_merge_carries_shard_zero_backlog() {
        use crate::probe::backlog::{BacklogPoint, BacklogStats};
        let info = |index| ShardInfo { index, count: 2, ..Default::default() };
        let zero = RunResult {
            backlog: vec![BacklogStats {
                name: "view".into(),
                max: Some(7),
                load_end_s: 5.0,
                samples: vec![BacklogPoint {
                    t_s: 1.0,
                    backlog: Some(7),
                    pending: None,
                    applied_per_s: Some(3.0),
                    lag_s: Some(0.5),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let one = RunResult::default();
        let shards = vec![(PathBuf::from("b"), info(1), one.clone()), (PathBuf::from("a"), info(0), zero)];
        let mut warnings = Vec::new();
        // Shard 0 started 0.5 s after shard 1.
        let merged = shard_zero_backlog(&shards, &[10.0, 10.5], 10.0, &mut warnings);
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].max, merged[0].load_end_s, merged[0].samples[0].t_s), (Some(7), 5.5, 1.5));
        assert!(warnings.is_empty());
        let mut one = one;
        one.scenario = serde_json::json!({ "backlog": [{ "name": "view" }] });
        let merged = shard_zero_backlog(&[(PathBuf::from("b"), info(1), one)], &[10.0], 10.0, &mut warnings);
        assert!(merged.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
