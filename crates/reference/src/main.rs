//! `cqrs-bench-reference serve|replay`: what `cqrs-bench target serve|replay` hands the
//! services' variants to, with the same flags and exit codes (2 for a bad flag, 3 when
//! it cannot serve).

use std::process::ExitCode;

use clap::Parser as _;
use tokio_util::sync::CancellationToken;

use cqrs_bench::reference::{BadFlag, ReplayArgs, ServeArgs};

#[derive(clap::Parser, Debug)]
#[command(name = "cqrs-bench-reference", version, about = "The reference targets of cqrs-bench that need services")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Serve a reference target over HTTP until Ctrl-C (as `cqrs-bench target serve`).
    Serve(Box<ServeArgs>),
    /// Rebuild the event-sourced read model from its event store (as `cqrs-bench target replay`).
    Replay(ReplayArgs),
}

/// The harness's exit codes (cqrs_bench::exit): a bad flag is the user's input.
const USAGE: u8 = 2;
const RUN_FAILED: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE } else { 0 });
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
            return ExitCode::from(RUN_FAILED);
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        match cli.command {
            Command::Serve(args) => cqrs_bench_reference::run_serve(*args, shutdown).await,
            Command::Replay(args) => cqrs_bench_reference::run_replay(args).await,
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if e.downcast_ref::<BadFlag>().is_some() { USAGE } else { RUN_FAILED })
        }
    }
}

/// Ctrl-C or SIGTERM stops serving gracefully; a second one exits at once.
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
            std::process::exit(RUN_FAILED.into());
        }
        shutdown.cancel();
    }
}
