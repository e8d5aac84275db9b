//! The generator's per-operation hot path, piece by piece (issue 11):
//! - rendering a request's templates;
//! - executing an operation against a target that answers at once (render, send,
//!   classify: everything the harness adds to an operation but the network);
//! - the send bookkeeping of a lane: the worker-local way (an operation future pushed
//!   into the worker's own `FuturesUnordered`, its sample recorded where it finished)
//!   against the way before issue 11 (a task spawned per operation and its sample sent
//!   over a channel to a collector task), measured here side by side;
//! - recording a latency into an HdrHistogram.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use rand::SeedableRng as _;
use rand::rngs::SmallRng;

use cqrs_bench::generator::Recorder;
use cqrs_bench::live::Gauges;
use cqrs_bench::operation::created::CreatedKeys;
use cqrs_bench::operation::{Executor, Outcome, PreparedOp, Sample};
use cqrs_bench::results::histogram::{new_latency_histogram, record};
use cqrs_bench::scenario::template::{NoCaptures, RenderContext, Template};
use cqrs_bench::target::{Failure, Reply, Request, Target};

const SCENARIO: &str = r#"
name = "hot path"
[target]
kind = "http"
base_url = "http://127.0.0.1:9"
[load]
stages = [{ duration = "10s", rate = 1000 }]
[mix]
keys = { count = 1000, distribution = "uniform", prefix = "acct-" }
[[command]]
name = "deposit"
method = "POST"
path = "/accounts/{{key}}/deposit"
body = '{"amount": {{int 1 100}}, "ref": "{{ref}}"}'
"#;

/// A target that answers at once: what the harness itself costs per operation.
struct AnswersAtOnce;

impl Target for AnswersAtOnce {
    async fn send(&self, request: Request) -> Result<Reply, Failure> {
        black_box(&request);
        Ok(Reply { status: 200, headers: http::HeaderMap::new(), body: Bytes::from_static(b"{}"), received: None })
    }
}

fn executor() -> Executor<AnswersAtOnce> {
    let scenario = cqrs_bench::scenario::load_str(SCENARIO, "hot.toml".as_ref(), &[]).expect("valid scenario");
    let ops = scenario.operations.iter().map(|o| PreparedOp::for_operation(o, &[]).expect("valid op")).collect();
    Executor {
        target: Arc::new(AnswersAtOnce),
        ops,
        key_prefix: "acct-".into(),
        run_id: 7,
        shard: 0,
        seed: 1,
        timeout: Duration::from_secs(2),
        captures: None,
        created: Arc::new(CreatedKeys::default()),
        next_seq: AtomicU64::new(1),
        flights: None,
    }
}

fn sample(op: usize, seq: u64, at: Instant) -> Sample {
    let micros = (seq * 7919) % 2_000 + 1;
    Sample {
        op,
        seq,
        key: seq % 1000,
        intended: at,
        sent: at,
        done: at + Duration::from_micros(micros),
        outcome: Outcome::Ok,
        change: Default::default(),
    }
}

fn templates(c: &mut Criterion) {
    let path = Template::compile("/accounts/{{key}}/deposit").expect("valid");
    let body = Template::compile(r#"{"amount": {{int 1 100}}, "ref": "{{ref}}"}"#).expect("valid");
    let ctx = RenderContext { key: "acct-1234", op_ref: "3fa9c2d1.0.123456", captures: &NoCaptures };
    let mut rng = SmallRng::seed_from_u64(1);
    let mut out = String::with_capacity(128);
    c.bench_function("render path + body (reused buffer)", |b| {
        b.iter(|| {
            out.clear();
            path.render_into(&ctx, &mut rng, &mut out);
            body.render_into(&ctx, &mut rng, &mut out);
            black_box(out.len())
        })
    });
}

fn execute(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _entered = runtime.enter();
    let executor = executor();
    let mut seq = 0u64;
    c.bench_function("execute one operation (render, send, classify; target answers at once)", |b| {
        b.iter(|| {
            seq += 1;
            let executed = executor.execute(0, seq % 1000, seq).now_or_never().expect("ready at once");
            black_box(executed.outcome)
        })
    });
}

fn bookkeeping(c: &mut Criterion) {
    let mut group = c.benchmark_group("send bookkeeping per operation");
    let gauges = Gauges::default();
    let start = Instant::now();
    let mut recorder = Recorder::new(0, start, Duration::ZERO, 1);
    let mut lane = FuturesUnordered::new();
    let mut seq = 0u64;
    group.bench_function("worker-local: lane future + record where it finished", |b| {
        b.iter(|| {
            seq += 1;
            gauges.enter_flight();
            lane.push(std::future::ready(sample(0, seq, start)));
            let finished = lane.next().now_or_never().flatten().expect("ready");
            gauges.leave_flight();
            recorder.record(&finished, &gauges);
        })
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    group.bench_function("before issue 11: task spawn + channel hop to a collector", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Sample>(64 * 1024);
                let collector = tokio::spawn(async move {
                    let mut histogram = new_latency_histogram();
                    while let Some(sample) = rx.recv().await {
                        record(&mut histogram, sample.done - sample.intended);
                    }
                    histogram.len()
                });
                let began = Instant::now();
                for seq in 0..iterations {
                    let tx = tx.clone();
                    let at = start;
                    tokio::spawn(async move {
                        let _ = tx.send(sample(0, seq, at)).await;
                    });
                }
                drop(tx);
                black_box(collector.await.expect("collector"));
                began.elapsed()
            })
        })
    });
    group.finish();
}

fn histograms(c: &mut Criterion) {
    let mut histogram = new_latency_histogram();
    let mut micros = 1u64;
    c.bench_function("record one latency", |b| {
        b.iter(|| {
            micros = (micros * 7919) % 2_000_000 + 1;
            record(&mut histogram, Duration::from_micros(black_box(micros)));
        })
    });
}

criterion_group! {
    name = benches;
    // Criterion's own plots need system fonts; the figures are in the terminal output.
    config = Criterion::default().without_plots();
    targets = templates, execute, bookkeeping, histograms
}
criterion_main!(benches);
