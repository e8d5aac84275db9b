//! HTTP/1.1 keep-alive adapter: one request at a time per connection, as wrk and oha do,
//! on the lean connection of `http1` (no task per connection, no channel per request),
//! with no pool shared across threads.
//!
//! Idle connections are kept per thread (`IDLE`): a generator worker is one thread with
//! its own event loop, so it reuses only connections its own loop drives and nothing
//! crosses threads per request (issue 11: reqwest's shared pool and its per-request
//! bookkeeping held the generator to a fraction of wrk's rate). Probes on the run's
//! multi-threaded runtime share that runtime's threads' idle lists the same way.
//!
//! Answers are read to the last byte and only their first `max_body` bytes are kept
//! (issue 16: a target sending 50 MB bodies drove the harness to gigabytes). A body that
//! never ends is cut by the caller's timeout like any slow answer; a connection whose
//! request was cut is dropped with the request's future, never reused.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

use super::http1::{BodyBudget, Connection};
use super::{Failure, Reply, Request, Target};

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
    host_header: String,
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
    /// What the answers being read at once keep together (issue 32).
    budget: BodyBudget,
    /// Answers cut because `budget` ran out.
    starved: AtomicU64,
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
            host_header: authority,
            path_prefix: url.path().trim_end_matches('/').to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            max_idle: max_connections.max(1),
            max_body: max_body.max(1),
            truncated: AtomicU64::new(0),
            // One answer of `max_body` always fits.
            budget: BodyBudget::new(crate::scenario::limits::MAX_ANSWER_BYTES_IN_FLIGHT.max(max_body)),
            starved: AtomicU64::new(0),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Answers whose body was longer than `max_body` so far.
    pub fn truncated_bodies(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    /// Answers cut (and counted in `truncated_bodies`) because the answers being read at
    /// once held `MAX_ANSWER_BYTES_IN_FLIGHT` (issue 32).
    pub fn starved_bodies(&self) -> u64 {
        self.starved.load(Ordering::Relaxed)
    }

    /// An idle connection of this thread that can still carry a request.
    fn take_idle(&self) -> Option<Connection> {
        IDLE.with_borrow_mut(|idle| {
            let list = &mut idle.iter_mut().find(|(id, _)| *id == self.id)?.1;
            // A connection the server closed while idle is dropped here, unused.
            std::iter::from_fn(|| list.pop()).find_map(|mut c| c.is_reusable().then_some(c))
        })
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

    async fn connect(&self) -> Result<Connection, Failure> {
        Connection::open(&self.host, self.port).await.map_err(|_| Failure::Connect)
    }
}

impl Target for HttpTarget {
    async fn send(&self, request: Request) -> Result<Reply, Failure> {
        let target = if self.path_prefix.is_empty() {
            std::borrow::Cow::Borrowed(request.path.as_str())
        } else {
            std::borrow::Cow::Owned(format!("{}{}", self.path_prefix, request.path))
        };
        if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Failure::Transport); // not a request target that can be sent
        }
        let body = request.body.as_deref().map(str::as_bytes);
        loop {
            let (mut connection, reused) = match self.take_idle() {
                Some(connection) => (connection, true),
                None => (self.connect().await?, false),
            };
            let written = connection
                .write_request(&request.method, &target, self.host_header.as_bytes(), &request.headers, body)
                .await;
            if written.is_err() {
                if reused {
                    continue; // closed by the server while idle: not delivered, once more on another
                }
                return Err(Failure::Connect);
            }
            // A request that was written is never sent twice.
            let (answer, keep_alive) =
                connection.read_answer(&request.method, self.max_body, Some(&self.budget)).await?;
            if answer.truncated {
                self.truncated.fetch_add(1, Ordering::Relaxed);
            }
            if answer.starved {
                self.starved.fetch_add(1, Ordering::Relaxed);
            }
            if keep_alive {
                self.put_idle(connection);
            }
            return Ok(Reply {
                status: answer.status,
                headers: answer.headers,
                body: answer.body,
                received: answer.received,
            });
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
