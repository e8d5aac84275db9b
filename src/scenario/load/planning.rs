//! `[saturate]` and `[capacity]` (issue 10): checked like the rest of the file, with the
//! same located errors.

use toml::Spanned;

use super::{Checker, Result};
use crate::scenario::limits;
use crate::scenario::model::{CapacitySpec, SaturateSpec, Scaler, TargetKind};
use crate::scenario::raw::{RawCapacity, RawSaturate};

/// Projector counts `capacity` accepts.
pub const MAX_PROJECTORS: usize = 1024;

impl Checker<'_> {
    pub(super) fn saturate(&self, raw: &Spanned<RawSaturate>) -> Result<SaturateSpec> {
        let defaults = SaturateSpec::default();
        let inner = raw.get_ref();
        let rate = |value: &Option<Spanned<f64>>, default: f64| -> Result<f64> {
            match value {
                None => Ok(default),
                Some(r) => limits::check_rate(*r.get_ref(), false).map(|()| *r.get_ref()).map_err(|e| self.error(r, e)),
            }
        };
        let start_rate = rate(&inner.start_rate, defaults.start_rate)?;
        let max_rate = rate(&inner.max_rate, defaults.max_rate.max(start_rate))?;
        let min_rate = rate(&inner.min_rate, defaults.min_rate.min(start_rate))?;
        if let Some(at) = inner.max_rate.as_ref().filter(|_| max_rate < start_rate) {
            return Err(self.error(at, "max_rate is below start_rate"));
        }
        if let Some(at) = inner.min_rate.as_ref().filter(|_| min_rate > start_rate) {
            return Err(self.error(at, "min_rate is above start_rate"));
        }
        let step = self.duration_or(&inner.step, defaults.step)?;
        let warmup = self.duration_or(&inner.warmup, defaults.warmup.min(step / 3))?;
        if step <= warmup {
            let at = inner.step.as_ref().or(inner.warmup.as_ref());
            return Err(match at {
                Some(at) => self.error(at, "a step must be longer than its warmup: nothing would be judged"),
                None => self.error(raw, "a step must be longer than its warmup"),
            });
        }
        let growth = match &inner.growth {
            None => defaults.growth,
            Some(g) if *g.get_ref() > 1.0 && *g.get_ref() <= 100.0 => *g.get_ref(),
            Some(g) => {
                return Err(self.error(g, "growth must be more than 1 and at most 100 (e.g. 2: double each step)"));
            }
        };
        let precision = match &inner.precision {
            None => defaults.precision,
            Some(p) => self.fraction(p, "precision", 0.001..=1.0)?,
        };
        Ok(SaturateSpec { start_rate, max_rate, min_rate, step, warmup, growth, precision })
    }

    pub(super) fn capacity(&self, raw: Option<&Spanned<RawCapacity>>, target: &TargetKind) -> Result<CapacitySpec> {
        let defaults = CapacitySpec::default();
        let Some(raw) = raw else {
            let scaler = match target {
                TargetKind::Embedded(_) => Scaler::Embedded,
                TargetKind::Http { .. } => Scaler::None,
            };
            return Ok(CapacitySpec { scaler, ..defaults });
        };
        let inner = raw.get_ref();
        let projectors = match &inner.projectors {
            None => defaults.projectors,
            Some(list) => self.projector_counts(list)?,
        };
        let scaler = match (&inner.scale, &inner.serve, target) {
            (Some(scale), Some(_), _) => {
                return Err(self.error(scale, "give `scale` (a command) or `serve` (a reference variant), not both"));
            }
            (Some(scale), None, TargetKind::Http { .. }) => {
                let command = self.shell_command(scale)?;
                if !command.text.contains("{{projectors}}") {
                    return Err(self
                        .error(scale, "the scale command never says how many projectors")
                        .with_hint("put {{projectors}} where the count goes, e.g. --replicas={{projectors}}"));
                }
                Scaler::Command(command)
            }
            (None, Some(serve), TargetKind::Http { .. }) => {
                let args: Vec<String> = self.string(serve)?.split_whitespace().map(str::to_owned).collect();
                if let Some(flag) = args.iter().find(|a| ["--projectors", "--listen"].contains(&a.as_str())) {
                    return Err(self
                        .error(serve, format!("`{flag}` is set by the harness at each count"))
                        .with_hint("leave it out; e.g. serve = \"--variant outbox --projector-cost 10ms\""));
                }
                Scaler::Serve(args)
            }
            (Some(at), None, TargetKind::Embedded(_)) | (None, Some(at), TargetKind::Embedded(_)) => {
                return Err(self.error(at, "the embedded target is scaled by the harness itself: leave this out"));
            }
            (None, None, TargetKind::Embedded(_)) => Scaler::Embedded,
            (None, None, TargetKind::Http { .. }) => Scaler::None,
        };
        let headroom = match &inner.headroom {
            None => defaults.headroom,
            Some(h) => self.fraction(h, "headroom", 0.0..=10.0)?,
        };
        Ok(CapacitySpec {
            projectors,
            scaler,
            ready_timeout: self.duration_or(&inner.ready_timeout, defaults.ready_timeout)?,
            settle: self.duration_or(&inner.settle, defaults.settle)?,
            headroom,
        })
    }

    fn projector_counts(&self, list: &Spanned<Vec<i64>>) -> Result<Vec<usize>> {
        let counts = list.get_ref();
        if counts.is_empty() {
            return Err(self.error(list, "no projector counts").with_hint("e.g. projectors = [1, 2, 4]"));
        }
        let mut checked = Vec::new();
        for &n in counts {
            match usize::try_from(n) {
                Ok(n @ 1..=MAX_PROJECTORS) if !checked.contains(&n) => checked.push(n),
                Ok(n) if checked.contains(&n) => {
                    return Err(self.error(list, format!("{n} projectors is listed twice")));
                }
                _ => return Err(self.error(list, format!("{n}: a projector count is from 1 to {MAX_PROJECTORS}"))),
            }
        }
        checked.sort_unstable();
        Ok(checked)
    }

    /// A fraction (0.05) or a percentage ("5%") within `range` (as a fraction).
    fn fraction(&self, value: &Spanned<toml::Value>, name: &str, range: std::ops::RangeInclusive<f64>) -> Result<f64> {
        let fraction = match value.get_ref() {
            toml::Value::Float(f) => Some(*f),
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::String(text) => {
                text.trim().strip_suffix('%').and_then(|n| n.trim().parse::<f64>().ok()).map(|p| p / 100.0)
            }
            _ => None,
        };
        match fraction {
            Some(f) if range.contains(&f) => Ok(f),
            _ => Err(self.error(value, format!("{name} is a fraction or a percentage")).with_hint(format!(
                "from {} to {}, e.g. 0.05 or \"5%\"",
                range.start(),
                range.end()
            ))),
        }
    }
}

/// `--projectors 1,2,4`: the same rules as `[capacity] projectors`.
pub fn parse_projector_counts(text: &str) -> std::result::Result<Vec<usize>, String> {
    let mut counts = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<usize>() {
            Ok(n @ 1..=MAX_PROJECTORS) if !counts.contains(&n) => counts.push(n),
            Ok(n) if counts.contains(&n) => return Err(format!("{n} is listed twice")),
            _ => return Err(format!("`{part}`: a projector count is from 1 to {MAX_PROJECTORS}")),
        }
    }
    if counts.is_empty() {
        return Err("no projector counts; e.g. --projectors 1,2,4".into());
    }
    counts.sort_unstable();
    Ok(counts)
}
