//! Template compile and render never panic (issue 16), whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng as _;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(template) = cqrs_bench::scenario::template::Template::compile(text) else { return };
    let captures: Vec<(String, String)> = vec![("v".into(), "7".into())];
    let ctx = cqrs_bench::scenario::template::RenderContext { key: "k-1", op_ref: "0000abcd.0.1", captures: &captures };
    let _ = template.render(&ctx, &mut rand::rngs::SmallRng::seed_from_u64(2));
});
