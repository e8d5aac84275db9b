//! The Kafka bus probe (`[bus]`, PRODUCT §5 "Bus"): watches the event topic itself,
//! not only the read model.
//!
//! - Its own consumer (a group id of its own, partitions *assigned* at the log end as
//!   the run starts, so it never joins or disturbs the projectors' group) reads every
//!   event; the ref at the `ref` JSON pointer is matched to this run's commands:
//!   seen / missed / duplicates, and end-to-end time from the command's acknowledgement
//!   to the event's broker timestamp (CreateTime or LogAppendTime, reported).
//! - Consumer-group lag of the projectors, sampled every second per partition: in
//!   messages (log end − committed offset) and in seconds (how long ago the log end was
//!   at the committed offset, from the timeline of log-end offsets, as kafka-lag-exporter
//!   estimates it). The latest lag in messages also goes to the live metrics.
//! - Each group's lag is also a backlog (issue 33): its readings (known or unknown, with
//!   the committed offsets' sum as progress) become an entry of result.json `backlog[]`.
//!
//! librdkafka calls block; they run on blocking threads.

use crate::scenario::BusSpec;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use roaring::RoaringTreemap;

use crate::live::Gauges;
use crate::refs::OpRef;

/// One command in this many gets an end-to-end time (its ack time must be kept until
/// its event is seen; sampling keeps that memory bounded).
pub const E2E_SAMPLE_EVERY: u64 = 8;
/// At most this many commands are timed end to end (about 8 MB of acknowledgement times).
pub const E2E_MAX_SAMPLES: usize = 200_000;

fn client_config(spec: &BusSpec, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &spec.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // librdkafka waits up to 500 ms for a fetch by default: too coarse for e2e times.
        .set("fetch.wait.max.ms", "10")
        .set("socket.timeout.ms", spec.timeout.as_millis().max(10).to_string());
    for (key, value) in &spec.client {
        config.set(key, value);
    }
    config
}

/// How many partitions the `[bus]` topic has (capacity planning: consumers beyond it
/// idle). Blocking metadata call, run off the async threads.
pub async fn topic_partitions(spec: &BusSpec) -> anyhow::Result<usize> {
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer =
            client_config(&spec, "cqrs-bench-metadata").create().context("creating a Kafka client")?;
        Ok(partitions(&consumer, &spec)?.len())
    })
    .await
    .context("reading the topic's metadata")?
}

/// Partitions of `topic`, or a clear error when the broker or the topic is not there.
fn partitions(consumer: &BaseConsumer, spec: &BusSpec) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(&spec.topic), spec.timeout)
        .with_context(|| format!("Kafka brokers {} did not answer within {:?}", spec.brokers, spec.timeout))?;
    let topic = metadata.topics().iter().find(|t| t.name() == spec.topic);
    match topic {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().iter().map(|p| p.id()).collect())
        }
        _ => anyhow::bail!("Kafka topic `{}` does not exist on {}", spec.topic, spec.brokers),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// What the probe's consumer saw.
#[derive(Debug, Default)]
pub struct BusSeen {
    /// Sequence numbers of this run's refs seen at least once.
    pub seen: RoaringTreemap,
    /// Extra copies of refs already seen.
    pub duplicates: u64,
    /// Events read.
    pub messages: u64,
    /// Events whose ref is not this run's (or has none).
    pub foreign: u64,
    /// `CreateTime`, `LogAppendTime` or `none`.
    pub timestamp_type: String,
    /// Broker timestamp (Unix ms) of the first copy, for sampled sequence numbers.
    pub broker_ms: HashMap<u64, i64>,
    /// Where the first copy of each lag-probed command's event is, for lag attribution.
    pub placed: HashMap<u64, Placed>,
}

/// An event's place on the topic and its broker timestamp (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub partition: i32,
    pub offset: i64,
    pub broker_ms: i64,
}

/// Committed offsets of one consumer group over the run, per partition: (seconds since
/// load start, committed offset), one entry per change.
pub type CommittedTimeline = HashMap<i32, Vec<(f64, i64)>>;

/// When the group's committed offset on `partition` first passed `offset` (seconds since
/// load start): the event was consumed by then.
pub fn consumed_at(timeline: &CommittedTimeline, partition: i32, offset: i64) -> Option<f64> {
    timeline.get(&partition)?.iter().find(|(_, committed)| *committed > offset).map(|(t, _)| *t)
}

/// Bus accounting against the ledger of acknowledged commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusCounts {
    pub seen: u64,
    /// Acknowledged, never on the bus.
    pub missed: u64,
    pub duplicates: u64,
    /// On the bus with this run's ref, but never acknowledged.
    pub unexpected: u64,
}

