//! Builds the runtime, runs the command, maps the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser as _;
use tokio_util::sync::CancellationToken;

use cqrs_bench::cli::{Cli, Command, SchemaOf, TargetCommand};
use cqrs_bench::exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CQRS_BENCH_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(exit::RUN_FAILED as u8);
        }
    };
    let code = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        match execute(cli.command, shutdown).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                exit::code_for(&e)
            }
        }
    });
    // Don't wait for stray blocking tasks (e.g. a pacing thread finishing a nap).
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code as u8)
}

async fn execute(command: Command, shutdown: CancellationToken) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) if args.repeat.is_some_and(|k| k > 1) => {
            let times = args.repeat.unwrap_or(1);
            cqrs_bench::repeat::run_repeated(args, times, shutdown).await
        }
        Command::Run(args) => {
            let outcome = cqrs_bench::run(args, shutdown).await?;
            Ok(cqrs_bench::verdict_code(&outcome.result))
        }
        Command::Validate { scenarios, overrides, target, write_one } => {
            let mut code = exit::PASS;
            for path in &scenarios {
                match cqrs_bench::scenario::load(path, &overrides) {
                    Ok(scenario) => {
                        println!(
                            "{}: ok ({} commands, {} queries, {:.0?} of load)",
                            path.display(),
                            scenario.commands().count(),
                            scenario.queries().count(),
                            scenario.load_duration()
                        );
                        for warning in cqrs_bench::scenario::lint(&scenario) {
                            eprintln!("warning: {}: {warning}", path.display());
                        }
                        if let Some(url) = &target {
                            let checks = cqrs_bench::check_probe_answers(&scenario, url, write_one).await?;
                            for note in &checks.notes {
                                println!("{}: {note}", path.display());
                            }
                            for checked in &checks.checked {
                                println!("{}: checked {checked}", path.display());
                            }
                            for warning in &checks.warnings {
                                eprintln!("warning: {}: {warning}", path.display());
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        code = exit::USAGE;
                    }
                }
            }
            Ok(code)
        }
        Command::Report { runs } => {
            for run in &runs {
                if let Some(rebuilt) = cqrs_bench::capacity::rebuild(run) {
                    rebuilt.map_err(exit::input_error)?;
                    println!("{}: report.html and plots rebuilt", run.display());
                    continue;
                }
                cqrs_bench::report::rebuild(run).map_err(exit::input_error)?;
                println!("{}: report.html, junit.xml and plots rebuilt", run.display());
            }
            Ok(exit::PASS)
        }
        Command::Compare { runs, baseline, max_regression, noise, out } => {
            use cqrs_bench::report::compare;
            let thresholds = compare::Thresholds {
                max_regression: max_regression.unwrap_or(10.0) / 100.0,
                noise: noise.unwrap_or(5.0) / 100.0,
            };
            let (comparison, sides) = compare::compare(&runs, &baseline, thresholds).map_err(exit::Usage)?;
            print!("{}", comparison.table);
            let out = out.unwrap_or_else(|| {
                let stamp =
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace([':', '-'], "");
                std::path::Path::new("reports").join(format!("compare-{stamp}"))
            });
            compare::write(&out, &comparison, &sides)?;
            println!("wrote {}/compare.md and plots", out.display());
            Ok(if comparison.regressions.is_empty() { exit::PASS } else { exit::SLO_VIOLATED })
        }
        Command::Merge { shards, out, quiet } => {
            let (merged, warnings) = cqrs_bench::merge::merge(&shards, &out).map_err(exit::input_error)?;
            for warning in &warnings {
                eprintln!("warning: {warning}");
            }
            if quiet {
                println!("{} ({})", cqrs_bench::report::summary::verdict_line(&merged), out.display());
            } else {
                print!("{}", cqrs_bench::report::summary::render(&merged, &out));
            }
            Ok(cqrs_bench::verdict_code(&merged))
        }
        Command::Saturate(args) => {
            let search = search_args(args.search);
            cqrs_bench::capacity::saturate(search, args.target, shutdown).await
        }
        Command::Capacity(args) => {
            let search = search_args(args.search);
            // `--headroom` is a percentage on the command line, a fraction inside.
            let headroom = args.headroom.map(|pct| pct / 100.0);
            let counts = args.projectors.map(|c| c.0);
            cqrs_bench::capacity::capacity(search, counts, args.target_rate, headroom, shutdown).await
        }
        Command::Init { name, force } => {
            let path = std::path::PathBuf::from(format!("{name}.toml"));
            if path.exists() && !force {
                return Err(exit::Usage(anyhow::anyhow!("{} exists; pass --force to overwrite", path.display())).into());
            }
            cqrs_bench::results::write_atomic(&path, cqrs_bench::scenario::starter_scenario(&name).as_bytes())?;
            println!("wrote {} — run it with: cqrs-bench run {}", path.display(), path.display());
            // The starter's `#:schema` line names this file: editors complete and check
            // fields from it. An existing one is the user's (maybe edited): kept unless --force.
            let schema_path = std::path::Path::new(cqrs_bench::scenario::schema::SCHEMA_FILE);
            if schema_path.exists() && !force {
                println!(
                    "kept {} (refresh it: cqrs-bench schema scenario > {})",
                    schema_path.display(),
                    schema_path.display()
                );
            } else {
                let schema = serde_json::to_string_pretty(&cqrs_bench::scenario::schema::json_schema())
                    .expect("a JSON value serializes");
                cqrs_bench::results::write_atomic(schema_path, format!("{schema}\n").as_bytes())?;
                println!("wrote {}: the JSON Schema editors read through its `#:schema` line", schema_path.display());
            }
            Ok(exit::PASS)
        }
        Command::Schema { of } => {
            let schema = match of {
                SchemaOf::Scenario => cqrs_bench::scenario::schema::json_schema(),
                SchemaOf::Result => cqrs_bench::results::schema::json_schema(),
            };
            let text = serde_json::to_string_pretty(&schema).expect("a JSON value serializes");
            print_stdout(&format!("{text}\n"))?;
            Ok(exit::PASS)
        }
        Command::Target(TargetCommand::Replay(args)) => {
            cqrs_bench::reference::run_replay(args).await?;
            Ok(exit::PASS)
        }
        Command::Target(TargetCommand::Serve(args)) => {
            cqrs_bench::reference::run_serve(*args, shutdown).await?;
            Ok(exit::PASS)
        }
    }
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(exit::OutputFailure(e.into()).into()),
        _ => Ok(()),
    }
}

fn search_args(options: cqrs_bench::cli::SearchOptions) -> cqrs_bench::capacity::SearchArgs {
    cqrs_bench::capacity::SearchArgs {
        scenario: options.scenario,
        overrides: options.overrides,
        out: options.out,
        seed: options.seed,
        threads: cqrs_bench::generator_threads(options.threads),
        quiet: options.quiet,
    }
}

/// Ctrl-C or SIGTERM: stop generating, drain, still write results; a signal after the
/// load cuts the drain, the probe grace, `[verify]` and the bus drain short. A second
/// one (either kind) exits at once with exit 3 (issue 18: it waited for Ctrl-C only).
async fn watch_signals(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    for _ in 0..2 {
        let terminate = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        if shutdown.is_cancelled() {
            eprintln!("aborted: no results written");
            std::process::exit(exit::RUN_FAILED);
        }
        eprintln!("stopping: cutting the run short and writing results (again to abort)");
        shutdown.cancel();
    }
}
