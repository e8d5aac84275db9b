//! `cqrs-bench target serve`: a reference target over HTTP, with its faults as flags.
//!
//! The harness serves `memory` itself; `pg-sync`, `outbox` and `event-sourced` live in the
//! workspace crate `crates/reference` (binary `cqrs-bench-reference`), so the harness a
//! user installs does not build their databases' and migrations' crates. For those, `target
//! serve` checks the flags it shares with them here, then hands its arguments to that binary
//! (found beside this one, else on PATH) by replacing this process with it: the same pid,
//! signals and output, as if it were served here.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::config::{BusKind, Faults, MemoryConfig, SlowCommands, Window};
use super::memory::MemoryApp;
use super::work::ProjectorWork;

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}`: {e} (e.g. 250ms, 2s)"))
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Reference system to serve: `memory` (in-process), `pg-sync` (Postgres, read model in
    /// the command's transaction), `outbox` (Postgres + outbox, relay to Kafka or a Redis
    /// stream, projectors to Redis), `event-sourced` (Postgres event store, checkpointed projector).
    #[arg(long, default_value = "memory")]
    pub variant: String,
    /// pg-sync, outbox, event-sourced: the Postgres to use.
    #[arg(long, env = "CQRS_BENCH_PG_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub pg_url: String,
    /// Schema of this target's tables (created if missing), so runs don't share data; the
    /// outbox variant also names its Redis key prefix, topic and consumer group after it.
    /// [default: cqrs_bench_<variant>, e.g. cqrs_bench_pg_sync]
    #[arg(long)]
    pub schema: Option<String>,
    /// pg-sync, outbox, event-sourced: connections in the pool.
    #[arg(long, default_value_t = 16)]
    pub pool: usize,
    /// outbox: the Redis of the read model.
    #[arg(long, env = "CQRS_BENCH_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// outbox: what carries the events from the relay to the projectors: a Kafka topic, or
    /// a Redis stream (in the read model's Redis) whose consumer group the projectors share.
    #[arg(long, value_enum, default_value_t = BusKind::Kafka)]
    pub bus: BusKind,
    /// outbox: Kafka bootstrap servers, or `mock` to start librdkafka's mock cluster in
    /// this process (its address is printed for the harness's `[bus]` probe).
    #[arg(long, env = "CQRS_BENCH_KAFKA_BROKERS", default_value = "mock")]
    pub kafka: String,
    /// outbox: partitions of the topic when it is created.
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// memory, outbox: time each projector spends per event (awaited work, such as a call
    /// to another service); one instance then applies at most 1/COST events per second.
    #[arg(long, value_parser = duration)]
    pub projector_cost: Option<Duration>,
    /// memory, outbox: time per event in a section all projectors share (one at a time);
    /// the group then applies at most 1/CONTENTION events per second, whatever its size.
    #[arg(long, value_parser = duration)]
    pub projector_contention: Option<Duration>,
    /// outbox: how often the relay looks for unsent outbox rows when it found none.
    #[arg(long, value_parser = duration, default_value = "2ms")]
    pub relay_poll: Duration,
    /// outbox: the relay publishes an outbox row no earlier than this after its commit
    /// (a slow relay: the lag shows in the publish stage).
    #[arg(long, value_parser = duration)]
    pub relay_delay: Option<Duration>,
    /// event-sourced: a snapshot every K events of a stream.
    #[arg(long, default_value_t = 50)]
    pub snapshot_every: u64,
    /// event-sourced: how often the projector looks for new events.
    #[arg(long, value_parser = duration, default_value = "10ms")]
    pub projection_poll: Duration,
    /// Address to listen on (port 0: any free port; the first line printed names it).
    #[arg(long, default_value = "127.0.0.1:3030")]
    pub listen: String,
    /// Projector tasks (outbox: consumer instances in the group).
    #[arg(long, default_value_t = 2)]
    pub projectors: usize,
    /// Seed of every injected fault.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Events become visible this long after acceptance.
    #[arg(long, value_parser = duration)]
    pub projection_delay: Option<Duration>,
    /// Uniform extra delay per event in 0..JITTER.
    #[arg(long, value_parser = duration)]
    pub projection_jitter: Option<Duration>,
    /// Lose every K-th event on the bus.
    #[arg(long, value_name = "K")]
    pub drop_every: Option<u64>,
    /// Deliver every M-th event twice.
    #[arg(long, value_name = "M")]
    pub duplicate_every: Option<u64>,
    /// Shuffle events within windows of N per projector.
    #[arg(long, value_name = "N")]
    pub reorder_window: Option<usize>,
    /// Pause projector 0 at this time (fault clock) ...
    #[arg(long, value_parser = duration, requires = "pause_for")]
    pub pause_at: Option<Duration>,
    /// ... for this long.
    #[arg(long, value_parser = duration, requires = "pause_at")]
    pub pause_for: Option<Duration>,
    /// Crash projector 0 at this time; it restarts from its last checkpoint.
    #[arg(long, value_parser = duration)]
    pub crash_at: Option<Duration>,
    /// Events between projector checkpoints.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: u64,
    /// outbox: also commit a projector's offsets this long after its last commit.
    #[arg(long, value_parser = duration, default_value = "1s")]
    pub commit_interval: Duration,
    /// Projectors apply redelivered events again (default: idempotent, they skip them).
    #[arg(long)]
    pub non_idempotent: bool,
    /// Every N-th command is applied, then answered after --slow-delay.
    #[arg(long, requires = "slow_delay")]
    pub slow_every: Option<u64>,
    #[arg(long, value_parser = duration, requires = "slow_every")]
    pub slow_delay: Option<Duration>,
    /// Every N-th command fails with 500 and is not applied.
    #[arg(long)]
    pub fail_every: Option<u64>,
    /// Stop the world at this time ...
    #[arg(long, value_parser = duration, requires = "stall_for")]
    pub stall_at: Option<Duration>,
    /// ... for this long.
    #[arg(long, value_parser = duration, requires = "stall_at")]
    pub stall_for: Option<Duration>,
}

/// The schema a variant uses when `--schema` is not given: one per variant (issue 12),
/// since each migrates its own tables (`crates/reference/migrations/<variant>/`) and two
/// variants on one schema refuse each other's migrations.
pub fn default_schema(variant: &str) -> String {
    format!("cqrs_bench_{}", variant.replace('-', "_"))
}

impl ServeArgs {
    /// `--projector-cost` and `--projector-contention`.
    pub fn work(&self) -> ProjectorWork {
        ProjectorWork {
            cost: self.projector_cost.unwrap_or_default(),
            contention: self.projector_contention.unwrap_or_default(),
        }
    }

    /// `--schema`, or the variant's own default.
    pub fn schema(&self) -> String {
        self.schema.clone().unwrap_or_else(|| default_schema(&self.variant))
    }

    pub fn config(&self) -> anyhow::Result<MemoryConfig> {
        for (name, value) in [
            ("drop-every", self.drop_every),
            ("duplicate-every", self.duplicate_every),
            ("slow-every", self.slow_every),
            ("fail-every", self.fail_every),
        ] {
            anyhow::ensure!(value != Some(0), "--{name} must be 1 or more");
        }
        anyhow::ensure!(self.projectors >= 1, "--projectors must be 1 or more");
        let window = |at: Option<Duration>, duration: Option<Duration>| {
            at.zip(duration).map(|(at, duration)| Window { at, duration })
        };
        Ok(MemoryConfig {
            projectors: self.projectors,
            seed: self.seed,
            work: self.work(),
            faults: Faults {
                projection_delay: self.projection_delay.unwrap_or_default(),
                projection_jitter: self.projection_jitter.unwrap_or_default(),
                drop_every: self.drop_every,
                duplicate_every: self.duplicate_every,
                reorder_window: self.reorder_window.filter(|n| *n > 1),
                pause_projector: window(self.pause_at, self.pause_for),
                crash_projector_at: self.crash_at,
                checkpoint_every: self.checkpoint_every.max(1),
                idempotent: !self.non_idempotent,
                slow_commands: self.slow_every.zip(self.slow_delay).map(|(every, delay)| SlowCommands { every, delay }),
                fail_every: self.fail_every,
                stall: window(self.stall_at, self.stall_for),
            },
        })
    }
}

/// Serves `config` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: MemoryConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = MemoryApp::start(config);
    let router = app.router();
    let result = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    app.shutdown();
    result
}

/// A bad flag of `target serve` or `replay`: the user's input, exit 2 (not 3). Its own
/// marker rather than `exit::Usage`, so the reference names nothing of the harness;
/// `exit::code_for` knows it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BadFlag(pub anyhow::Error);

/// A bad flag: exit 2, not 3.
pub fn usage(e: anyhow::Error) -> anyhow::Error {
    BadFlag(e).into()
}

/// The variants `crates/reference` serves (`cqrs-bench-reference`).
pub const SERVED_APART: [&str; 3] = ["pg-sync", "outbox", "event-sourced"];

/// The binary of `crates/reference`.
pub const REFERENCE_BIN: &str = "cqrs-bench-reference";

/// `cqrs-bench target serve`: `memory` here, the other variants by `cqrs-bench-reference`.
pub async fn run_serve(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if args.bus != BusKind::Kafka && args.variant != "outbox" {
        return Err(usage(anyhow::anyhow!("--bus is the outbox variant's; the {} variant has no bus", args.variant)));
    }
    match args.variant.as_str() {
        "memory" => {
            let config = args.config().map_err(usage)?;
            let listener = bind(&args.listen).await?;
            serve(listener, config, shutdown).await.context("serving")
        }
        variant if SERVED_APART.contains(&variant) => Err(hand_over("serve", variant)),
        other => {
            Err(usage(anyhow::anyhow!("unknown variant `{other}`; available: memory, pg-sync, outbox, event-sourced")))
        }
    }
}

/// Replaces this process with `cqrs-bench-reference SUBCOMMAND <this command's arguments>`;
/// returns only the error of not finding or not starting it (exit 3: the run could not be
/// carried out), which says what to install.
fn hand_over(subcommand: &str, variant: &str) -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    let Some(binary) = reference_binary() else {
        let beside = std::env::current_exe().map_or_else(|_| "this binary".to_owned(), |p| p.display().to_string());
        return anyhow::anyhow!(
            "the {variant} variant is served by `{REFERENCE_BIN}`, the workspace's `crates/reference` \
             (the harness alone serves `memory`), found neither beside {beside} nor on PATH: from a \
             checkout, `cargo build --release` builds both, or install it with \
             `cargo install --locked --path crates/reference`"
        );
    };
    let _ = std::io::stdout().flush();
    let error = std::process::Command::new(&binary).arg(subcommand).args(arguments_after(subcommand)).exec();
    anyhow::anyhow!("starting {}: {error}", binary.display())
}

