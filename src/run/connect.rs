//! Connecting to the scenario's target: the embedded reference app or HTTP (checked to
//! answer before the load, so a wrong address fails at once), plus the Kafka producer
//! when operations publish to the bus; and the target's label for the results.

use std::time::Duration;

use anyhow::Context as _;

use crate::exit::{RunFailure, Usage};
use crate::generator;
use crate::scenario::{self, Scenario, TargetKind};
use crate::target::{AnyTarget, EmbeddedTarget, HttpTarget, KafkaTarget, Routed};

/// The run's target, chosen by the scenario (`[target]`, and `[bus]` for Kafka operations).
pub async fn connect(scenario: &Scenario) -> anyhow::Result<Routed> {
    let kafka = match &scenario.bus {
        Some(bus) if scenario.operations.iter().any(|o| o.request.kafka.is_some()) => {
            Some(KafkaTarget::new(bus).map_err(RunFailure)?)
        }
        _ => None,
    };
    Ok(Routed { main: connect_main(scenario).await?, kafka })
}

async fn connect_main(scenario: &Scenario) -> anyhow::Result<AnyTarget> {
    match &scenario.target.kind {
        TargetKind::Embedded(config) => Ok(AnyTarget::Embedded(EmbeddedTarget::start((**config).clone()))),
        TargetKind::Http { base_url, label } => {
            let max_connections = match scenario.load.model {
                scenario::LoadModel::Open { max_in_flight, .. } => max_in_flight,
                scenario::LoadModel::Closed { .. } => schedule_users(scenario),
            };
            let http = HttpTarget::new(base_url, max_connections, scenario.target.max_body).map_err(Usage)?;
            preflight(base_url, label, scenario.target.timeout).await?;
            Ok(AnyTarget::Http(http))
        }
    }
}

fn schedule_users(scenario: &Scenario) -> usize {
    generator::schedule::max_users(&scenario.load.stages).max(1)
}

/// Fails fast (exit 3) when nothing listens at the target, instead of a run of connect errors.
/// Messages name the target by `label` (no userinfo, no `${ENV}` values).
pub(super) async fn preflight(base_url: &str, label: &str, timeout: Duration) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(base_url).with_context(|| format!("target base_url `{label}`")).map_err(Usage)?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(RunFailure(anyhow::anyhow!("target {label} is unreachable: {e}")).into()),
        Err(_) => {
            Err(RunFailure(anyhow::anyhow!("target {label} is unreachable: no connection within {timeout:?}")).into())
        }
    }
}

/// How the results name the target (no userinfo, no `${ENV}` values).
pub fn target_label(scenario: &Scenario) -> String {
    match &scenario.target.kind {
        TargetKind::Embedded(config) => {
            let plural = if config.projectors == 1 { "" } else { "s" };
            format!("embedded:memory ({} projector{plural})", config.projectors)
        }
        TargetKind::Http { label, .. } => label.clone(),
    }
}
