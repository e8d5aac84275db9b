//! The `memory` reference target inside this process: requests go straight into its
//! axum router (no sockets), through exactly the handlers `target serve` exposes.

use axum::body::Body;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::{Failure, Reply, Request, Target};
use crate::reference::{MemoryApp, MemoryConfig};

pub struct EmbeddedTarget {
    app: MemoryApp,
    router: axum::Router,
}

impl EmbeddedTarget {
    /// Starts the reference system on the current runtime.
    pub fn start(config: MemoryConfig) -> EmbeddedTarget {
        let app = MemoryApp::start(config);
        let router = app.router();
        EmbeddedTarget { app, router }
    }

    pub fn app(&self) -> &MemoryApp {
        &self.app
    }
}

impl Drop for EmbeddedTarget {
    fn drop(&mut self) {
        self.app.shutdown();
    }
}

impl Target for EmbeddedTarget {
    async fn send(&self, request: Request) -> Result<Reply, Failure> {
        let mut builder = http::Request::builder().method(request.method).uri(request.path);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        let body = match request.body {
            Some(body) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                Body::from(body)
            }
            None => Body::empty(),
        };
        let request = builder.body(body).map_err(|_| Failure::Transport)?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        };
        let (parts, body) = response.into_parts();
        let (status, headers) = (parts.status.as_u16(), parts.headers);
        let body = body.collect().await.map_err(|_| Failure::Body)?.to_bytes();
        Ok(Reply { status, headers, body, received: None })
    }
}
