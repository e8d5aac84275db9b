//! Live progress while the run goes on: during the load, elapsed/total, offered and
//! achieved rate, the worst latency p99 of the last second, the latest projection lag,
//! errors, dropped, in flight; after it, the step that keeps the run going (draining,
//! lag probes settling, verification, the bus) and for how long. A bar (indicatif) on
//! a terminal, a plain line every few seconds and at each new phase otherwise (CI logs),
//! nothing with `--quiet`. Reads the generator's atomic gauges only: no locks on the
//! hot path.

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::summary::fmt_ms;
use crate::live::{Gauges, LAG_LATE, LAG_NONE, Phase};

/// How often a plain line is printed when stderr is not a terminal (and at each new phase).
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the gauges are read (and the bar refreshed on a terminal).
const TICK: Duration = Duration::from_millis(250);

/// Starts the progress display; cancel `shutdown` and await the handle when the run is over.
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
        let mut rates = Rates::new(&gauges);
        let mut shown_phase = Phase::Setup;
        // Plain lines: when the phase has lasted this long (every PLAIN_EVERY of the load,
        // so `[  5.0s/60s]` is at 5 s of it; at once when another phase begins).
        let mut plain_due = PLAIN_EVERY;
        let mut warned = false;
        loop {
            if !warned && let Some(warning) = gauges.warning.get() {
                warned = true;
                let line = format!("warning: {warning}");
                match &bar {
                    Some(bar) => bar.println(line),
                    None => {
                        let _ = writeln!(std::io::stderr(), "{line}");
                    }
                }
                gauges.warning_shown.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let (phase, in_phase) = gauges.phase();
            if phase != shown_phase {
                shown_phase = phase;
                plain_due = if phase == Phase::Load { PLAIN_EVERY } else { Duration::ZERO };
                rates = Rates::new(&gauges);
            }
            match &bar {
                Some(bar) => {
                    let position = match phase {
                        Phase::Setup => Duration::ZERO,
                        Phase::Load => in_phase.min(total),
                        _ => total,
                    };
                    bar.set_position(position.as_millis() as u64);
                    bar.set_message(match phase {
                        Phase::Load => rates.line(&gauges),
                        _ => phase_line(phase, in_phase, &gauges),
                    });
                }
                None if in_phase >= plain_due => {
                    plain_due = (in_phase.as_millis() / PLAIN_EVERY.as_millis() + 1) as u32 * PLAIN_EVERY;
                    let line = match phase {
                        Phase::Load => {
                            let elapsed = in_phase.as_secs_f64();
                            format!("[{elapsed:>5.1}s/{:.0}s] {}", total.as_secs_f64(), rates.line(&gauges))
                        }
                        _ => phase_line(phase, in_phase, &gauges),
                    };
                    // A closed stderr is no reason to stop the run.
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
                None => {}
            }
            // Wake for the next tick, or exactly when the next plain line is due.
            let nap = if bar.is_some() { TICK } else { TICK.min(plain_due.saturating_sub(in_phase)) };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(nap) => {}
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    })
}

/// Offered and achieved rates since the last line.
struct Rates {
    offered: u64,
    done: u64,
    errors: u64,
    at: Instant,
}

impl Rates {
    fn new(gauges: &Gauges) -> Rates {
        Rates {
            offered: gauges.offered.load(Ordering::Relaxed),
            done: gauges.completed.load(Ordering::Relaxed),
            errors: gauges.errors.load(Ordering::Relaxed),
            at: Instant::now(),
        }
    }

    /// `offered 400/s achieved 398/s p99 1.20 ms errors 0 …`; achieved is goodput, as in
    /// result.json (operations that failed are under errors).
    fn line(&mut self, gauges: &Gauges) -> String {
        let now = Rates::new(gauges);
        let seconds = now.at.saturating_duration_since(self.at).as_secs_f64().max(1e-3);
        let good = |r: &Rates| r.done.saturating_sub(r.errors);
        let offered = now.offered.saturating_sub(self.offered) as f64 / seconds;
        let achieved = good(&now).saturating_sub(good(self)) as f64 / seconds;
        *self = now;
        load_line(gauges, Some((offered, achieved)))
    }
}

