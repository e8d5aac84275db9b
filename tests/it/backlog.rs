//! `[[backlog]]` (issue 33) against the real services named by CQRS_BENCH_REDIS_URL and
//! CQRS_BENCH_PG_URL (each test says it skipped without them). The feed app of
//! tests/it/apps/feed.rs appends one entry per command; its projector is slowed mid-run,
//! then stopped, and in one run resumed after the load: the app's own truth (entries
//! behind at every change, the remainder, when it drained) is what the harness must show.

use crate::apps::feed::{self, Plan, Store};
use crate::support::{bench, result_json};

const LOAD_MS: u64 = 5_000;
const EVERY_MS: f64 = 500.0;

pub(crate) fn env_url(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|url| !url.is_empty())
}

/// A scenario sending 40 entries/s to the feed for 5 s, with one `[[backlog]]` table.
pub(crate) fn scenario(app: &str, backlog: &str) -> String {
    scenario_settling(app, backlog, "3s")
}

/// The same, sampling `settle` long after the load for the backlog to drain.
pub(crate) fn scenario_settling(app: &str, backlog: &str, settle: &str) -> String {
    format!(
        r#"
name = "backlog"
[target]
kind = "http"
base_url = "{app}"
timeout = "2s"
[load]
stages = [{{ duration = "{LOAD_MS}ms", rate = 40 }}]
[[command]]
name = "append"
path = "/events"
body = '{{"ref": "{{{{ref}}}}"}}'
expect_status = [202]
[[backlog]]
name = "view"
every = "{EVERY_MS}ms"
settle = "{settle}"
{backlog}
[slo]
backlog_max = 1000000
backlog_drain = "20s"
"#
    )
}

/// Runs `text`; returns result.json's `backlog[0]` and the summary on stdout.
pub(crate) fn run(text: &str) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    let out = dir.path().join("out");
    let assert = bench().arg("run").arg(&path).arg("--out").arg(&out).assert();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    let result = result_json(&out);
    assert_eq!(result["backlog"].as_array().map(Vec::len), Some(1), "{stdout}");
    // The report: a plot of the backlog and one of the throughput, a table, a timeline column.
    for plot in ["backlog-view.svg", "backlog-view-throughput.svg"] {
        assert!(out.join("plots").join(plot).is_file(), "{plot}");
    }
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("<h2>Backlog</h2>"));
    let rows = result["timeline"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["backlog_sources"]["view"].is_u64()), "{rows:?}");
    (result["backlog"][0].clone(), stdout)
}

/// The truth's backlog over `[from_ms, to_ms]`: (least, most).
fn truth_between(series: &[(u64, u64)], from_ms: f64, to_ms: f64) -> (u64, u64) {
    // The value in force at `from_ms` (the last change before it) and every change inside.
    let before = series.iter().rev().find(|(ms, _)| (*ms as f64) <= from_ms).map_or(0, |(_, b)| *b);
    let inside = series.iter().filter(|(ms, _)| (*ms as f64) > from_ms && (*ms as f64) <= to_ms).map(|(_, b)| *b);
    let values: Vec<u64> = std::iter::once(before).chain(inside).collect();
    (*values.iter().min().unwrap(), *values.iter().max().unwrap())
}

/// Every known sample lies within the truth over one sample around it; max and the end
/// as the truth says.
pub(crate) fn check(stats: &serde_json::Value, truth: &serde_json::Value, resumed: bool) {
    check_within(stats, truth, resumed, &Exactness::EXACT);
}

/// How far a source's figures may be from the truth beyond one sample: RabbitMQ reads its
/// unacknowledged part from statistics up to one statistics interval old.
pub(crate) struct Exactness {
    /// A sample may be off by this many entries.
    pub stale_entries: u64,
    /// The drain may be seen this much later than one sample after it.
    pub stale_drain_ms: f64,
    /// The consumers' throughput is known.
    pub rate_known: bool,
}

impl Exactness {
    const EXACT: Exactness = Exactness { stale_entries: 0, stale_drain_ms: 0.0, rate_known: true };
}

