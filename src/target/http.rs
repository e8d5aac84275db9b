//! HTTP/1.1 keep-alive adapter on hyper's client connection API: one request at a time
//! per connection, as wrk and oha do, with no pool shared across threads.
//!
//! Idle connections are kept per thread (`IDLE`): a generator worker is one thread with
//! its own event loop, so it reuses only connections its own loop drives and nothing
//! crosses threads per request (issue 11: reqwest's shared pool and its per-request
//! bookkeeping held the generator to a fraction of wrk's rate). Probes on the run's
//! multi-threaded runtime share that runtime's threads' idle lists the same way.
//!
//! Answers are read frame by frame and only their first `max_body` bytes are kept
//! (issue 16: a target sending 50 MB bodies drove the harness to gigabytes); the rest is
//! read to the last byte (latency is to the last byte) and dropped. A body that never
//! ends is cut by the caller's timeout like any slow answer; a connection whose request
//! was cut is closed, never reused.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::{Failure, Reply, Request, Target};

type Connection = SendRequest<Full<Bytes>>;

/// Gives each `HttpTarget` its own key in the per-thread idle lists.
static NEXT_TARGET_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's idle keep-alive connections, per target id.
    static IDLE: RefCell<Vec<(u64, Vec<Connection>)>> = const { RefCell::new(Vec::new()) };
}

pub struct HttpTarget {
    id: u64,
    host: String,
    port: u16,
    /// `Host` header: the base URL's authority.
    host_header: HeaderValue,
    /// The base URL's path without its trailing slash ("" for the root).
    path_prefix: String,
    /// Base URL without a trailing slash; request paths start with `/`.
    base_url: String,
    /// Idle connections kept per thread.
    max_idle: usize,
    /// Response bytes kept per answer.
    max_body: usize,
    /// Answers longer than `max_body` (their tail was read and dropped).
    truncated: AtomicU64,
}

impl HttpTarget {
    /// `max_connections` bounds the idle connections kept per thread (requests in flight
    /// bound the rest); `max_body` is the number of response bytes kept per answer. The
    /// connect time counts in the caller's timeout, like the rest of a request.
    pub fn new(base_url: &str, max_connections: usize, max_body: usize) -> anyhow::Result<HttpTarget> {
        let url = reqwest::Url::parse(base_url).with_context(|| format!("target base_url `{base_url}`"))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "target base_url `{base_url}`: only http:// is supported in this build"
        );
        let host = url.host_str().context("target base_url has no host")?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        // Brackets off an IPv6 literal for connecting; the Host header keeps them.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Ok(HttpTarget {
            id: NEXT_TARGET_ID.fetch_add(1, Ordering::Relaxed),
            host,
            port,
            host_header: HeaderValue::try_from(authority).context("target base_url host")?,
            path_prefix: url.path().trim_end_matches('/').to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            max_idle: max_connections.max(1),
            max_body: max_body.max(1),
            truncated: AtomicU64::new(0),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Answers whose body was longer than `max_body` so far.
    pub fn truncated_bodies(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    fn take_idle(&self) -> Option<Connection> {
        IDLE.with_borrow_mut(|idle| idle.iter_mut().find(|(id, _)| *id == self.id)?.1.pop())
    }

    fn put_idle(&self, connection: Connection) {
        IDLE.with_borrow_mut(|idle| {
            let index = match idle.iter().position(|(id, _)| *id == self.id) {
                Some(index) => index,
                None => {
                    idle.push((self.id, Vec::new()));
                    idle.len() - 1
                }
            };
            let list = &mut idle[index].1;
            if list.len() < self.max_idle {
                list.push(connection);
            }
        });
    }

    /// A new connection, driven by a task on the current thread's runtime.
    async fn connect(&self) -> Result<Connection, Failure> {
        let stream =
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|_| Failure::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|_| Failure::Connect)?;
        tokio::spawn(async move {
            // Ends when the server closes or the last `SendRequest` is dropped.
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn build(&self, request: Request) -> Result<http::Request<Full<Bytes>>, Failure> {
        let body = request.body.map(Bytes::from);
        let has_body = body.is_some();
        let mut built = http::Request::new(Full::new(body.unwrap_or_default()));
        *built.method_mut() = request.method;
        *built.uri_mut() = if self.path_prefix.is_empty() {
            Uri::try_from(request.path)
        } else {
            Uri::try_from(format!("{}{}", self.path_prefix, request.path))
        }
        .map_err(|_| Failure::Transport)?;
        let headers = built.headers_mut();
        for (name, value) in request.headers {
            headers.append(name, value);
        }
        if !headers.contains_key(HOST) {
            headers.insert(HOST, self.host_header.clone());
        }
        if has_body && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(built)
    }

    /// Reads the body to its end, keeping the first `max_body` bytes. A body in one frame
    /// (the usual small answer) is kept without a copy.
    async fn read_body(&self, mut body: Incoming) -> Result<Bytes, Failure> {
        let mut first: Option<Bytes> = None;
        let mut kept = BytesMut::new();
        let mut truncated = false;
        while let Some(frame) = body.frame().await {
            let Ok(chunk) = frame.map_err(|_| Failure::Body)?.into_data() else {
                continue; // trailers
            };
            if truncated {
                continue; // drained, not kept
            }
            let held = first.as_ref().map_or(kept.len(), Bytes::len);
            if held + chunk.len() > self.max_body {
                truncated = true;
                self.truncated.fetch_add(1, Ordering::Relaxed);
            }
            if first.is_none() && kept.is_empty() && !truncated {
                first = Some(chunk);
                continue;
            }
            if let Some(first) = first.take() {
                kept.extend_from_slice(&first);
            }
            let room = self.max_body - kept.len();
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(first.unwrap_or_else(|| kept.freeze()))
    }
}

impl Target for HttpTarget {
    async fn send(&self, request: Request) -> Result<Reply, Failure> {
        let mut request = self.build(request)?;
        loop {
            let (mut connection, reused) = match self.take_idle() {
                Some(connection) => (connection, true),
                None => (self.connect().await?, false),
            };
            if connection.ready().await.is_err() {
                if reused {
                    continue; // closed by the server while idle
                }
                return Err(Failure::Connect);
            }
            match connection.try_send_request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = self.read_body(body).await?;
                    self.put_idle(connection);
                    return Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body });
                }
                Err(mut error) => match error.take_message() {
                    // Not written: an idle connection the server had just closed. Once more
                    // on another (a request that was written is never sent twice).
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(classify(error.error())),
                },
            }
        }
    }

    async fn warm_up(&self, connections: usize) {
        let wanted = connections.min(self.max_idle);
        let opened = futures_util::future::join_all((0..wanted).map(|_| self.connect())).await;
        for connection in opened.into_iter().flatten() {
            self.put_idle(connection);
        }
    }
}

fn classify(error: &hyper::Error) -> Failure {
    if error.is_timeout() {
        Failure::Timeout
    } else if error.is_incomplete_message() || error.is_body_write_aborted() {
        Failure::Body
    } else {
        Failure::Transport
    }
}
