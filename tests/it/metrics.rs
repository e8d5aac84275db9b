//! `run --metrics-listen`: the live Prometheus endpoint grows during the run, and after
//! it (`--metrics-linger`) serves totals equal to result.json; a bad address is a usage
//! error; the Grafana dashboard asks only for metrics the endpoint serves.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cqrs_bench::live::metrics::METRIC_NAMES;
use predicates::prelude::*;
use prometheus_parse::{Scrape, Value};

use crate::apps::contended_wallet;
use crate::support::{BIN, Served, bench, result_json, root, scenario};

/// GETs `url`; `None` when nothing answers (yet, or any more).
async fn get(url: &str) -> Option<String> {
    let response = reqwest::get(url).await.ok()?;
    assert!(response.status().is_success(), "GET {url}: {}", response.status());
    response.text().await.ok()
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("the text parses")
}

/// Sum of the samples named `name` whose labels include `labels`.
pub fn sum(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{name} is not a single value"),
        })
        .sum()
}

/// The step the run is in, as `cqrs_bench_run_phase` tells it.
fn run_phase(scrape: &Scrape) -> String {
    let current = scrape.samples.iter().find(|s| s.metric == "cqrs_bench_run_phase" && s.value == Value::Gauge(1.0));
    current.and_then(|s| s.labels.get("run_phase")).expect("one phase is current").to_owned()
}

fn u(v: &serde_json::Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(serde_json::Value::as_f64).unwrap_or_else(|| panic!("{pointer} missing"))
}

/// A finished run as its endpoint told it: the scrape after the run (phase `done`), the
/// total operations of each scrape during the load, and result.json.
pub struct Scraped {
    pub last: Scrape,
    pub during_load: Vec<f64>,
    pub result: serde_json::Value,
}

/// Runs `cqrs-bench run SCENARIO ARGS --metrics-listen 127.0.0.1:0 --metrics-linger 3s`
/// (with `envs`), scraping every 400 ms until the run is done; expects exit `code`.
pub fn run_scraped(scenario_file: &str, args: &[&str], envs: &[(&str, &str)], code: i32) -> Scraped {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(root())
        .envs(envs.iter().copied())
        .arg("run")
        .arg(scenario(scenario_file))
        .args(["--quiet", "--metrics-listen", "127.0.0.1:0", "--metrics-linger", "3s"])
        .args(args)
        .arg("--out")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cqrs-bench starts");
    // A stderr line names the endpoint (the port was chosen by the system).
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("metrics: ") {
                let _ = tx.send(url.to_owned());
            }
            eprintln!("{line}");
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(30)).expect("the run prints the metrics address");

    let mut during_load: Vec<f64> = Vec::new();
    let mut phases = BTreeSet::new();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let last = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            // Nothing answering any more: the linger is over.
            let text = get(&url).await?;
            let scrape = parse(&text);
            let phase = run_phase(&scrape);
            if phase == "load" {
                during_load.push(sum(&scrape, "cqrs_bench_operations_total", &[]));
            }
            phases.insert(phase.clone());
            if phase == "done" {
                return Some(scrape);
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        None
    });
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(code), "the run's exit code");
    let last = last.unwrap_or_else(|| panic!("no scrape after the run; phases seen {phases:?}"));
    Scraped { last, during_load, result: result_json(dir.path()) }
}

