//! Scenario loading against the shipped scenarios and the bad fixtures
//! (tests/fixtures/scenarios/bad, each error pinned by a snapshot), overrides, and
//! property tests that no input panics the loader.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn shipped_and_test_scenarios_load() {
    for path in files("scenarios").into_iter().chain(files("tests/it/scenarios")) {
        if let Err(e) = load(&path, &[]) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn bad_fixtures_fail_with_located_errors() {
    let bad = files("tests/fixtures/scenarios/bad");
    assert!(bad.len() >= 7);
    for path in bad {
        let relative = path.strip_prefix(root()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let error = load_str(&text, relative, &[]).expect_err("a bad fixture must not load");
        assert!(matches!(error, ScenarioError::Located(_)), "{}: not located: {error}", relative.display());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(name, error.to_string());
    }
}

#[test]
fn starter_scenario_loads() {
    let scenario = load_str(&starter_scenario("demo"), Path::new("demo.toml"), &[]).unwrap();
    assert_eq!(scenario.name, "demo");
    assert!(scenario.projection.is_some() && scenario.verify.is_some());
}

#[test]
fn overrides_set_values_by_dotted_path() {
    let path = root().join("scenarios/quickstart.toml");
    let overrides = [
        "load.stages.1.rate=800".to_owned(),
        "command.1.weight=5".to_owned(),
        r#"slo.command_latency_p95="300ms""#.to_owned(),
        "target.faults.drop_every=7".to_owned(),
        "seed=9".to_owned(),
    ];
    let s = load(&path, &overrides).unwrap();
    assert_eq!(s.load.stages[1].from, 800.0);
    assert_eq!(s.operations[1].weight, 5);
    assert_eq!(s.seed, 9);
    let rule = s.slo.iter().find(|r| r.name == "command_latency_p95").unwrap();
    assert_eq!(rule.threshold, 300.0);
    let TargetKind::Embedded(config) = &s.target.kind else { panic!("embedded") };
    assert_eq!(config.faults.drop_every, Some(7));
    assert_eq!(s.recorded["load"]["stages"][1]["rate"], 800);

    for bad in ["nokey", "load.stages.9.rate=1", "nothere.x=1", "load.stages.x=1"] {
        let e = load(&path, &[bad.to_owned()]).unwrap_err();
        assert!(matches!(e, ScenarioError::Override { .. }), "{bad}: {e}");
    }
}

/// Issue 30: a value `--set` put there that the checks refuse is blamed on the `--set`,
/// not on a line of the file (which does not hold it); the file's own errors stay located.
#[test]
fn an_override_out_of_range_points_at_the_set() {
    let path = root().join("tests/it/scenarios/todo-app.toml");
    let set = |args: &[&str]| load(&path, &args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()).unwrap_err();
    let e = set(&["seed=3", "projection.sample=2"]);
    assert_eq!(e.to_string(), "--set projection.sample=2: sample is a fraction in (0, 1]");
    let e = set(&["load.stages.0.rate=\"fast\""]);
    assert!(e.to_string().starts_with("--set load.stages.0.rate=\"fast\": "), "{e}");
    let e = set(&["projection.timeout=\"soon\""]);
    assert!(e.to_string().starts_with("--set projection.timeout=\"soon\": `soon` is not a duration"), "{e}");
    assert!(e.to_string().contains("(help: write a number and a unit"), "the hint follows: {e}");
    // An error about a table a `--set` changed says so: the line shown holds the set value.
    let quickstart = root().join("scenarios/quickstart.toml");
    let e = load(&quickstart, &["load.stages.0.rate=800".to_owned()]).unwrap_err();
    assert!(matches!(e, ScenarioError::Located(_)), "{e}");
    assert!(e.to_string().contains("(as changed by `--set load.stages.0.rate=800`)"), "{e}");
    // An error elsewhere in the file is still shown where it is.
    let text = std::fs::read_to_string(&path).unwrap().replace("sample = 0.5\nquery", "sample = 7\nquery");
    let e = load_str(&text, Path::new("todo-app.toml"), &["seed=3".to_owned()]).unwrap_err();
    assert!(matches!(e, ScenarioError::Located(_)), "{e}");
}

#[test]
fn env_values_are_interpolated_but_not_recorded() {
    let text = std::fs::read_to_string(root().join("scenarios/bank-http.toml"))
        .unwrap()
        .replace("timeout = \"2s\"", "timeout = \"2s\"\nheaders = { X-Home = \"${HOME}\" }");
    let s = load_str(&text, Path::new("x.toml"), &[]).unwrap();
    assert_eq!(s.recorded["target"]["headers"]["X-Home"], "${HOME}");
    let missing = text.replace("${HOME}", "${CQRS_BENCH_SURELY_UNSET}");
    let e = load_str(&missing, Path::new("x.toml"), &[]).unwrap_err();
    assert!(e.to_string().contains("CQRS_BENCH_SURELY_UNSET"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary text never panics the loader.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = load_str(&text, Path::new("fuzz.toml"), &[]);
    }

    /// Arbitrary edits of a valid scenario never panic it (errors are fine).
    #[test]
    fn mutated_scenarios_never_panic(at in 0usize..4000, len in 0usize..20, insert in "[ -~\n]{0,12}") {
        let text = include_str!("../../scenarios/quickstart.toml");
        let at = at.min(text.len());
        let end = (at + len).min(text.len());
        if text.is_char_boundary(at) && text.is_char_boundary(end) {
            let mutated = format!("{}{}{}", &text[..at], insert, &text[end..]);
            let _ = load_str(&mutated, Path::new("fuzz.toml"), &[]);
        }
    }

    /// Arbitrary overrides never panic either.
    #[test]
    fn arbitrary_overrides_never_panic(arg in "[a-z0-9._=\"]{0,30}") {
        let text = include_str!("../../scenarios/quickstart.toml");
        let _ = load_str(text, Path::new("fuzz.toml"), &[arg]);
    }
}

// ---------------------------------------------------------------- issue 16: bounds

/// The quickstart with `from` replaced by `to` (which must be there once).
fn quickstart_with(from: &str, to: &str) -> String {
    let text = include_str!("../../scenarios/quickstart.toml");
    assert!(text.contains(from), "quickstart has `{from}`");
    text.replacen(from, to, 1)
}

/// Each input panicked `run` although `validate` accepted it; now each is rejected with a
/// located error and a hint, or (the template) renders.
#[test]
fn issue16_inputs_that_panicked_run_are_rejected_at_load() {
    // (text in the quickstart, replacement, text of the line the error points at)
    let cases = [
        ("rate = 5000", "rate = 1e-300", "1e-300"),
        (r#"projection_lag_p99 = "500ms""#, r#"projection_lag_p99 = "18446744073709551615s""#, "projection_lag_p99"),
        ("max_in_flight = 512", "max_in_flight = 9223372036854775807", "max_in_flight"),
        (
            r#"projection_jitter = "5ms""#,
            "projection_jitter = \"5ms\"\nreorder_window = 9223372036854775807",
            "reorder",
        ),
        (
            r#"{ duration = "17s", rate = 500 }"#,
            r#"{ duration = "18446744073709551615s", rate = 500 }"#,
            "18446744073709551615s",
        ),
        (
            r#"{ duration = "17s", rate = 500 }"#,
            r#"{ duration = "500h", rate = 500 }, { duration = "500h", rate = 1 }"#,
            "stages = [",
        ),
        (r#"{ duration = "17s", rate = 500 }"#, r#"{ duration = "17s", rate = 1e308 }"#, "rate = 1e308"),
        ("rate = 5000", "rate = 1e308", "rate = 1e308"),
        (r#"timeout = "2s""#, r#"timeout = "1000000h""#, "1000000h"),
        ("min_throughput = 450", "min_throughput = 1.7976931348623157e308", "min_throughput"),
        ("duplicates = 0", "duplicates = 1e300", "duplicates"),
        ("exponent = 1.1", "exponent = 1e308", "exponent"),
        (r#"timeout = "2s""#, "timeout = \"2s\"\nmax_body = 0", "max_body"),
        (r#"timeout = "2s""#, "timeout = \"2s\"\nmax_body = \"2GiB\"", "max_body"),
        (r#"timeout = "2s""#, "timeout = \"2s\"\nmax_body = \"lots\"", "max_body"),
        ("max_in_flight = 512", "max_in_flight = 512\nmax_backlog = 9223372036854775807", "max_backlog"),
    ];
    for (from, to, line) in cases {
        let text = quickstart_with(from, to);
        match load_str(&text, Path::new("q.toml"), &[]) {
            Ok(_) => panic!("`{to}` was accepted"),
            Err(ScenarioError::Located(located)) => {
                assert!(located.hint.is_some(), "{to}: no hint: {located}");
                assert!(located.line_text.contains(line), "{to}: points elsewhere: {located}");
            }
            Err(other) => panic!("{to}: not located: {other}"),
        }
    }
    // Bounds are inclusive and generous: a 30-day load at 10M/s, 1M in flight still loads.
    let text = quickstart_with(r#"{ duration = "17s", rate = 500 }"#, r#"{ duration = "719h", rate = 10000000 }"#)
        .replace("max_in_flight = 512", "max_in_flight = 1000000")
        .replace(r#"timeout = "2s""#, "timeout = \"2s\"\nmax_body = \"1GiB\"");
    let s = load_str(&text, Path::new("q.toml"), &[]).unwrap();
    assert_eq!(s.target.max_body, 1 << 30);
    // The huge float range renders (it panicked in `run`).
    let text = quickstart_with("{{int 1 100}}", "{{float -1.7976931348623157e308 1.7976931348623157e308}}");
    let s = load_str(&text, Path::new("q.toml"), &[]).unwrap();
    assert_renders(&s);
}

#[test]
fn issue16_max_body_syntax() {
    let with = |value: &str| {
        let text = quickstart_with(r#"timeout = "2s""#, &format!("timeout = \"2s\"\nmax_body = {value}"));
        load_str(&text, Path::new("q.toml"), &[]).map(|s| s.target.max_body)
    };
    assert_eq!(with("65536").unwrap(), 65536);
    assert_eq!(with("\"64KiB\"").unwrap(), 65536);
    assert_eq!(with("\"2MB\"").unwrap(), 2_000_000);
    assert!(with("-1").is_err());
    let default = load_str(include_str!("../../scenarios/quickstart.toml"), Path::new("q.toml"), &[]).unwrap();
    assert_eq!(default.target.max_body, limits::DEFAULT_MAX_BODY);
}

#[test]
fn issue16_secrets_in_urls_are_not_recorded() {
    let text = std::fs::read_to_string(root().join("scenarios/bank-http.toml")).unwrap();
    let url = text.lines().find(|l| l.trim_start().starts_with("base_url")).unwrap();
    let secret = url.replacen("http://", "http://user:LITERALSECRET@", 1);
    let s = load_str(&text.replacen(url, &secret, 1), Path::new("x.toml"), &[]).unwrap();
    assert!(!s.recorded.to_string().contains("LITERALSECRET"), "{}", s.recorded);
    let TargetKind::Http { base_url, label } = &s.target.kind else { panic!("http") };
    assert!(base_url.contains("LITERALSECRET"), "the request still uses it");
    assert!(label.contains("user:***@") && !label.contains("LITERALSECRET"), "{label}");
    // An error on that line shows it masked.
    let broken = text.replacen(url, &secret.replace("http://", "ftp://"), 1);
    let e = load_str(&broken, Path::new("x.toml"), &[]).unwrap_err().to_string();
    assert!(!e.contains("LITERALSECRET"), "{e}");
}

/// Every template of every operation and setup renders, whatever the seed.
fn assert_renders(s: &Scenario) {
    use rand::SeedableRng as _;
    use template::{NoCaptures, RenderContext};
    let ctx = RenderContext { key: "acct-1", op_ref: "r.0.1", captures: &NoCaptures };
    let requests = s.operations.iter().map(|o| &o.request).chain(s.setup.iter().map(|s| &s.request));
    for request in requests {
        for template in request.templates().chain(s.target.headers.iter().map(|(_, t)| t)) {
            for seed in 0..8 {
                let _ = template.render(&ctx, &mut rand::rngs::SmallRng::seed_from_u64(seed));
            }
        }
    }
}

/// What `run` does with the checked values, done here: none of it may panic.
fn assert_within_bounds(s: &Scenario) {
    use limits::*;
    let total = s.load_duration();
    assert!(total <= MAX_LOAD && !total.is_zero());
    let closed = matches!(s.load.model, LoadModel::Closed { .. });
    for stage in &s.load.stages {
        assert!(stage.duration <= MAX_DURATION);
        for rate in [stage.from, stage.to] {
            assert!(rate.is_finite() && rate >= 0.0);
            assert!(rate <= if closed { MAX_USERS } else { MAX_RATE }, "{rate}");
        }
    }
    let total_ops = crate::generator::schedule::OpenSchedule::expected_total(&s.load.stages);
    assert!(total_ops.is_finite());
    for _ in crate::generator::schedule::OpenSchedule::new(&s.load.stages).take(1000) {}
    let _ = max_users(&s.load.stages);
    match s.load.model {
        LoadModel::Open { max_in_flight, max_backlog } => {
            assert!((1..=MAX_IN_FLIGHT as usize).contains(&max_in_flight));
            assert!(max_backlog <= MAX_BACKLOG as usize);
            let _ = tokio::sync::Semaphore::new(max_in_flight);
        }
        LoadModel::Closed { think_time } => assert!(think_time <= MAX_DURATION),
    }
    assert!(s.load.warmup < total);
    assert!(s.target.timeout <= MAX_DURATION && !s.target.timeout.is_zero());
    let _ = s.target.timeout + std::time::Duration::from_secs(1);
    assert!((1..=MAX_BODY).contains(&s.target.max_body));
    if let TargetKind::Embedded(config) = &s.target.kind {
        let f = &config.faults;
        if let Some(window) = f.reorder_window {
            assert!(window as u64 <= MAX_REORDER_WINDOW);
            let _ = Vec::<u64>::with_capacity(window);
        }
        let windows = [f.pause_projector, f.stall].into_iter().flatten();
        for d in [f.projection_delay, f.projection_jitter]
            .into_iter()
            .chain(f.crash_projector_at)
            .chain(f.slow_commands.map(|s| s.delay))
            .chain(windows.flat_map(|w| [w.at, w.duration]))
        {
            assert!(d <= MAX_DURATION);
        }
    }
    for setup in &s.setup {
        assert!((MIN_RATE..=MAX_RATE).contains(&setup.rate));
        // As the generator plans it.
        let _ = std::time::Duration::from_secs_f64(s.mix.keys.count as f64 / setup.rate + 1.0);
    }
    for rule in &s.slo {
        assert!(rule.threshold.is_finite() && rule.threshold >= 0.0);
        // As results::build turns the lag threshold back into a duration.
        let _ = std::time::Duration::from_secs_f64(rule.threshold / 1000.0);
    }
    if let Some(p) = &s.projection {
        assert!(p.poll_interval <= MAX_DURATION && p.timeout <= MAX_DURATION);
    }
    if let Some(v) = &s.verify {
        assert!(v.settle <= MAX_DURATION);
    }
    for action in &s.actions {
        assert!(action.at <= MAX_DURATION);
    }
    let mut keys = KeyPicker::new(&s.mix.keys);
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(s.seed);
    for kind in [OpKind::Command, OpKind::Query].into_iter().cycle().take(100) {
        assert!(keys.pick(kind, &mut rng) < s.mix.keys.count);
    }
    assert_renders(s);
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Int,
    Float,
    Duration,
    Size,
}

/// Extreme values per kind of field (raw TOML, or text inside a template/string).
fn extremes(slot: Slot) -> &'static [&'static str] {
    match slot {
        Slot::Int => &[
            "0",
            "1",
            "-1",
            "2",
            "100000",
            "1000000",
            "1000001",
            "10000000",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
        ],
        Slot::Float => &[
            "0",
            "0.0",
            "1",
            "-1.0",
            "0.5",
            "1e-300",
            "0.001",
            "0.0009",
            "10000000",
            "10000000.5",
            "1e308",
            "-1.7976931348623157e308",
            "1.7976931348623157e308",
            "nan",
            "inf",
            "-inf",
            "5e-324",
        ],
        Slot::Duration => &[
            "\"0s\"",
            "\"1ns\"",
            "\"1ms\"",
            "\"720h\"",
            "\"721h\"",
            "\"30days\"",
            "\"31days\"",
            "\"18446744073709551615s\"",
            "\"584942417355years\"",
            "\"1000000000h\"",
            "\"\"",
            "\"-1s\"",
        ],
        Slot::Size => &["0", "1", "-1", "\"1B\"", "\"1GiB\"", "\"1.1GiB\"", "\"1e400MiB\"", "18446744073709551615"],
    }
}

/// (name, default, kind) of every numeric field the generated scenario has.
const SLOTS: &[(&str, &str, Slot)] = &[
    ("seed", "42", Slot::Int),
    ("timeout", "\"2s\"", Slot::Duration),
    ("max_body", "\"1MiB\"", Slot::Size),
    ("projectors", "2", Slot::Int),
    ("projection_delay", "\"10ms\"", Slot::Duration),
    ("projection_jitter", "\"5ms\"", Slot::Duration),
    ("drop_every", "1000", Slot::Int),
    ("duplicate_every", "1000", Slot::Int),
    ("reorder_window", "4", Slot::Int),
    ("checkpoint_every", "100", Slot::Int),
    ("fail_every", "1000", Slot::Int),
    ("slow_every", "10", Slot::Int),
    ("slow_delay", "\"1ms\"", Slot::Duration),
    ("pause_at", "\"1s\"", Slot::Duration),
    ("pause_for", "\"1s\"", Slot::Duration),
    ("crash_at", "\"100s\"", Slot::Duration),
    ("max_in_flight", "512", Slot::Int),
    ("max_backlog", "1000", Slot::Int),
    ("think_time", "\"10ms\"", Slot::Duration),
    ("warmup", "\"1s\"", Slot::Duration),
    ("stage1_duration", "\"3s\"", Slot::Duration),
    ("stage1_from", "50", Slot::Float),
    ("stage1_to", "500", Slot::Float),
    ("stage2_duration", "\"17s\"", Slot::Duration),
    ("stage2_rate", "500", Slot::Float),
    ("keys", "1000", Slot::Int),
    ("exponent", "1.1", Slot::Float),
    ("reads", "4", Slot::Int),
    ("writes", "1", Slot::Int),
    ("setup_rate", "5000", Slot::Float),
    ("weight", "3", Slot::Int),
    ("int_a", "1", Slot::Int),
    ("int_b", "100", Slot::Int),
    ("float_a", "0.5", Slot::Float),
    ("float_b", "9.5", Slot::Float),
    ("bytes", "10", Slot::Int),
    ("sample", "0.1", Slot::Float),
    ("poll_interval", "\"5ms\"", Slot::Duration),
    ("probe_timeout", "\"5s\"", Slot::Duration),
    ("settle", "\"10s\"", Slot::Duration),
    ("slo_latency", "\"200ms\"", Slot::Duration),
    ("slo_lag", "\"500ms\"", Slot::Duration),
    ("slo_duplicates", "0", Slot::Int),
    ("slo_error_rate", "0.001", Slot::Float),
    ("slo_throughput", "450", Slot::Float),
    ("action_at", "\"5s\"", Slot::Duration),
];

/// The scenario with `values` (one per `SLOTS` entry); `closed` picks the closed model.
fn generated_scenario(values: &[&str], closed: bool) -> String {
    let v = |name: &str| values[SLOTS.iter().position(|(n, _, _)| *n == name).expect("a slot")];
    let unquote = |s: &str| s.trim_matches('"').to_owned();
    let model = if closed {
        format!("model = \"closed\"\nthink_time = {}", v("think_time"))
    } else {
        format!("model = \"open\"\nmax_in_flight = {}\nmax_backlog = {}", v("max_in_flight"), v("max_backlog"))
    };
    format!(
        r#"name = "generated"
seed = {seed}

[target]
kind = "embedded"
projectors = {projectors}
timeout = {timeout}
max_body = {max_body}

[target.faults]
projection_delay = {projection_delay}
projection_jitter = {projection_jitter}
drop_every = {drop_every}
duplicate_every = {duplicate_every}
reorder_window = {reorder_window}
checkpoint_every = {checkpoint_every}
fail_every = {fail_every}
slow_commands = {{ every = {slow_every}, delay = {slow_delay} }}
pause_projector = {{ at = {pause_at}, for = {pause_for} }}
crash_projector_at = {crash_at}

[load]
{model}
warmup = {warmup}
stages = [
  {{ duration = {stage1_duration}, from = {stage1_from}, to = {stage1_to} }},
  {{ duration = {stage2_duration}, rate = {stage2_rate} }},
]

[mix]
read_write_ratio = "{reads}:{writes}"
keys = {{ count = {keys}, distribution = "zipf", exponent = {exponent}, prefix = "acct-" }}

[[setup]]
path = "/accounts/{{{{key}}}}/open"
expect_status = [201, 409]
rate = {setup_rate}

[[command]]
name = "deposit"
weight = {weight}
path = "/accounts/{{{{key}}}}/deposit"
body = '{{"amount": {{{{int {int_a} {int_b}}}}}, "x": {{{{float {float_a} {float_b}}}}}, "pad": "{{{{bytes {bytes}}}}}", "ref": "{{{{ref}}}}"}}'
expect_status = [200]

[[query]]
name = "get_account"
path = "/accounts/{{{{key}}}}"
expect_status = [200, 404]

[projection]
sample = {sample}
query = "get_account"
until = "/refs contains {{{{ref}}}}"
poll_interval = {poll_interval}
timeout = {probe_timeout}

[verify]
settle = {settle}
query = "get_account"
applied_refs = "/refs"

[[action]]
at = {action_at}
http = "POST /admin/pause"

[slo]
command_latency_p95 = {slo_latency}
projection_lag_p99 = {slo_lag}
duplicates = {slo_duplicates}
command_error_rate = {slo_error_rate}
min_throughput = {slo_throughput}
"#,
        seed = v("seed"),
        projectors = v("projectors"),
        timeout = v("timeout"),
        max_body = v("max_body"),
        projection_delay = v("projection_delay"),
        projection_jitter = v("projection_jitter"),
        drop_every = v("drop_every"),
        duplicate_every = v("duplicate_every"),
        reorder_window = v("reorder_window"),
        checkpoint_every = v("checkpoint_every"),
        fail_every = v("fail_every"),
        slow_every = v("slow_every"),
        slow_delay = v("slow_delay"),
        pause_at = v("pause_at"),
        pause_for = v("pause_for"),
        crash_at = v("crash_at"),
        warmup = v("warmup"),
        stage1_duration = v("stage1_duration"),
        stage1_from = v("stage1_from"),
        stage1_to = v("stage1_to"),
        stage2_duration = v("stage2_duration"),
        stage2_rate = v("stage2_rate"),
        reads = unquote(v("reads")),
        writes = unquote(v("writes")),
        keys = v("keys"),
        exponent = v("exponent"),
        setup_rate = v("setup_rate"),
        weight = v("weight"),
        int_a = unquote(v("int_a")),
        int_b = unquote(v("int_b")),
        float_a = unquote(v("float_a")),
        float_b = unquote(v("float_b")),
        bytes = unquote(v("bytes")),
        sample = v("sample"),
        poll_interval = v("poll_interval"),
        probe_timeout = v("probe_timeout"),
        settle = v("settle"),
        action_at = v("action_at"),
        slo_latency = v("slo_latency"),
        slo_lag = v("slo_lag"),
        slo_duplicates = v("slo_duplicates"),
        slo_error_rate = v("slo_error_rate"),
        slo_throughput = v("slo_throughput"),
    )
}

#[test]
fn issue16_generated_scenario_defaults_load() {
    let defaults: Vec<&str> = SLOTS.iter().map(|(_, d, _)| *d).collect();
    for closed in [false, true] {
        let s = load_str(&generated_scenario(&defaults, closed), Path::new("gen.toml"), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_within_bounds(&s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Extreme values (0, 1, max, NaN, inf, huge) in up to four numeric fields at once: the
    /// loader never panics, and what it accepts stays within the bounds `run` can carry out
    /// (about a quarter of the generated scenarios are accepted).
    #[test]
    fn issue16_extreme_values_are_rejected_or_bounded(
        changes in prop::collection::vec((0..SLOTS.len(), 0usize..32), 1..5),
        closed in any::<bool>(),
    ) {
        let mut values: Vec<&str> = SLOTS.iter().map(|(_, d, _)| *d).collect();
        for (slot, choice) in changes {
            let options = extremes(SLOTS[slot].2);
            values[slot] = options[choice % options.len()];
        }
        let text = generated_scenario(&values, closed);
        if let Ok(scenario) = load_str(&text, Path::new("gen.toml"), &[]) {
            assert_within_bounds(&scenario);
        }
    }
}

/// Issue 10: `[saturate]` and `[capacity]` are checked like the rest of the file.
#[test]
fn issue10_saturate_and_capacity_tables() {
    let path = root().join("scenarios/capacity.toml");
    let s = load(&path, &[]).unwrap();
    assert_eq!(s.saturate.start_rate, 50.0);
    assert_eq!(s.saturate.precision, 0.05);
    assert_eq!(s.capacity.projectors, [1, 2, 4]);
    assert_eq!(s.capacity.scaler, Scaler::Embedded);
    assert_eq!(s.capacity.headroom, 0.2);
    let TargetKind::Embedded(config) = &s.target.kind else { panic!("embedded") };
    assert_eq!(config.work.cost, std::time::Duration::from_millis(10));
    assert_eq!(config.work.contention, std::time::Duration::from_millis(1));

    let text = std::fs::read_to_string(&path).unwrap();
    let served = root().join("tests/it/scenarios/capacity-served.toml");
    let served_text = std::fs::read_to_string(&served).unwrap();
    let cases: [(&str, &str, &str); 8] = [
        (&text, "saturate.step=\"2s\"", "longer than its warmup"),
        (&text, "saturate.growth=1", "growth must be more than 1"),
        (&text, "saturate.precision=\"five\"", "precision is a fraction or a percentage"),
        (&text, "saturate.max_rate=10", "max_rate is below start_rate"),
        (&text, "capacity.projectors=[1, 1]", "listed twice"),
        (&text, "capacity.projectors=[0]", "a projector count is from 1"),
        (&text, "capacity.scale=\"echo {{projectors}}\"", "scaled by the harness itself"),
        (&served_text, "capacity.serve=\"--variant memory --projectors 3\"", "set by the harness at each count"),
    ];
    for (text, set, expected) in cases {
        let error = load_str(text, Path::new("t.toml"), &[set.to_owned()]).expect_err(set);
        // Each value was set on the command line: the error names the `--set` (issue 30).
        assert!(matches!(error, ScenarioError::Override { .. }), "{set}: {error}");
        assert!(error.to_string().contains(expected), "{set}: {error}");
    }
    let scaled = load_str(&served_text, Path::new("t.toml"), &["capacity.serve=\"\"".to_owned()]);
    assert!(scaled.is_ok());
    let external = served_text.replace(
        "serve = \"--variant memory --projector-cost 10ms\"",
        "scale = \"kubectl scale deploy/p --replicas={{projectors}}\"",
    );
    let s = load_str(&external, Path::new("t.toml"), &[]).unwrap();
    assert_eq!(
        s.capacity.scaler,
        Scaler::Command(ShellCommand::plain("kubectl scale deploy/p --replicas={{projectors}}"))
    );
    let error = load_str(&external.replace("={{projectors}}", "=3"), Path::new("t.toml"), &[]).unwrap_err();
    assert!(error.to_string().contains("never says how many projectors"), "{error}");
    assert!(matches!(parse_projector_counts("4,1,2"), Ok(v) if v == [1, 2, 4]));
    assert!(parse_projector_counts("1,x").is_err() && parse_projector_counts("").is_err());
}

/// Issue 14: `[staleness]` takes what it does not say from `[projection]`, and a
/// `stale_read_p_at_<delay>` SLO must name one of its delays.
#[test]
fn issue14_staleness_table_and_its_slo() {
    let path = root().join("tests/it/scenarios/staleness.toml");
    let s = load(&path, &[]).unwrap();
    let spec = s.staleness.as_ref().unwrap();
    assert_eq!(spec.delays.len(), 12);
    assert_eq!(spec.sample, 0.5);
    let rule = s.slo.iter().find(|r| r.name == "stale_read_p_at_100ms").unwrap();
    assert_eq!(rule.metric, SloMetric::StaleReadAt(100.0));

    let text = std::fs::read_to_string(&path).unwrap();
    for (set, expected) in [
        ("slo.stale_read_p_at_70ms=0.01", "the probe does not read at that delay"),
        ("slo.stale_read_p_at_100ms=2", "a rate or ratio is a fraction"),
        ("staleness.delays=[\"10ms\", \"5ms\"]", "increasing order"),
        ("staleness.delays=[]", "from 1 to 64 durations"),
        ("staleness.sample=0", "sample is a fraction"),
    ] {
        let error = load_str(&text, Path::new("t.toml"), &[set.to_owned()]).expect_err(set);
        // Each value was set on the command line: the error names the `--set` (issue 30).
        assert!(matches!(error, ScenarioError::Override { .. }), "{set}: {error}");
        assert!(error.to_string().contains(expected), "{set}: {error}");
    }
    // Without [projection], query and until must be given.
    let bare = text.replace("query = \"get_account\"\nuntil", "until");
    let error = load_str(&bare, Path::new("t.toml"), &[]).unwrap_err();
    assert!(error.to_string().contains("[staleness] needs `query`"), "{error}");
    // With [projection], they default to its own.
    let quick = root().join("scenarios/quickstart.toml");
    let quick = std::fs::read_to_string(quick).unwrap() + "\n[staleness]\n";
    let s = load_str(&quick, Path::new("q.toml"), &[]).unwrap();
    let (p, st) = (s.projection.unwrap(), s.staleness.unwrap());
    assert_eq!((st.query, st.commands.clone()), (p.query, p.commands));
    assert_eq!(st.delays.len(), DEFAULT_STALENESS_DELAYS_MS.len());
}

/// Issue 31: a scenario whose operations draw no key needs no `[mix] keys` (the todo app's:
/// server-made ids only), and one that reads `{{key}}` from the mix is told where.
#[test]
fn mix_keys_only_when_something_draws_a_key() {
    let text = std::fs::read_to_string(root().join("tests/it/scenarios/todo-app.toml")).unwrap();
    assert!(!text.contains("keys = {"), "the todo scenario has no [mix] keys");
    load_str(&text, Path::new("todo-app.toml"), &[]).expect("loads without [mix] keys");
    let without_mix = text.replace("[mix]\nread_write_ratio = \"1:2\"", "");
    load_str(&without_mix, Path::new("todo-app.toml"), &[]).expect("loads without [mix]");
    let keyed =
        text.replace("keys = \"created\"\npath = \"/todos/{{key}}/finish\"", "path = \"/todos/{{key}}/finish\"");
    assert_ne!(keyed, text);
    let error = load_str(&keyed, Path::new("todo-app.toml"), &[]).unwrap_err().to_string();
    assert!(error.contains("`finish_todo` reads {{key}}, but [mix] has no `keys` to draw it from"), "{error}");
    assert!(error.contains("todo-app.toml:"), "located: {error}");
}

/// Issue 31, item 3: `[verify] value` as an array, each value named, with its own deltas;
/// `{{key.expected.NAME}}` picks one. The one-value form is the value named `value`.
#[test]
fn several_values_load_named_with_their_own_deltas() {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/scenarios/bad/key-expected-plain-with-two-values.toml"))
            .unwrap()
            .replace("{{key.expected}}", "{{key.expected.credits}}");
    let scenario = load_str(&text, Path::new("two.toml"), &[]).unwrap();
    let values = &scenario.verify.as_ref().unwrap().values;
    let names: Vec<&str> = values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["balance", "credits"]);
    let deltas = |i: usize| match &values[i].expected {
        ExpectedValue::Deltas { deltas, initial } => (deltas.len(), *initial),
        ExpectedValue::WriteSide { .. } => panic!("deltas expected"),
    };
    assert_eq!((deltas(0), deltas(1)), ((2, 0.0), (1, 0.0)));
    // Without a name, a value is named by its selector.
    let unnamed =
        text.replace("name = \"credits\", ", "").replace("{{key.expected.credits}}", "{{key.expected.balance}}");
    let scenario = load_str(&unnamed, Path::new("two.toml"), &[]).unwrap();
    assert_eq!(scenario.verify.unwrap().values[1].name, "/credits");
    // The one-value form.
    let one = root().join("tests/it/scenarios/stock-app.toml");
    let scenario = load_str(&std::fs::read_to_string(one).unwrap(), Path::new("stock.toml"), &[]).unwrap();
    let values = scenario.verify.unwrap().values;
    assert_eq!((values.len(), values[0].name.as_str()), (1, "value"));
}

/// Issue 33: `rabbitmq` and `sql` on MySQL/MariaDB load; `amqps://` and an https
/// management API are located errors (neither client is built with TLS).
#[test]
fn issue33_rabbitmq_and_mysql_backlogs_load() {
    let base = "name = \"b\"\n[target]\nkind = \"embedded\"\n[load]\nstages = [{ duration = \"5s\", rate = 10 }]\n\
                [mix]\nkeys = { count = 10 }\n[[query]]\nname = \"q\"\npath = \"/accounts/{{key}}\"\n";
    let text = format!(
        "{base}[[backlog]]\nkind = \"rabbitmq\"\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\nqueue = \"order-view\"\n\
         management_url = \"http://monitor:secret@127.0.0.1:15672\"\n\
         [[backlog]]\nkind = \"sql\"\nurl = \"mariadb://root@127.0.0.1:3306/test\"\nhead = \"select 1\"\ncheckpoint = \"select 0\"\n"
    );
    let scenario = load_str(&text, Path::new("b.toml"), &[]).unwrap();
    assert_eq!(scenario.backlog[0].name, "order-view");
    assert_eq!(scenario.backlog[0].kind(), "rabbitmq");
    assert_eq!(
        scenario.backlog[0].source,
        crate::scenario::BacklogSource::RabbitMq {
            queue: "order-view".into(),
            management_url: Some("http://monitor:secret@127.0.0.1:15672".into())
        }
    );
    assert_eq!(scenario.backlog[1].kind(), "sql");
    for (bad, expected) in [
        ("url = \"amqps://u:hunter2@h/%2f\"\nqueue = \"q\"", "amqps:// (TLS) is not supported"),
        ("url = \"amqp://h\"\nqueue = \"q\"\nmanagement_url = \"https://h:15671\"", "http:// address (no TLS)"),
    ] {
        let text = format!("{base}[[backlog]]\nkind = \"rabbitmq\"\n{bad}\n");
        let error = load_str(&text, Path::new("b.toml"), &[]).unwrap_err().to_string();
        assert!(error.contains(expected) && error.contains("b.toml:"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
