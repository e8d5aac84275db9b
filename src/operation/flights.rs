//! Which commands on one key overlapped in time (issue 31), as they happen: what a lag
//! probe needs to know whether `{{key.acked}}` and `{{key.expected}}` mean what they say.
//!
//! The number a key shows after a command is `initial` + the deltas acknowledged before
//! it only when no other command on the key could have been ordered either side of it.
//! So a command is *overlapped* when another watched command on its key was sent before
//! it was answered and answered after it was sent (in flight at some point of its
//! flight), or when an earlier one on the key got no answer (applied or not, nobody
//! knows). The ledger finds the same overlaps after the fact; a probe must know at the
//! acknowledgement, so the executor tracks them live: one short lock at each departure
//! and landing of a watched command, entries dropped when a key is quiet.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct KeyFlights {
    keys: Mutex<HashMap<u64, Flights>>,
}

#[derive(Default)]
struct Flights {
    in_flight: u32,
    /// Landings since the entry was made: a change during a flight means another
    /// command landed during it.
    landings: u64,
    /// A command on the key got no answer: every later one is overlapped.
    unanswered: bool,
}

/// A departed command's mark, handed back at its landing.
#[derive(Debug, Clone, Copy)]
pub struct Departure {
    key: u64,
    landings: u64,
    others_in_flight: bool,
}

impl KeyFlights {
    /// A watched command on `key` is sent.
    pub fn depart(&self, key: u64) -> Departure {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let flights = keys.entry(key).or_default();
        let others_in_flight = flights.in_flight > 0 || flights.unanswered;
        flights.in_flight += 1;
        Departure { key, landings: flights.landings, others_in_flight }
    }

    /// It came back (`answered`: with an answer of any status). True when another
    /// command on the key overlapped it, or one before it got no answer.
    pub fn land(&self, departure: Departure, answered: bool) -> bool {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let flights = keys.entry(departure.key).or_default();
        flights.in_flight = flights.in_flight.saturating_sub(1);
        let overlapped = departure.others_in_flight
            || flights.in_flight > 0
            || flights.landings != departure.landings
            || flights.unanswered;
        flights.landings += 1;
        flights.unanswered |= !answered;
        if flights.in_flight == 0 && !flights.unanswered {
            // Quiet: nothing can overlap the next command.
            keys.remove(&departure.key);
        }
        overlapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_and_unanswered_commands_are_told() {
        let flights = KeyFlights::default();
        // One after the other: no overlap.
        let a = flights.depart(1);
        assert!(!flights.land(a, true));
        let b = flights.depart(1);
        assert!(!flights.land(b, true));
        // c in flight while d departs and lands: both overlapped.
        let c = flights.depart(1);
        let d = flights.depart(1);
        assert!(flights.land(d, true));
        assert!(flights.land(c, true));
        // e departs, f departs and lands after e landed: e sees f still in flight.
        let e = flights.depart(1);
        let f = flights.depart(1);
        assert!(flights.land(e, true));
        assert!(flights.land(f, true));
        // Other keys are apart; a command without an answer marks its key for good.
        let g = flights.depart(2);
        assert!(!flights.land(flights.depart(3), true));
        assert!(!flights.land(g, false));
        assert!(flights.land(flights.depart(2), true));
        assert!(flights.land(flights.depart(2), true));
        assert_eq!(flights.keys.lock().unwrap().len(), 1, "only the key with an unanswered command is kept");
    }
}
