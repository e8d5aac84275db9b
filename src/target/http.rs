//! HTTP/1.1 keep-alive adapter on reqwest's pooled client.

use std::time::Duration;

use anyhow::Context as _;

use super::{Failure, Reply, Request, Target};

pub struct HttpTarget {
    client: reqwest::Client,
    /// Base URL without a trailing slash; request paths start with `/`.
    base_url: String,
}

impl HttpTarget {
    /// `max_connections` bounds the idle pool kept per host (in-flight requests bound the rest).
    pub fn new(base_url: &str, timeout: Duration, max_connections: usize) -> anyhow::Result<HttpTarget> {
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
        Ok(HttpTarget { client, base_url: base_url.trim_end_matches('/').to_owned() })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
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
        let response = builder.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| if e.is_timeout() { Failure::Timeout } else { Failure::Body })?;
        Ok(Reply { status, body })
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