/// The scrape after the run equals result.json, figure by figure.
fn assert_equal_to_result_json(last: &Scrape, result: &serde_json::Value) {
    let measured = |s: &Scrape| sum(s, "cqrs_bench_operations_total", &[("phase", "measured")]);
    let count = u(result, "/commands/count") + u(result, "/queries/count");
    assert!(count > 100.0, "{count}");
    assert_eq!(measured(last), count);
    assert_eq!(sum(last, "cqrs_bench_operations_total", &[("phase", "warmup")]), u(result, "/warmup/count"));
    for (name, stats) in result["operations"].as_object().unwrap() {
        let op = |outcome| {
            sum(
                last,
                "cqrs_bench_operations_total",
                &[("operation", name), ("phase", "measured"), ("outcome", outcome)],
            )
        };
        assert_eq!(op("ok"), u(stats, "/ok"), "{name} ok");
        assert_eq!(op("rejected"), u(stats, "/rejected"), "{name} rejected");
        assert_eq!(op("conflict"), stats["conflicts"].as_f64().unwrap_or(0.0), "{name} conflicts");
        assert_eq!(op("error"), u(stats, "/errors"), "{name} errors");
        // Latency samples: the answered operations, as in result.json's histogram.
        let latency = cqrs_bench::results::histogram::decode(stats["histogram"].as_str().unwrap()).unwrap();
        let samples = sum(last, "cqrs_bench_latency_seconds_count", &[("operation", name), ("phase", "measured")]);
        assert_eq!(samples, latency.len() as f64, "{name} latency samples");
        let status_errors = stats["errors_by_class"].get("status").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        let conflicts = stats["conflicts"].as_f64().unwrap_or(0.0);
        assert_eq!(samples, u(stats, "/ok") + u(stats, "/rejected") + conflicts + status_errors);
        let kind = stats["kind"].as_str().unwrap();
        assert_eq!(sum(last, "cqrs_bench_operations_total", &[("operation", name), ("kind", kind)]), {
            let warmup = sum(last, "cqrs_bench_operations_total", &[("operation", name), ("phase", "warmup")]);
            u(stats, "/count") + warmup
        });
    }
    if result["projection"].is_object() {
        assert_eq!(sum(last, "cqrs_bench_projection_probes_total", &[]), u(result, "/projection/probes"));
        assert_eq!(sum(last, "cqrs_bench_projection_late_probes_total", &[]), u(result, "/projection/late"));
        assert_eq!(sum(last, "cqrs_bench_projection_lag_seconds_count", &[]), u(result, "/projection/probes"));
    }
    assert_eq!(sum(last, "cqrs_bench_dropped_total", &[("phase", "measured")]), u(result, "/throughput/dropped"));
    assert_eq!(sum(last, "cqrs_bench_offered_total", &[("phase", "measured")]), u(result, "/throughput/offered"));
    assert_eq!(sum(last, "cqrs_bench_in_flight", &[]), 0.0);
    let info = last.samples.iter().find(|s| s.metric == "cqrs_bench_run_info").expect("run info");
    assert_eq!(info.labels.get("run_id"), result["run_id"].as_str());
    assert_eq!(info.labels.get("scenario"), result["scenario"]["name"].as_str());
    eprintln!(
        "metrics: measured operations {} = result.json {count}; errors {}; offered {}; dropped {}; probes {} late {}",
        measured(last),
        sum(last, "cqrs_bench_operations_total", &[("phase", "measured"), ("outcome", "error")]),
        sum(last, "cqrs_bench_offered_total", &[("phase", "measured")]),
        sum(last, "cqrs_bench_dropped_total", &[("phase", "measured")]),
        sum(last, "cqrs_bench_projection_probes_total", &[]),
        sum(last, "cqrs_bench_projection_late_probes_total", &[]),
    );
}

/// Scrapes an open-model run with `[projection]` against the memory target mid-load and
/// during the linger: the figures grow, then equal result.json's.
#[test]
fn live_metrics_grow_during_the_run_and_end_equal_to_result_json() {
    let served = Served::start(&[]);
    let Scraped { last, during_load, result } = run_scraped("lag.toml", &["--target", &served.url], &[], 0);

    // Mid-run: present and growing.
    assert!(during_load.len() >= 3, "scraped during the load: {during_load:?}");
    assert!(during_load.windows(2).any(|w| w[1] > w[0]) && during_load[0] < *during_load.last().unwrap());

    assert_equal_to_result_json(&last, &result);
    assert!(u(&result, "/projection/probes") > 0.0);

    // Every name the module declares is served (consumer-group lag only with `[bus]`).
    let served_names: BTreeSet<&str> = last
        .samples
        .iter()
        .map(|s| s.metric.as_str())
        .map(|m| m.strip_suffix("_count").or_else(|| m.strip_suffix("_sum")).unwrap_or(m))
        .collect();
    for name in METRIC_NAMES.iter().filter(|n| !n.contains("consumer_group")) {
        assert!(served_names.contains(name), "{name} not in the scrape: {served_names:?}");
    }
}

