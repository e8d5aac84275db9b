//! HTTP/1.1 keep-alive adapter on reqwest's pooled client.
//!
//! Answers are read chunk by chunk and only their first `max_body` bytes are kept
//! (issue 16: a target sending 50 MB bodies drove the harness to gigabytes); the rest
//! is read to the last byte (latency is to the last byte) and dropped. A body that
//! never ends is cut by the caller's timeout like any slow answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use anyhow::Context as _;

use super::{Failure, Reply, Request, Target};

pub struct HttpTarget {
    client: reqwest::Client,
    /// Base URL without a trailing slash; request paths start with `/`.
    base_url: String,
    /// Response bytes kept per answer.
    max_body: usize,
    /// Answers longer than `max_body` (their tail was read and dropped).
    truncated: AtomicU64,
}

impl HttpTarget {
    /// `max_connections` bounds the idle pool kept per host (in-flight requests bound the rest);
    /// `max_body` is the number of response bytes kept per answer.
    pub fn new(
        base_url: &str,
        timeout: Duration,
        max_connections: usize,
        max_body: usize,
    ) -> anyhow::Result<HttpTarget> {
        let url = reqwest::Url::parse(base_url).with_context(|| format!("target base_url `{base_url}`"))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "target base_url `{base_url}`: only http:// is supported in this build"
        );
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(max_connections)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(timeout)
            // No proxy: load goes straight to the target.
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(HttpTarget {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
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

    /// Reads the body to its end, keeping the first `max_body` bytes. A body in one chunk
    /// (the usual small answer) is kept without a copy.
    async fn read_body(&self, response: &mut reqwest::Response) -> Result<Bytes, Failure> {
        let read_error = |e: reqwest::Error| if e.is_timeout() { Failure::Timeout } else { Failure::Body };
        let mut first: Option<Bytes> = None;
        let mut kept = BytesMut::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(read_error)? {
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
        Ok(match first {
            Some(first) => first,
            None => kept.freeze(),
        })
    }
}

impl Target for HttpTarget {
    async fn send(&self, request: Request) -> Result<Reply, Failure> {
        let mut url = String::with_capacity(self.base_url.len() + request.path.len());
        url.push_str(&self.base_url);
        url.push_str(&request.path);
        let mut builder = self.client.request(request.method, url);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.header(::http::header::CONTENT_TYPE, "application/json").body(body);
        }
        let mut response = builder.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let body = self.read_body(&mut response).await?;
        Ok(Reply { status, headers, body })
    }
}

fn classify(error: reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::Timeout
    } else if error.is_connect() {
        Failure::Connect
    } else if error.is_body() || error.is_decode() {
        Failure::Body
    } else {
        Failure::Transport
    }
}
