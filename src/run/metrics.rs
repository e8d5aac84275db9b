//! `--metrics-listen` and `--live`: the endpoint that serves a run's live metrics and live
//! view, fed through the run's gauges, and how long it stays up after the run.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::RunIds;
use crate::exit::Usage;
use crate::scenario::Scenario;
use crate::{live, report, results};

/// `--metrics-listen`: the run's live metrics, fed through its gauges, and their endpoint.
pub(super) async fn serve_metrics(
    listen: &str,
    scenario: &Scenario,
    ids: RunIds,
) -> anyhow::Result<(Arc<live::Gauges>, live::serve::MetricsServer)> {
    let operations: Vec<_> = scenario.operations.iter().map(|o| (o.name.clone(), o.kind)).collect();
    let metrics = Arc::new(live::metrics::LiveMetrics::new(&scenario.name, ids.run_id, &operations));
    let step = results::intervals::timeline_step(scenario.load_duration()).map_err(Usage)?;
    let view = Arc::new(report::live_view::LiveView::new(scenario, step));
    let gauges = Arc::new(live::Gauges::with_live(metrics.clone(), view));
    let server = live::serve::MetricsServer::bind(listen, metrics, gauges.clone()).await?;
    eprintln!("metrics: http://{}/metrics", server.addr);
    eprintln!("live view: http://{}/", server.addr);
    Ok((gauges, server))
}

/// `--metrics-linger`: the endpoint stays up with the final totals (a signal ends it).
pub(super) async fn linger(server: live::serve::MetricsServer, linger: Duration, shutdown: &CancellationToken) {
    if !linger.is_zero() && !shutdown.is_cancelled() {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(linger) => {}
        }
    }
    server.stop().await;
}
