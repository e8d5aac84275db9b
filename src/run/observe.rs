//! What the run attaches to every finished operation: the ledger of the commands
//! `[verify]` and `[bus]` account for, the starts of the projection-lag and
//! read-your-writes probes, and the judging of the traffic's reads for staleness.

use std::sync::{Arc, Mutex};

use crate::generator::Observer;
use crate::operation::{Executed, Sample};
use crate::probe::lag::LagProbe;
use crate::probe::ledger::Ledger;
use crate::probe::resolve::IdResolver;
use crate::probe::stale_reads::TrafficJudge;
use crate::probe::staleness::StalenessProbe;
use crate::target::Target;

pub struct RunObserver<T> {
    /// One ledger for all workers (same-key overlaps are found across them), locked once
    /// per ledgered command, briefly; with, per operation, whether it records it.
    pub ledger: Option<(Mutex<Ledger>, Vec<bool>)>,
    pub lag: Option<Arc<LagProbe<T>>>,
    pub staleness: Option<Arc<StalenessProbe<T>>>,
    pub traffic: Option<Arc<TrafficJudge<T>>>,
    /// Finds the ids of creates that answered none (`resolve`).
    pub resolver: Option<Arc<IdResolver<T>>>,
}

impl<T: Target> Observer for RunObserver<T> {
    fn finished(&self, sample: &Sample, executed: &Executed) {
        if let Some((ledger, ledgered)) = &self.ledger
            && ledgered[sample.op]
        {
            ledger.lock().unwrap_or_else(|e| e.into_inner()).record(sample);
        }
        if let Some(lag) = &self.lag {
            lag.after(sample.op, sample.seq, executed);
        }
        if let Some(staleness) = &self.staleness {
            staleness.after(sample.op, sample.seq, executed);
        }
        if let Some(traffic) = &self.traffic {
            traffic.after(sample, executed);
        }
        if let Some(resolver) = &self.resolver {
            resolver.after(sample.op, sample.seq, executed);
        }
    }
}

impl<T> RunObserver<T> {
    /// The ledger, once the load is over.
    pub fn take_ledger(&mut self) -> Option<Ledger> {
        self.ledger.take().map(|(l, _)| l.into_inner().unwrap_or_else(|e| e.into_inner()))
    }
}
