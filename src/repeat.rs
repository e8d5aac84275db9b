//! `run --repeat K`: the same scenario K times in a row, into `OUT/run-1` … `OUT/run-K`,
//! then the spread of each figure over the runs (`OUT/repeat.md`). Such a folder is a
//! baseline set for `compare --baseline OUT`, which learns the run-to-run noise from it.
//!
//! Every run uses the same seed, so the runs send the same operations to the same keys:
//! the spread is the system's and the machine's, not the workload's.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::report::compare;
use crate::{exit, results, scenario};

/// Runs `args` `times` times; the exit code is the worst run's (a failed run over an SLO
/// violation over a pass). Ctrl-C or SIGTERM stops the current run (written, marked
/// interrupted) and starts no other; the repeat is then interrupted whatever the runs'
/// verdicts: exit 3, the runs that finished are kept and summarized, and repeat.md says
/// `interrupted: true` (issue 32: a signal between two runs gave exit 0).
pub async fn run_repeated(args: RunArgs, times: u32, shutdown: CancellationToken) -> anyhow::Result<i32> {
    anyhow::ensure!(
        args.shard.is_none() && args.start_at.is_none() && !args.json,
        exit::Usage(anyhow::anyhow!(
            "--repeat runs one process's runs in a row: not with --shard, --start-at or --json"
        ))
    );
    let scenario = scenario::load(&args.scenario, &args.overrides)?;
    let out = args.out.clone().unwrap_or_else(|| crate::run::default_out_dir_for(&scenario, Some("repeat")));
    let mut worst = exit::PASS;
    let mut finished = 0;
    for i in 1..=times {
        if shutdown.is_cancelled() {
            break;
        }
        let run_args = RunArgs { out: Some(out.join(format!("run-{i}"))), quiet: true, ..args.clone() };
        let outcome = match crate::run::run(run_args, shutdown.clone()).await {
            Ok(outcome) => outcome,
            // A signal as a run starts may end it before it has results: the repeat stops.
            Err(e) if shutdown.is_cancelled() => {
                eprintln!("run {i}/{times}: {e:#}");
                break;
            }
            Err(e) => return Err(e),
        };
        println!("run {i}/{times}: {}", crate::report::summary::verdict_line(&outcome.result));
        worst = worse(worst, crate::run::verdict_code(&outcome.result));
        finished += u32::from(!outcome.result.interrupted);
    }
    // A signal at any moment, during a run or between two, leaves the repeat short.
    let interrupted = shutdown.is_cancelled().then_some(Interrupted { finished, times });
    summarize(&out, args.quiet, interrupted)?;
    Ok(if interrupted.is_some() { exit::RUN_FAILED } else { worst })
}

/// A repeat cut short by a signal: how many of its runs finished.
#[derive(Clone, Copy)]
struct Interrupted {
    finished: u32,
    times: u32,
}

/// The spread over the runs, printed and written to repeat.md; an interrupted repeat
/// says so first, in both.
fn summarize(out: &Path, quiet: bool, interrupted: Option<Interrupted>) -> anyhow::Result<()> {
    let mut side = compare::Side::load(&[out.to_path_buf()])?;
    let written = side.runs.len();
    // A run the signal cut short measured part of a run: not in the spread (it stays on disk).
    if side.runs.iter().any(|r| !r.result.interrupted) {
        side.runs.retain(|r| !r.result.interrupted);
    }
    let (table, markdown) = compare::spread_summary(&side);
    let note = interrupted.map(|i| {
        format!(
            "interrupted: true (a signal stopped the repeat: {} of {} runs finished; the spread is of the {} finished)",
            i.finished,
            i.times,
            side.runs.len()
        )
    });
    let markdown = match &note {
        Some(note) => format!("{note}\n\n{markdown}"),
        None => markdown,
    };
    results::write_atomic(&out.join("repeat.md"), markdown.as_bytes())?;
    if !quiet {
        print!("\n{table}");
    }
    if let Some(note) = &note {
        println!("{note}");
    }
    println!("wrote {written} runs and {}", out.join("repeat.md").display());
    Ok(())
}

fn worse(a: i32, b: i32) -> i32 {
    let rank = |code: i32| match code {
        exit::PASS => 0,
        exit::SLO_VIOLATED => 1,
        _ => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}
