//! A source's samples turned into its figures: the maximum, the time the backlog took to
//! reach 0 after the load (or what was left), and the consumers' throughput.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One sample of a source, `t_s` seconds after the load's start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub t_s: f64,
    /// `None`: the read failed or timed out (unknown for that sample, never 0).
    pub reading: Option<super::sources::Reading>,
}

/// result.json `backlog[]`: one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BacklogStats {
    /// The source's name (`[[backlog]] name`).
    pub name: String,
    /// Its kind: `redis-streams` or `sql`.
    pub kind: String,
    /// The source's URL, password masked.
    pub url: String,
    /// Time between samples, ms.
    pub every_ms: f64,
    /// Largest backlog sampled (entries behind); `None` when no sample was read.
    pub max: Option<u64>,
    /// Largest lag sampled, in seconds: the age of the oldest entry not applied, on the
    /// source's clock. `None` when no sample told it (`lag_unknown_because` says why).
    #[serde(default)]
    pub max_lag_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_unknown_because: Option<String>,
    /// From the load's end to the first sample that read 0.
    pub drained_after_ms: Option<f64>,
    /// Not drained when sampling stopped: the last backlog read (`None` with
    /// `drained_after_ms`, or when nothing after the load could be read).
    pub not_drained: Option<u64>,
    /// Samples that failed, in seconds (samples × `every`).
    pub unknown_seconds: f64,
    /// Why the first failed sample failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_because: Option<String>,
    /// Which part of the figures the source gives late, and by how much at most
    /// (RabbitMQ's unacknowledged count); absent when every figure is read live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<String>,
    /// Seconds after the load's start at which the load ended (the drain is counted from it).
    pub load_end_s: f64,
    /// Every sample, in order.
    pub samples: Vec<BacklogPoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BacklogPoint {
    /// Seconds since the start of the load.
    pub t_s: f64,
    /// Entries behind; `null`: unknown for this sample.
    pub backlog: Option<u64>,
    /// Delivered and not acknowledged (Redis Streams), part of `backlog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// Entries the consumers applied per second since the previous known sample.
    pub applied_per_s: Option<f64>,
    /// Seconds behind (the oldest entry not applied); `null`: unknown for this sample.
    #[serde(default)]
    pub lag_s: Option<f64>,
}

impl BacklogStats {
    /// The summary line.
    pub fn summary(&self) -> String {
        let max = self.max.map_or("unknown".to_owned(), |m| m.to_string());
        let drain = match (self.drained_after_ms, self.not_drained) {
            (Some(ms), _) => format!("drained {:.1} s after the load", ms / 1000.0),
            (None, Some(left)) => format!("not drained: {left} left"),
            (None, None) => "drain unknown".to_owned(),
        };
        let unknown = match self.unknown_seconds {
            s if s > 0.0 => format!("; unknown for {s:.0} s ({})", self.unknown_because.as_deref().unwrap_or("")),
            _ => String::new(),
        };
        let lag = match self.max_lag_s {
            Some(s) => format!("lag max {s:.1} s"),
            None => format!("lag unknown ({})", self.lag_unknown_because.as_deref().unwrap_or("no sample")),
        };
        let stale = self.stale.as_deref().map_or(String::new(), |s| format!("; {s}"));
        format!("backlog {} ({}): max {max} behind, {lag}, {drain}{unknown}{stale}", self.name, self.kind)
    }
}

/// Figures of one source from its samples. `load_end_s`: when the load's schedule ended.
pub fn figures(
    spec: &crate::scenario::BacklogSpec,
    samples: &[Sample],
    load_end_s: f64,
    first_error: Option<String>,
) -> BacklogStats {
    let url = spec.redacted_url();
    let lag_unknown = lag_unknown_reason(spec);
    let stale = match spec.source {
        crate::scenario::BacklogSource::RabbitMq { .. } => Some(super::rabbitmq::STALE),
        _ => None,
    };
    let source = Described { name: &spec.name, kind: spec.kind(), url: &url, every: spec.every, lag_unknown, stale };
    figures_of(&source, samples, load_end_s, first_error)
}

