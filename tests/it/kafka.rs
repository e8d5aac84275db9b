//! The Kafka bus probe against librdkafka's in-process mock cluster (the real Kafka
//! protocol on a local port), or a real broker when CQRS_BENCH_KAFKA_BROKERS is set:
//! a producer writes events with injected gaps and duplicates, a slow projector group
//! consumes them; the probe's counts must equal what was injected, and the sampled lag
//! of the slow group must grow, then drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cqrs_bench::probe::bus::{self, BusProbe};
use cqrs_bench::probe::ledger::Ledger;
use cqrs_bench::refs::OpRef;
use cqrs_bench::scenario::BusSpec;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const RUN: u32 = 0x0bad_cafe;

/// A Kafka to test against: the mock cluster, or the broker in CQRS_BENCH_KAFKA_BROKERS.
struct Kafka {
    mock: Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
    brokers: String,
}

impl Kafka {
    fn new() -> Kafka {
        match std::env::var("CQRS_BENCH_KAFKA_BROKERS") {
            Ok(brokers) if !brokers.is_empty() => Kafka { mock: None, brokers },
            _ => {
                let mock = MockCluster::new(1).expect("librdkafka mock cluster");
                let brokers = mock.bootstrap_servers();
                Kafka { mock: Some(mock), brokers }
            }
        }
    }

    /// A fresh topic with `partitions` partitions.
    fn topic(&self, name: &str, partitions: i32) -> String {
        let topic = format!("{name}-{}", std::process::id());
        match &self.mock {
            Some(mock) => mock.create_topic(&topic, partitions, 1).expect("mock topic"),
            None => {
                use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
                let admin: AdminClient<_> =
                    ClientConfig::new().set("bootstrap.servers", &self.brokers).create().unwrap();
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
                runtime.block_on(admin.create_topics([&new], &AdminOptions::new())).unwrap();
            }
        }
        topic
    }

    fn producer(&self) -> BaseProducer {
        ClientConfig::new().set("bootstrap.servers", &self.brokers).set("linger.ms", "5").create().unwrap()
    }
}