pub(crate) fn check_within(stats: &serde_json::Value, truth: &serde_json::Value, resumed: bool, exactness: &Exactness) {
    let series: Vec<(u64, u64)> = serde_json::from_value(truth["series"].clone()).unwrap();
    let (appended, applied) = (truth["appended"].as_u64().unwrap(), truth["applied"].as_u64().unwrap());
    let truth_max = series.iter().map(|(_, b)| *b).max().unwrap();
    let samples = stats["samples"].as_array().unwrap();
    assert!(samples.len() as f64 >= LOAD_MS as f64 / EVERY_MS, "{stats}");
    for sample in samples {
        let (t_ms, backlog) = (sample["t_s"].as_f64().unwrap() * 1000.0, sample["backlog"].as_u64());
        let backlog = backlog.unwrap_or_else(|| panic!("a sample of a healthy source is unknown: {stats}"));
        let (least, most) = truth_between(&series, t_ms - EVERY_MS, t_ms + EVERY_MS);
        let (least, most) = (least.saturating_sub(exactness.stale_entries), most + exactness.stale_entries);
        assert!((least..=most).contains(&backlog), "at {t_ms} ms the harness read {backlog}, truth {least}..={most}");
    }
    println!(
        "harness max {} vs truth {truth_max}; drained_after_ms {} / not_drained {} vs truth remainder {} drained_ms {}",
        stats["max"],
        stats["drained_after_ms"],
        stats["not_drained"],
        appended - applied,
        truth["drained_ms"]
    );
    assert_eq!(stats["unknown_seconds"], 0.0);
    // The consumers' throughput: exactly 0 while the projector is stopped (from one sample
    // after the stop to the resume).
    let stopped = |t_ms: f64| t_ms >= 3_000.0 + EVERY_MS + 50.0 && t_ms < if resumed { 6_500.0 } else { f64::MAX };
    if exactness.rate_known {
        let rates: Vec<f64> = samples
            .iter()
            .filter(|s| stopped(s["t_s"].as_f64().unwrap() * 1000.0))
            .map(|s| s["applied_per_s"].as_f64().expect("progress is known"))
            .collect();
        assert!(rates.len() >= 4 && rates.iter().all(|r| *r == 0.0), "{rates:?}");
    } else {
        assert!(samples.iter().all(|s| s["applied_per_s"].is_null()), "unknown, never 0: {stats}");
    }
    if resumed {
        assert_eq!(applied, appended, "the resumed projector drained: {truth}");
        let truth_drain = truth["drained_ms"].as_f64().unwrap() - LOAD_MS as f64;
        let harness = stats["drained_after_ms"].as_f64().unwrap_or_else(|| panic!("not drained: {stats}"));
        // The first sample at 0 is at most one sample after the truth (and never before it,
        // give or take the few ms between the load's start and the first append).
        assert!(
            harness >= truth_drain - 50.0 && harness <= truth_drain + EVERY_MS + 50.0 + exactness.stale_drain_ms,
            "drained after {harness} ms, truth {truth_drain} ms"
        );
        // Exact, or (RabbitMQ) short by at most what the statistics had not yet shown held.
        let max = stats["max"].as_u64().unwrap();
        assert!(max <= truth_max && max + exactness.stale_entries >= truth_max, "max {max}, truth {truth_max}");
    } else {
        // Stopped for good: the backlog grows to the remainder and stays there.
        assert_eq!(stats["max"].as_u64(), Some(truth_max), "{stats}");
        assert_eq!(truth_max, appended - applied);
        assert_eq!(stats["not_drained"].as_u64(), Some(appended - applied), "{stats}");
        assert!(stats["drained_after_ms"].is_null());
    }
}

/// Slowed at 1.5 s, stopped at 3 s; resumed at 6.5 s (1.5 s after the load) or never.
pub(crate) fn plan(resumed: bool) -> Plan {
    Plan { fast_until_ms: 1_500, stop_at_ms: 3_000, resume_at_ms: resumed.then_some(6_500) }
}

