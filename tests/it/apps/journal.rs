//! A journal service shaped like a NestJS app whose cron projector copies the event table
//! into per-account lists every `period` (issue 30): between two runs nothing new is
//! visible, so a verification that gives up early would call the waiting events missed.
//! The projector loses nothing; its first run is one `period` after the start.
//!
//! - `POST /accounts/{id}/entries` `{"ref", "amount"}` → 202 (stored in the event table)
//! - `GET /accounts/{id}/entries` → `{"items": [{"ref", "amount"}, …]}`, or 404 before
//!   the projector has written any entry of the account
//! - `GET /truth` → `{"stored", "projected", "runs"}`: events in the table, events copied
//!   into the lists, and projector runs so far

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::App;

#[derive(Default)]
struct Journal {
    /// The event table: (account, entry).
    events: Vec<(String, Value)>,
    /// How far the cron projector has copied the table.
    projected: usize,
    lists: BTreeMap<String, Vec<Value>>,
    runs: u64,
}

type Shared = Arc<Mutex<Journal>>;

pub fn start(period: Duration) -> App {
    let state: Shared = Arc::default();
    let router = axum::Router::new()
        .route("/accounts/{id}/entries", post(append).get(entries))
        .route("/truth", get(truth))
        .with_state(state.clone());
    App::serve(router, project(state, period))
}

async fn append(State(state): State<Shared>, Path(id): Path<String>, Json(body): Json<Value>) -> StatusCode {
    let entry = json!({ "ref": body["ref"], "amount": body["amount"] });
    state.lock().unwrap().events.push((id, entry));
    StatusCode::ACCEPTED
}

async fn entries(State(state): State<Shared>, Path(id): Path<String>) -> Result<Json<Value>, StatusCode> {
    let journal = state.lock().unwrap();
    let items = journal.lists.get(&id).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({ "items": items })))
}

async fn truth(State(state): State<Shared>) -> Json<Value> {
    let journal = state.lock().unwrap();
    Json(json!({ "stored": journal.events.len(), "projected": journal.projected, "runs": journal.runs }))
}

/// Every `period`, copies the events stored since the last run into the lists.
async fn project(state: Shared, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let mut journal = state.lock().unwrap();
        let journal = &mut *journal;
        for (account, entry) in &journal.events[journal.projected..] {
            journal.lists.entry(account.clone()).or_default().push(entry.clone());
        }
        journal.projected = journal.events.len();
        journal.runs += 1;
    }
}
