//! `[[backlog]]` on RabbitMQ and on a MariaDB/MySQL checkpoint table (issue 33), against
//! the real services named by CQRS_BENCH_AMQP_URL and CQRS_BENCH_MYSQL_URL (each test says
//! it skipped without them), with the feed app of tests/it/apps/feed.rs on the same plan
//! as the Redis and Postgres runs (slowed at 1.5 s, stopped at 3 s, resumed at 6.5 s or
//! never).
//!
//! MySQL is read as exactly as Postgres. RabbitMQ's ready count is live but its
//! unacknowledged count comes from the management API's statistics (up to
//! `collect_statistics_interval`, 5 s by default, plus the collector's tick): a sample may
//! be off by what the consumer holds (its prefetch), the drain is seen up to that much
//! later, and the throughput is unknown. Max and the remainder are exact (the stopped
//! consumer's count does not change, so the statistics catch up).

use std::path::Path;
use std::time::{Duration, Instant};

use cqrs_bench::probe::backlog::sources::Reader;
use mysql_async::prelude::Queryable as _;

use crate::apps::feed::{self, Store};
use crate::apps::{feed_mysql, feed_rabbitmq};
use crate::backlog::{Exactness, check, check_within, plan, run, scenario, scenario_settling};
use crate::support::{bench, env_url, service_url};

/// RabbitMQ's statistics lag, measured here at ~6 s with the default 5 s interval: a bound.
const RABBIT_STATS_LAG_MS: f64 = 11_000.0;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// Deletes the queue or drops the tables when the test ends, passed or not.
enum Cleanup {
    Queue { url: String, queue: String },
    Tables(feed_mysql::Tables),
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Queue { url, queue } => block_on(feed_rabbitmq::remove(url, queue)),
            Cleanup::Tables(tables) => block_on(feed_mysql::remove(tables)),
        }
    }
}

fn rabbitmq_case(resumed: bool) {
    let Some(url) = service_url("CQRS_BENCH_AMQP_URL") else { return };
    let queue = format!("cqrs-bench-backlog-{}-{resumed}", std::process::id());
    let store = Store::RabbitMq(feed_rabbitmq::Queue { url: url.clone(), queue: queue.clone() });
    let _cleanup = Cleanup::Queue { url: url.clone(), queue: queue.clone() };
    let app = feed::start(store, plan(resumed));
    let backlog = format!("kind = \"rabbitmq\"\nurl = \"{url}\"\nqueue = \"{queue}\"");
    // Long enough after the load for the statistics to show the held deliveries acked.
    let (stats, stdout) = run(&scenario_settling(&app.url, &backlog, "14s"));
    let truth = app.truth();
    drop(app);
    let exactness = Exactness {
        stale_entries: u64::from(feed_rabbitmq::PREFETCH),
        stale_drain_ms: RABBIT_STATS_LAG_MS,
        rate_known: false,
    };
    check_within(&stats, &truth, resumed, &exactness);
    assert!(stdout.contains("backlog view (rabbitmq): max"), "{stdout}");
    let samples = stats["samples"].as_array().unwrap();
    let last = samples.last().unwrap();
    if !resumed {
        // The stopped consumer holds a full prefetch, and the statistics have caught up.
        assert_eq!(last["pending"].as_u64(), Some(u64::from(feed_rabbitmq::PREFETCH)), "{stats}");
    }
    assert!(stats["stale"].as_str().is_some_and(|s| s.contains("collect_statistics_interval")), "{stats}");
}

#[test]
fn issue33_rabbitmq_backlog_of_a_stopped_projector() {
    rabbitmq_case(false);
}

#[test]
fn issue33_rabbitmq_backlog_drains_when_the_projector_resumes() {
    rabbitmq_case(true);
}

fn mysql_case(resumed: bool) {
    let Some(url) = service_url("CQRS_BENCH_MYSQL_URL") else { return };
    let prefix = format!("backlog_{}_{resumed}", std::process::id());
    let tables = feed_mysql::Tables { url: url.clone(), prefix: prefix.clone() };
    let _cleanup = Cleanup::Tables(tables.clone());
    let app = feed::start(Store::Mysql(tables.clone()), plan(resumed));
    let backlog = format!(
        "kind = \"sql\"\nurl = \"{url}\"\nhead = \"select max(id) from {prefix}_events\"\n\
         checkpoint = \"select position from {prefix}_checkpoint where name = 'view'\""
    );
    let (stats, stdout) = run(&scenario(&app.url, &backlog));
    let truth = app.truth();
    drop(app);
    check(&stats, &truth, resumed);
    assert!(stdout.contains("backlog view (sql): max"), "{stdout}");
}

#[test]
fn issue33_mysql_checkpoint_backlog_of_a_stopped_projector() {
    mysql_case(false);
}

#[test]
fn issue33_mysql_checkpoint_backlog_drains_when_the_projector_resumes() {
    mysql_case(true);
}