fn redis_case(resumed: bool) {
    let Some(url) = env_url("CQRS_BENCH_REDIS_URL") else {
        eprintln!("skipped: CQRS_BENCH_REDIS_URL is not set");
        return;
    };
    let stream = format!("cqrs-bench-backlog-{}-{resumed}", std::process::id());
    let store = Store::Redis { url: url.clone(), stream: stream.clone(), group: "view".into() };
    let app = feed::start(store, plan(resumed));
    let backlog = format!("kind = \"redis-streams\"\nurl = \"{url}\"\nstream = \"{stream}\"\ngroup = \"view\"");
    let (stats, stdout) = run(&scenario(&app.url, &backlog));
    let truth = app.truth();
    check(&stats, &truth, resumed);
    assert!(stdout.contains("backlog view (redis-streams): max"), "{stdout}");
    // Pending is part of the backlog: the projector acknowledges what it reads.
    assert!(stats["samples"].as_array().unwrap().iter().all(|s| s["pending"] == 0), "{stats}");
    if let Ok(mut c) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&stream).query(&mut c);
    }
}

#[test]
fn issue33_redis_streams_backlog_of_a_stopped_projector() {
    redis_case(false);
}

#[test]
fn issue33_redis_streams_backlog_drains_when_the_projector_resumes() {
    redis_case(true);
}

fn postgres_case(resumed: bool) {
    let Some(url) = env_url("CQRS_BENCH_PG_URL") else {
        eprintln!("skipped: CQRS_BENCH_PG_URL is not set");
        return;
    };
    let schema = format!("backlog_{}_{resumed}", std::process::id());
    let app = feed::start(Store::Postgres { url: url.clone(), schema: schema.clone() }, plan(resumed));
    let backlog = format!(
        "kind = \"sql\"\nurl = \"{url}\"\nhead = \"select max(id) from {schema}.events\"\n\
         checkpoint = \"select position from {schema}.checkpoint where name = 'view'\""
    );
    let (stats, stdout) = run(&scenario(&app.url, &backlog));
    let truth = app.truth();
    check(&stats, &truth, resumed);
    assert!(stdout.contains("backlog view (sql): max"), "{stdout}");
    drop(app);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        if let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            let _ = client.batch_execute(&format!("drop schema if exists {schema} cascade")).await;
        }
    });
}

#[test]
fn issue33_postgres_checkpoint_backlog_of_a_stopped_projector() {
    postgres_case(false);
}

#[test]
fn issue33_postgres_checkpoint_backlog_drains_when_the_projector_resumes() {
    postgres_case(true);
}

