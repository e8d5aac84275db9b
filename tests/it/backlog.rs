//! `[[backlog]]` (issue 33) against the real services named by CQRS_BENCH_REDIS_URL and
//! CQRS_BENCH_PG_URL (each test says it skipped without them). The feed app of
//! tests/it/apps/feed.rs appends one entry per command; its projector is slowed mid-run,
//! then stopped, and in one run resumed after the load: the app's own truth (entries
//! behind at every change, the remainder, when it drained) is what the harness must show.

use crate::apps::feed::{self, Plan, Store};
use crate::support::{bench, result_json, service_url};

pub(crate) const LOAD_MS: u64 = 5_000;
pub(crate) const EVERY_MS: f64 = 500.0;

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
    let (result, stdout) = run_sources(text, &["view"]);
    (result["backlog"][0].clone(), stdout)
}

/// Runs `text`, whose `backlog[]` must be the sources `names`; returns result.json and
/// the summary on stdout.
pub(crate) fn run_sources(text: &str, names: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    let out = dir.path().join("out");
    let assert = bench().arg("run").arg(&path).arg("--out").arg(&out).assert();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    let result = result_json(&out);
    let got: Vec<&str> = result["backlog"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(got, names, "{stdout}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Backlog</h2>"));
    for (name, source) in names.iter().zip(result["backlog"].as_array().unwrap()) {
        // The report: a plot of the backlog and one of the throughput (and one of the lag
        // where it is known), a table row, a timeline column.
        let file = name.replace('/', "_");
        let mut plots = vec![format!("backlog-{file}.svg"), format!("backlog-{file}-throughput.svg")];
        if source["max_lag_s"].is_number() {
            plots.push(format!("backlog-{file}-lag.svg"));
        }
        for plot in plots {
            assert!(out.join("plots").join(&plot).is_file(), "{plot}");
        }
        assert!(html.contains(&format!("<tr><td>{name}</td>")), "{name}");
        let rows = result["timeline"].as_array().unwrap();
        assert!(rows.iter().any(|r| r["backlog_sources"][name].is_u64()), "{name}: {rows:?}");
    }
    (result, stdout)
}

/// The truth's lag in seconds at `ms` after the first command: the age of the oldest entry
/// not yet applied (entries are applied in the order they were appended), 0 when none.
pub(crate) fn truth_lag_s(truth: &serde_json::Value, ms: f64) -> f64 {
    let appended_at: Vec<f64> = serde_json::from_value(truth["appended_at_ms"].clone()).unwrap();
    let applied_series: Vec<(f64, u64)> = serde_json::from_value(truth["applied_series"].clone()).unwrap();
    let appended = appended_at.iter().filter(|t| **t <= ms).count();
    let applied = applied_series.iter().rev().find(|(t, _)| *t <= ms).map_or(0, |(_, a)| *a as usize);
    if applied < appended { (ms - appended_at[applied]) / 1000.0 } else { 0.0 }
}

/// The truth's lag over `[from_ms, to_ms]`, on a 5 ms grid: (least, most).
pub(crate) fn truth_lag_between(truth: &serde_json::Value, from_ms: f64, to_ms: f64) -> (f64, f64) {
    let steps = ((to_ms - from_ms) / 5.0).ceil() as usize;
    let lags = (0..=steps).map(|i| truth_lag_s(truth, (from_ms + i as f64 * 5.0).min(to_ms)));
    lags.fold((f64::MAX, f64::MIN), |(least, most), lag| (least.min(lag), most.max(lag)))
}