/// `cqrs-bench-reference` beside this binary (a checkout's target/…/, or ~/.cargo/bin), else
/// the first on PATH.
fn reference_binary() -> Option<std::path::PathBuf> {
    let beside = std::env::current_exe().ok().map(|exe| exe.with_file_name(REFERENCE_BIN));
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join(REFERENCE_BIN)).collect::<Vec<_>>())
        .unwrap_or_default();
    beside.into_iter().chain(on_path).find(|candidate| candidate.is_file())
}

/// This process's arguments after `target SUBCOMMAND`, as typed (values from the environment,
/// such as CQRS_BENCH_PG_URL, reach the child through its environment).
fn arguments_after(subcommand: &str) -> Vec<std::ffi::OsString> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let at = args.windows(2).position(|pair| pair[0] == "target" && pair[1] == subcommand);
    at.map_or_else(Vec::new, |at| args[at + 2..].to_vec())
}

impl ServeArgs {
    /// Refuses fault flags the variant does not implement (a fault silently ignored
    /// would make a run look healthier than asked).
    pub fn allow_faults(&self, variant: &str, allowed: &[&str]) -> anyhow::Result<()> {
        let set = [
            ("projection-delay", self.projection_delay.is_some()),
            ("projection-jitter", self.projection_jitter.is_some()),
            ("drop-every", self.drop_every.is_some()),
            ("duplicate-every", self.duplicate_every.is_some()),
            ("reorder-window", self.reorder_window.is_some()),
            ("pause-at", self.pause_at.is_some()),
            ("crash-at", self.crash_at.is_some()),
            ("non-idempotent", self.non_idempotent),
            ("slow-every", self.slow_every.is_some()),
            ("fail-every", self.fail_every.is_some()),
            ("stall-at", self.stall_at.is_some()),
            ("projector-cost", self.projector_cost.is_some()),
            ("projector-contention", self.projector_contention.is_some()),
            ("relay-delay", self.relay_delay.is_some()),
        ];
        let refused: Vec<String> = set
            .iter()
            .filter(|(name, on)| *on && !allowed.contains(name))
            .map(|(name, _)| format!("--{name}"))
            .collect();
        anyhow::ensure!(
            refused.is_empty(),
            "the {variant} variant does not inject {}; the memory variant does{}",
            refused.join(", "),
            if allowed.is_empty() { String::new() } else { format!(" (this one supports --{})", allowed.join(", --")) }
        );
        Ok(())
    }
}