/// A projector's consumer in `group` on `topic`: from the start, committing by hand.
fn projector_consumer(brokers: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

fn event(seq: u64) -> String {
    format!(r#"{{"account": "acct-{}", "ref": "{}", "amount": 1}}"#, seq % 17, OpRef { run_id: RUN, shard: 0, seq })
}

fn spec(kafka: &Kafka, topic: &str, groups: &[&str]) -> BusSpec {
    BusSpec {
        brokers: kafka.brokers.clone(),
        topic: topic.to_owned(),
        ref_pointer: "/ref".into(),
        consumer_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        client: Vec::new(),
        timeout: Duration::from_secs(5),
    }
}

fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "condition not met within {deadline:?}");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[test]
fn the_bus_probe_counts_injected_gaps_and_duplicates_exactly() {
    let kafka = Kafka::new();
    let topic = kafka.topic("events", 3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let probe = runtime
        .block_on(BusProbe::start(spec(&kafka, &topic, &[]), RUN, 0, Instant::now(), None, Default::default()))
        .unwrap();

    // 2,000 acknowledged commands; every 50th event never published, every 40th twice.
    let producer = kafka.producer();
    let mut ledger = Ledger::default();
    let (mut gaps, mut doubles, mut written) = (0, 0, 0);
    for seq in 1..=2000u64 {
        ledger.acked.insert(seq);
        if seq % 50 == 0 {
            gaps += 1;
            continue;
        }
        let copies = if seq % 40 == 0 { 2 } else { 1 };
        doubles += copies - 1;
        for _ in 0..copies {
            let payload = event(seq);
            let key = format!("acct-{}", seq % 17);
            producer.send(BaseRecord::to(&topic).key(&key).payload(&payload)).unwrap();
            written += 1;
            producer.poll(Duration::ZERO);
        }
    }
    // Events of someone else's run on the same topic.
    for seq in 1..=5u64 {
        let other = format!(r#"{{"ref": "{}"}}"#, OpRef { run_id: 1, shard: 0, seq });
        producer.send(BaseRecord::<(), _>::to(&topic).payload(&other)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    wait_until(Duration::from_secs(20), || probe.messages_read() == written + 5);

    let (seen, _) = runtime.block_on(probe.finish()).unwrap();
    let counts = bus::account(&seen, &ledger);
    assert_eq!((gaps, doubles), (40, 40)); // 50 doubles minus the 10 that are also gaps
    assert_eq!(counts.missed, gaps);
    assert_eq!(counts.duplicates, doubles);
    assert_eq!(counts.seen, 2000 - gaps);
    assert_eq!(counts.unexpected, 0);
    assert_eq!(seen.foreign, 5);
    assert!(seen.timestamp_type == "CreateTime" || seen.timestamp_type == "LogAppendTime");
}

#[test]
fn the_lag_of_a_slow_projector_group_grows_then_drains() {
    let kafka = Kafka::new();
    let topic = kafka.topic("lagging", 2);
    let group = format!("slow-projector-{}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let probe = runtime
        .block_on(BusProbe::start(spec(&kafka, &topic, &[&group]), RUN, 0, Instant::now(), None, Default::default()))
        .unwrap();

    // A projector that applies 400 events/s and commits each one.
    let done = Arc::new(AtomicBool::new(false));
    let consumed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let projector = {
        let (brokers, topic, group, done, consumed) =
            (kafka.brokers.clone(), topic.clone(), group.clone(), done.clone(), consumed.clone());
        std::thread::spawn(move || {
            let consumer = projector_consumer(&brokers, &group, &topic);
            while !done.load(Ordering::Relaxed) {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
                    std::thread::park_timeout(Duration::from_micros(2500));
                    consumer.commit_message(&message, CommitMode::Sync).unwrap();
                    consumed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // Two bursts of 1,000 events, 1.5 s apart: the backlog grows, then drains.
    let producer = kafka.producer();
    for burst in 0..2u64 {
        for i in 0..1000u64 {
            let payload = event(burst * 1000 + i + 1);
            producer.send(BaseRecord::<(), _>::to(&topic).payload(&payload)).unwrap();
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        std::thread::park_timeout(Duration::from_millis(1500));
    }
    wait_until(Duration::from_secs(40), || consumed.load(Ordering::Relaxed) == 2000);
    // One more sample after the drain.
    std::thread::park_timeout(Duration::from_millis(1500));
    let (_, lags) = runtime.block_on(probe.finish()).unwrap();
    done.store(true, Ordering::Relaxed);
    projector.join().unwrap();

    let lag = &lags.lag[&group];
    let series: Vec<u64> = lag.series.iter().map(|s| s.messages).collect();
    let peak = series.iter().position(|m| *m == lag.max_messages).unwrap();
    assert!(lag.max_messages >= 1500, "both bursts queued before the group caught up: {series:?}");
    assert!(series[..peak].iter().any(|m| *m < lag.max_messages), "lag grew: {series:?}");
    assert_eq!(*series.last().unwrap(), 0, "lag drained: {series:?}");
    assert!(lag.max_seconds > 0.5, "lag in seconds estimated: {}", lag.max_seconds);
}

#[test]
fn a_missing_topic_or_broker_is_a_clear_error_within_the_timeout() {
    let kafka = Kafka::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut missing = spec(&kafka, "no-such-topic-anywhere", &[]);
    missing.timeout = Duration::from_secs(2);
    let began = Instant::now();
    let error = runtime
        .block_on(BusProbe::start(missing, RUN, 0, Instant::now(), None, Default::default()))
        .err()
        .expect("no such topic");
    assert!(format!("{error:#}").contains("no-such-topic-anywhere"), "{error:#}");
    assert!(began.elapsed() < Duration::from_secs(10));

    let mut nobody = spec(&kafka, "events", &[]);
    nobody.brokers = "127.0.0.1:9".into();
    nobody.timeout = Duration::from_secs(2);
    let began = Instant::now();
    let error = runtime
        .block_on(BusProbe::start(nobody, RUN, 0, Instant::now(), None, Default::default()))
        .err()
        .expect("no broker");
    assert!(format!("{error:#}").contains("127.0.0.1:9"), "{error:#}");
    assert!(began.elapsed() < Duration::from_secs(10));
}

#[test]
fn commands_sent_over_kafka_are_all_seen_on_the_bus() {
    let kafka = Kafka::new();
    let topic = kafka.topic("bank-commands", 3);
    let dir = tempfile::tempdir().unwrap();
    crate::support::bench()
        .env("CQRS_BENCH_KAFKA_BROKERS", &kafka.brokers)
        .args(["run", "--set", &format!("bus.topic={topic}"), "--set", &format!("command.0.kafka.topic={topic}")])
        .arg(crate::support::scenario("kafka-commands.toml"))
        .arg("--out")
        .arg(dir.path())
        .assert()
        .code(0);
    let result = crate::support::result_json(dir.path());
    let ok = result["operations"]["deposit"]["ok"].as_u64().unwrap();
    assert_eq!(ok, 1200, "4 s at 300/s, every one acknowledged by the broker");
    assert_eq!(result["bus"]["seen"].as_u64(), Some(ok));
    assert_eq!(result["bus"]["missed"].as_u64(), Some(0));
    assert_eq!(result["bus"]["duplicates"].as_u64(), Some(0));
    assert!(result["bus"]["e2e_samples"].as_u64().unwrap() >= 100, "every 8th command timed end to end");
    assert!(result["bus"]["timestamp_type"].as_str().unwrap().ends_with("Time"));
    // A group that never consumes is behind by every command, and the report plots it.
    let idle = &result["bus"]["consumer_lag"]["idle-projector"];
    assert_eq!(idle["max_messages"].as_u64(), Some(ok), "{idle}");
    let series = idle["series"].as_array().unwrap();
    assert!(
        series.first().unwrap()["messages"].as_u64().unwrap() < series.last().unwrap()["messages"].as_u64().unwrap()
    );
    assert!(dir.path().join("plots/consumer-lag.png").is_file());
    // Issue 33: the same lag is a backlog source of kind `kafka`, named after the group:
    // behind by every command, never drained.
    let backlog = &result["backlog"][0];
    assert_eq!((backlog["name"].as_str(), backlog["kind"].as_str()), (Some("idle-projector"), Some("kafka")));
    assert_eq!(backlog["max"].as_u64(), Some(ok), "{backlog}");
    assert_eq!(backlog["not_drained"].as_u64(), Some(ok), "{backlog}");
    assert!(backlog["drained_after_ms"].is_null());
    assert_eq!(backlog["every_ms"], 1000.0);
}

/// Issue 33: a `[bus]` consumer group's lag feeds result.json `backlog[]` (kind `kafka`), so
/// the backlog SLOs, plot, summary line, table and timeline column apply to it. A group
/// that consumes about as fast as the load produces, but joins ~3 s late (the mock
/// cluster's first rebalance), grows a backlog and drains it after the load; the harness's
/// drain time is the group's own last commit, within one sample (1 s) after it.
#[test]
fn a_consumer_groups_lag_is_a_kafka_backlog_with_its_drain_time() {
    let kafka = Kafka::new();
    let topic = kafka.topic("bank-commands-drain", 3);
    let group = format!("slow-projector-{}", std::process::id());
    let expected = 1200; // 4 s at 300/s
    let projector = {
        let (brokers, topic, group) = (kafka.brokers.clone(), topic.clone(), group.clone());
        std::thread::spawn(move || {
            let consumer = projector_consumer(&brokers, &group, &topic);
            let (mut consumed, began) = (0u64, Instant::now());
            while consumed < expected {
                assert!(began.elapsed() < Duration::from_secs(60), "consumed {consumed} of {expected}");
                if let Some(Ok(_)) = consumer.poll(Duration::from_millis(50)) {
                    std::thread::park_timeout(Duration::from_millis(3));
                    consumed += 1;
                    // Every partition's position (the stored offsets), not only this message's.
                    if consumed.is_multiple_of(25) || consumed == expected {
                        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
                    }
                }
            }
            // Committed: the group's lag is 0 from now on (the truth of the drain).
            std::time::SystemTime::now()
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let groups = format!(r#"bus.consumer_groups=["idle-projector", "{group}"]"#);
    let assert = crate::support::bench()
        .env("CQRS_BENCH_KAFKA_BROKERS", &kafka.brokers)
        .args(["run", "--set", &format!("bus.topic={topic}"), "--set", &format!("command.0.kafka.topic={topic}")])
        .args(["--set", &groups, "--set", r#"slo.backlog_drain="20s""#])
        .arg(crate::support::scenario("kafka-commands.toml"))
        .arg("--out")
        .arg(dir.path())
        .assert();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    // The idle group is never drained: the SLO fails on it, naming it.
    assert.code(1);
    let drained_at = projector.join().unwrap();
    let result = crate::support::result_json(dir.path());
    let sources = result["backlog"].as_array().unwrap();
    let slow = sources.iter().find(|b| b["name"] == group.as_str()).unwrap_or_else(|| panic!("{sources:?}"));
    assert_eq!(slow["kind"], "kafka");
    let started: std::time::SystemTime = humantime::parse_rfc3339(result["started_at"].as_str().unwrap()).unwrap();
    let load_end = started + Duration::from_secs_f64(slow["load_end_s"].as_f64().unwrap());
    let truth_ms = drained_at.duration_since(load_end).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let harness_ms = slow["drained_after_ms"].as_f64().unwrap_or_else(|| panic!("not drained: {slow}"));
    println!("kafka group drained {harness_ms:.0} ms after the load (truth {truth_ms:.0} ms), max {}", slow["max"]);
    assert!(harness_ms >= truth_ms - 50.0 && harness_ms <= truth_ms + 1150.0, "{harness_ms} vs {truth_ms}");
    let max = slow["max"].as_u64().unwrap();
    assert!(max > 300 && max <= expected, "{slow}");
    // Progress is the committed offsets' sum: the group's rate is known between samples.
    assert!(slow["samples"].as_array().unwrap().iter().any(|s| s["applied_per_s"].as_f64() > Some(100.0)), "{slow}");
    let drain = result["slo"].as_array().unwrap().iter().find(|s| s["name"] == "backlog_drain").unwrap().clone();
    assert_eq!(drain["pass"], false, "{drain}");
    assert!(drain.to_string().contains("`idle-projector` not drained"), "{drain}");
    // Summary line, plots, the report's table and the timeline column.
    assert!(stdout.contains(&format!("backlog {group} (kafka): max {max} behind, lag max")), "{stdout}");
    // Its lag in seconds is the estimate `bus.consumer_lag` gives.
    let seconds = result["bus"]["consumer_lag"][group.as_str()]["max_seconds"].as_f64().unwrap();
    assert_eq!(slow["max_lag_s"].as_f64(), Some(seconds), "{slow}");
    for plot in ["", "-throughput", "-lag"] {
        assert!(dir.path().join(format!("plots/backlog-{group}{plot}.svg")).is_file(), "{plot}");
    }
    assert!(std::fs::read_to_string(dir.path().join("report.html")).unwrap().contains("<h2>Backlog</h2>"));
    let rows = result["timeline"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["backlog_sources"][group.as_str()].as_u64() > Some(0)), "{rows:?}");
}

/// `--metrics-listen` with `[bus]`: the consumer-group lag gauge ends at the last lag
/// sample of result.json (the idle group: behind by every command).
#[test]
fn live_metrics_show_the_consumer_group_lag() {
    let kafka = Kafka::new();
    let topic = kafka.topic("bank-commands-live", 3);
    let (bus_topic, command_topic) = (format!("bus.topic={topic}"), format!("command.0.kafka.topic={topic}"));
    let scraped = crate::metrics::run_scraped(
        "kafka-commands.toml",
        &["--set", &bus_topic, "--set", &command_topic],
        &[("CQRS_BENCH_KAFKA_BROKERS", &kafka.brokers)],
        0,
    );
    let series = scraped.result["bus"]["consumer_lag"]["idle-projector"]["series"].as_array().unwrap().clone();
    let last_sample = series.last().unwrap()["messages"].as_f64().unwrap();
    let live =
        crate::metrics::sum(&scraped.last, "cqrs_bench_consumer_group_lag_messages", &[("group", "idle-projector")]);
    assert_eq!(live, last_sample);
    assert_eq!(Some(live as u64), scraped.result["operations"]["deposit"]["ok"].as_u64());
}
