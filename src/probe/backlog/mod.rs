//! `[[backlog]]` (issue 33): how far behind the projectors are, read from the bus or event
//! store itself — a Redis Streams consumer group, a SQL checkpoint table — beside the Kafka
//! consumer-group lag of `[bus]`.
//!
//! One sampler task per source reads it every `every` from the load's start; after the
//! load it goes on until the source reads 0 (drained) or `settle` has passed, and at least
//! until `[verify]` ends. A read that fails or takes longer than `every` is unknown for
//! that sample, never 0. Every source is read once before the load: a source that does
//! not answer, or a query that fails, stops the run before it starts.

pub mod figures;
pub mod nats;
mod postgres;
mod projections;
mod redis_lag;
pub mod sources;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use figures::{BacklogPoint, BacklogStats};
use projections::Tick;
use sources::Reader;

use crate::scenario::BacklogSpec;

/// What a source's sampler has gathered so far: every sample's readings (one per
/// projection), or why it failed.
#[derive(Default)]
struct Series {
    /// The projections read before the load (`None`: a source's single reading).
    seed: Vec<Option<String>>,
    ticks: Vec<Tick>,
}

struct Source {
    spec: BacklogSpec,
    series: Arc<Mutex<Series>>,
    task: tokio::task::JoinHandle<()>,
}

/// The running samplers.
pub struct BacklogProbe {
    sources: Vec<Source>,
    stop: CancellationToken,
    start: Instant,
}

impl BacklogProbe {
    /// Connects to every source and reads it once (a located failure names the source),
    /// then starts sampling. `timeout` bounds the connection and the first read.
    pub async fn start(specs: &[BacklogSpec], start: Instant, timeout: Duration) -> anyhow::Result<BacklogProbe> {
        let stop = CancellationToken::new();
        let mut sources = Vec::new();
        for spec in specs {
            let failed = |e: anyhow::Error| {
                anyhow::anyhow!(
                    "[[backlog]] `{}` ({} at {}): {:#}",
                    spec.name,
                    spec.kind(),
                    spec.redacted_url(),
                    sources::redacted(e, spec)
                )
            };
            let mut reader = Reader::connect(spec, timeout).await.map_err(failed)?;
            // The projections read now are listed first (and even if never read again).
            let seed: Vec<Option<String>> = match tokio::time::timeout(timeout, reader.read_each()).await {
                // Nothing to sample: a `checkpoints` query that lists no projection.
                Ok(Ok(readings)) if readings.is_empty() => {
                    return Err(failed(anyhow::anyhow!("the `checkpoints` query answered no projection")));
                }
                Ok(Ok(readings)) => readings.into_iter().map(|(name, _)| name).collect(),
                Ok(Err(e)) => return Err(failed(e)),
                Err(_) => return Err(failed(anyhow::anyhow!("no answer within {timeout:?}"))),
            };
            let series = Arc::new(Mutex::new(Series { seed, ticks: Vec::new() }));
            let task = tokio::spawn(sample(reader, spec.clone(), start, series.clone(), stop.clone()));
            sources.push(Source { spec: spec.clone(), series, task });
        }
        Ok(BacklogProbe { sources, stop, start })
    }

    /// Called once `[verify]` has ended (or right after the load without it): waits until
    /// every source has read 0 since `load_end`, or its `settle` has passed since then,
    /// then stops sampling and gives each source's figures.
    pub async fn finish(self, load_end: Instant, shutdown: &CancellationToken) -> Vec<BacklogStats> {
        let load_end_s = load_end.saturating_duration_since(self.start).as_secs_f64();
        loop {
            let waiting = self.sources.iter().any(|source| {
                let series = lock(&source.series);
                let drained = projections::drained_since(&series.seed, &series.ticks, load_end_s);
                !drained && load_end.elapsed() < source.spec.settle
            });
            if !waiting || shutdown.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        self.stop.cancel();
        let mut stats = Vec::new();
        for source in self.sources {
            let _ = source.task.await;
            let series = std::mem::take(&mut *lock(&source.series));
            for (projection, samples, first_error) in projections::split(&series.seed, &series.ticks) {
                // A projection of a `checkpoints` query is a source of its own.
                let spec = match projection {
                    Some(projection) => {
                        BacklogSpec { name: format!("{}/{projection}", source.spec.name), ..source.spec.clone() }
                    }
                    None => source.spec.clone(),
                };
                stats.push(figures::figures(&spec, &samples, load_end_s, first_error));
            }
        }
        stats
    }
}

fn lock(series: &Mutex<Series>) -> std::sync::MutexGuard<'_, Series> {
    series.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads the source every `every` until stopped. A read gets at most `every`: a slower
/// answer is unknown for that sample. A failed read reconnects before the next one (the
/// connection may be what failed).
async fn sample(
    mut reader: Reader,
    spec: BacklogSpec,
    start: Instant,
    series: Arc<Mutex<Series>>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::from_std(start), spec.every);
    // A read that timed out ends just after the next tick was due: that tick fires at
    // once (burst), so each tick gives one sample and a source that stops answering is
    // unknown for every tick of the silence (skipping it would leave the silence uncounted).
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut broken = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let t_s = start.elapsed().as_secs_f64();
        let read = async {
            if broken {
                reader = Reader::connect(&spec, spec.every).await?;
            }
            reader.read_each().await
        };
        let outcome = match tokio::time::timeout(spec.every, read).await {
            Ok(result) => result.map_err(|e| sources::redacted(e, &spec)),
            Err(_) => Err(anyhow::anyhow!("no answer within {:?}", spec.every)),
        };
        broken = outcome.is_err();
        lock(&series).ticks.push(Tick { t_s, read: outcome.map_err(|e| format!("{e:#}")) });
    }
}