/// Every sample's lag in seconds lies within the truth's over one sample around it (and
/// 50 ms: the source stamps an entry a little before the app counts it appended, up to a
/// NATS PubAck's wait before); the
/// maximum is a sample's, so it is within the same bound. Returns (harness max, truth max
/// over the samples' span).
pub(crate) fn check_lag(stats: &serde_json::Value, truth: &serde_json::Value) -> (f64, f64) {
    const SLACK_S: f64 = 0.05;
    let samples = stats["samples"].as_array().unwrap();
    for sample in samples {
        let t_ms = sample["t_s"].as_f64().unwrap() * 1000.0;
        let lag = sample["lag_s"].as_f64().unwrap_or_else(|| panic!("lag unknown at {t_ms} ms: {stats}"));
        let (least, most) = truth_lag_between(truth, t_ms - EVERY_MS, t_ms + EVERY_MS);
        assert!(
            lag >= least - SLACK_S && lag <= most + SLACK_S,
            "at {t_ms} ms the harness read a lag of {lag} s, truth {least}..={most}"
        );
    }
    let last_ms = samples.last().unwrap()["t_s"].as_f64().unwrap() * 1000.0;
    let (_, truth_max) = truth_lag_between(truth, 0.0, last_ms);
    let max = stats["max_lag_s"].as_f64().expect("a max lag");
    let most = samples.iter().filter_map(|s| s["lag_s"].as_f64()).fold(0.0, f64::max);
    assert_eq!(max, most, "the max is the largest sample");
    println!("lag: harness max {max:.3} s vs truth max {truth_max:.3} s over the sampled span");
    assert!(max <= truth_max + SLACK_S && max >= truth_max - EVERY_MS / 1000.0 - SLACK_S, "{max} vs {truth_max}");
    (max, truth_max)
}

/// The truth's backlog over `[from_ms, to_ms]`: (least, most).
pub(crate) fn truth_between(series: &[(u64, u64)], from_ms: f64, to_ms: f64) -> (u64, u64) {
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
    Plan {
        fast_until_ms: 1_500,
        stop_at_ms: 3_000,
        resume_at_ms: resumed.then_some(6_500),
        fast_projection_from_ms: None,
    }
}

