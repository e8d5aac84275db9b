//! `serve` and `replay` of the services' variants: their flags checked, the app connected
//! (migrating its schema), then served until shutdown.

use std::io::Write as _;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use cqrs_bench::reference::{BusKind, ReplayArgs, ServeArgs, Window, bind, usage};

use crate::event_sourced::EventSourcedApp;
use crate::outbox::{MockBroker, OutboxApp, OutboxConfig};

/// `--schema` goes into SQL as it is: only a plain lowercase name passes.
fn checked_schema(schema: &str) -> anyhow::Result<()> {
    if crate::postgres::valid_schema(schema) {
        Ok(())
    } else {
        Err(usage(anyhow::anyhow!("--schema `{schema}`: use lowercase letters, digits and _")))
    }
}

/// `cqrs-bench-reference serve` (and so `cqrs-bench target serve` of these variants);
/// `memory` too, as the harness serves it.
pub async fn run_serve(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if args.bus != BusKind::Kafka && args.variant != "outbox" {
        return Err(usage(anyhow::anyhow!("--bus is the outbox variant's; the {} variant has no bus", args.variant)));
    }
    match args.variant.as_str() {
        "memory" => cqrs_bench::reference::run_serve(args, shutdown).await,
        "pg-sync" => {
            args.allow_faults("pg-sync", &[]).map_err(usage)?;
            let schema = args.schema();
            checked_schema(&schema)?;
            let app = crate::pg_sync::PgSyncApp::connect(&args.pg_url, &schema, args.pool).await?;
            let listener = bind(&args.listen).await?;
            axum::serve(listener, app.router())
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .context("serving")
        }
        "outbox" => serve_outbox(&args, shutdown).await,
        "event-sourced" => {
            args.allow_faults("event-sourced", &[]).map_err(usage)?;
            let app = event_sourced(&args.pg_url, &args.schema(), args.pool, args.snapshot_every).await?;
            let projector = app.spawn_projector(args.projection_poll, shutdown.clone());
            let listener = bind(&args.listen).await?;
            let served = axum::serve(listener, app.router()).with_graceful_shutdown(shutdown.cancelled_owned()).await;
            projector.abort();
            served.context("serving")
        }
        other => {
            Err(usage(anyhow::anyhow!("unknown variant `{other}`; available: memory, pg-sync, outbox, event-sourced")))
        }
    }
}
/// `--variant outbox`: the bus (Kafka's mock when asked), the app, then the listener.
async fn serve_outbox(args: &ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    args.allow_faults(
        "outbox",
        &[
            "projection-delay",
            "pause-at",
            "crash-at",
            "non-idempotent",
            "projector-cost",
            "projector-contention",
            "relay-delay",
        ],
    )
    .map_err(usage)?;
    let schema = args.schema();
    checked_schema(&schema)?;
    if args.partitions < 1 {
        return Err(usage(anyhow::anyhow!("--partitions must be 1 or more")));
    }
    let mut config = OutboxConfig {
        pg_url: args.pg_url.clone(),
        schema,
        pool: args.pool,
        redis_url: args.redis_url.clone(),
        bus: args.bus,
        brokers: String::new(),
        partitions: args.partitions,
        projectors: args.projectors.max(1),
        idempotent: !args.non_idempotent,
        checkpoint_every: args.checkpoint_every.max(1),
        commit_interval: args.commit_interval,
        projection_delay: args.projection_delay.unwrap_or_default(),
        work: args.work(),
        crash_at: args.crash_at,
        pause: args.pause_at.zip(args.pause_for).map(|(at, duration)| Window { at, duration }),
        relay_poll: args.relay_poll,
        relay_delay: args.relay_delay.unwrap_or_default(),
    };
    // The mock cluster lives as long as this function: it is the broker.
    let kafka = args.bus == BusKind::Kafka;
    let mock =
        (kafka && args.kafka == "mock").then(|| MockBroker::start(&config.topic(), config.partitions)).transpose()?;
    config.brokers = mock.as_ref().map_or_else(|| args.kafka.clone(), MockBroker::bootstrap_servers);
    let app = OutboxApp::start(config.clone()).await?;
    let mut stdout = std::io::stdout();
    if kafka {
        writeln!(stdout, "kafka {} topic {} group {}", config.brokers, config.topic(), config.group())?;
    } else {
        // No URL: it may hold a password.
        writeln!(stdout, "redis-streams stream {} group {}", config.stream(), config.group())?;
    }
    let listener = bind(&args.listen).await?;
    let served = axum::serve(listener, app.router()).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    app.shutdown().await;
    drop(mock);
    served.context("serving")
}

async fn event_sourced(url: &str, schema: &str, pool: usize, snapshot_every: u64) -> anyhow::Result<EventSourcedApp> {
    checked_schema(schema)?;
    EventSourcedApp::connect(url, schema, pool, snapshot_every).await
}

/// Replays and prints `replayed N events in S s (R events/s)`.
pub async fn run_replay(args: ReplayArgs) -> anyhow::Result<()> {
    args.check_variant()?;
    let app = event_sourced(&args.pg_url, &args.schema(), 4, 50).await?;
    let replay = app.replay().await.context("replaying")?;
    println!(
        "replayed {} events in {:.3} s ({:.0} events/s)",
        replay.events,
        replay.elapsed.as_secs_f64(),
        replay.events_per_s()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use cqrs_bench::reference::{SERVED_APART, default_schema};

    /// Issue 12: each variant's default schema is one `--schema` accepts (the command line
    /// side is in the harness's `cli` tests).
    #[test]
    fn each_variant_has_its_own_default_schema() {
        for variant in SERVED_APART {
            assert!(crate::postgres::valid_schema(&default_schema(variant)), "{variant}");
        }
    }
}
