//! A stock service shaped like a FastAPI app whose projector consumes a stream into a
//! quantities table: the read model is a number per item, not a list of refs. The
//! projector loses every `lose_every`-th update (it acknowledges the stream entry
//! before applying it and "crashes" in between).
//!
//! - `POST /items/{sku}/restock` `{"quantity": N}` → 202
//! - `POST /items/{sku}/sell` `{"quantity": N}` → 202, or 409 when the stock is short
//! - `POST /items/{sku}/count` `{"qty": N}` → 202: a cycle count sets the quantity outright
//! - `GET /items/{sku}` → `{"sku", "quantity"}` from the read model, or 404
//! - `GET /items/{sku}/write` → the same from the write side
//! - `GET /truth` → `{"updates", "lost", "wrong_keys"}` (keys whose two sides differ)

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
struct Stock {
    write: BTreeMap<String, i64>,
    /// The stream: (sku, change).
    stream: Vec<(String, Change)>,
    consumed: usize,
    read: BTreeMap<String, i64>,
    lost: u64,
}

type Shared = Arc<Mutex<Stock>>;

/// A stream entry's change to an item's quantity.
#[derive(Clone, Copy)]
enum Change {
    Add(i64),
    Set(i64),
}

pub fn start(lose_every: usize) -> App {
    let state: Shared = Arc::default();
    let router = axum::Router::new()
        .route("/items/{sku}/restock", post(restock))
        .route("/items/{sku}/sell", post(sell))
        .route("/items/{sku}/count", post(count))
        .route("/items/{sku}", get(read_side))
        .route("/items/{sku}/write", get(write_side))
        .route("/truth", get(truth))
        .with_state(state.clone());
    App::serve(router, project(state, lose_every))
}

fn quantity(body: &Value) -> i64 {
    body.get("quantity").and_then(Value::as_i64).unwrap_or(0)
}

async fn restock(State(state): State<Shared>, Path(sku): Path<String>, Json(body): Json<Value>) -> StatusCode {
    let change = quantity(&body);
    let mut stock = state.lock().unwrap();
    *stock.write.entry(sku.clone()).or_default() += change;
    stock.stream.push((sku, Change::Add(change)));
    StatusCode::ACCEPTED
}

async fn count(State(state): State<Shared>, Path(sku): Path<String>, Json(body): Json<Value>) -> StatusCode {
    let counted = body.get("qty").and_then(Value::as_i64).unwrap_or(0);
    let mut stock = state.lock().unwrap();
    stock.write.insert(sku.clone(), counted);
    stock.stream.push((sku, Change::Set(counted)));
    StatusCode::ACCEPTED
}

async fn sell(State(state): State<Shared>, Path(sku): Path<String>, Json(body): Json<Value>) -> StatusCode {
    let change = quantity(&body);
    let mut stock = state.lock().unwrap();
    let on_hand = stock.write.entry(sku.clone()).or_default();
    if *on_hand < change {
        return StatusCode::CONFLICT;
    }
    *on_hand -= change;
    stock.stream.push((sku, Change::Add(-change)));
    StatusCode::ACCEPTED
}

async fn read_side(State(state): State<Shared>, Path(sku): Path<String>) -> Result<Json<Value>, StatusCode> {
    let stock = state.lock().unwrap();
    let quantity = stock.read.get(&sku).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({ "sku": sku, "quantity": quantity })))
}

async fn write_side(State(state): State<Shared>, Path(sku): Path<String>) -> Result<Json<Value>, StatusCode> {
    let stock = state.lock().unwrap();
    let quantity = stock.write.get(&sku).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({ "sku": sku, "quantity": quantity })))
}

async fn truth(State(state): State<Shared>) -> Json<Value> {
    let stock = state.lock().unwrap();
    let wrong = stock.write.iter().filter(|(sku, q)| stock.read.get(*sku).copied().unwrap_or(0) != **q).count();
    Json(json!({
        "updates": stock.stream.len(),
        "lost": stock.lost,
        "wrong_keys": wrong,
        "projected": stock.consumed == stock.stream.len(),
    }))
}

/// Consumes the stream every 10 ms, losing every `lose_every`-th entry.
async fn project(state: Shared, lose_every: usize) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut stock = state.lock().unwrap();
        while stock.consumed < stock.stream.len() {
            let (sku, change) = stock.stream[stock.consumed].clone();
            stock.consumed += 1;
            if stock.consumed.is_multiple_of(lose_every) {
                stock.lost += 1;
                continue;
            }
            let quantity = stock.read.entry(sku).or_default();
            match change {
                Change::Add(n) => *quantity += n,
                Change::Set(n) => *quantity = n,
            }
        }
    }
}