/// What the figures name a source by: a `[[backlog]]` table, or a `[bus]` consumer group.
pub struct Described<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    /// Password already masked.
    pub url: &'a str,
    pub every: std::time::Duration,
    /// Why samples that were read gave no lag in seconds.
    pub lag_unknown: &'static str,
    /// How old some of its figures may be (RabbitMQ's statistics), said beside them.
    pub stale: Option<&'static str>,
}

/// Figures of a source described by `source`.
pub fn figures_of(
    source: &Described<'_>,
    samples: &[Sample],
    load_end_s: f64,
    first_error: Option<String>,
) -> BacklogStats {
    let every_s = source.every.as_secs_f64();
    let max = samples.iter().filter_map(|s| s.reading.map(|r| r.backlog)).max();
    let max_lag_s = samples.iter().filter_map(|s| s.reading.and_then(|r| r.lag_s)).reduce(f64::max);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= load_end_s).collect();
    let drained = after.iter().find(|s| s.reading.is_some_and(|r| r.backlog == 0));
    let drained_after_ms = drained.map(|s| (s.t_s - load_end_s) * 1000.0);
    let not_drained = match drained {
        Some(_) => None,
        None => after.iter().rev().find_map(|s| s.reading.map(|r| r.backlog)),
    };
    let failed = samples.iter().filter(|s| s.reading.is_none()).count();
    let mut points = Vec::with_capacity(samples.len());
    let mut previous: Option<(f64, i64)> = None;
    for sample in samples {
        let progress = sample.reading.and_then(|r| r.progress);
        let applied_per_s = match (previous, progress) {
            (Some((t, p)), Some(now)) if sample.t_s > t => Some((now - p) as f64 / (sample.t_s - t)),
            _ => None,
        };
        if let Some(now) = progress {
            previous = Some((sample.t_s, now));
        }
        points.push(BacklogPoint {
            t_s: sample.t_s,
            backlog: sample.reading.map(|r| r.backlog),
            pending: sample.reading.and_then(|r| r.pending),
            applied_per_s,
            lag_s: sample.reading.and_then(|r| r.lag_s),
        });
    }
    BacklogStats {
        name: source.name.to_owned(),
        kind: source.kind.to_owned(),
        url: source.url.to_owned(),
        every_ms: every_s * 1000.0,
        max,
        max_lag_s,
        lag_unknown_because: match max_lag_s {
            Some(_) => None,
            None if samples.iter().all(|s| s.reading.is_none()) => Some("no sample could be read".into()),
            None => Some(source.lag_unknown.into()),
        },
        drained_after_ms,
        not_drained,
        unknown_seconds: failed as f64 * every_s,
        unknown_because: if failed > 0 { first_error } else { None },
        stale: source.stale.map(str::to_owned),
        load_end_s,
        samples: points,
    }
}

/// Why a source whose samples were read gave no lag in seconds.
fn lag_unknown_reason(spec: &crate::scenario::BacklogSpec) -> &'static str {
    use crate::scenario::BacklogSource;
    let mysql = spec.url.starts_with("mysql://") || spec.url.starts_with("mariadb://");
    match &spec.source {
        BacklogSource::Sql { .. } if mysql => "not read on MySQL/MariaDB (no `oldest_unapplied` there)",
        BacklogSource::Sql { oldest_unapplied: None, .. } => "no `oldest_unapplied` query",
        BacklogSource::Sql { .. } => "`oldest_unapplied` answered NULL while entries were behind",
        BacklogSource::RedisStreams { .. } => "the oldest unacknowledged entry is gone or its id is not a time",
        BacklogSource::Nats { .. } => {
            "the oldest unacknowledged message could not be read (deleted by a limit) or its time is not RFC 3339"
        }
        BacklogSource::RabbitMq { .. } => "RabbitMQ does not tell when the oldest message in a queue was published",
    }
}