#[test]
fn issue33_an_unreachable_source_or_a_wrong_query_stops_the_run_before_the_load() {
    let Some(url) = env_url("CQRS_BENCH_PG_URL") else {
        eprintln!("skipped: CQRS_BENCH_PG_URL is not set");
        return;
    };
    // A target that answers: the run stops at the source, not at the target.
    let app = crate::apps::stock::start(1_000);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            format!(
                "kind = \"sql\"\nurl = \"{url}\"\nhead = \"select max(id) from no_such_table\"\ncheckpoint = \"select 0\""
            ),
            "the `head` query",
        ),
        (
            "kind = \"redis-streams\"\nurl = \"redis://user:hunter2@127.0.0.1:9\"\nstream = \"s\"\ngroup = \"g\""
                .to_owned(),
            "redis://user:***@127.0.0.1:9",
        ),
    ];
    for (backlog, expected) in cases {
        let path = dir.path().join("scenario.toml");
        std::fs::write(&path, scenario(&app.url, &backlog)).unwrap();
        let assert = bench().arg("run").arg(&path).arg("--out").arg(dir.path().join("out")).assert().failure();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert!(stderr.contains("[[backlog]] `view`") && stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// `saturate` on a Redis Streams feed whose projector applies a fixed ~10 entries/s (one
/// per ≥ 100 ms from the first command): a step at 4 commands/s keeps the backlog flat and
/// passes; a step at 20/s grows it by ~10 entries/s and fails on the backlog's trend,
/// with no `[projection]` or `[bus]` in the scenario. Returns (exit code, saturate.json,
/// the app's truth).
fn saturate_feed(url: &str, rate: u32) -> (i32, serde_json::Value, serde_json::Value) {
    let stream = format!("cqrs-bench-saturate-{}-{rate}", std::process::id());
    let store = Store::Redis { url: url.to_owned(), stream: stream.clone(), group: "view".into() };
    // Slow from the first command, never stopped: one entry per 100 ms.
    let app = feed::start(store, Plan { fast_until_ms: 0, stop_at_ms: u64::MAX, resume_at_ms: None });
    let text = format!(
        r#"
name = "backlog-saturate"
[target]
kind = "http"
base_url = "{app}"
timeout = "2s"
[load]
stages = [{{ duration = "4s", rate = {rate} }}]
[[command]]
name = "append"
path = "/events"
body = '{{"ref": "{{{{ref}}}}"}}'
expect_status = [202]
[[backlog]]
name = "view"
kind = "redis-streams"
url = "{url}"
stream = "{stream}"
group = "view"
every = "250ms"
settle = "1s"
[saturate]
start_rate = {rate}
min_rate = {rate}
max_rate = {rate}
step = "4s"
warmup = "1s"
"#,
        app = app.url
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    let out = dir.path().join("out");
    let output = bench().arg("saturate").arg(&path).args(["--quiet", "--out"]).arg(&out).output().unwrap();
    let json = std::fs::read_to_string(out.join("saturate.json"))
        .unwrap_or_else(|_| panic!("no saturate.json: {}", String::from_utf8_lossy(&output.stderr)));
    let truth = app.truth();
    if let Ok(mut c) = redis::Client::open(url).and_then(|c| c.get_connection()) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&stream).query(&mut c);
    }
    (output.status.code().unwrap_or(-1), serde_json::from_str(&json).unwrap(), truth)
}

#[test]
fn issue33_saturate_fails_a_step_on_a_growing_backlog() {
    let Some(url) = env_url("CQRS_BENCH_REDIS_URL") else {
        eprintln!("skipped: CQRS_BENCH_REDIS_URL is not set");
        return;
    };
    let (code, result, truth) = saturate_feed(&url, 20);
    let step = &result["steps"][0];
    let (appended, applied) = (truth["appended"].as_u64().unwrap(), truth["applied"].as_u64().unwrap());
    println!(
        "20/s: slope {} entries/s; truth appended {appended} applied {applied}; {}",
        step["backlog_slope"]["view"], step["reasons"]
    );
    assert_eq!(code, 1, "no rate passes: {result:#}");
    assert_eq!(step["pass"], false);
    let reasons = step["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r.as_str().unwrap().starts_with("backlog view (redis-streams) growing at")),
        "{reasons:?}"
    );
    // The truth: the backlog the app counted rose across the judged part (1 s → 4 s) at
    // about the slope the harness fitted on its samples.
    let series: Vec<(u64, u64)> = serde_json::from_value(truth["series"].clone()).unwrap();
    let at = |ms: u64| series.iter().rev().find(|(t, _)| *t <= ms).map_or(0, |(_, b)| *b) as f64;
    let truth_slope = (at(4_000) - at(1_000)) / 3.0;
    let slope = step["backlog_slope"]["view"].as_f64().unwrap();
    println!("harness slope {slope:.2} entries/s vs truth {truth_slope:.2} (appended {appended}, applied {applied})");
    assert!(truth_slope > 5.0 && (slope - truth_slope).abs() <= 0.3 * truth_slope, "{slope} vs {truth_slope}");

    let (code, result, truth) = saturate_feed(&url, 4);
    let step = &result["steps"][0];
    println!("4/s: slope {} entries/s; truth {truth}", step["backlog_slope"]["view"]);
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(step["pass"], true, "{step}");
    // The truth: the projector kept up (never more than a few entries behind).
    let series: Vec<(u64, u64)> = serde_json::from_value(truth["series"].clone()).unwrap();
    assert!(series.iter().all(|(_, behind)| *behind <= 3), "{series:?}");
}
