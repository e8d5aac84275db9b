//! `[[backlog]]` beyond one reading per source (issue 33): several projections from one
//! `checkpoints` query, a source that stops answering mid-run (a TCP proxy the test
//! cuts), and a run spread over shards, where only shard 0 samples. Against the real
//! services of CQRS_BENCH_REDIS_URL and CQRS_BENCH_PG_URL (each test says it skipped
//! without them); the feed app of tests/it/apps/feed.rs keeps the truth.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::apps::feed::{self, Plan, Store};
use crate::backlog::{EVERY_MS, check, check_lag, plan, run_sources, scenario, truth_between};
use crate::support::{bench, result_json, service_url, shard_run};

fn drop_schema(url: &str, schema: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        if let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            let _ = client.batch_execute(&format!("drop schema if exists {schema} cascade")).await;
        }
    });
}

fn drop_stream(url: &str, stream: &str) {
    if let Ok(mut c) = redis::Client::open(url).and_then(|c| c.get_connection()) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(stream).query(&mut c);
    }
}

/// One `checkpoints` query, two projections on one Postgres feed: `view` slowed at 1.5 s
/// and stopped at 3 s, `fast` keeping up from the moment its checkpoint row appears (1 s
/// into the run). Each is its own source `feed/<projection>` with its own figures, plots,
/// timeline column and SLO verdicts; `fast` is unknown (never 0) before its row exists.
#[test]
fn issue33_one_checkpoints_query_gives_each_projection_its_own_figures() {
    let Some(url) = service_url("CQRS_BENCH_PG_URL") else { return };
    let schema = format!("backlog_rows_{}", std::process::id());
    let app = feed::start(
        Store::Postgres { url: url.clone(), schema: schema.clone() },
        Plan { fast_projection_from_ms: Some(1_000), ..plan(false) },
    );
    let backlog = format!(
        "kind = \"sql\"\nurl = \"{url}\"\nhead = \"select max(id) from {schema}.events\"\n\
         checkpoints = \"select name, position from {schema}.checkpoint\"\n\
         oldest_unapplied = \"select min(created_at) from {schema}.events where id > $1\""
    );
    let text = scenario(&app.url, &backlog).replace("name = \"view\"", "name = \"feed\"");
    let (result, stdout) = run_sources(&text, &["feed/view", "feed/fast"]);
    let truth = app.truth();
    let (view, fast) = (&result["backlog"][0], &result["backlog"][1]);

    // The stopped projection: as a source of its own would be.
    check(view, &truth, false);
    check_lag(view, &truth);
    assert!(stdout.contains("backlog feed/view (sql): max"), "{stdout}");

    // The fast one: unknown until its row appeared, then within its truth, drained.
    let appeared_ms = truth["fast"]["appeared_ms"].as_f64().unwrap();
    let series: Vec<(u64, u64)> = serde_json::from_value(truth["fast"]["series"].clone()).unwrap();
    let mut unknown = 0;
    for sample in fast["samples"].as_array().unwrap() {
        let t_ms = sample["t_s"].as_f64().unwrap() * 1000.0;
        match sample["backlog"].as_u64() {
            None => {
                assert!(t_ms <= appeared_ms + EVERY_MS, "unknown at {t_ms} ms, after the row appeared: {fast}");
                unknown += 1;
            }
            Some(backlog) => {
                assert!(t_ms >= appeared_ms - EVERY_MS, "known at {t_ms} ms, before the row appeared: {fast}");
                let (least, most) = truth_between(&series, t_ms - EVERY_MS, t_ms + EVERY_MS);
                assert!((least..=most).contains(&backlog), "fast at {t_ms} ms: {backlog}, truth {least}..={most}");
                let lag = sample["lag_s"].as_f64().expect("a lag where the backlog is known");
                assert!(t_ms < appeared_ms + EVERY_MS || lag < 0.25, "fast lags {lag} s at {t_ms} ms");
            }
        }
    }
    let unknown_s = fast["unknown_seconds"].as_f64().unwrap();
    println!(
        "fast: unknown {unknown_s} s vs its row appearing at {appeared_ms} ms; drained {} ms after the load; \
         max {} (truth after appearing {})",
        fast["drained_after_ms"],
        fast["max"],
        series.iter().map(|(_, b)| *b).max().unwrap()
    );
    assert_eq!(unknown_s, unknown as f64 * EVERY_MS / 1000.0);
    assert!((unknown_s - appeared_ms / 1000.0).abs() <= EVERY_MS / 1000.0, "{unknown_s} s vs {appeared_ms} ms");
    assert!(fast["unknown_because"].as_str().unwrap().contains("absent from the `checkpoints` answer"), "{fast}");
    assert!(fast["drained_after_ms"].as_f64().unwrap() <= EVERY_MS + 50.0, "{fast}");

    // Verdicts per source: `backlog_drain` fails on the stopped projection alone.
    let drain = result["slo"].as_array().unwrap().iter().find(|s| s["name"] == "backlog_drain").unwrap();
    assert_eq!(drain["pass"], false);
    let why = drain["unknown_because"].as_str().unwrap();
    assert!(why.contains("`feed/view` not drained") && !why.contains("feed/fast"), "{drain}");
    drop(app);
    drop_schema(&url, &schema);
}

