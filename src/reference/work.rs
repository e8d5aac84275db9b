//! Simulated projector work with a capacity known in advance (issue 10).
//!
//! Each event costs a projector `cost` of its own time (work that runs in parallel across
//! projectors, such as a call to another service), then `contention` inside a section
//! all projectors share (a lock, a single-writer table). With deterministic times the
//! sustainable event rate of N projectors is exactly
//!
//! ```text
//! X(N) = min(N / (cost + contention), 1 / contention)
//! ```
//!
//! Sleeping `cost` per event would not give that: tokio's timer rounds every sleep up to
//! the next millisecond, so a 10 ms cost would drain at ~9 % less than 1/cost. Instead
//! each projector keeps a *virtual* clock: an event starts when both the projector is
//! free (its previous event's end) and the event is there (it arrived), ends `cost`
//! later, then queues for the shared section's own virtual clock; the projector sleeps
//! until that end. A late wake-up delays one event's visibility, never the rate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Per-event work of a projector; zero costs nothing and never sleeps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProjectorWork {
    /// Parallel time per event, per projector.
    pub cost: Duration,
    /// Serial time per event, in a section shared by every projector.
    pub contention: Duration,
}

impl ProjectorWork {
    pub fn is_zero(&self) -> bool {
        self.cost.is_zero() && self.contention.is_zero()
    }

    /// Events per second `projectors` instances sustain (`None`: unbounded).
    pub fn drain_rate(&self, projectors: usize) -> Option<f64> {
        let parallel = (self.cost + self.contention).as_secs_f64();
        let serial = self.contention.as_secs_f64();
        let by_parallel = (parallel > 0.0).then(|| projectors as f64 / parallel);
        let by_serial = (serial > 0.0).then(|| 1.0 / serial);
        match (by_parallel, by_serial) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The section every projector of one target shares: when it is next free.
#[derive(Debug, Default)]
pub struct SharedSection {
    free_at: Mutex<Option<Instant>>,
}

/// One projector's virtual clock.
#[derive(Debug)]
pub struct WorkClock {
    work: ProjectorWork,
    shared: Arc<SharedSection>,
    /// When this projector is next free (a lock only so the owner can book from `&self`).
    busy_until: Mutex<Option<Instant>>,
}

impl WorkClock {
    pub fn new(work: ProjectorWork, shared: Arc<SharedSection>) -> WorkClock {
        WorkClock { work, shared, busy_until: Mutex::default() }
    }

    /// Does one event's work: `arrived` is when the event reached this projector's queue,
    /// `received` when the projector took it. Returns when the work is done.
    pub async fn work_on(&self, arrived: Instant, received: Instant) {
        if self.work.is_zero() {
            return;
        }
        let done = self.reserve(arrived, received);
        tokio::time::sleep_until(done).await;
    }

    /// Books the event on the virtual clocks and returns its end. A projector still busy
    /// when the event arrived starts it when it is free (its late wake-ups never lower
    /// the drain rate); an idle one when it takes the event (the work is then the
    /// projector's own time, which lag attribution reports as such).
    fn reserve(&self, arrived: Instant, received: Instant) -> Instant {
        let mut busy_until = self.busy_until.lock().unwrap_or_else(|e| e.into_inner());
        let start = match *busy_until {
            Some(free) if free > arrived => free,
            _ => received.max(arrived),
        };
        let own_done = start + self.work.cost;
        let done = if self.work.contention.is_zero() {
            own_done
        } else {
            let mut free_at = self.shared.free_at.lock().unwrap_or_else(|e| e.into_inner());
            let entered = free_at.map_or(own_done, |free| free.max(own_done));
            let left = entered + self.work.contention;
            *free_at = Some(left);
            left
        };
        *busy_until = Some(done);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn drain_rate_is_the_parallel_or_the_serial_bound() {
        let work = ProjectorWork { cost: 10 * MS, contention: MS };
        assert!((work.drain_rate(1).unwrap() - 1000.0 / 11.0).abs() < 1e-9);
        assert!((work.drain_rate(4).unwrap() - 4000.0 / 11.0).abs() < 1e-9);
        assert!((work.drain_rate(16).unwrap() - 1000.0).abs() < 1e-9);
        assert_eq!(ProjectorWork::default().drain_rate(3), None);
        assert_eq!(ProjectorWork { cost: 5 * MS, contention: Duration::ZERO }.drain_rate(2), Some(400.0));
    }

    /// A backlog of events that all arrived at t0: N clocks finish them at the rate the
    /// formula says, whatever the wake-ups.
    #[test]
    fn virtual_clocks_drain_at_the_known_rate() {
        for (projectors, cost, contention) in [(1, 10, 1), (2, 10, 1), (4, 10, 1), (8, 10, 1), (16, 10, 1), (3, 4, 0)] {
            let work = ProjectorWork { cost: cost * MS, contention: contention * MS };
            let shared = Arc::new(SharedSection::default());
            let clocks: Vec<WorkClock> = (0..projectors).map(|_| WorkClock::new(work, shared.clone())).collect();
            let t0 = Instant::now();
            let events = 1000;
            let mut last = t0;
            for i in 0..events {
                // Round robin, as partitions spread events.
                last = last.max(clocks[i % projectors].reserve(t0, t0));
            }
            let rate = events as f64 / (last - t0).as_secs_f64();
            let truth = work.drain_rate(projectors).unwrap();
            assert!((rate / truth - 1.0).abs() < 0.02, "{projectors} projectors: {rate} vs {truth}");
        }
    }

    #[test]
    fn an_idle_projector_starts_when_it_takes_the_event_a_busy_one_when_free() {
        let work = ProjectorWork { cost: 10 * MS, contention: Duration::ZERO };
        let clock = WorkClock::new(work, Arc::default());
        let t0 = Instant::now();
        assert_eq!(clock.reserve(t0, t0 + 2 * MS), t0 + 12 * MS, "idle: from when it took it");
        assert_eq!(clock.reserve(t0 + 50 * MS, t0 + 50 * MS), t0 + 60 * MS);
        // Arrived while busy: from when the projector was free, however late it woke.
        assert_eq!(clock.reserve(t0 + 55 * MS, t0 + 61 * MS), t0 + 70 * MS);
    }
}