/// One MySQL sample reads the head and the checkpoint of one moment: here the projector
/// appends 5 entries and moves its checkpoint past them while the sample's `head` query is
/// still running (it sleeps 2 s after reading the head). Read as two autocommit queries,
/// that sample said head 10 and checkpoint 15; in one consistent snapshot, 10 and 10.
#[test]
fn mysql_head_and_checkpoint_are_read_in_one_snapshot() {
    let Some(url) = service_url("CQRS_BENCH_MYSQL_URL") else { return };
    let prefix = format!("snapshot_{}", std::process::id());
    let tables = feed_mysql::Tables { url: url.clone(), prefix: prefix.clone() };
    let _cleanup = Cleanup::Tables(tables.clone());
    let text = format!(
        r#"name = "snapshot"
[target]
kind = "http"
base_url = "http://127.0.0.1:9"
[load]
stages = [{{ duration = "1s", rate = 1 }}]
[[command]]
name = "append"
path = "/events"
[[backlog]]
name = "view"
kind = "sql"
url = "{url}"
head = "select max(id) from {prefix}_events union all select sleep(2)"
checkpoint = "select position from {prefix}_checkpoint where name = 'view'"
"#
    );
    let scenario =
        cqrs_bench::scenario::load_str(&text, Path::new("snapshot.toml"), &[]).unwrap_or_else(|e| panic!("{e}"));
    block_on(async {
        feed_mysql::prepare(&tables).await;
        let mut projector = feed_mysql::connect(&tables).await;
        let advance = async |projector: &mut feed_mysql::Connection, entries: usize, to: u64| {
            for _ in 0..entries {
                assert!(feed_mysql::append(projector, &tables, "{}").await);
            }
            let moved = format!("update {prefix}_checkpoint set position = {to} where name = 'view'");
            projector.query_drop(moved).await.unwrap();
        };
        advance(&mut projector, 10, 10).await;
        let mut reader = Reader::connect(&scenario.backlog[0], Duration::from_secs(5)).await.unwrap();
        let (sample, ()) = tokio::join!(reader.read(), async {
            // The head is read once its query sleeps.
            let sleeping = format!(
                "select count(*) from information_schema.processlist \
                 where state = 'User sleep' and info like '%{prefix}_events union all%'"
            );
            let began = Instant::now();
            while projector.query_first::<u64, _>(sleeping.as_str()).await.unwrap() != Some(1) {
                assert!(began.elapsed() < Duration::from_secs(10), "the head query never slept");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            advance(&mut projector, 5, 15).await;
        });
        let sample = sample.unwrap();
        assert_eq!((sample.backlog, sample.progress), (0, Some(10)), "{sample:?}");
        // The next sample sees what was committed since.
        let next = reader.read().await.unwrap();
        assert_eq!((next.backlog, next.progress), (0, Some(15)), "{next:?}");
    });
}

/// Runs `backlog` against an app that answers; the run must stop before the load, naming
/// the source and `expected`, and never show `hunter2`.
fn fails_before_the_load(backlog: &str, expected: &str) {
    let app = crate::apps::stock::start(1_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, scenario(&app.url, backlog)).unwrap();
    let assert = bench().arg("run").arg(&path).arg("--out").arg(dir.path().join("out")).assert().failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    println!("{stderr}");
    assert!(stderr.contains("[[backlog]] `view`") && stderr.contains(expected), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn issue33_rabbitmq_and_mysql_errors_are_located_before_the_load() {
    // Unreachable, with a password: redacted.
    fails_before_the_load(
        "kind = \"rabbitmq\"\nurl = \"amqp://user:hunter2@127.0.0.1:9/%2f\"\nqueue = \"q\"",
        "amqp://user:***@127.0.0.1:9/%2f",
    );
    fails_before_the_load(
        "kind = \"sql\"\nurl = \"mysql://user:hunter2@127.0.0.1:9/test\"\nhead = \"select 1\"\ncheckpoint = \"select 1\"",
        "mysql://user:***@127.0.0.1:9/test",
    );
    if let Some(url) = env_url("CQRS_BENCH_AMQP_URL") {
        // A queue that does not exist.
        let queue = format!("cqrs-bench-no-such-queue-{}", std::process::id());
        fails_before_the_load(&format!("kind = \"rabbitmq\"\nurl = \"{url}\"\nqueue = \"{queue}\""), "NOT_FOUND");
        // A management API that is not there, on a queue that is.
        block_on(feed_rabbitmq::prepare(&feed_rabbitmq::Queue { url: url.clone(), queue: queue.clone() }));
        fails_before_the_load(
            &format!(
                "kind = \"rabbitmq\"\nurl = \"{url}\"\nqueue = \"{queue}\"\n\
                 management_url = \"http://admin:hunter2@127.0.0.1:9\""
            ),
            "the management API at http://127.0.0.1:9/api/queues/%2F/cqrs-bench-no-such-queue",
        );
        block_on(feed_rabbitmq::remove(&url, &queue));
    } else {
        eprintln!("skipped (RabbitMQ part): CQRS_BENCH_AMQP_URL is not set");
    }
    if let Some(url) = env_url("CQRS_BENCH_MYSQL_URL") {
        fails_before_the_load(
            &format!(
                "kind = \"sql\"\nurl = \"{url}\"\nhead = \"select max(id) from cqrs_bench_no_such_table\"\n\
                 checkpoint = \"select 0\""
            ),
            "the `head` query",
        );
    } else {
        eprintln!("skipped (MySQL part): CQRS_BENCH_MYSQL_URL is not set");
    }
}