/// A TCP proxy in front of a service that the test can cut: while cut, live connections
/// are closed and new ones are accepted and left unanswered (a source that stops
/// answering), until the cut ends.
struct Proxy {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        runtime.spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let (upstream, mut cut_rx) = (upstream.clone(), cut_rx.clone());
                tokio::spawn(async move {
                    if *cut_rx.borrow() {
                        // Unanswered until the cut ends, then closed.
                        let _ = cut_rx.wait_for(|cut| !*cut).await;
                        return;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { port, cut, _runtime: runtime }
    }
}

/// The harness reads Redis through the proxy; the test cuts it 2 s into the run for 2 s.
/// The samples in the cut are unknown (never 0), `unknown_seconds` is the cut within one
/// sample, and the figures resume after it, within the truth.
#[test]
#[allow(clippy::disallowed_methods)] // std::thread::sleep: a plain test thread, not a runtime worker
fn issue33_a_source_that_stops_answering_is_unknown_for_those_seconds() {
    let Some(url) = service_url("CQRS_BENCH_REDIS_URL") else { return };
    let (scheme_and_auth, rest) = url.split_once("://").map_or(("", url.as_str()), |(s, r)| (s, r));
    let (auth, host_and_path) = rest.rsplit_once('@').map_or(("", rest), |(a, h)| (a, h));
    let (upstream, path) = host_and_path.split_once('/').map_or((host_and_path, ""), |(h, p)| (h, p));
    let proxy = Proxy::start(upstream.to_owned());
    let at = if auth.is_empty() { String::new() } else { format!("{auth}@") };
    let proxied = format!("{scheme_and_auth}://{at}127.0.0.1:{}/{path}", proxy.port);

    let stream = format!("cqrs-bench-backlog-cut-{}", std::process::id());
    // The projector reaches Redis directly: only the harness's reads are cut.
    let app = feed::start(Store::Redis { url: url.clone(), stream: stream.clone(), group: "view".into() }, plan(false));
    let backlog = format!("kind = \"redis-streams\"\nurl = \"{proxied}\"\nstream = \"{stream}\"\ngroup = \"view\"");
    const CUT_AT_MS: u64 = 2_000;
    const CUT_MS: u64 = 2_000;
    let cutter = {
        let (app_url, cut) = (app.url.clone(), proxy.cut.clone());
        std::thread::spawn(move || {
            // Timed from the first command, on the app's clock (`now_ms`).
            let now_ms = || crate::support::get_json(&format!("{app_url}/truth"))["now_ms"].as_f64().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while now_ms() == 0.0 {
                assert!(Instant::now() < deadline, "no command arrived");
                std::thread::sleep(Duration::from_millis(10));
            }
            while now_ms() < CUT_AT_MS as f64 {
                std::thread::sleep(Duration::from_millis(5));
            }
            // The cut began between these two readings of the app's clock.
            let before = now_ms();
            cut.send_replace(true);
            let cut_from = (before, now_ms());
            std::thread::sleep(Duration::from_millis(CUT_MS));
            let before = now_ms();
            cut.send_replace(false);
            (cut_from, (before, now_ms()))
        })
    };
    let (result, stdout) = run_sources(&scenario(&app.url, &backlog), &["view"]);
    let ((cut_from, cut_from_late), (cut_to_early, cut_to)) = cutter.join().unwrap();
    let truth = app.truth();
    let stats = &result["backlog"][0];
    let series: Vec<(u64, u64)> = serde_json::from_value(truth["series"].clone()).unwrap();
    let (appended, applied) = (truth["appended"].as_u64().unwrap(), truth["applied"].as_u64().unwrap());
    // The harness's clock starts a few ms before the app's (its first command's answer).
    let slack = 20.0;
    let mut unknown = 0;
    for sample in stats["samples"].as_array().unwrap() {
        let t_ms = sample["t_s"].as_f64().unwrap() * 1000.0;
        match sample["backlog"].as_u64() {
            None => {
                assert!(sample["lag_s"].is_null() && sample["applied_per_s"].is_null(), "{sample}");
                // A read that began up to one sample before the cut is cut short.
                assert!(
                    t_ms >= cut_from - EVERY_MS - slack && t_ms <= cut_to + slack,
                    "unknown at {t_ms} ms, outside the cut {cut_from}..{cut_to} ms"
                );
                println!("unknown at {t_ms:.0} ms");
                unknown += 1;
            }
            Some(backlog) => {
                assert!(
                    t_ms <= cut_from_late + slack || t_ms >= cut_to_early - slack,
                    "known at {t_ms} ms, in the cut {cut_from_late}..{cut_to_early} ms"
                );
                let (least, most) = truth_between(&series, t_ms - EVERY_MS, t_ms + EVERY_MS);
                assert!((least..=most).contains(&backlog), "at {t_ms} ms: {backlog}, truth {least}..={most}");
            }
        }
    }
    let unknown_s = stats["unknown_seconds"].as_f64().unwrap();
    let cut_s = (cut_to - cut_from) / 1000.0;
    println!(
        "cut {cut_from}..{cut_to} ms ({cut_s} s): harness unknown for {unknown_s} s ({unknown} samples); \
         max {} vs truth {}; not drained {} vs truth {}",
        stats["max"],
        series.iter().map(|(_, b)| *b).max().unwrap(),
        stats["not_drained"],
        appended - applied
    );
    assert_eq!(unknown_s, unknown as f64 * EVERY_MS / 1000.0);
    assert!((unknown_s - cut_s).abs() <= EVERY_MS / 1000.0, "unknown for {unknown_s} s, cut {cut_s} s");
    assert!(stats["unknown_because"].is_string(), "{stats}");
    assert!(stdout.contains(&format!("unknown for {unknown_s:.0} s")), "{stdout}");
    // The figures resume: the remainder read after the cut is the truth's.
    assert_eq!(stats["not_drained"].as_u64(), Some(appended - applied), "{stats}");
    assert_eq!(stats["max"].as_u64(), series.iter().map(|(_, b)| *b).max(), "{stats}");
    // `backlog_max` is judged on the samples read, and says what it could not see.
    let max = result["slo"].as_array().unwrap().iter().find(|s| s["name"] == "backlog_max").unwrap();
    assert!(max["unsure"].as_str().unwrap().contains("`view` unknown for"), "{max}");
    drop(app);
    drop_stream(&url, &stream);
}

/// A run spread over two shards with a `[[backlog]]`: only shard 0 samples the source
/// (the deployment's backlog, read once), shard 1's result has none, and `merge` keeps
/// shard 0's samples once. The projector stops 1 s in: the backlog both shards' commands
/// build is what shard 0 reads.
#[test]
fn issue33_only_shard_zero_samples_the_backlog_and_merge_keeps_it_once() {
    let Some(url) = service_url("CQRS_BENCH_REDIS_URL") else { return };
    let stream = format!("cqrs-bench-backlog-shards-{}", std::process::id());
    let store = Store::Redis { url: url.clone(), stream: stream.clone(), group: "view".into() };
    let app = feed::start(
        store,
        Plan { fast_until_ms: 1_000, stop_at_ms: 1_000, resume_at_ms: None, fast_projection_from_ms: None },
    );
    let backlog = format!("kind = \"redis-streams\"\nurl = \"{url}\"\nstream = \"{stream}\"\ngroup = \"view\"");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("scenario.toml");
    std::fs::write(&path, scenario(&app.url, &backlog)).unwrap();
    let start_at = humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(3)).to_string();
    let dirs: Vec<PathBuf> = (0..2).map(|i| tmp.path().join(format!("shard-{i}"))).collect();
    let children: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| shard_run(&path, (i, 2), &start_at, dir).args(["--duration", "3s"]).spawn().unwrap())
        .collect();
    for mut child in children {
        // Exit 1: `backlog_drain` fails (the projector never resumes); 2 would be an error.
        assert!(child.wait().unwrap().code().is_some_and(|c| c < 2));
    }
    let truth = app.truth();
    let shards: Vec<serde_json::Value> = dirs.iter().map(|d| result_json(d)).collect();
    let zero = shards[0]["backlog"].as_array().unwrap();
    assert_eq!(zero.len(), 1);
    assert!(zero[0]["samples"].as_array().unwrap().len() >= 6, "{}", zero[0]);
    assert_eq!(shards[1]["backlog"].as_array().map_or(0, Vec::len), 0, "shard 1 samples nothing");
    // Shard 0 read the backlog both shards' commands made.
    let (appended, applied) = (truth["appended"].as_u64().unwrap(), truth["applied"].as_u64().unwrap());
    let shard_commands = |s: &serde_json::Value| s["operations"]["append"]["count"].as_u64().unwrap();
    assert_eq!(appended, shard_commands(&shards[0]) + shard_commands(&shards[1]));
    assert!(shard_commands(&shards[1]) > 0);
    assert_eq!(zero[0]["not_drained"].as_u64(), Some(appended - applied), "{}", zero[0]);

