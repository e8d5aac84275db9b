//! `[staleness]` (issue 14): what it does not say is taken from `[projection]`.

use std::time::Duration;

use toml::Spanned;

use super::{Checker, Result};
use crate::scenario::model::{
    DEFAULT_STALENESS_DELAYS_MS, OpKind, OperationSpec, ProjectionSpec, SloMetric, SloRule, StalenessSpec,
};
use crate::scenario::raw::RawStaleness;

/// Delays a `[staleness]` table may list.
pub const MAX_DELAYS: usize = 64;

impl Checker<'_> {
    pub(super) fn staleness(
        &self,
        raw: &Spanned<RawStaleness>,
        operations: &[OperationSpec],
        projection: Option<&ProjectionSpec>,
    ) -> Result<StalenessSpec> {
        let s = raw.get_ref();
        let sample = s.sample.as_ref().map_or(Ok(0.2), |v| match *v.get_ref() {
            x if x > 0.0 && x <= 1.0 => Ok(x),
            _ => Err(self.error(v, "sample is a fraction in (0, 1]")),
        })?;
        let commands = match (&s.commands, projection) {
            (None, Some(p)) => p.commands.clone(),
            (commands, _) => self.commands(commands, operations)?,
        };
        let missing = |what: &str| {
            self.error(raw, format!("[staleness] needs `{what}` (or a [projection] to take it from)"))
                .with_hint("e.g. query = \"get_account\", until = \"/version >= {{capture.version}}\"")
        };
        let query = match (&s.query, projection) {
            (Some(q), _) => {
                let query = self.find(q, OpKind::Query, operations)?;
                self.check_probe_query(q, query, &commands, operations)?;
                query
            }
            (None, Some(p)) => p.query,
            (None, None) => return Err(missing("query")),
        };
        let until = match (&s.until, projection) {
            (Some(u), _) => self.predicate(u)?,
            (None, Some(p)) => p.until.clone(),
            (None, None) => return Err(missing("until")),
        };
        let delays = match &s.delays {
            None => DEFAULT_STALENESS_DELAYS_MS.iter().map(|&ms| Duration::from_millis(ms)).collect(),
            Some(list) => {
                if list.get_ref().is_empty() || list.get_ref().len() > MAX_DELAYS {
                    return Err(self.error(list, format!("delays: from 1 to {MAX_DELAYS} durations")));
                }
                let mut delays = Vec::new();
                for d in list.get_ref() {
                    let delay = self.duration(d)?;
                    if delays.last().is_some_and(|last| *last >= delay) {
                        return Err(self.error(d, "delays must be in increasing order, each once"));
                    }
                    delays.push(delay);
                }
                delays
            }
        };
        let traffic = match &s.traffic {
            // A keyless query (a global list) has no key to judge against: not by default.
            None if operations[query].is_keyless() => Vec::new(),
            None => vec![query],
            Some(names) => {
                let mut traffic = Vec::new();
                for name in names.get_ref() {
                    let op = self.find(name, OpKind::Query, operations)?;
                    if operations[op].is_keyless() {
                        return Err(self
                            .error(
                                name,
                                format!("`{}` reads no key: its answers cannot be judged per key", name.get_ref()),
                            )
                            .with_hint("list queries that read `{{key}}`, whose answers `until` can read"));
                    }
                    if !traffic.contains(&op) {
                        traffic.push(op);
                    }
                }
                traffic
            }
        };
        Ok(StalenessSpec { commands, sample, query, until, delays, traffic })
    }

    /// A `stale_read_p_at_<delay>` SLO needs that delay among `[staleness] delays`.
    pub(super) fn check_staleness_slos(
        &self,
        keys: &[&Spanned<String>],
        rules: &[SloRule],
        staleness: Option<&StalenessSpec>,
    ) -> Result<()> {
        for (key, rule) in keys.iter().zip(rules) {
            if rule.metric == SloMetric::StaleReadRate {
                match staleness {
                    Some(spec) if !spec.traffic.is_empty() => continue,
                    _ => {
                        return Err(self
                            .error(key, "`stale_read_rate` needs [staleness] with traffic queries")
                            .with_hint(
                                "add [staleness] (its `traffic` queries, by default its keyed `query`, are judged)",
                            ));
                    }
                }
            }
            let SloMetric::StaleReadAt(ms) = rule.metric else { continue };
            let Some(spec) = staleness else {
                return Err(self
                    .error(key, format!("`{}` needs a [staleness] section", rule.name))
                    .with_hint("add [staleness] (its reads measure P(fresh) at each delay)"));
            };
            if !spec.delays.iter().any(|d| (d.as_secs_f64() * 1e3 - ms).abs() < 1e-6) {
                let listed: Vec<String> =
                    spec.delays.iter().map(|d| humantime::format_duration(*d).to_string()).collect();
                return Err(self
                    .error(key, format!("`{}`: the probe does not read at that delay", rule.name))
                    .with_hint(format!("[staleness] delays are {}", listed.join(", "))));
            }
        }
        Ok(())
    }
}

/// `stale_read_p_at_100ms` → 100.0 (milliseconds); `stale_read_rate`.
pub fn stale_read_slo(name: &str) -> Option<SloMetric> {
    if name == "stale_read_rate" {
        return Some(SloMetric::StaleReadRate);
    }
    let delay = name.strip_prefix("stale_read_p_at_")?;
    let delay = humantime::parse_duration(delay).ok()?;
    Some(SloMetric::StaleReadAt(delay.as_secs_f64() * 1e3))
}
