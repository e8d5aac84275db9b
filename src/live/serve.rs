//! The `--metrics-listen` endpoint: a small HTTP/1 server (hyper) answering
//! `GET /metrics` with the live metrics' OpenMetrics text, from before the setup until
//! the run and its `--metrics-linger` are over. It only reads what `LiveMetrics` and
//! `Gauges` hold; a scrape never touches the generator.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::Gauges;
use super::metrics::LiveMetrics;
use crate::exit::Usage;

/// Connections served at once: a scraper or two, and a person with curl; more wait in
/// the listen queue until one closes.
const MAX_CONNECTIONS: usize = 16;
/// The media type of the OpenMetrics text (Prometheus asks for it and parses it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The running endpoint; stops when `stop` is awaited or it is dropped.
pub struct MetricsServer {
    /// The address it listens on (the port chosen when `:0` was asked).
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `listen` (`HOST:PORT`) and serves `metrics`. An address that does not
    /// resolve or cannot be bound (in use, not local) is the user's error (exit 2).
    pub async fn bind(listen: &str, metrics: Arc<LiveMetrics>, gauges: Arc<Gauges>) -> anyhow::Result<MetricsServer> {
        let usage = |why: String| Usage(anyhow::anyhow!("--metrics-listen {listen}: {why}"));
        let addr = tokio::net::lookup_host(listen)
            .await
            .map_err(|e| usage(format!("not a HOST:PORT address ({e})")))?
            .next()
            .ok_or_else(|| usage("the host has no address".into()))?;
        let listener = TcpListener::bind(addr).await.map_err(|e| usage(format!("cannot listen: {e}")))?;
        let addr = listener.local_addr().map_err(|e| usage(format!("cannot listen: {e}")))?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, metrics, gauges, stop.clone()));
        Ok(MetricsServer { addr, stop, task: Some(task) })
    }

    /// Stops listening and closes open connections.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // A run that ends with an error drops the server without `stop`.
        self.stop.cancel();
    }
}

async fn serve(listener: TcpListener, metrics: Arc<LiveMetrics>, gauges: Arc<Gauges>, stop: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors, say: wait instead of spinning on it.
                        tracing::debug!("metrics endpoint: accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (metrics, gauges) = (metrics.clone(), gauges.clone());
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let answer = answer(&request, &metrics, &gauges);
                        async move { Ok::<_, Infallible>(answer) }
                    });
                    // A scraper that hangs up mid-answer is no error of the run.
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
    // Keep-alive connections would otherwise hold the end of the run.
    connections.shutdown().await;
}

fn answer(request: &Request<Incoming>, metrics: &LiveMetrics, gauges: &Gauges) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, CONTENT_TYPE, metrics.encode(gauges)),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET /metrics\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "the metrics are at /metrics\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}