fn redis_case(resumed: bool) {
    let Some(url) = service_url("CQRS_BENCH_REDIS_URL") else { return };
    let stream = format!("cqrs-bench-backlog-{}-{resumed}", std::process::id());
    let store = Store::Redis { url: url.clone(), stream: stream.clone(), group: "view".into() };
    let app = feed::start(store, plan(resumed));
    let backlog = format!("kind = \"redis-streams\"\nurl = \"{url}\"\nstream = \"{stream}\"\ngroup = \"view\"");
    let (stats, stdout) = run(&scenario(&app.url, &backlog));
    let truth = app.truth();
    check(&stats, &truth, resumed);
    check_lag(&stats, &truth);
    assert!(stdout.contains("backlog view (redis-streams): max"), "{stdout}");
    // Pending is part of the backlog. It is not always 0: a sample can land between the
    // projector's XREADGROUP and its XACK (seen as pending 1 of backlog 1 at 0.5 s).
    assert!(
        stats["samples"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["pending"].is_u64() && s["pending"].as_u64() <= s["backlog"].as_u64()),
        "{stats}"
    );
    assert!(stdout.contains(", lag max "), "{stdout}");
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
    let Some(url) = service_url("CQRS_BENCH_PG_URL") else { return };
    let schema = format!("backlog_{}_{resumed}", std::process::id());
    let app = feed::start(Store::Postgres { url: url.clone(), schema: schema.clone() }, plan(resumed));
    let backlog = format!(
        "kind = \"sql\"\nurl = \"{url}\"\nhead = \"select max(id) from {schema}.events\"\n\
         checkpoint = \"select position from {schema}.checkpoint where name = 'view'\"\n\
         oldest_unapplied = \"select min(created_at) from {schema}.events \
         where id > (select position from {schema}.checkpoint where name = 'view')\""
    );
    let (stats, stdout) = run(&scenario(&app.url, &backlog));
    let truth = app.truth();
    check(&stats, &truth, resumed);
    check_lag(&stats, &truth);
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
    let Some(url) = service_url("CQRS_BENCH_PG_URL") else { return };
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
        // A lag query that answers a number, not a timestamp.
        (
            format!(
                "kind = \"sql\"\nurl = \"{url}\"\nhead = \"select 1\"\ncheckpoint = \"select 0\"\n\
                 oldest_unapplied = \"select 42\""
            ),
            "the `oldest_unapplied` query",
        ),
        // Several projections, none listed: nothing to sample.
        (
            format!(
                "kind = \"sql\"\nurl = \"{url}\"\nhead = \"select 1\"\n\
                 checkpoints = \"select 'a', 1 where false\""
            ),
            "the `checkpoints` query answered no projection",
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
    let app = feed::start(
        store,
        Plan { fast_until_ms: 0, stop_at_ms: u64::MAX, resume_at_ms: None, fast_projection_from_ms: None },
    );
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
    let _timing = crate::support::timing_sensitive();
    let Some(url) = service_url("CQRS_BENCH_REDIS_URL") else { return };
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

fn nats_case(resumed: bool) {
    let Some(url) = service_url("CQRS_BENCH_NATS_URL") else { return };
    let stream = format!("CQRS_BENCH_BACKLOG_{}_{resumed}", std::process::id());
    let store = Store::Nats { url: url.clone(), stream: stream.clone(), consumer: "view".into() };
    let app = feed::start(store, plan(resumed));
    let backlog = format!("kind = \"nats\"\nurl = \"{url}\"\nstream = \"{stream}\"\nconsumer = \"view\"");
    let (stats, stdout) = run(&scenario(&app.url, &backlog));
    let truth = app.truth();
    drop(app);
    delete_nats_stream(&url, &stream);
    assert!(truth["applied"].as_u64() > Some(0), "the projector applied entries before it stopped: {truth}");
    check(&stats, &truth, resumed);
    check_lag(&stats, &truth);
    let line = stdout.lines().find(|l| l.contains("backlog view (nats): max")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(", lag max "), "{line}");
    println!("{}", line.trim());
    // Delivered, not acknowledged: known in every sample (part of the backlog).
    assert!(stats["samples"].as_array().unwrap().iter().all(|s| s["pending"].is_u64()), "{stats}");
}

fn delete_nats_stream(url: &str, stream: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut c = crate::apps::feed_nats::connect(url).await;
        crate::apps::feed_nats::delete_stream(&mut c, stream).await;
    });
}

#[test]
fn issue33_nats_backlog_of_a_stopped_projector() {
    nats_case(false);
}

#[test]
fn issue33_nats_backlog_drains_when_the_projector_resumes() {
    nats_case(true);
}

#[test]
fn issue33_nats_unknown_consumer_or_stream_or_server_stops_the_run_before_the_load() {
    let Some(url) = service_url("CQRS_BENCH_NATS_URL") else { return };
    let stream = format!("CQRS_BENCH_BACKLOG_{}_errors", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(crate::apps::feed_nats::prepare(&url, &stream, "view"));
    let app = crate::apps::stock::start(1_000);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            format!("url = \"{url}\"\nstream = \"{stream}\"\nconsumer = \"nope\""),
            format!("stream `{stream}` has no consumer `nope`"),
        ),
        (
            format!("url = \"{url}\"\nstream = \"NOPE_{stream}\"\nconsumer = \"view\""),
            format!("JetStream has no stream `NOPE_{stream}`"),
        ),
        (
            "url = \"nats://user:hunter2@127.0.0.1:9\"\nstream = \"S\"\nconsumer = \"view\"".to_owned(),
            "nats://user:***@127.0.0.1:9".to_owned(),
        ),
    ];
    for (keys, expected) in cases {
        let path = dir.path().join("scenario.toml");
        std::fs::write(&path, scenario(&app.url, &format!("kind = \"nats\"\n{keys}"))).unwrap();
        let assert = bench().arg("run").arg(&path).arg("--out").arg(dir.path().join("out")).assert().failure();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert!(stderr.contains("[[backlog]] `view`") && stderr.contains(&expected), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    delete_nats_stream(&url, &stream);
}
