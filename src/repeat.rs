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
/// violation over a pass). Ctrl-C stops after the current run.
pub async fn run_repeated(args: RunArgs, times: u32, shutdown: CancellationToken) -> anyhow::Result<i32> {
    anyhow::ensure!(
        args.shard.is_none() && args.start_at.is_none() && !args.json,
        exit::Usage(anyhow::anyhow!(
            "--repeat runs one process's runs in a row: not with --shard, --start-at or --json"
        ))
    );
    let scenario = scenario::load(&args.scenario, &args.overrides)?;
    let out = args.out.clone().unwrap_or_else(|| crate::default_out_dir_for(&scenario, Some("repeat")));
    let mut worst = exit::PASS;
    for i in 1..=times {
        if shutdown.is_cancelled() {
            break;
        }
        let run_args = RunArgs { out: Some(out.join(format!("run-{i}"))), quiet: true, ..args.clone() };
        let outcome = crate::run(run_args, shutdown.clone()).await?;
        println!("run {i}/{times}: {}", crate::report::summary::verdict_line(&outcome.result));
        worst = worse(worst, crate::verdict_code(&outcome.result));
    }
    summarize(&out, args.quiet)?;
    Ok(worst)
}

/// The spread over the runs, printed and written to repeat.md.
fn summarize(out: &Path, quiet: bool) -> anyhow::Result<()> {
    let side = compare::Side::load(&[out.to_path_buf()])?;
    let (table, markdown) = compare::spread_summary(&side);
    results::write_atomic(&out.join("repeat.md"), markdown.as_bytes())?;
    if !quiet {
        print!("\n{table}");
    }
    println!("wrote {} runs and {}", side.runs.len(), out.join("repeat.md").display());
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
