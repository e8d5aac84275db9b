//! Hot-path pieces of the generator, per operation: rendering a request's templates
//! and recording a latency into an HdrHistogram.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng as _;
use rand::rngs::SmallRng;

use cqrs_bench::results::histogram::{new_latency_histogram, record};
use cqrs_bench::scenario::template::{NoCaptures, RenderContext, Template};

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
    targets = templates, histograms
}
criterion_main!(benches);
