//! Issue 15: hours-long runs with bounded memory. The operations' interval logs are
//! written as seconds close (readable mid-run, kept by a killed run) and rotated into
//! parts (`<op>.hlog`, `<op>.1.hlog`, …; `CQRS_BENCH_HLOG_ROTATE_S` shortens the part
//! here), and result.json and `merge` still add up the whole run exactly. The lag probes'
//! log is streamed too, and a run longer than the timeline's row budget keeps rows of
//! several seconds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use crate::support::{BIN, Served, bench, result_json, root, shard_run};

/// (second, operations) of every interval of one log file, read by HdrHistogram's reader.
fn intervals(path: &Path) -> Vec<(u64, u64)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    IntervalLogIterator::new(&bytes)
        .filter_map(|entry| match entry.unwrap_or_else(|e| panic!("{}: {e:?}", path.display())) {
            LogEntry::Interval(i) => {
                let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, i.encoded_histogram());
                let h: hdrhistogram::Histogram<u64> =
                    hdrhistogram::serialization::Deserializer::new().deserialize(&mut raw.unwrap().as_slice()).unwrap();
                Some((i.start_timestamp().as_secs(), h.len()))
            }
            _ => None,
        })
        .collect()
}

/// The parts of `op`'s log in `dir`, in order: `op.hlog`, `op.1.hlog`, … (no gaps here).
fn parts(dir: &Path, op: &str) -> Vec<PathBuf> {
    let mut parts = vec![dir.join(format!("{op}.hlog"))];
    while dir.join(format!("{op}.{}.hlog", parts.len())).is_file() {
        parts.push(dir.join(format!("{op}.{}.hlog", parts.len())));
    }
    parts
}

/// Answered (ok + rejected) operations of `op` in result.json.
fn answered(result: &serde_json::Value, op: &str) -> u64 {
    let op = &result["operations"][op];
    op["ok"].as_u64().unwrap() + op["rejected"].as_u64().unwrap()
}

#[test]
#[allow(clippy::disallowed_methods)] // std::thread::sleep: a plain test thread polling a file
fn issue15_an_interval_log_is_readable_during_the_run_and_kept_when_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .current_dir(root())
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--duration", "60s", "--out"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = dir.path().join("get_account.hlog");
    let began = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        assert!(began.elapsed() < Duration::from_secs(40), "3 closed seconds in get_account.hlog within 40 s");
        assert!(child.try_wait().unwrap().is_none(), "the run is still going");
        if log.is_file() {
            seen = intervals(&log); // a whole log already: HdrHistogram's reader takes it
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!dir.path().join("result.json").exists(), "read before the run ended");
    let seconds: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(seconds, (0..seconds.len() as u64).collect::<Vec<_>>(), "one interval per second, in order");
    // A kill loses no second that had closed.
    child.kill().unwrap();
    child.wait().unwrap();
    let after = intervals(&log);
    assert!(after.len() >= seen.len() && after[..seen.len()] == seen[..], "{seen:?} then {after:?}");
}

