//! Scenario loading never panics (issue 16): arbitrary bytes through the whole check,
//! and every template of an accepted scenario rendered once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng as _;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(scenario) = cqrs_bench::scenario::load_str(text, std::path::Path::new("fuzz.toml"), &[]) else { return };
    let _ = scenario.load_duration();
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
