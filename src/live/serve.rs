//! The `--metrics-listen` endpoint: a small HTTP/1 server (hyper) answering
//! `GET /metrics` with the live metrics' OpenMetrics text, and `GET /` with the live view
//! (its page polls `GET /live.json`, `view`), from before the setup until the run and its
//! `--metrics-linger` are over. It only reads what `LiveMetrics` and
//! `Gauges` hold; a scrape never touches the generator.
//!
//! Bounded (issue 32: 16 idle connections held it, and no scrape was answered): at most
//! [`MAX_CONNECTIONS`] connections at once, and each must send a whole request head
//! within [`HEADER_TIMEOUT`] of opening or of its last answer, else it is closed; a
//! connection lives at most [`MAX_CONNECTION_LIFE`] (then it is closed after the answer
//! in progress). So connections that send nothing delay a scrape by at most
//! [`HEADER_TIMEOUT`] per [`MAX_CONNECTIONS`] of them queued before it, and never hold
//! the endpoint.

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
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::Gauges;
use super::metrics::LiveMetrics;
use crate::exit::Usage;

/// The live page's Content-Security-Policy: report.html's, plus requests to its own
/// server (the polls of `/live.json`), and nothing else.
pub const CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'";

/// Connections served at once: scrapers, and people with curl; more wait in the listen
/// queue until one closes (at most [`HEADER_TIMEOUT`] when the open ones are idle).
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send a whole request head, from its opening or its
/// last answer: an idle keep-alive connection is closed after it (a scraper reconnects).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection is served (a client that never reads its answers would hold
/// its slot); the answer in progress is finished first, within [`CLOSE_GRACE`].
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(60);
/// How long an answer in progress may take once a connection is to close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
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
                connections.spawn(serve_connection(stream, metrics, gauges));
            }
        }
    }
    // Keep-alive connections would otherwise hold the end of the run.
    connections.shutdown().await;
}

/// One connection, within [`HEADER_TIMEOUT`] per request head and [`MAX_CONNECTION_LIFE`].
async fn serve_connection(stream: tokio::net::TcpStream, metrics: Arc<LiveMetrics>, gauges: Arc<Gauges>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let (metrics, gauges) = (metrics.clone(), gauges.clone());
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        async move {
            if path == "/metrics" {
                return Ok::<_, Infallible>(answer(&method, &path, &metrics, &gauges));
            }
            // The live view's answers build chart specs (~20 ms for 3,600 rows in a debug
            // build): on a blocking thread, not on the runtime's, where lag probes time
            // their reads and the collector closes seconds.
            let built = tokio::task::spawn_blocking(move || answer(&method, &path, &metrics, &gauges)).await;
            Ok(built.unwrap_or_else(|_| {
                let mut failed = Response::new(Full::new(Bytes::from_static(b"the live view failed\n")));
                *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                failed
            }))
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    // A scraper that hangs up mid-answer, or times out, is no error of the run.
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = tokio::time::sleep(MAX_CONNECTION_LIFE) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
}

fn answer(method: &Method, path: &str, metrics: &LiveMetrics, gauges: &Gauges) -> Response<Full<Bytes>> {
    let read = matches!(method, &Method::GET | &Method::HEAD);
    let live = gauges.live.as_deref();
    let (status, content_type, body) = match (read, path, live) {
        (true, "/metrics", _) => (StatusCode::OK, CONTENT_TYPE, metrics.encode(gauges)),
        // The live view (issue 35): its page and the snapshot the page polls.
        (true, "/", Some(live)) => (StatusCode::OK, "text/html; charset=utf-8", live.page(gauges)),
        (true, "/live.json", Some(live)) => (StatusCode::OK, "application/json", live.json(gauges)),
        (false, "/metrics" | "/" | "/live.json", _) => {
            (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET and HEAD\n".to_owned())
        }
        _ => (StatusCode::NOT_FOUND, "text/plain", "the metrics are at /metrics, the live view at /\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    // Every answer is the run as it is now; the page may fetch its own server only.
    headers.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    headers.insert(hyper::header::CONTENT_SECURITY_POLICY, hyper::header::HeaderValue::from_static(CSP));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;

    /// A scrape over a fresh connection: the status line.
    async fn scrape(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_string()
    }

    /// Issue 32: idle connections, more than the limit, held open for 30 s, do not keep a
    /// scrape from being answered: the server closes them after HEADER_TIMEOUT (5 s), so
    /// the scrape is answered long before the clients would have let go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_do_not_block_a_scrape() {
        let metrics = Arc::new(LiveMetrics::new("t", 1, &[]));
        let gauges = Arc::new(Gauges::with_metrics(metrics.clone()));
        let server = MetricsServer::bind("127.0.0.1:0", metrics, gauges).await.unwrap();
        let addr = server.addr;
        // Twice the limit: the first MAX_CONNECTIONS are accepted, the rest wait in the queue.
        let mut idle = Vec::new();
        for _ in 0..2 * MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let began = Instant::now();
        let held_for = Duration::from_secs(30);
        let answered = tokio::time::timeout(held_for, scrape(addr)).await;
        let status = answered.expect("the scrape waited for the idle connections to be let go");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        eprintln!("scrape answered after {:.1?} behind {} idle connections", began.elapsed(), idle.len());
        // And the server closed the idle ones it had accepted: reading gives the end.
        let mut closed = 0;
        for stream in &mut idle {
            let mut byte = [0u8; 1];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await {
                closed += 1;
            }
        }
        assert!(closed >= MAX_CONNECTIONS, "{closed} of {} idle connections closed by the server", idle.len());
        server.stop().await;
    }

    /// The case: 16 idle connections (the old limit) leave room for a scrape,
    /// answered while they are all still open (before the server would close them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixteen_idle_connections_leave_room_for_a_scrape() {
        let metrics = Arc::new(LiveMetrics::new("t", 1, &[]));
        let gauges = Arc::new(Gauges::with_metrics(metrics.clone()));
        let server = MetricsServer::bind("127.0.0.1:0", metrics, gauges).await.unwrap();
        let mut idle = Vec::new();
        for _ in 0..16 {
            idle.push(TcpStream::connect(server.addr).await.unwrap());
        }
        let status = tokio::time::timeout(Duration::from_secs(30), scrape(server.addr)).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut open = 0;
        for stream in &mut idle {
            let mut byte = [0u8; 1];
            // Nothing to read and not closed: the read waits.
            if tokio::time::timeout(Duration::from_millis(10), stream.read(&mut byte)).await.is_err() {
                open += 1;
            }
        }
        assert_eq!(open, 16, "the scrape was answered beside the 16 idle connections");
        server.stop().await;
    }

    /// A request head that never ends is cut at HEADER_TIMEOUT, not waited on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_request_head_is_cut_at_the_timeout() {
        let metrics = Arc::new(LiveMetrics::new("t", 1, &[]));
        let gauges = Arc::new(Gauges::with_metrics(metrics.clone()));
        let server = MetricsServer::bind("127.0.0.1:0", metrics, gauges).await.unwrap();
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(HEADER_TIMEOUT * 4, stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection was still open after 4 × HEADER_TIMEOUT");
        server.stop().await;
    }
}