/// The load's line from `per_s` (offered, achieved; `None` before the first second).
fn load_line(gauges: &Gauges, per_s: Option<(f64, f64)>) -> String {
    let mut line = match per_s {
        Some((offered, achieved)) => format!("offered {offered:.0}/s achieved {achieved:.0}/s"),
        None => "offered -/s achieved -/s".to_owned(),
    };
    line.push_str(&format!(
        " p99 {} errors {} dropped {} in flight {}",
        match gauges.last_second_p99_us.load(Ordering::Relaxed) {
            0 => "-".to_owned(),
            us => format!("{} ms", fmt_ms(us as f64 / 1000.0)),
        },
        gauges.errors.load(Ordering::Relaxed),
        gauges.dropped.load(Ordering::Relaxed),
        gauges.in_flight.load(Ordering::Relaxed),
    ));
    match gauges.last_lag_us.load(Ordering::Relaxed) {
        LAG_NONE => {}
        LAG_LATE => line.push_str(" lag late"),
        us => line.push_str(&format!(" lag {} ms", fmt_ms(us as f64 / 1000.0))),
    }
    line
}

/// The progress line of the live view (issue 35), as the plain lines print it; the rates
/// are the last closed timeline row's (`per_s`), the same for every page that polls.
pub fn live_line(gauges: &Gauges, total: Duration, per_s: Option<(f64, f64)>) -> String {
    match gauges.phase() {
        (Phase::Load, in_phase) => {
            let elapsed = in_phase.min(total).as_secs_f64();
            format!("[{elapsed:>5.1}s/{:.0}s] {}", total.as_secs_f64(), load_line(gauges, per_s))
        }
        (phase, in_phase) => phase_line(phase, in_phase, gauges),
    }
}

/// What the run is doing outside the load, e.g. `[settling] waiting for 12 lag probes (3.0 s)`.
fn phase_line(phase: Phase, elapsed: Duration, gauges: &Gauges) -> String {
    let seconds = elapsed.as_secs_f64();
    match phase {
        Phase::Setup => format!("[setup] sending setup requests ({seconds:.1} s)"),
        Phase::Load => format!("[load] {seconds:.1} s"),
        Phase::Draining => {
            let left = gauges.in_flight.load(Ordering::Relaxed) + gauges.backlog.load(Ordering::Relaxed);
            format!("[draining] waiting for {left} operations in flight ({seconds:.1} s)")
        }
        Phase::Settling => {
            let probes = gauges.probes_running.load(Ordering::Relaxed);
            let plural = if probes == 1 { "" } else { "s" };
            format!("[settling] waiting for {probes} lag probe{plural} ({seconds:.1} s)")
        }
        Phase::Verifying => format!("[verify] reading the read model back ({seconds:.1} s)"),
        Phase::BusDrain => format!("[bus] waiting for the event stream to go quiet ({seconds:.1} s)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_the_load_the_line_names_the_phase() {
        let gauges = Gauges::default();
        gauges.probes_running.store(12, Ordering::Relaxed);
        assert_eq!(
            phase_line(Phase::Settling, Duration::from_millis(3_040), &gauges),
            "[settling] waiting for 12 lag probes (3.0 s)"
        );
        assert_eq!(
            phase_line(Phase::Verifying, Duration::from_millis(12_400), &gauges),
            "[verify] reading the read model back (12.4 s)"
        );
        gauges.in_flight.store(3, Ordering::Relaxed);
        assert_eq!(
            phase_line(Phase::Draining, Duration::ZERO, &gauges),
            "[draining] waiting for 3 operations in flight (0.0 s)"
        );
    }

    #[test]
    fn the_phase_is_the_last_one_set() {
        let gauges = Gauges::default();
        assert_eq!(gauges.phase().0, Phase::Setup);
        gauges.set_phase(Phase::Verifying);
        let (phase, lasted) = gauges.phase();
        assert_eq!(phase, Phase::Verifying);
        assert!(lasted < Duration::from_secs(1));
    }

    #[test]
    fn achieved_is_goodput() {
        let gauges = Gauges::default();
        let mut rates = Rates::new(&gauges);
        gauges.offered.store(100, Ordering::Relaxed);
        gauges.completed.store(100, Ordering::Relaxed);
        gauges.errors.store(100, Ordering::Relaxed);
        let line = rates.line(&gauges);
        assert!(line.contains(" achieved 0/s "), "{line}");
        assert!(line.contains(" errors 100 "), "{line}");
    }
}