pub fn account(seen: &BusSeen, ledger: &crate::probe::ledger::Ledger) -> BusCounts {
    let sent = &ledger.acked | &ledger.indeterminate;
    BusCounts {
        seen: seen.seen.len(),
        missed: (&ledger.acked - &seen.seen).len(),
        duplicates: seen.duplicates,
        unexpected: (&seen.seen - &sent).len(),
    }
}

/// The running bus probe.
pub struct BusProbe {
    stop: Arc<AtomicBool>,
    messages: Arc<std::sync::atomic::AtomicU64>,
    reader: tokio::task::JoinHandle<BusSeen>,
    sampler: tokio::task::JoinHandle<Sampled>,
    readings: Readings,
}

/// What the lag sampler gathered.
#[derive(Debug, Default)]
pub struct Sampled {
    pub lag: BTreeMap<String, GroupLag>,
    /// The committed offsets of the group lag attribution follows (`traced_group`).
    pub committed: CommittedTimeline,
    /// Every sample of each group as a backlog reading, in order.
    pub readings: BTreeMap<String, Vec<GroupReading>>,
}

/// One sample of a group's lag as a backlog reading.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReading {
    pub t_s: f64,
    /// (messages behind, sum of the committed offsets, seconds behind as `LagSample`
    /// estimates it); `Err`: why this sample is unknown (a partition's log end or the
    /// committed offsets could not be read).
    pub reading: Result<(u64, i64, f64), String>,
}

/// The readings so far, shared by the sampler and the wait after the load.
type Readings = Arc<std::sync::Mutex<BTreeMap<String, Vec<GroupReading>>>>;

