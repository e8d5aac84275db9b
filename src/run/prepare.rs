//! From `cqrs-bench run`'s flags to what the run uses: the checked scenario adjusted by
//! `--target`, `--duration`, `--rate`, `--seed` and `--shard` (and noted as such), the run's
//! ids, the generator threads and the output folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RunIds;
use crate::cli::RunArgs;
use crate::exit::Usage;
use crate::scenario::{self, Scenario, Stage, TargetKind, limits};

/// `--threads`, or one generator thread per core.
pub fn generator_threads(threads: Option<u16>) -> usize {
    threads.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from)
}

/// The run id, shard and start. Shards of one run share a run id (so each tells its
/// siblings' refs from other runs'): `--run-id`, else one derived from `--start-at` and the
/// scenario's name, which every shard of one launch is given alike.
pub(super) fn run_ids(scenario: &Scenario, args: &RunArgs) -> RunIds {
    let derived = args.start_at.map(|at| {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (scenario.name.as_str(), at).hash(&mut hasher);
        hasher.finish() as u32
    });
    RunIds {
        run_id: args.run_id.or(derived).unwrap_or_else(rand::random),
        shard: args.shard.map_or(0, |(i, _)| i),
        start_at: args.start_at,
    }
}

/// `--target`, `--duration`, `--rate`, `--seed`, `--shard`: applied to the checked scenario
/// and noted under `cli` in the recorded scenario.
pub(super) fn apply_cli_adjustments(scenario: &mut Scenario, args: &RunArgs) -> anyhow::Result<()> {
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

pub(super) fn default_out_dir(scenario: &Scenario) -> PathBuf {
    default_out_dir_for(scenario, None)
}

/// `reports/<scenario>[-<what>]-<UTC timestamp>/`.
pub fn default_out_dir_for(scenario: &Scenario, what: Option<&str>) -> PathBuf {
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
    fn fit_cuts_and_stretches() {
        let stages = [stage(10, 100.0, 100.0), stage(10, 100.0, 200.0)];
        assert_eq!(fit_stages(&stages, Duration::from_secs(15)), [stage(10, 100.0, 100.0), stage(5, 100.0, 150.0)]);
        assert_eq!(fit_stages(&stages, Duration::from_secs(30)), [stage(10, 100.0, 100.0), stage(20, 100.0, 200.0)]);
    }
}