/// Fills the timeline's `backlog_sources` column: per row (of `step` seconds), each
/// source's largest known sample in it, `None` when all its samples there were unknown.
pub fn add_timeline_column(
    timeline: &mut [crate::measure::timeline::TimelineRow],
    sources: &[BacklogStats],
    step: u64,
) {
    let step = step.max(1);
    for row in timeline.iter_mut() {
        row.backlog_sources.clear();
    }
    for source in sources {
        for sample in &source.samples {
            let t = (sample.t_s.max(0.0) as u64 / step) * step;
            let Some(row) = timeline.iter_mut().find(|r| r.t_s == t) else { continue };
            let cell = row.backlog_sources.entry(source.name.clone()).or_insert(None);
            if let Some(b) = sample.backlog {
                *cell = Some(cell.map_or(b, |c| c.max(b)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::sources::Reading;
    use super::*;
    use crate::scenario::{BacklogSource, BacklogSpec};

    fn spec() -> BacklogSpec {
        BacklogSpec {
            name: "view".into(),
            url: "postgres://u:secret@h/db".into(),
            every: Duration::from_secs(1),
            settle: Duration::from_secs(10),
            source: BacklogSource::Sql {
                head: "h".into(),
                checkpoint: "c".into(),
                per_projection: false,
                oldest_unapplied: None,
            },
        }
    }

    fn at(t_s: f64, backlog: Option<u64>, progress: i64) -> Sample {
        Sample {
            t_s,
            reading: backlog.map(|backlog| Reading { backlog, progress: Some(progress), pending: None, lag_s: None }),
        }
    }

    #[test]
    fn issue33_drained_after_the_first_zero_after_the_load() {
        let samples =
            [at(0.0, Some(0), 0), at(1.0, Some(5), 10), at(2.0, None, 0), at(3.0, Some(7), 20), at(4.0, Some(0), 40)];
        let stats = figures(&spec(), &samples, 2.5, Some("timed out".into()));
        assert_eq!(stats.max, Some(7));
        assert_eq!(stats.drained_after_ms, Some(1500.0));
        assert_eq!(stats.not_drained, None);
        assert_eq!(stats.unknown_seconds, 1.0);
        assert_eq!(stats.url, "postgres://u:***@h/db");
        // The unknown sample breaks no rate: 10 → 20 over 2 s.
        let rates: Vec<_> = stats.samples.iter().map(|p| p.applied_per_s).collect();
        assert_eq!(rates, [None, Some(10.0), None, Some(5.0), Some(20.0)]);
    }

    #[test]
    fn issue33_timeline_column_is_the_rows_worst_and_unknown_is_null() {
        use crate::measure::timeline::TimelineRow;
        let stats = figures(
            &spec(),
            &[at(0.0, Some(2), 0), at(0.5, Some(4), 0), at(1.0, None, 0), at(1.5, None, 0)],
            5.0,
            None,
        );
        let mut rows: Vec<TimelineRow> = (0..3).map(|t_s| TimelineRow { t_s, ..Default::default() }).collect();
        add_timeline_column(&mut rows, &[stats], 1);
        assert_eq!(rows[0].backlog_sources.get("view"), Some(&Some(4)));
        assert_eq!(rows[1].backlog_sources.get("view"), Some(&None), "unknown, never 0");
        assert!(rows[2].backlog_sources.is_empty());
    }

    #[test]
    fn issue33_not_drained_keeps_the_last_known_backlog() {
        let samples = [at(0.0, Some(3), 0), at(1.0, Some(9), 0), at(2.0, None, 0)];
        let stats = figures(&spec(), &samples, 0.5, None);
        assert_eq!((stats.drained_after_ms, stats.not_drained), (None, Some(9)));
        assert!(stats.summary().contains("not drained: 9 left"), "{}", stats.summary());
        let unknown = figures(&spec(), &[at(0.0, Some(3), 0), at(1.0, None, 0)], 0.5, None);
        assert_eq!((unknown.drained_after_ms, unknown.not_drained), (None, None), "unknown, never 0");
    }
}
