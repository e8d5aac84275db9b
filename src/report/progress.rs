//! Live progress while the load runs: elapsed/total, offered and achieved rate, the
//! worst latency p99 of the last second, the latest projection lag, errors, dropped,
//! in flight. A bar (indicatif) on a terminal, a plain line every few
//! seconds otherwise (CI logs), nothing with `--quiet`. Reads the generator's atomic
//! gauges only: no locks on the hot path.

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::summary::fmt_ms;
use crate::generator::{Gauges, LAG_LATE, LAG_NONE};

/// How often a plain line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the bar is refreshed on a terminal.
const BAR_EVERY: Duration = Duration::from_millis(250);

/// Starts the progress display; abort the handle when the load is over.
pub fn spawn(gauges: Arc<Gauges>, total: Duration, quiet: bool, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total.as_millis() as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        let every = if terminal { BAR_EVERY } else { PLAIN_EVERY };
        let start = Instant::now();
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        let (mut last_offered, mut last_done, mut last_at) = (0, 0, Instant::now());
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let offered = gauges.offered.load(Ordering::Relaxed);
            let done = gauges.completed.load(Ordering::Relaxed);
            let seconds = last_at.elapsed().as_secs_f64().max(1e-3);
            let mut line = format!(
                "offered {:.0}/s achieved {:.0}/s p99 {} errors {} dropped {} in flight {}",
                (offered - last_offered) as f64 / seconds,
                (done - last_done) as f64 / seconds,
                match gauges.last_second_p99_us.load(Ordering::Relaxed) {
                    0 => "-".to_owned(),
                    us => format!("{} ms", fmt_ms(us as f64 / 1000.0)),
                },
                gauges.errors.load(Ordering::Relaxed),
                gauges.dropped.load(Ordering::Relaxed),
                gauges.in_flight.load(Ordering::Relaxed),
            );
            match gauges.last_lag_us.load(Ordering::Relaxed) {
                LAG_NONE => {}
                LAG_LATE => line.push_str(" lag late"),
                us => line.push_str(&format!(" lag {} ms", fmt_ms(us as f64 / 1000.0))),
            }
            (last_offered, last_done, last_at) = (offered, done, Instant::now());
            match &bar {
                Some(bar) => {
                    bar.set_position(start.elapsed().as_millis().min(total.as_millis()) as u64);
                    bar.set_message(line);
                }
                None => {
                    let elapsed = start.elapsed().as_secs_f64();
                    // A closed stderr is no reason to stop the run.
                    let _ = writeln!(std::io::stderr(), "[{elapsed:>5.1}s/{:.0}s] {line}", total.as_secs_f64());
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    })
}
