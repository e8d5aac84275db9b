//! The fuzz corpus as a regression suite (issue 16): every input cargo-fuzz kept in
//! fuzz/corpus/ (seeds from scenarios/ and tests/, and what the fuzzer found) goes
//! through scenario loading and template rendering on every `cargo test`, no fuzzer needed.

use rand::SeedableRng as _;

use crate::support::root;

fn inputs(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(folder);
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("the corpus is committed").map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
}

#[test]
fn issue16_scenario_corpus_loads_or_errors_without_panic() {
    let corpus = inputs("scenario");
    assert!(corpus.len() > 20, "seeded from the shipped scenarios");
    let captures: Vec<(String, String)> = Vec::new();
    let ctx = cqrs_bench::scenario::template::RenderContext { key: "k-1", op_ref: "0000abcd.0.1", captures: &captures };
    let mut accepted = 0;
    for (name, bytes) in corpus {
        let Ok(text) = std::str::from_utf8(&bytes) else { continue };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let Ok(scenario) = cqrs_bench::scenario::load_str(text, std::path::Path::new(&name), &[]) else {
                return false;
            };
            let _ = scenario.load_duration();
            let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
            for request in
                scenario.operations.iter().map(|o| &o.request).chain(scenario.setup.iter().map(|s| &s.request))
            {
                for template in request.templates() {
                    let _ = template.render(&ctx, &mut rng);
                }
            }
            true
        }));
        accepted += usize::from(result.unwrap_or_else(|_| panic!("{name} panicked")));
    }
    assert!(accepted > 10);
}

#[test]
fn issue16_template_corpus_renders_without_panic() {
    let captures: Vec<(String, String)> = vec![("v".into(), "7".into())];
    let ctx = cqrs_bench::scenario::template::RenderContext { key: "k-1", op_ref: "0000abcd.0.1", captures: &captures };
    for (name, bytes) in inputs("template") {
        let Ok(text) = std::str::from_utf8(&bytes) else { continue };
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Ok(template) = cqrs_bench::scenario::template::Template::compile(text) {
                let _ = template.render(&ctx, &mut rand::rngs::SmallRng::seed_from_u64(2));
            }
        }));
        assert!(rendered.is_ok(), "{name} panicked");
    }
}
