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

/// The panic of the current thread while `CAPTURING`: where and what.
mod panics {
    use std::cell::{Cell, RefCell};

    thread_local! {
        static CAPTURING: Cell<bool> = const { Cell::new(false) };
        static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Runs `f`, turning a panic into `Err("file:line:col: message")`, printed nowhere.
    pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if CAPTURING.with(Cell::get) {
                    let at = info.location().map_or_else(|| "?".to_owned(), |l| l.to_string());
                    let message = info
                        .payload()
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| info.payload().downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    LAST.with(|l| *l.borrow_mut() = Some(format!("{at}: {message}")));
                } else {
                    previous(info);
                }
            }));
        });
        CAPTURING.with(|c| c.set(true));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        CAPTURING.with(|c| c.set(false));
        result.map_err(|_| LAST.with(|l| l.borrow_mut().take()).unwrap_or_default())
    }
}

/// Issue 32: the shipped scenarios mutated as a user breaks them (SLO keys with full-width
/// digits, strings with escapes and multi-byte text before templates, broken templates,
/// numbers, durations, key typos, byte flips) through `validate`'s checks in this process:
/// no panic, and every error located inside the file, on a char boundary, at the column of
/// its byte, and where the edit knows its place (a broken template, an SLO key) exactly there.
/// `CQRS_BENCH_FUZZ_MUTANTS=120000` (and `CQRS_BENCH_FUZZ_SEED`) runs it long.
#[test]
fn issue32_scenario_mutants_validate_without_panic_and_at_the_right_column() {
    let _timing = crate::support::timing_sensitive();
    use cqrs_bench::scenario::mutants::{Mutator, Verdict, check};
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (count, seed) = (env("CQRS_BENCH_FUZZ_MUTANTS", 15_000), env("CQRS_BENCH_FUZZ_SEED", 32));
    let mutator = Mutator::shipped(&root()).expect("the shipped scenarios");
    let started = std::time::Instant::now();
    let mut verdicts = std::collections::BTreeMap::<&str, u64>::new();
    let mut edits = std::collections::BTreeMap::<&str, u64>::new();
    // Panics by place: how many, the first mutant, and when it was found.
    let mut panicked = std::collections::BTreeMap::<String, (u64, u64, std::time::Duration)>::new();
    let mut misplaced = Vec::new();
    for index in 0..count {
        let (path, mutant) = mutator.mutant(seed, index);
        for edit in &mutant.edits {
            *edits.entry(edit).or_default() += 1;
        }
        match panics::catch(|| check(path, &mutant)) {
            Ok(Ok(verdict)) => {
                let name = match verdict {
                    Verdict::Accepted => "accepted",
                    Verdict::Located => "located",
                    Verdict::Pinned => "pinned",
                };
                *verdicts.entry(name).or_default() += 1;
            }
            Ok(Err(why)) => misplaced.push(format!("mutant {index} of {} {:?}: {why}", path.display(), mutant.edits)),
            Err(panic) => {
                let place = panic.split(": ").next().unwrap_or_default().to_owned();
                let entry = panicked.entry(place).or_insert((0, index, started.elapsed()));
                entry.0 += 1;
            }
        }
    }
    let panics: u64 = panicked.values().map(|(n, ..)| n).sum();
    eprintln!(
        "{count} mutants (seed {seed}) in {:.1?}: {verdicts:?}, {panics} panics, {} misplaced; edits {edits:?}",
        started.elapsed(),
        misplaced.len()
    );
    for (place, (n, first, at)) in &panicked {
        eprintln!("panic at {place}: {n} mutants, first mutant {first} (after {at:.2?})");
    }
    assert_eq!(panics, 0, "panics: {panicked:?}");
    assert!(misplaced.is_empty(), "{} misplaced, e.g. {:#?}", misplaced.len(), &misplaced[..misplaced.len().min(5)]);
    // The mutants are scenarios: some still load, and the edits that know their place hit it.
    assert!(verdicts.get("accepted").copied().unwrap_or(0) > count / 50, "{verdicts:?}");
    assert!(verdicts.get("pinned").copied().unwrap_or(0) > count / 100, "{verdicts:?}");
}