    let merged_dir = tmp.path().join("merged");
    let output = bench().arg("merge").args(&dirs).arg("--out").arg(&merged_dir).arg("--quiet").output().unwrap();
    assert!(output.status.code().is_some_and(|c| c < 2), "{}", String::from_utf8_lossy(&output.stderr));
    let merged = result_json(&merged_dir);
    let sources = merged["backlog"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "kept once");
    let (ours, theirs) = (&sources[0]["samples"], &zero[0]["samples"]);
    assert_eq!(ours.as_array().unwrap().len(), theirs.as_array().unwrap().len());
    let backlogs =
        |s: &serde_json::Value| s.as_array().unwrap().iter().map(|p| p["backlog"].clone()).collect::<Vec<_>>();
    assert_eq!(backlogs(ours), backlogs(theirs));
    assert_eq!(sources[0]["max"], zero[0]["max"]);
    println!(
        "shards: shard 0 {} samples, max {} (truth remainder {}), merged {} samples",
        theirs.as_array().unwrap().len(),
        zero[0]["max"],
        appended - applied,
        ours.as_array().unwrap().len()
    );
    // The merged timeline's column is shard 0's, row by row (one start: no shift), not a sum.
    let column = |result: &serde_json::Value| -> Vec<(u64, serde_json::Value)> {
        let rows = result["timeline"].as_array().unwrap();
        rows.iter().map(|r| (r["t_s"].as_u64().unwrap(), r["backlog_sources"]["view"].clone())).collect()
    };
    let (ours, theirs) = (column(&merged), column(&shards[0]));
    assert!(!ours.is_empty() && ours.iter().all(|(_, v)| v.is_u64()), "{ours:?}");
    for (t, value) in &ours {
        let shard_zero = theirs.iter().find(|(s, _)| s == t).map(|(_, v)| v);
        assert_eq!(Some(value), shard_zero, "row {t}: merged {value} vs shard 0 {shard_zero:?}");
    }
    drop(app);
    drop_stream(&url, &stream);
}
