//! How long a run may take, worked out before it starts (issue 32: `--duration` bounded
//! the load only; a slow setup or a read model that never settles held a run for as long
//! as the target liked). `run` prints the bound and its parts at the start and stops the
//! run there like a signal: results written, `interrupted: true`, exit 3, and a warning.

use std::time::Duration;

use crate::scenario::Scenario;

/// Connecting, a shard's clock estimate, starting the probes: the time outside the phases.
const MARGIN: Duration = Duration::from_secs(10);
/// The grace each phase adds to its timeout (as `run` gives it).
const GRACE: Duration = Duration::from_secs(1);

/// The worst case of each phase of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunBound {
    pub parts: Vec<(&'static str, Duration)>,
}

impl RunBound {
    /// The phases `scenario` has, each at its longest; `wait` before the load (`--start-at`).
    pub fn of(scenario: &Scenario, wait: Duration) -> RunBound {
        let timeout = scenario.target.timeout;
        let mut parts = Vec::new();
        if !wait.is_zero() {
            parts.push(("start-at wait", wait));
        }
        if !scenario.setup.is_empty() {
            // Every key at the setup's rate, or as fast as its requests in flight allow when
            // each takes the whole timeout; the last answered within the timeout.
            let keys = scenario.mix.keys.count as f64;
            let most = super::setup::SETUP_IN_FLIGHT as f64 / timeout.as_secs_f64().max(1e-3);
            let paced: f64 = scenario.setup.iter().map(|s| keys / s.rate.min(most)).sum();
            parts.push(("setup", Duration::from_secs_f64(paced.min(1e9)) + timeout + GRACE));
        }
        parts.push(("load", scenario.load_duration()));
        parts.push(("drain", timeout + GRACE));
        if let Some(projection) = &scenario.projection {
            parts.push(("lag probes", projection.timeout + GRACE));
        }
        if let Some(staleness) = &scenario.staleness {
            let longest = staleness.delays.iter().max().copied().unwrap_or_default();
            parts.push(("staleness probes", longest + timeout + GRACE));
        }
        if let Some(verify) = &scenario.verify {
            // The last sweep starts before `settle` ends and reads within the timeout.
            parts.push(("verify settle", verify.settle + timeout));
        }
        if scenario.bus.is_some() {
            // The bus probe waits for the stream to go quiet and its consumer groups to
            // drain, up to `[verify] settle` (10 s without it), as `run::bus::finish` does.
            let settle = scenario.verify.as_ref().map_or(Duration::from_secs(10), |v| v.settle);
            parts.push(("bus drain", settle));
        }
        // `[[backlog]]` sampling waits up to `settle` after the load for a drain, beside the
        // phases above (not after them): its term is only what it adds beyond them. The last
        // read may take one `every`.
        if let Some(longest) = scenario.backlog.iter().map(|b| b.settle + b.every).max() {
            let load = parts.iter().position(|(name, _)| *name == "load").expect("pushed above");
            let after_load: Duration = parts[load + 1..].iter().map(|(_, d)| *d).sum();
            if longest > after_load {
                parts.push(("backlog settle", longest - after_load));
            }
        }
        parts.push(("margin", MARGIN));
        RunBound { parts }
    }

    pub fn total(&self) -> Duration {
        self.parts.iter().map(|(_, d)| *d).sum()
    }

    /// `at most 1m 5s (setup 3s + load 20s + …)`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self.parts.iter().map(|(name, d)| format!("{name} {}", short(*d))).collect();
        format!("at most {} ({})", short(self.total()), parts.join(" + "))
    }
}

/// A duration to the second (tenths under 10 s), as humans read it.
fn short(d: Duration) -> String {
    if d < Duration::from_secs(10) && d.subsec_millis() != 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 32: every phase that can wait on the target has its term, so the sum bounds
    /// the run whatever the target does.
    #[test]
    fn issue32_the_bound_adds_every_phase() {
        let text =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/bank-http.toml"))
                .unwrap();
        let scenario = crate::scenario::load_str(&text, std::path::Path::new("bank-http.toml"), &[]).unwrap();
        let bound = RunBound::of(&scenario, Duration::ZERO);
        let names: Vec<&str> = bound.parts.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["setup", "load", "drain", "lag probes", "verify settle", "margin"]);
        // 1000 keys at most 256 per 2 s timeout (128/s, under the 5000/s asked) + 2 s + 1 s;
        // 20 s; 3 s; 5 s + 1 s; 10 s + 2 s; 10 s.
        assert_eq!(
            bound.total(),
            Duration::from_micros(10_812_500 + 20_000_000 + 3_000_000 + 6_000_000 + 12_000_000 + 10_000_000)
        );
        assert_eq!(
            bound.describe(),
            "at most 1m 1s (setup 10s + load 20s + drain 3s + lag probes 6s + verify settle 12s + margin 10s)"
        );
    }

    /// A `[[backlog]]` source sampled up to 30 s after the load for a drain: the run is not
    /// cut before (found when a RabbitMQ source's 14 s settle outlived an 18 s bound).
    #[test]
    fn a_backlog_settle_longer_than_the_phases_after_the_load_extends_the_bound() {
        let text = r#"
name = "b"
[target]
kind = "http"
base_url = "http://127.0.0.1:9"
timeout = "2s"
[load]
stages = [{ duration = "5s", rate = 10 }]
[[command]]
name = "c"
path = "/c"
[[backlog]]
kind = "redis-streams"
url = "redis://127.0.0.1:6379"
stream = "s"
group = "g"
every = "500ms"
settle = "30s"
"#;
        let scenario = crate::scenario::load_str(text, std::path::Path::new("b.toml"), &[]).unwrap();
        let bound = RunBound::of(&scenario, Duration::ZERO);
        // load 5 s; drain 2 s + 1 s; the backlog adds 30.5 s − 3 s; margin 10 s.
        assert_eq!(bound.parts.last().map(|(n, _)| *n), Some("margin"));
        assert_eq!(bound.total(), Duration::from_millis(5_000 + 30_500 + 10_000));
    }
}
