//! Small third-party-shaped CQRS apps the probes are tested against (issue 12): read
//! models that are not our reference bank. Each runs on its own runtime thread on a
//! free loopback port, injects its faults deterministically and answers `GET /truth`
//! with what it did, so a test can demand exact figures.

pub mod contended_wallet;
pub mod feed;
pub mod feed_nats;
pub mod journal;
pub mod stock;
pub mod tasks;
pub mod todo;
pub mod wallet;

use std::net::SocketAddr;

/// An app served on `127.0.0.1:0` until the test ends.
pub struct App {
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl App {
    /// Serves `router` with `background` (the app's projector) running beside it.
    pub fn serve<F>(router: axum::Router, background: F) -> App
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let projector = tokio::spawn(background);
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await;
                projector.abort();
            });
        });
        let addr = addr_rx.recv().expect("the app binds");
        App { url: format!("http://{addr}"), shutdown: Some(stop_tx), thread: Some(thread) }
    }

    /// `GET /truth`.
    pub fn truth(&self) -> serde_json::Value {
        crate::support::get_json(&format!("{}/truth", self.url))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
