//! Scenario loading never panics (issue 16) and every error is located inside the file at
//! the column of its byte (issue 32): any bytes through `validate`'s checks, and every
//! template of an accepted scenario rendered once.
//!
//! Structure-aware (issue 32): half of the mutations are libFuzzer's byte mutations, the
//! other half one edit of `cqrs_bench::scenario::mutants` (SLO keys with full-width
//! digits, strings with escapes and multi-byte text, broken templates, numbers,
//! durations), so inputs seeded from fuzz/corpus/scenario stay shaped like scenarios.
#![no_main]

use cqrs_bench::scenario::mutants::{Mutant, check, mutate};
use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};
use rand::SeedableRng as _;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.toml");
    let mutant = Mutant { bytes: data.to_vec(), edits: Vec::new(), expect: None };
    if let Err(why) = check(path, &mutant) {
        panic!("misplaced error: {why}");
    }
    let Ok(scenario) = cqrs_bench::scenario::load_bytes(data.to_vec(), path, &[]) else { return };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let captures: Vec<(String, String)> = Vec::new();
    let ctx = cqrs_bench::scenario::template::RenderContext { key: "k-1", op_ref: "0000abcd.0.1", captures: &captures };
    let requests = scenario.operations.iter().map(|o| &o.request).chain(scenario.setup.iter().map(|s| &s.request));
    for request in requests {
        for template in request.templates() {
            let _ = template.render(&ctx, &mut rng);
        }
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    if seed % 2 == 0 {
        return fuzzer_mutate(data, size, max_size);
    }
    let mutated = mutate(&data[..size], u64::from(seed));
    let size = mutated.len().min(max_size).min(data.len());
    data[..size].copy_from_slice(&mutated[..size]);
    size
});
