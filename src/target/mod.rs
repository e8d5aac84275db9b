//! Adapters to the system under test. The generator sees only `Target`: a rendered
//! request goes in, a status and body (or a classified failure) come out.

mod embedded;
mod http;
mod http1;
mod kafka;

use std::future::Future;

use bytes::Bytes;

pub use embedded::EmbeddedTarget;
pub use http::HttpTarget;
pub use kafka::KafkaTarget;

/// A rendered request, ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: ::http::Method,
    /// Path and query, relative to the target's base.
    pub path: String,
    pub body: Option<String>,
    pub headers: Vec<(::http::HeaderName, ::http::HeaderValue)>,
    /// Produce to Kafka instead: (topic, key); the body is the value.
    pub kafka: Option<(String, String)>,
}

/// The answer of the target, read to the last byte.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The answer's headers (for `capture = { id = "header:location" }`).
    pub headers: ::http::HeaderMap,
    pub body: Bytes,
    /// When the answer reached this host's kernel (wall clock), if the transport can tell
    /// (the lean HTTP/1.1 client): the operation's end, excluding the generator's own
    /// wake-up. [`received_instant`] makes it an `Instant`.
    pub received: Option<std::time::SystemTime>,
}

/// The `Instant` of a kernel receive time, by its age at `now` (the wall clock is read
/// right after `now`; its slewing is parts per million of that age). Read once per answer.
pub fn received_instant(at: std::time::SystemTime, now: std::time::Instant) -> std::time::Instant {
    let age = std::time::SystemTime::now().duration_since(at).unwrap_or_default();
    now.checked_sub(age).unwrap_or(now)
}

/// Why a request got no answer. A small closed set, so counting by it never grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The connection could not be made.
    Connect,
    /// No complete answer within the target timeout.
    Timeout,
    /// The answer broke off or could not be read.
    Body,
    /// Anything else on the way (protocol error, request could not be built).
    Transport,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Body => "body",
            Failure::Transport => "transport",
        }
    }
}

/// A system under test.
pub trait Target: Send + Sync + 'static {
    /// Sends one request and reads the whole answer. Timeouts are applied by the caller.
    fn send(&self, request: Request) -> impl Future<Output = Result<Reply, Failure>> + Send;

    /// Opens up to `connections` connections for the calling thread ahead of the load, as
    /// wrk does, so the first operations do not queue behind connection set-up. Best
    /// effort: a failure shows later, on the operations.
    fn warm_up(&self, connections: usize) -> impl Future<Output = ()> + Send {
        let _ = connections;
        async {}
    }
}

/// The adapters a scenario can choose; a closed set so the generator is monomorphic.
pub enum AnyTarget {
    Http(HttpTarget),
    Embedded(EmbeddedTarget),
}

impl Target for AnyTarget {
    async fn send(&self, request: Request) -> Result<Reply, Failure> {
        match self {
            AnyTarget::Http(t) => t.send(request).await,
            AnyTarget::Embedded(t) => t.send(request).await,
        }
    }

    async fn warm_up(&self, connections: usize) {
        if let AnyTarget::Http(t) = self {
            t.warm_up(connections).await;
        }
    }
}

/// The scenario's target, plus a Kafka producer when commands go over Kafka.
pub struct Routed {
    pub main: AnyTarget,
    pub kafka: Option<KafkaTarget>,
}

impl Target for Routed {
    async fn send(&self, request: Request) -> Result<Reply, Failure> {
        match (&request.kafka, &self.kafka) {
            (Some((topic, key)), Some(producer)) => producer.produce(topic, key, request.body.as_deref()).await,
            (Some(_), None) => Err(Failure::Transport),
            (None, _) => self.main.send(request).await,
        }
    }

    async fn warm_up(&self, connections: usize) {
        self.main.warm_up(connections).await;
    }
}