/// A closed model where every 2nd command fails: errors and offered (counted by the run
/// at its end) equal result.json too.
#[test]
fn live_metrics_of_a_closed_model_with_errors_equal_result_json() {
    let Scraped { last, result, .. } = run_scraped("failing.toml", &[], &[], 1);
    assert!(u(&result, "/commands/errors") > 0.0);
    assert_equal_to_result_json(&last, &result);
}

/// Issue 31: conflicts have their own `outcome="conflict"`, apart from refusals, and equal
/// result.json and the contended wallet app's own count (400 for both, told by the body).
#[test]
fn live_metrics_count_conflicts_apart_from_refusals() {
    let app = contended_wallet::start();
    let Scraped { last, result, .. } = run_scraped("contended-wallet.toml", &["--target", &app.url], &[], 0);
    let truth = app.truth();
    assert_equal_to_result_json(&last, &result);
    let live = |outcome| sum(&last, "cqrs_bench_operations_total", &[("outcome", outcome), ("kind", "command")]);
    eprintln!("truth {truth}; live conflicts {} rejected {}", live("conflict"), live("rejected"));
    assert!(truth["conflicts"].as_u64().unwrap() > 0, "{truth}");
    assert_eq!(live("conflict"), truth["conflicts"].as_f64().unwrap());
    assert_eq!(live("rejected"), truth["refusals"].as_f64().unwrap());
    assert_eq!(live("ok"), truth["successes"].as_f64().unwrap());
}

/// An address that does not parse, or is taken: exit 2 with the flag named, no panic.
#[test]
fn a_bad_metrics_address_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |listen: &str| {
        bench()
            .args(["run", "--quiet", "--metrics-listen", listen])
            .arg(scenario("lag.toml"))
            .arg("--out")
            .arg(dir.path().join("out"))
            .assert()
            .code(2)
    };
    run("no-port-here").stderr(predicate::str::contains("--metrics-listen no-port-here: not a HOST:PORT address"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    run(&addr).stderr(
        predicate::str::contains(format!("--metrics-listen {addr}: cannot listen"))
            .and(predicate::str::contains("panicked").not()),
    );
    assert!(!dir.path().join("out").exists(), "nothing is written before the address is bound");
}

/// Every metric a dashboard panel queries is one the endpoint serves.
#[test]
fn the_grafana_dashboard_queries_only_served_metrics() {
    let path = root().join("docker/grafana/cqrs-bench.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let names = regex::Regex::new(r"\bcqrs_bench_[a-z_]+").unwrap();
    let served = |name: &str| {
        METRIC_NAMES
            .iter()
            .any(|m| name == *m || [("_bucket"), ("_count"), ("_sum")].iter().any(|s| name.strip_suffix(s) == Some(m)))
    };
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            for name in names.find_iter(expr) {
                assert!(served(name.as_str()), "panel {:?} queries {}, not served", panel["title"], name.as_str());
                queried += 1;
            }
        }
    }
    assert!(queried >= 8, "the dashboard's panels query the metrics ({queried})");
    let text = std::fs::read_to_string(&path).unwrap();
    for needed in ["histogram_quantile", "rate(cqrs_bench_operations_total", "cqrs_bench_consumer_group_lag_messages"] {
        assert!(text.contains(needed), "the dashboard uses {needed}");
    }
}
