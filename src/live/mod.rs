//! Live counters of a run, shared by the generator (offered, in flight, backlog), the
//! probes (latest lag, warnings) and the progress display, which only reads them; with
//! `--metrics-listen`, the Prometheus metrics fed from the same places (`metrics`) and
//! the endpoint that serves them (`serve`), which also serves the live view's page: the
//! view itself (`report::live_view`) sits above, beside the report whose charts it draws,
//! and is fed through `LiveFeed` so that the counters below name nothing above them.

pub mod metrics;
pub mod serve;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::LiveMetrics;

/// Live counters shared by the generator, the collector and the progress display.
#[derive(Debug, Default)]
pub struct Gauges {
    /// A warning for the user while the run goes on (the first late probe's explanation).
    pub warning: std::sync::OnceLock<String>,
    /// Set once the progress display has printed `warning`: the end of the run does not
    /// print it again (issue 32: the late-probe warning came twice); result.json keeps it.
    pub warning_shown: std::sync::atomic::AtomicBool,
    /// Worst per-operation latency p99 of the last closed second, µs (0: none yet).
    pub last_second_p99_us: AtomicU64,
    /// Projection lag of the latest probe, µs (at least 1); `LAG_NONE` before any,
    /// `LAG_LATE` if it timed out.
    pub last_lag_us: AtomicU64,
    pub offered: AtomicU64,
    pub dropped: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
    pub backlog: AtomicU64,
    pub max_in_flight: AtomicU64,
    pub max_backlog: AtomicU64,
    /// Lag probes waiting for the read model right now.
    pub probes_running: AtomicU64,
    /// The current `Phase`, as its `u8`.
    phase: AtomicU8,
    /// When the current phase began, µs after `epoch`.
    phase_since_us: AtomicU64,
    epoch: Epoch,
    /// The Prometheus metrics (`--metrics-listen`), fed where the figures are already
    /// added up (the collector's seconds, the lag collector, the bus sampler), never per
    /// operation on a worker.
    pub metrics: Option<Arc<LiveMetrics>>,
    /// The live view's rows so far (`--metrics-listen`, `--live`), fed by the collector
    /// once per second.
    pub live: Option<Arc<dyn LiveFeed>>,
}

/// The live view (issue 35) as the collector feeds it and the server serves it.
pub trait LiveFeed: Send + Sync + std::fmt::Debug {
    /// A closed timeline row.
    fn add_row(&self, row: &crate::measure::timeline::TimelineRow);
    /// A worker's measured-window latency of one second for operation `op`.
    fn add_measured(&self, op: usize, histogram: &hdrhistogram::Histogram<u64>);
    /// `/live.json`.
    fn json(&self, gauges: &Gauges) -> String;
    /// `/`.
    fn page(&self, gauges: &Gauges) -> String;
}

/// The window of the run an operation belongs to, by its intended start: the warmup is
/// left out of every result figure but still shown live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Warmup = 0,
    Measured = 1,
}

impl Window {
    pub const ALL: [Window; 2] = [Window::Warmup, Window::Measured];

    /// The `phase` label of the live metrics.
    pub fn label(self) -> &'static str {
        match self {
            Window::Warmup => "warmup",
            Window::Measured => "measured",
        }
    }
}

/// What the run is doing, for the live progress: after the load it names the step that
/// keeps the run going (issue 12), instead of a load line frozen at `offered 0/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// `[[setup]]` requests before the load.
    Setup = 0,
    /// The scheduled operations.
    Load = 1,
    /// Waiting for the operations still in flight after the schedule ended.
    Draining = 2,
    /// Waiting for lag probes to see their command or time out.
    Settling = 3,
    /// `[verify]`: reading the read model back.
    Verifying = 4,
    /// `[bus]`: waiting for the event stream to go quiet.
    BusDrain = 5,
}

impl Phase {
    pub const ALL: [Phase; 6] =
        [Phase::Setup, Phase::Load, Phase::Draining, Phase::Settling, Phase::Verifying, Phase::BusDrain];

    /// The phase's name in the live metrics.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Load => "load",
            Phase::Draining => "draining",
            Phase::Settling => "settling",
            Phase::Verifying => "verifying",
            Phase::BusDrain => "bus_drain",
        }
    }
}

/// The instant phase times are counted from.
#[derive(Debug)]
struct Epoch(Instant);

impl Default for Epoch {
    fn default() -> Self {
        Epoch(Instant::now())
    }
}

/// `Gauges::last_lag_us` before the first probe.
pub const LAG_NONE: u64 = 0;
/// `Gauges::last_lag_us` when the latest probe timed out.
pub const LAG_LATE: u64 = u64::MAX;

impl Gauges {
    /// Gauges that also feed `metrics`.
    pub fn with_metrics(metrics: Arc<LiveMetrics>) -> Gauges {
        Gauges { metrics: Some(metrics), ..Gauges::default() }
    }

    /// Gauges that also feed `metrics` and the live view.
    pub fn with_live(metrics: Arc<LiveMetrics>, live: Arc<dyn LiveFeed>) -> Gauges {
        Gauges { metrics: Some(metrics), live: Some(live), ..Gauges::default() }
    }

    pub fn enter_flight(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
    }
    pub fn leave_flight(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn enter_backlog(&self) {
        let now = self.backlog.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_backlog.fetch_max(now, Ordering::Relaxed);
    }
    pub fn leave_backlog(&self) {
        self.backlog.fetch_sub(1, Ordering::Relaxed);
    }

    /// Enters `phase` now.
    pub fn set_phase(&self, phase: Phase) {
        let since = self.epoch.0.elapsed().as_micros() as u64;
        self.phase_since_us.store(since, Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// The current phase and how long it has lasted.
    pub fn phase(&self) -> (Phase, Duration) {
        let phase = self.phase.load(Ordering::Relaxed);
        let since = Duration::from_micros(self.phase_since_us.load(Ordering::Relaxed));
        let phase = Phase::ALL.into_iter().find(|p| *p as u8 == phase).expect("only set_phase stores a phase");
        (phase, self.epoch.0.elapsed().saturating_sub(since))
    }
}
