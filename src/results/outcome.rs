//! What a run hands to `results::build`: the load's raw figures, the setup's totals and
//! what each probe found. `run::drive` fills it in; `build` turns it into the result model.
//! It lives here, below `run`, so that `run` (which builds and writes the results) and
//! `results` do not import each other.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::generator::{Dispatched, Timeline, Totals};
use crate::probe::actions::ActionRun;
use crate::probe::bus as bus_probe;
use crate::probe::lag_figures::LagFigures;
use crate::probe::verify::VerifyOutcome;

/// Setup phase totals.
#[derive(Debug, Clone, Default)]
pub struct SetupOutcome {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// The errors by class (`unanswered`: never answered within the setup's grace)…
    pub errors_by_class: BTreeMap<String, u64>,
    /// …and the unexpected statuses by code.
    pub errors_by_status: BTreeMap<String, u64>,
    pub duration: Duration,
}

impl SetupOutcome {
    /// Adds one setup operation's figures (`unanswered`: requests that got no answer at all).
    pub(crate) fn add(&mut self, figures: &crate::generator::OpFigures, unanswered: u64) {
        self.ok += figures.ok + figures.rejected;
        self.errors += figures.errors + unanswered;
        for (class, n) in &figures.errors_by_class {
            *self.errors_by_class.entry((*class).to_owned()).or_default() += n;
        }
        for (status, n) in &figures.errors_by_status {
            *self.errors_by_status.entry(status.to_string()).or_default() += n;
        }
        if unanswered > 0 {
            *self.errors_by_class.entry("unanswered".into()).or_default() += unanswered;
        }
    }
}

/// What the probes found (present when the scenario asks for them).
#[derive(Default)]
pub struct ProbeOutcome {
    pub lag: Option<LagOutcome>,
    pub staleness: Option<StalenessOutcome>,
    pub bus: Option<BusOutcome>,
    /// `[[backlog]]` sources, in scenario order.
    pub backlog: Vec<crate::probe::backlog::BacklogStats>,
    pub verify: Option<VerifyOutcome>,
    pub actions: Vec<ActionRun>,
    /// What became of the ids of creates that answered none (`resolve`), by operation.
    pub created: BTreeMap<String, crate::probe::resolve::ResolveStats>,
    /// Bytes held by the ledger of refs.
    pub ledger_bytes: usize,
}

pub struct StalenessOutcome {
    pub figures: Vec<crate::probe::staleness::DelayFigures>,
    pub sampled: u64,
    pub skipped: u64,
    /// The traffic's reads judged stale or fresh, per `[staleness] traffic` query.
    pub traffic: Vec<crate::probe::stale_reads::TrafficFigures>,
    /// Commands on keys beyond what the traffic judge tracks.
    pub traffic_untracked: u64,
}

pub struct BusOutcome {
    pub counts: bus_probe::BusCounts,
    pub messages: u64,
    pub foreign: u64,
    pub timestamp_type: String,
    /// Acknowledgement → broker timestamp, microseconds.
    pub e2e: hdrhistogram::Histogram<u64>,
    pub consumer_lag: BTreeMap<String, bus_probe::GroupLag>,
    /// The lag probe's commands' events on the topic (lag attribution).
    pub placed: std::collections::HashMap<u64, bus_probe::Placed>,
    /// The traced group's committed offsets (lag attribution).
    pub committed: bus_probe::CommittedTimeline,
    /// Each consumer group's lag as a backlog source (kind `kafka`), joined to the
    /// `[[backlog]]` sources' figures by shard 0.
    pub backlog: Vec<crate::probe::backlog::BacklogStats>,
}

pub struct LagOutcome {
    pub figures: LagFigures,
    pub polls: u64,
    pub poll_errors: u64,
    pub skipped: u64,
    /// Sampled commands whose per-key facts were not known (issue 31).
    pub ambiguous: u64,
    pub resolution: Duration,
    /// Why `until` may never hold (from the first late probe), if it looked so.
    pub misfit: Option<String>,
}

/// What the load produced.
pub struct LoadOutcome {
    pub probes: ProbeOutcome,
    /// The generator's figures, added up over its threads.
    pub totals: Totals,
    pub timeline: Timeline,
    /// Seconds per timeline row.
    pub timeline_step: u64,
    pub dispatched: Dispatched,
    pub setup: SetupOutcome,
    /// Wall-clock start of the load phase.
    pub started_at: SystemTime,
    /// How long the load phase ran (the schedule, or until interrupted).
    pub load_elapsed: Duration,
    pub interrupted: bool,
    /// Generator threads the load ran on.
    pub threads: usize,
    /// Sent but unanswered when the drain grace ended.
    pub unfinished: u64,
    pub max_in_flight: u64,
    pub max_backlog: u64,
    /// What the load could not keep, for result.json `warnings` (issue 32: created ids
    /// over the length cap).
    pub warnings: Vec<String>,
}