fn lock(readings: &Readings) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<GroupReading>>> {
    readings.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What lag attribution asks of the bus probe: the place of the lag probe's commands'
/// events, and a finer timeline of one group's committed offsets.
#[derive(Debug, Clone)]
pub struct Tracing {
    pub probed: crate::probe::Sampling,
    pub group: Option<String>,
}

/// Each group's lag is sampled this often.
pub const LAG_EVERY: Duration = Duration::from_secs(1);

/// Committed offsets of the traced group are read this often (the consumer stage's
/// resolution); the per-second lag series keeps its one sample a second.
pub const COMMITTED_EVERY: Duration = Duration::from_millis(50);

impl BusProbe {
    /// Connects, places its consumer at the log end of every partition, starts reading
    /// and sampling. Fails within `spec.timeout` when the broker or topic is missing.
    pub async fn start(
        spec: BusSpec,
        run_id: u32,
        shard: u32,
        start: Instant,
        tracing: Option<Tracing>,
        gauges: Arc<Gauges>,
    ) -> anyhow::Result<BusProbe> {
        let stop = Arc::new(AtomicBool::new(false));
        let setup = spec.clone();
        let consumer = tokio::task::spawn_blocking(move || -> anyhow::Result<BaseConsumer> {
            let group = format!("cqrs-bench-probe-{run_id:08x}");
            let consumer: BaseConsumer =
                client_config(&setup, &group).create().context("creating the Kafka consumer")?;
            let mut assignment = TopicPartitionList::new();
            for partition in partitions(&consumer, &setup)? {
                let (_, high) = consumer
                    .fetch_watermarks(&setup.topic, partition, setup.timeout)
                    .with_context(|| format!("log end of {}[{partition}]", setup.topic))?;
                assignment.add_partition_offset(&setup.topic, partition, Offset::Offset(high))?;
            }
            consumer.assign(&assignment).context("assigning the probe's partitions")?;
            Ok(consumer)
        })
        .await??;
        let messages = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (flag, pointer, counter) = (stop.clone(), spec.ref_pointer.clone(), messages.clone());
        let probed = tracing.as_ref().map(|t| t.probed);
        let reader =
            tokio::task::spawn_blocking(move || read(consumer, &pointer, run_id, shard, probed, &flag, &counter));
        let (flag, sampler_spec) = (stop.clone(), spec);
        let traced_group = tracing.and_then(|t| t.group);
        let readings = Readings::default();
        let shared = readings.clone();
        let sampler = tokio::task::spawn_blocking(move || {
            sample_lag(&sampler_spec, traced_group.as_deref(), start, &flag, &gauges, &shared)
        });
        Ok(BusProbe { stop, messages, reader, sampler, readings })
    }

    /// Whether a consumer group is still draining after the load: one has no reading
    /// since `since_s` yet, or is behind and consuming (its committed offsets moved over
    /// its last three readings). A group that makes no progress, such as one nobody
    /// consumes, is not waited for.
    pub fn groups_draining(&self, since_s: f64) -> bool {
        lock(&self.readings).values().any(|readings| {
            let known: Vec<(f64, u64, i64)> = readings
                .iter()
                .filter_map(|r| r.reading.as_ref().ok().map(|&(messages, committed, _)| (r.t_s, messages, committed)))
                .collect();
            match known.last() {
                None => true,
                Some(&(t_s, _, _)) if t_s < since_s => true,
                Some(&(_, 0, _)) => false,
                Some(&(_, _, now)) => known.iter().rev().take(3).any(|&(_, _, committed)| committed < now),
            }
        })
    }

    /// Events read so far.
    pub fn messages_read(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Stops reading and sampling; returns what was seen and the lag series.
    pub async fn finish(self) -> anyhow::Result<(BusSeen, Sampled)> {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.reader.await.context("bus probe reader")?;
        let mut lag = self.sampler.await.context("consumer lag sampler")?;
        lag.readings = std::mem::take(&mut *lock(&self.readings));
        Ok((seen, lag))
    }
}

fn read(
    consumer: BaseConsumer,
    pointer: &str,
    run_id: u32,
    shard: u32,
    probed: Option<crate::probe::Sampling>,
    stop: &AtomicBool,
    counter: &std::sync::atomic::AtomicU64,
) -> BusSeen {
    let mut seen = BusSeen { timestamp_type: "none".into(), ..BusSeen::default() };
    while !stop.load(Ordering::Relaxed) {
        let Some(message) = consumer.poll(Duration::from_millis(50)) else { continue };
        let Ok(message) = message else { continue };
        seen.messages += 1;
        counter.fetch_add(1, Ordering::Relaxed);
        let broker_ms = match message.timestamp() {
            Timestamp::CreateTime(ms) => {
                seen.timestamp_type = "CreateTime".into();
                Some(ms)
            }
            Timestamp::LogAppendTime(ms) => {
                seen.timestamp_type = "LogAppendTime".into();
                Some(ms)
            }
            Timestamp::NotAvailable => None,
        };
        let op_ref = message
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            .and_then(|json| json.pointer(pointer).and_then(|v| v.as_str().map(str::to_owned)))
            .and_then(|text| OpRef::parse(&text));
        let op_ref = match op_ref {
            Some(r) if r.run_id == run_id && r.shard == shard => r,
            // A sibling shard's event (`--shard`): its own probe accounts for it.
            Some(r) if r.run_id == run_id => continue,
            _ => {
                seen.foreign += 1;
                continue;
            }
        };
        if !seen.seen.insert(op_ref.seq) {
            seen.duplicates += 1;
            continue;
        }
        let broker_ms = broker_ms.unwrap_or_else(now_ms);
        if op_ref.seq.is_multiple_of(E2E_SAMPLE_EVERY) {
            seen.broker_ms.insert(op_ref.seq, broker_ms);
        }
        if probed.is_some_and(|p| p.picks(op_ref.seq)) && seen.placed.len() < E2E_MAX_SAMPLES {
            let placed = Placed { partition: message.partition(), offset: message.offset(), broker_ms };
            seen.placed.insert(op_ref.seq, placed);
        }
    }
    seen
}

/// Lag of one consumer group over the run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct GroupLag {
    /// Largest total lag (all partitions) in messages.
    pub max_messages: u64,
    /// Largest lag in seconds of any partition.
    pub max_seconds: f64,
    /// One sample per second.
    pub series: Vec<LagSample>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct LagSample {
    /// Seconds since the start of the load.
    pub t_s: f64,
    /// Sum over partitions of log end − committed offset.
    pub messages: u64,
    /// Largest per-partition estimate of how far behind the group is in time.
    pub seconds: f64,
}

/// Log-end offsets of one partition over time: (seconds since start, offset).
#[derive(Default)]
struct EndTimeline(Vec<(f64, i64)>);

impl EndTimeline {
    /// How long ago the log end was at `committed`: 0 when caught up.
    fn seconds_behind(&self, committed: i64, now_s: f64) -> f64 {
        match self.0.iter().find(|(_, end)| *end > committed) {
            // The first sample whose log end passed the committed offset: the message at
            // `committed` was appended at or before then.
            Some((t, _)) if committed < self.0.last().map_or(0, |l| l.1) => now_s - t,
            _ => 0.0,
        }
    }
}

fn sample_lag(
    spec: &BusSpec,
    traced_group: Option<&str>,
    start: Instant,
    stop: &AtomicBool,
    gauges: &Gauges,
    readings: &Readings,
) -> Sampled {
    let mut sampled = Sampled::default();
    // A consumer per group with that group's id reads its committed offsets; it never
    // subscribes, so it never joins the group.
    let consumers: Vec<(String, BaseConsumer)> = spec
        .consumer_groups
        .iter()
        .filter_map(|group| client_config(spec, group).create::<BaseConsumer>().ok().map(|c| (group.clone(), c)))
        .collect();
    let Some(partitions) = consumers.first().and_then(|(_, c)| partitions(c, spec).ok()) else {
        return sampled;
    };
    let traced = traced_group.and_then(|name| consumers.iter().find(|(group, _)| group == name));
    let mut timelines: HashMap<i32, EndTimeline> = HashMap::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            if let Some((_, consumer)) = traced {
                read_committed(consumer, spec, &partitions, start, &mut sampled.committed);
            }
            std::thread::park_timeout(if traced.is_some() { COMMITTED_EVERY } else { Duration::from_millis(20) });
            continue;
        }
        next += LAG_EVERY;
        let now_s = start.elapsed().as_secs_f64();
        let Some((_, first)) = consumers.first() else { break };
        let mut ends = HashMap::new();
        // A partition whose log end is unknown makes this second's backlog unknown.
        let mut missing_end = None;
        for &p in &partitions {
            match first.fetch_watermarks(&spec.topic, p, spec.timeout) {
                Ok((_, high)) => {
                    ends.insert(p, high);
                    timelines.entry(p).or_default().0.push((now_s, high));
                }
                Err(e) if missing_end.is_none() => missing_end = Some(format!("log end of {}[{p}]: {e}", spec.topic)),
                Err(_) => {}
            }
        }
        for (group, consumer) in &consumers {
            let mut list = TopicPartitionList::new();
            for &p in &partitions {
                list.add_partition(&spec.topic, p);
            }
            let committed = match consumer.committed_offsets(list, spec.timeout) {
                Ok(committed) => committed,
                Err(e) => {
                    let why = format!("committed offsets of group {group}: {e}");
                    lock(readings)
                        .entry(group.clone())
                        .or_default()
                        .push(GroupReading { t_s: now_s, reading: Err(why) });
                    continue;
                }
            };
            let mut sample = LagSample { t_s: now_s, ..LagSample::default() };
            let mut committed_sum = 0i64;
            for element in committed.elements() {
                let Some(&end) = ends.get(&element.partition()) else { continue };
                // Nothing committed yet: the whole log is behind.
                let at = match element.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                committed_sum += at;
                sample.messages += (end - at).max(0) as u64;
                let seconds = timelines.get(&element.partition()).map_or(0.0, |t| t.seconds_behind(at, now_s));
                sample.seconds = sample.seconds.max(seconds);
            }
            if let Some(metrics) = &gauges.metrics {
                metrics.set_consumer_lag(group, sample.messages);
            }
            let reading = match &missing_end {
                Some(why) => Err(why.clone()),
                None => Ok((sample.messages, committed_sum, sample.seconds)),
            };
            lock(readings).entry(group.clone()).or_default().push(GroupReading { t_s: now_s, reading });
            let lag: &mut GroupLag = sampled.lag.entry(group.clone()).or_default();
            lag.max_messages = lag.max_messages.max(sample.messages);
            lag.max_seconds = lag.max_seconds.max(sample.seconds);
            lag.series.push(sample);
        }
    }
    sampled
}

