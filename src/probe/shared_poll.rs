//! One read serves every lag probe waiting on the same request (issue 30, item 7).
//!
//! Polling per probe made the probes the load: a keyless list read by every outstanding
//! probe was read `probes × 1/poll_interval` times a second, and the read model fell
//! behind under its own measurement. Probes whose reads are the same (a keyless list:
//! all of them; a keyed query: those on one key; see `Executor::probe_read_identity`)
//! now wait on one [`Board`], and one poller reads for them all, at most once per poll
//! interval.
//!
//! Each probe still judges its own `until` on the shared answer; its lag is the send
//! time of the first shared poll sent at or after its ack whose answer satisfies it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::lag::RELATIVE_RESOLUTION;

/// The pollers running, by the identity of their read: where a waiter joins one.
pub type Pollers<T> = Mutex<HashMap<String, mpsc::Sender<Waiting<T>>>>;

/// Whether the poller of `identity` goes on: when its board is empty, the waiters that
/// joined meanwhile are taken in under the pollers' lock (waiters join under it, so once
/// the poller is out of the map none can join any more); false when still none is left,
/// the poller then removed.
pub fn keeps_polling<T>(
    pollers: &Pollers<T>,
    identity: &str,
    board: &mut Board<T>,
    joined: &mut mpsc::Receiver<Waiting<T>>,
) -> bool {
    if !board.is_empty() {
        return true;
    }
    let mut pollers = pollers.lock().unwrap_or_else(|e| e.into_inner());
    while let Ok(waiting) = joined.try_recv() {
        board.join(waiting);
    }
    if board.is_empty() {
        pollers.remove(identity);
        return false;
    }
    true
}

/// One probe waiting for the read model to show its command.
#[derive(Debug)]
pub struct Waiting<T> {
    pub acked: Instant,
    pub deadline: Instant,
    pub probe: T,
}

/// The probes waiting on one request, and what a poll of it decides for them.
#[derive(Debug)]
pub struct Board<T> {
    waiting: Vec<Waiting<T>>,
}

impl<T> Default for Board<T> {
    fn default() -> Self {
        Board { waiting: Vec::new() }
    }
}

impl<T> Board<T> {
    pub fn join(&mut self, waiting: Waiting<T>) {
        self.waiting.push(waiting);
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Takes out the probes past their deadline at `now` (late).
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        self.take_where(|w| now > w.deadline).into_iter().map(|w| w.probe).collect()
    }

    /// A poll sent at `sent` was answered: takes out every probe acknowledged at or
    /// before `sent` for which `shows` holds on the answer, with its lag. A probe
    /// acknowledged after the poll was sent waits for the next one.
    pub fn answered(&mut self, sent: Instant, mut shows: impl FnMut(&T) -> bool) -> Vec<(T, Duration)> {
        self.take_where(|w| w.acked <= sent && shows(&w.probe))
            .into_iter()
            .map(|w| (w.probe, sent.duration_since(w.acked)))
            .collect()
    }

    /// Takes out the probes nobody waits for any more (their task was aborted).
    pub fn forget(&mut self, abandoned: impl Fn(&T) -> bool) {
        self.take_where(|w| abandoned(&w.probe));
    }

    /// When to poll next, the last poll sent at `last_sent` (now when never polled).
    /// The relative-resolution back-off follows the youngest probe: once even it has
    /// waited `RELATIVE_RESOLUTION` intervals, polls come every 1/20 of its wait, so
    /// every probe's lag is still known to within max(interval, 5 % of its lag), and a
    /// read model seconds behind is read less often. (Following the oldest would let one
    /// lost event coarsen every other probe on the request.)
    pub fn next_poll(&self, last_sent: Option<Instant>, interval: Duration) -> Instant {
        let Some(last_sent) = last_sent else {
            return Instant::now();
        };
        let youngest_wait =
            self.waiting.iter().map(|w| last_sent.saturating_duration_since(w.acked)).min().unwrap_or_default();
        last_sent + interval.max(youngest_wait / RELATIVE_RESOLUTION)
    }

    fn take_where(&mut self, mut pick: impl FnMut(&Waiting<T>) -> bool) -> Vec<Waiting<T>> {
        let (taken, kept) = std::mem::take(&mut self.waiting).into_iter().partition(|w| pick(w));
        self.waiting = kept;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn board(t0: Instant, acks_ms: &[(&'static str, u64)]) -> Board<&'static str> {
        let mut board = Board::default();
        for &(probe, at) in acks_ms {
            board.join(Waiting { acked: t0 + ms(at), deadline: t0 + ms(at + 1000), probe });
        }
        board
    }

    #[test]
    fn a_poll_sent_before_the_ack_does_not_count() {
        let t0 = Instant::now();
        let mut board = board(t0, &[("early", 0), ("late", 20)]);
        // Sent at 10 ms: the answer shows both commands, but `late` was acked at 20 ms.
        let found = board.answered(t0 + ms(10), |_| true);
        assert_eq!(found, [("early", ms(10))]);
        assert!(!board.is_empty());
        let found = board.answered(t0 + ms(25), |_| true);
        assert_eq!(found, [("late", ms(5))]);
        assert!(board.is_empty());
    }

    #[test]
    fn each_probe_gets_the_first_matching_poll_after_its_ack() {
        let t0 = Instant::now();
        let mut board = board(t0, &[("a", 0), ("b", 3), ("c", 4)]);
        // The read model shows `a` from the 5 ms poll, `b` from 15 ms, `c` from 25 ms.
        let shown_from = |probe: &&str| match *probe {
            "a" => 5,
            "b" => 15,
            _ => 25,
        };
        let mut lags = Vec::new();
        for sent in [5, 10, 15, 20, 25, 30] {
            lags.extend(board.answered(t0 + ms(sent), |p| sent >= shown_from(p)));
        }
        assert_eq!(lags, [("a", ms(5)), ("b", ms(12)), ("c", ms(21))]);
    }

    #[test]
    fn probes_past_their_deadline_are_late() {
        let t0 = Instant::now();
        let mut board = board(t0, &[("old", 0), ("new", 500)]);
        assert!(board.expire(t0 + ms(1000)).is_empty()); // not past it yet
        assert_eq!(board.expire(t0 + ms(1001)), ["old"]);
        assert_eq!(board.answered(t0 + ms(1001), |_| true), [("new", ms(501))]);
    }

    #[test]
    fn polls_back_off_only_when_the_youngest_probe_has_waited_long() {
        let t0 = Instant::now();
        let interval = ms(5);
        let mut board = board(t0, &[("old", 0)]);
        // Waited 2 s: every 1/20 of that.
        assert_eq!(board.next_poll(Some(t0 + ms(2000)), interval), t0 + ms(2100));
        // A new probe keeps the poll interval for everyone.
        board.join(Waiting { acked: t0 + ms(1990), deadline: t0 + ms(5000), probe: "new" });
        assert_eq!(board.next_poll(Some(t0 + ms(2000)), interval), t0 + ms(2005));
        // Nobody waiting: the interval (a poller idles one interval before it ends).
        let empty = Board::<&str>::default();
        assert_eq!(empty.next_poll(Some(t0), interval), t0 + interval);
    }

    #[test]
    fn forgotten_probes_leave_the_board() {
        let t0 = Instant::now();
        let mut board = board(t0, &[("gone", 0), ("kept", 0)]);
        board.forget(|p| *p == "gone");
        assert_eq!(board.answered(t0 + ms(1), |_| true), [("kept", ms(1))]);
    }
}
