//! A wallet service with optimistic concurrency (issue 31): each command reads its
//! wallet's version, yields, and writes only if the version is unchanged; otherwise it
//! answers 400 `{"detail": "concurrent modification"}`. A withdrawal beyond the balance
//! answers 400 `{"detail": "insufficient funds"}`: the same status, told apart by the body.
//! The balance is read from the write side, so `[verify]` can check that a conflict
//! changed nothing.
//!
//! - `POST /wallets/{id}/deposit` `{"amount"}` → 200, or 400 (conflict)
//! - `POST /wallets/{id}/withdraw` `{"amount"}` → 200, or 400 (conflict or refusal)
//! - `GET /wallets/{id}` → `{"id", "balance"}`, 0 for a wallet never written
//! - `GET /truth` → `{"successes", "conflicts", "refusals"}`

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
struct Ledger {
    /// Per wallet: (version, balance).
    wallets: BTreeMap<String, (u64, i64)>,
    successes: u64,
    conflicts: u64,
    refusals: u64,
}

type Shared = Arc<Mutex<Ledger>>;
type Answer = Result<Json<Value>, (StatusCode, Json<Value>)>;

pub fn start() -> App {
    let state: Shared = Arc::default();
    let router = axum::Router::new()
        .route("/wallets/{id}/deposit", post(deposit))
        .route("/wallets/{id}/withdraw", post(withdraw))
        .route("/wallets/{id}", get(balance))
        .route("/truth", get(truth))
        .with_state(state);
    App::serve(router, std::future::pending())
}

fn amount(body: &Value) -> i64 {
    body.get("amount").and_then(Value::as_i64).unwrap_or(0)
}

async fn deposit(State(state): State<Shared>, Path(id): Path<String>, Json(body): Json<Value>) -> Answer {
    change(&state, &id, amount(&body)).await
}

async fn withdraw(State(state): State<Shared>, Path(id): Path<String>, Json(body): Json<Value>) -> Answer {
    change(&state, &id, -amount(&body)).await
}

/// Read the version, let other requests run (as a database round trip would), then
/// write only if no one wrote the wallet meanwhile.
async fn change(state: &Shared, id: &str, by: i64) -> Answer {
    let (read_version, _) = state.lock().unwrap().wallets.get(id).copied().unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut ledger = state.lock().unwrap();
    let (version, balance) = ledger.wallets.get(id).copied().unwrap_or_default();
    if version != read_version {
        ledger.conflicts += 1;
        return Err(refused("concurrent modification"));
    }
    if balance + by < 0 {
        ledger.refusals += 1;
        return Err(refused("insufficient funds"));
    }
    ledger.wallets.insert(id.to_owned(), (version + 1, balance + by));
    ledger.successes += 1;
    Ok(Json(json!({ "status": "success" })))
}

fn refused(detail: &str) -> (StatusCode, Json<Value>) {
    (StatusCode::BAD_REQUEST, Json(json!({ "detail": detail })))
}

async fn balance(State(state): State<Shared>, Path(id): Path<String>) -> Json<Value> {
    let balance = state.lock().unwrap().wallets.get(&id).map_or(0, |(_, balance)| *balance);
    Json(json!({ "id": id, "balance": balance }))
}

async fn truth(State(state): State<Shared>) -> Json<Value> {
    let l = state.lock().unwrap();
    Json(json!({ "successes": l.successes, "conflicts": l.conflicts, "refusals": l.refusals }))
}
