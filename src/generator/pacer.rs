//! A precise wake-up for a worker's pacing: a Linux timerfd in the worker's event loop.
//!
//! tokio's timer has a 1 ms granularity, so an operation due 50 µs from now would leave
//! up to 1 ms late, and the send lag would measure the timer. A timerfd wakes the same
//! event loop that serves the connections, within the kernel's timer slack (50 µs), and
//! costs no spinning. Where a timerfd cannot be made, tokio's timer is the fallback.
//!
//! Tried and not kept (issue 11, measured against nginx at 10,000–80,000/s): waking at
//! most every 100–500 µs to send what fell due in one go, and yielding to the event loop
//! instead of sleeping when the next slot is under 50 µs away. Neither moved the send-lag
//! p99, which on this 2-core VM is set by millisecond stalls of the machine (cyclictest:
//! up to 7 ms on an idle machine), and spinning costs CPU at moderate rates.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub struct Pacer {
    timer: Option<AsyncFd<OwnedFd>>,
    /// The instant the timer is set for (a later call for the same instant keeps it).
    armed: Option<Instant>,
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
        Pacer { timer: timer.ok(), armed: None }
    }

    /// Returns at `at`, or at once when it has passed. Cancel-safe: a dropped wait leaves
    /// the timer set, and the next wait for the same instant keeps it.
    pub async fn sleep_until(&mut self, at: Instant) {
        let now = Instant::now();
        if at <= now {
            return;
        }
        let Some(timer) = &self.timer else {
            return tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        };
        if self.armed != Some(at) {
            let wait = at - now;
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
    use std::time::Duration;

    use super::*;

    /// The timer never wakes before the instant asked, and a wait that was dropped and
    /// re-armed for another instant does not fire at the old one. (Its precision is
    /// measured in benches/ceiling.sh, as send lag, not asserted here.)
    #[tokio::test]
    async fn never_wakes_early() {
        let mut pacer = Pacer::new();
        assert!(pacer.timer.is_some(), "timerfd is available on Linux");
        let far = Instant::now() + Duration::from_secs(5);
        let _ = tokio::time::timeout(Duration::from_millis(1), pacer.sleep_until(far)).await;
        for _ in 0..20 {
            let at = Instant::now() + Duration::from_micros(300);
            pacer.sleep_until(at).await;
            assert!(Instant::now() >= at, "never early");
        }
        let soon = Instant::now() + Duration::from_millis(2);
        let _ = tokio::time::timeout(Duration::from_micros(100), pacer.sleep_until(soon)).await;
        let later = Instant::now() + Duration::from_millis(30);
        pacer.sleep_until(later).await;
        assert!(Instant::now() >= later, "the earlier setting was replaced");
    }
}
