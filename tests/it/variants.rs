//! Reference variants on real infrastructure. They need the services named by
//! CQRS_BENCH_PG_URL (and later CQRS_BENCH_REDIS_URL, CQRS_BENCH_KAFKA_BROKERS); without
//! them each test says it skipped. `.ci/run` provides them.

use crate::support::{Served, bench, result_json};

fn pg_url() -> Option<String> {
    match std::env::var("CQRS_BENCH_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => None,
    }
}

/// Drops a test schema when the test ends, pass or fail.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            if let Ok((client, connection)) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await {
                tokio::spawn(connection);
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)).await;
            }
        });
    }
}

#[test]
fn pg_sync_has_zero_projection_lag_and_exact_accounting() {
    let Some(url) = pg_url() else {
        eprintln!("SKIPPED pg_sync_has_zero_projection_lag_and_exact_accounting: CQRS_BENCH_PG_URL is not set");
        return;
    };
    let schema = format!("cqrs_bench_test_{}", std::process::id());
    let _cleanup = DropSchema { url: url.clone(), schema: schema.clone() };
    let served = Served::start_variant("pg-sync", &["--pg-url", &url, "--schema", &schema]);
    let dir = tempfile::tempdir().unwrap();
    bench()
        .args(["run", "scenarios/bank-http.toml", "--duration", "6s", "--target", &served.url, "--out"])
        .arg(dir.path())
        .assert()
        .code(0);
    let result = result_json(dir.path());
    let events = &result["events"];
    assert!(events["acked"].as_u64().unwrap() > 200);
    assert_eq!(events["missed"], 0);
    assert_eq!(events["duplicates"], 0);
    assert_eq!(events["unexpected"], 0);
    // The read model commits with the command: every probe sees it on its first poll.
    let projection = &result["projection"];
    assert!(projection["probes"].as_u64().unwrap() > 10);
    assert_eq!(projection["late"], 0);
    assert_eq!(projection["polls"], projection["probes"], "one poll per probe");
    let p99 = projection["lag_ms"]["p99"].as_f64().unwrap();
    assert!(p99 < projection["resolution_ms"].as_f64().unwrap(), "lag p99 {p99} ms below one poll interval");
}

fn sql(url: &str, statements: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute(statements).await.unwrap();
    });
}

#[test]
fn event_sourced_accounts_exactly_with_lag_and_replays_100k_events() {
    let Some(url) = pg_url() else {
        eprintln!(
            "SKIPPED event_sourced_accounts_exactly_with_lag_and_replays_100k_events: CQRS_BENCH_PG_URL is not set"
        );
        return;
    };
    let schema = format!("cqrs_bench_es_{}", std::process::id());
    let _cleanup = DropSchema { url: url.clone(), schema: schema.clone() };
    let dir = tempfile::tempdir().unwrap();
    {
        let served = Served::start_variant(
            "event-sourced",
            &["--pg-url", &url, "--schema", &schema, "--projection-poll", "10ms"],
        );
        // Appends are serialized: a moderate rate, so a debug build on a busy CI machine keeps up.
        bench()
            .args([
                "run",
                "scenarios/bank-http.toml",
                "--duration",
                "6s",
                "--rate",
                "300",
                "--set",
                "slo.min_throughput=250",
                // Opening 1,000 accounts at the file's 5,000/s outruns serialized appends in a
                // debug build and times requests out; 250/s opens every account.
                "--set",
                "setup.0.rate=250",
            ])
            .args(["--target", &served.url, "--out"])
            .arg(dir.path())
            .assert()
            .code(0);
    }
    let result = result_json(dir.path());
    let events = &result["events"];
    assert!(events["acked"].as_u64().unwrap() > 200);
    assert_eq!((events["missed"].as_u64(), events["duplicates"].as_u64()), (Some(0), Some(0)), "{events}");
    assert_eq!(events["unexpected"], 0, "{events}");
    // The projector polls the store every 10 ms: lag is above zero, and probes need more than one poll.
    let projection = &result["projection"];
    assert!(projection["lag_ms"]["p50"].as_f64().unwrap() > 1.0, "{projection}");
    assert!(projection["polls"].as_u64() > projection["probes"].as_u64());

    // 100,000 more events in the store, then a replay rebuilds the read model from all of them.
    sql(
        &url,
        &format!(
            "INSERT INTO {schema}.events (stream, version, delta, ref)
             SELECT 'acct-' || (g % 1000), 1000000 + g, 1, 'bulk.' || g FROM generate_series(1, 100000) g"
        ),
    );
    let output = bench().args(["target", "replay", "--pg-url", &url, "--schema", &schema]).output().unwrap();
    assert!(output.status.success());
    let line = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("{line}");
    let replayed: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    assert!(replayed >= 100_000 + 1000, "{line}");
}