/// Adds the traced group's committed offsets to its timeline where they moved.
fn read_committed(
    consumer: &BaseConsumer,
    spec: &BusSpec,
    partitions: &[i32],
    start: Instant,
    timeline: &mut CommittedTimeline,
) {
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        list.add_partition(&spec.topic, p);
    }
    let Ok(committed) = consumer.committed_offsets(list, spec.timeout) else { return };
    let now_s = start.elapsed().as_secs_f64();
    for element in committed.elements() {
        let Offset::Offset(at) = element.offset() else { continue };
        let series = timeline.entry(element.partition()).or_default();
        if series.last().is_none_or(|(_, last)| *last != at) {
            series.push((now_s, at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumed_when_the_committed_offset_passes_the_event() {
        let timeline: CommittedTimeline = HashMap::from([(0, vec![(0.1, 5), (0.2, 9), (0.3, 12)])]);
        assert_eq!(consumed_at(&timeline, 0, 4), Some(0.1));
        assert_eq!(consumed_at(&timeline, 0, 5), Some(0.2), "committed = the next offset to read");
        assert_eq!(consumed_at(&timeline, 0, 12), None);
        assert_eq!(consumed_at(&timeline, 1, 0), None);
    }

    #[test]
    fn seconds_behind_from_the_log_end_timeline() {
        let timeline = EndTimeline(vec![(0.0, 0), (1.0, 100), (2.0, 200), (3.0, 300)]);
        assert_eq!(timeline.seconds_behind(300, 3.0), 0.0);
        assert_eq!(timeline.seconds_behind(150, 3.0), 1.0); // offset 150 appended by t = 2
        assert_eq!(timeline.seconds_behind(0, 3.0), 2.0);
    }
}