/// Binds and prints `listening on http://ADDR` (tests read it to find port 0's port).
pub async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{address}")?;
    stdout.flush()?;
    Ok(listener)
}

/// `cqrs-bench target replay`: rebuild an event-sourced read model from its store.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayArgs {
    /// The variant whose projection is rebuilt (only `event-sourced` keeps an event store).
    #[arg(long, default_value = "event-sourced")]
    pub variant: String,
    #[arg(long, env = "CQRS_BENCH_PG_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub pg_url: String,
    /// The served target's schema [default: cqrs_bench_<variant>, as `target serve`'s].
    #[arg(long)]
    pub schema: Option<String>,
}

impl ReplayArgs {
    /// Only the event-sourced variant keeps an event store.
    pub fn check_variant(&self) -> anyhow::Result<()> {
        if self.variant == "event-sourced" {
            Ok(())
        } else {
            Err(usage(anyhow::anyhow!("only the event-sourced variant can replay")))
        }
    }

    /// `--schema`, or the variant's own default.
    pub fn schema(&self) -> String {
        self.schema.clone().unwrap_or_else(|| default_schema(&self.variant))
    }
}

/// `cqrs-bench target replay`: by `cqrs-bench-reference replay`, which keeps the event store.
pub async fn run_replay(args: ReplayArgs) -> anyhow::Result<()> {
    args.check_variant()?;
    Err(hand_over("replay", &args.variant))
}
