//! Configuration of the `memory` reference target and the faults it injects.
//!
//! Plain data, shared by the scenario (`[target] kind = "embedded"`) and by
//! `cqrs-bench target serve` flags. Every fault is deterministic from `seed`,
//! and times (`at`) count from the target's fault clock (see `MemoryApp`).

use std::time::Duration;

pub use super::work::ProjectorWork;

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    /// Projector tasks; events are partitioned to them by account (ordered per account).
    pub projectors: usize,
    pub seed: u64,
    pub faults: Faults,
    /// Work per event (issue 10): a target whose capacity at each projector count is known.
    pub work: ProjectorWork,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig { projectors: 2, seed: 0, faults: Faults::default(), work: ProjectorWork::default() }
    }
}

/// A time window of the fault clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub at: Duration,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    /// Every event becomes visible in the read model this long after it was accepted.
    pub projection_delay: Duration,
    /// Uniform extra delay in `0..jitter` per event.
    pub projection_jitter: Duration,
    /// Lose every k-th event on the bus (never applied).
    pub drop_every: Option<u64>,
    /// Deliver every m-th event twice.
    pub duplicate_every: Option<u64>,
    /// Shuffle events within windows of this many events per projector.
    pub reorder_window: Option<usize>,
    /// Projector 0 stops applying events during the window (backlog builds up).
    pub pause_projector: Option<Window>,
    /// Projector 0 crashes at this time and restarts from its last checkpoint:
    /// events after the checkpoint are delivered again (at-least-once).
    pub crash_projector_at: Option<Duration>,
    /// Events between projector checkpoints (what a crash redelivers).
    pub checkpoint_every: u64,
    /// An idempotent projector skips events it already applied; a non-idempotent one applies them again.
    pub idempotent: bool,
    /// Every n-th command is applied, then answered only after `delay`.
    pub slow_commands: Option<SlowCommands>,
    /// Every n-th command fails with 500 and is not applied.
    pub fail_every: Option<u64>,
    /// The whole target stops answering during the window (a stop-the-world pause).
    pub stall: Option<Window>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowCommands {
    pub every: u64,
    pub delay: Duration,
}

/// The bus between the relay and the projectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BusKind {
    /// A Kafka topic (a real broker, or librdkafka's mock cluster), one consumer group;
    /// an account's events stay in one partition, so they are applied in order.
    #[default]
    Kafka,
    /// A Redis stream, one consumer group whose N consumers share every entry; one
    /// account's events may reach two consumers, so they can be applied out of order.
    RedisStreams,
}

impl BusKind {
    pub fn name(self) -> &'static str {
        match self {
            BusKind::Kafka => "kafka",
            BusKind::RedisStreams => "redis-streams",
        }
    }
}