#[test]
fn issue15_rotated_logs_hold_the_whole_run_and_each_part_reads_alone() {
    let dir = tempfile::tempdir().unwrap();
    bench()
        .env("CQRS_BENCH_HLOG_ROTATE_S", "2")
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--duration", "7s", "--out"])
        .arg(dir.path())
        .args(["--set", r#"load.warmup="0s""#, "--set", "slo.min_throughput=100"])
        .assert()
        .code(0);
    let result = result_json(dir.path());
    for op in ["deposit", "get_account"] {
        let parts = parts(dir.path(), op);
        assert!(parts.len() >= 4, "{op}: 7 s in parts of 2 s: {parts:?}");
        let mut total = 0;
        let mut seconds = Vec::new();
        for (n, part) in parts.iter().enumerate() {
            for (second, count) in intervals(part) {
                assert_eq!(second / 2, n as u64, "{}: second {second}", part.display());
                seconds.push(second);
                total += count;
            }
        }
        assert!(seconds.windows(2).all(|w| w[0] < w[1]), "{op}: {seconds:?}");
        // No warmup: the parts together hold exactly what result.json counts.
        assert_eq!(total, answered(&result, op), "{op}: all parts vs result.json");
        let timeline: u64 =
            result["timeline"].as_array().unwrap().iter().filter_map(|r| r["latency_ms"][op]["count"].as_u64()).sum();
        assert_eq!(timeline, total, "{op}: timeline vs parts");
    }
    // A bad part length is refused before the run, with the variable named.
    bench()
        .env("CQRS_BENCH_HLOG_ROTATE_S", "0")
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--out"])
        .arg(dir.path().join("bad"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("CQRS_BENCH_HLOG_ROTATE_S"));
}

#[test]
#[allow(clippy::disallowed_methods)] // std::thread::sleep: a plain test thread
fn issue15_merge_adds_rotated_shard_logs_exactly() {
    let _timing = crate::support::timing_sensitive();
    let served = Served::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let start_text = humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(4)).to_string();
    let dirs: Vec<PathBuf> = (0..2).map(|i| tmp.path().join(format!("shard-{i}"))).collect();
    let children: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            shard_run(Path::new("scenarios/bank-http.toml"), (i, 2), &start_text, dir)
                .env("CQRS_BENCH_HLOG_ROTATE_S", "2")
                .env("CQRS_BENCH_TIMELINE_ROWS", "3") // rows of 2 s
                .args(["--duration", "5s", "--rate", "300", "--target", &served.url])
                .args(["--set", "slo.min_throughput=10"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        child.wait().unwrap(); // the verdict is not this test's business
    }
    let merged = tmp.path().join("merged");
    let status =
        bench().env("CQRS_BENCH_HLOG_ROTATE_S", "2").arg("merge").args(&dirs).arg("--out").arg(&merged).output();
    // 0 or 1 (an SLO missed on a crowded machine): merged either way.
    assert!(matches!(status.unwrap().status.code(), Some(0 | 1)));
    // One start for both shards: the merged second s is the shards' seconds s added.
    let per_second = |dir: &Path, op: &str| -> std::collections::BTreeMap<u64, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for part in parts(dir, op) {
            for (second, count) in intervals(&part) {
                *counts.entry(second).or_default() += count;
            }
        }
        counts
    };
    for op in ["deposit", "get_account"] {
        let mut expected = std::collections::BTreeMap::new();
        for dir in &dirs {
            assert!(dir.join(format!("{op}.1.hlog")).is_file(), "{}: rotated", dir.display());
            for (second, count) in per_second(dir, op) {
                *expected.entry(second).or_insert(0) += count;
            }
        }
        assert!(merged.join(format!("{op}.1.hlog")).is_file(), "the merged log rotates as a run's does");
        assert_eq!(per_second(&merged, op), expected, "{op}");
    }
    // The lag too: the merged projection-lag.hlog is the shards' added per second (the
    // merged timeline's lag p99 is read from it).
    let mut expected = std::collections::BTreeMap::new();
    for dir in &dirs {
        for (second, count) in per_second(dir, "projection-lag") {
            *expected.entry(second).or_insert(0) += count;
        }
    }
    assert!(!expected.is_empty(), "the shards probed lag");
    assert_eq!(per_second(&merged, "projection-lag"), expected, "projection lag");
    // Rows of 2 s merge into rows of 2 s that add up the shards' rows.
    let merged_result = result_json(&merged);
    assert_eq!(merged_result["timeline_step_s"], 2);
    let row_sum = |result: &serde_json::Value, field: &str| -> u64 {
        result["timeline"].as_array().unwrap().iter().filter_map(|r| r[field].as_u64()).sum()
    };
    for field in ["achieved", "offered", "projection_late"] {
        let shards: u64 = dirs.iter().map(|d| row_sum(&result_json(d), field)).sum();
        assert_eq!(row_sum(&merged_result, field), shards, "{field}");
    }
    assert!(merged_result["timeline"].as_array().unwrap().iter().all(|r| r["t_s"].as_u64().unwrap() % 2 == 0));
}

/// (second, probes) of every interval of projection-lag.hlog in `dir` (one part here).
fn lag_intervals(dir: &Path) -> Vec<(u64, u64)> {
    let log = dir.join("projection-lag.hlog");
    if log.is_file() { intervals(&log) } else { Vec::new() }
}

/// A run longer than the timeline's row budget (4 rows here, 3,600 by default) keeps
/// rows of several seconds that add up exactly to the totals; the lag probes' log is
/// written while the run goes (a second closes once its probes are in) and holds every
/// probe; the rows' late probes add up to result.json's.
#[test]
#[allow(clippy::disallowed_methods)] // std::thread::sleep: a plain test thread polling a file
fn issue15_a_long_run_keeps_a_bounded_timeline_and_streams_the_lag_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .current_dir(root())
        .env("CQRS_BENCH_TIMELINE_ROWS", "4")
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--duration", "12s", "--out"])
        .arg(dir.path())
        .args(["--set", r#"load.warmup="0s""#, "--set", "slo.min_throughput=100"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while lag_intervals(dir.path()).len() < 2 {
        assert!(began.elapsed() < Duration::from_secs(60), "2 closed seconds in projection-lag.hlog within 60 s");
        assert!(child.try_wait().unwrap().is_none(), "the run is still going");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!dir.path().join("result.json").exists(), "the lag log is read before the run ended");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));

    let result = result_json(dir.path());
    assert_eq!(result["timeline_step_s"], 3, "12 s in at most 4 rows");
    let rows = result["timeline"].as_array().unwrap();
    assert!((4..=5).contains(&rows.len()), "{} rows", rows.len());
    assert!(rows.iter().all(|r| r["t_s"].as_u64().unwrap() % 3 == 0), "rows start every 3 s");
    let sum = |field: &str| -> u64 { rows.iter().filter_map(|r| r[field].as_u64()).sum() };
    assert_eq!(sum("offered"), result["throughput"]["offered"].as_u64().unwrap(), "offered");
    for op in ["deposit", "get_account"] {
        let counted: u64 = rows.iter().filter_map(|r| r["latency_ms"][op]["count"].as_u64()).sum();
        assert_eq!(counted, answered(&result, op), "{op}: rows vs result.json");
    }
    let projection = &result["projection"];
    let logged: u64 = lag_intervals(dir.path()).iter().map(|(_, n)| n).sum();
    assert_eq!(logged, projection["probes"].as_u64().unwrap(), "projection-lag.hlog holds every probe");
    assert!(logged > 50, "{logged} probes");
    assert_eq!(sum("projection_late"), projection["late"].as_u64().unwrap(), "late probes");
    assert!(rows.iter().filter(|r| r["projection_lag_p99_ms"].is_number()).count() >= 3, "lag per row");

    // A bad row budget is refused before the run, with the variable named.
    bench()
        .env("CQRS_BENCH_TIMELINE_ROWS", "0")
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--out"])
        .arg(dir.path().join("bad"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("CQRS_BENCH_TIMELINE_ROWS"));
}
