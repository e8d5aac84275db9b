//! A precise wake-up for a worker's pacing: a Linux timerfd in the worker's event loop.
//!
//! tokio's timer has a 1 ms granularity, so an operation due 50 µs from now would leave
//! up to 1 ms late, and the send lag would measure the timer. A timerfd wakes the same
//! event loop that serves the connections, within the kernel's timer slack (50 µs), and
//! costs no spinning. Where a timerfd cannot be made, tokio's timer is the fallback.
//!
//! A slot under `YIELD_WINDOW` away is not timed: the worker passes once through its
//! event loop and looks again. Measured against nginx, 1 worker (send lag p50 / p99):
//! 10,000/s 0.041 / 0.157 ms with the timer for every slot, 0.022 / 0.082 ms with a 20 µs
//! window at the same CPU (0.54 core), 0.014 / 0.059 ms with 50 µs but 0.69 core; at
//! 80,000/s the timer-only loop fell behind for good (send lag 1 s) and did not with the
//! window. Tried and not kept: waking at most every 100–500 µs to send what fell due in
//! one go (it adds its period to every send lag).

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A slot due sooner than this is waited for by passing once through the event loop (a
/// non-blocking epoll, then the worker looks again) instead of on the timer. Arming a
/// timerfd for every slot cost 17 % of the worker's thread at 60,000/s on this VM (the
/// timer is reprogrammed through the hypervisor), and a timer wakes 25–80 µs late here
/// (cyclictest), so a slot closer than that is sent sooner by not sleeping at all. Slots
/// further apart than this (under 50,000/s per worker) still sleep, costing no CPU.
const YIELD_WINDOW: Duration = Duration::from_micros(20);

/// How much earlier than a slot the timer is set, at most: a tenth of the wait, up to
/// this. An idle worker woken by its timer runs 25–80 µs late on this VM (more when its
/// vCPU was halted); woken early, it passes through its event loop until the slot is due,
/// so the send lag at low rates is the loop's, not the wake-up's. The CPU this costs is
/// at most a tenth of the idle time (2.5 % at 250/s per worker).
const MAX_EARLY: Duration = Duration::from_micros(100);

pub struct Pacer {
    timer: Option<AsyncFd<OwnedFd>>,
    /// The slot the timer is set for, a little before it (a later call for the same slot
    /// keeps it).
    armed: Option<Instant>,
    /// The slot whose early wake-up has fired: waited for in the event loop from then on.
    woken_for: Option<Instant>,
}

impl Pacer {
    /// Must be called inside the worker's runtime.
    // `with_interest` is deprecated for a file descriptor that could be closed behind
    // tokio's back (tokio#8587); this one is an `OwnedFd` that only the `AsyncFd` holds,
    // and the crate forbids the `unsafe` its replacement needs.
    #[allow(deprecated)]
    pub fn new() -> Pacer {
        let timer =
            rustix::time::timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)
                .map_err(io::Error::from)
                .and_then(|fd| AsyncFd::with_interest(fd, Interest::READABLE));
        if let Err(error) = &timer {
            tracing::warn!("no timerfd ({error}): pacing falls back to tokio's 1 ms timer");
        }
        Pacer { timer: timer.ok(), armed: None, woken_for: None }
    }

    /// Waits for `at`, or a little before it: returns at once when it has passed, after
    /// one pass through the event loop when it is under `YIELD_WINDOW` away or its early
    /// wake-up has fired, else when the timer set up to `MAX_EARLY` before it fires. The
    /// caller looks again and calls back while `at` has not come. Cancel-safe: a dropped
    /// wait leaves the timer set, and the next wait for the same instant keeps it.
    pub async fn sleep_until(&mut self, at: Instant) {
        let now = Instant::now();
        if at <= now {
            return;
        }
        if at - now < YIELD_WINDOW || self.woken_for == Some(at) {
            tokio::task::yield_now().await;
            return;
        }
        let Some(timer) = &self.timer else {
            return tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        };
        if self.armed != Some(at) {
            let wait = at - now;
            let wait = wait - (wait / 10).min(MAX_EARLY);
            let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
            let value = Timespec { tv_sec: wait.as_secs() as _, tv_nsec: wait.subsec_nanos() as _ };
            // Setting the timer also clears an expiry not read yet.
            let spec = Itimerspec { it_interval: zero, it_value: value };
            if rustix::time::timerfd_settime(timer.get_ref(), TimerfdTimerFlags::empty(), &spec).is_err() {
                return tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            }
            self.armed = Some(at);
        }
        loop {
            let Ok(mut ready) = timer.readable().await else {
                return tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            };
            let mut expirations = [0u8; 8];
            match rustix::io::read(timer.get_ref(), &mut expirations) {
                Ok(_) => {
                    self.armed = None;
                    self.woken_for = Some(at);
                    return;
                }
                // Readiness left over from an earlier setting.
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(_) => return tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timer fires no earlier than its margin before the instant asked (a tenth of the
    /// wait, at most `MAX_EARLY`), the caller's loop then ends at the instant, and a wait
    /// that was dropped and re-armed for another instant does not fire at the old one.
    /// (Its precision is measured in benches/ceiling.sh, as send lag, not asserted here.)
    #[tokio::test]
    async fn wakes_within_its_margin_and_never_before() {
        let mut pacer = Pacer::new();
        assert!(pacer.timer.is_some(), "timerfd is available on Linux");
        let far = Instant::now() + Duration::from_secs(5);
        let _ = tokio::time::timeout(Duration::from_millis(1), pacer.sleep_until(far)).await;
        for wait_us in [300, 5_000] {
            let at = Instant::now() + Duration::from_micros(wait_us);
            pacer.sleep_until(at).await;
            let margin = (Duration::from_micros(wait_us) / 10).min(MAX_EARLY);
            assert!(Instant::now() + margin >= at, "not before its margin ({wait_us} µs)");
            while Instant::now() < at {
                pacer.sleep_until(at).await;
                assert_eq!(pacer.armed, None, "the rest is waited for in the event loop");
            }
        }
        let soon = Instant::now() + Duration::from_millis(2);
        let _ = tokio::time::timeout(Duration::from_micros(100), pacer.sleep_until(soon)).await;
        let later = Instant::now() + Duration::from_millis(30);
        pacer.sleep_until(later).await;
        assert!(Instant::now() + MAX_EARLY >= later, "the earlier setting was replaced");
    }

    /// A slot closer than `YIELD_WINDOW` is not waited for on the timer: the pacer
    /// returns after one pass through the event loop and leaves the timer unarmed.
    #[tokio::test]
    async fn a_slot_within_the_window_is_not_timed() {
        let mut pacer = Pacer::new();
        pacer.sleep_until(Instant::now() + YIELD_WINDOW / 2).await;
        assert_eq!(pacer.armed, None, "no timer armed for a slot inside the window");
        let far = Instant::now() + Duration::from_millis(5);
        let _ = tokio::time::timeout(Duration::from_micros(100), pacer.sleep_until(far)).await;
        assert_eq!(pacer.armed, Some(far), "a slot further away is timed");
    }
}
