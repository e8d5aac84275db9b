//! A stock service shaped like a FastAPI app whose projector consumes a stream into a
//! quantities table: the read model is a number per item, not a list of refs. The
//! projector loses every `lose_every`-th update (it acknowledges the stream entry
//! before applying it and "crashes" in between).
//!
//! - `POST /items/{sku}/restock` `{"quantity": N}` → 202
//! - `POST /items/{sku}/sell` `{"quantity": N}` → 202, or 409 when the stock is short
//! - `POST /items/{sku}/count` `{"qty": N}` → 202: a cycle count sets the quantity outright
//! - `POST /items/{sku}/reserve` `{"quantity": N}` → 202: N more units reserved for orders
//!   (a second number per item, issue 31)
//! - `GET /items/{sku}` → `{"sku", "quantity"}` from the read model (and `"reserved"` when
//!   started `with_reserved`), or 404
//! - `GET /items/{sku}/write` → the same from the write side
//! - `GET /truth` → `{"updates", "lost", "wrong_keys"}` (keys whose two sides differ), and
//!   per number `wrong_quantity`, `wrong_reserved` (keys with a row whose number differs)
//!   and `absent` (written keys without a row)

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
    /// Reserved units per item (write side, read side).
    write_reserved: BTreeMap<String, i64>,
    read_reserved: BTreeMap<String, i64>,
    /// The read model shows `reserved` (`with_reserved`).
    reserved: bool,
    /// Reservations the projector dropped (counted in `lost`, too).
    lost_reserved: u64,
    /// Reservations in the stream, and those whose `reserved` the read model never shows:
    /// every reservation of an item from its first dropped one on (dropped by either rule),
    /// since the read number stays short of the write side's from then on.
    reservations: u64,
    reservations_unprojected: u64,
    /// Items with a dropped reservation.
    short_reserved: std::collections::BTreeSet<String>,
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
    /// Adds to the reserved units, not the quantity.
    Reserve(i64),
}

pub fn start(lose_every: usize) -> App {
    start_app(lose_every, None)
}

/// The app with a second number per item: `reserved`, whose updates the projector also
/// drops, every `lose_reserved_every`-th reservation (on top of every `lose_every`-th
/// update of any kind).
pub fn with_reserved(lose_every: usize, lose_reserved_every: usize) -> App {
    start_app(lose_every, Some(lose_reserved_every))
}

/// The app with `reserved` whose projector loses nothing but stops for good after
/// `stop_after` stream entries while the API goes on answering: every later update is
/// never projected, so the read numbers stay at what they were then.
pub fn with_reserved_stopping(stop_after: usize) -> App {
    start_app_stopping(usize::MAX, Some(usize::MAX), stop_after)
}

fn start_app(lose_every: usize, lose_reserved_every: Option<usize>) -> App {
    start_app_stopping(lose_every, lose_reserved_every, usize::MAX)
}

fn start_app_stopping(lose_every: usize, lose_reserved_every: Option<usize>, stop_after: usize) -> App {
    let state: Shared = Arc::new(Mutex::new(Stock { reserved: lose_reserved_every.is_some(), ..Stock::default() }));
    let router = axum::Router::new()
        .route("/items/{sku}/restock", post(restock))
        .route("/items/{sku}/sell", post(sell))
        .route("/items/{sku}/count", post(count))
        .route("/items/{sku}/reserve", post(reserve))
        .route("/items/{sku}", get(read_side))
        .route("/items/{sku}/write", get(write_side))
        .route("/truth", get(truth))
        .with_state(state.clone());
    App::serve(router, project(state, lose_every, lose_reserved_every.unwrap_or(usize::MAX), stop_after))
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

async fn reserve(State(state): State<Shared>, Path(sku): Path<String>, Json(body): Json<Value>) -> StatusCode {
    let change = quantity(&body);
    let mut stock = state.lock().unwrap();
    *stock.write_reserved.entry(sku.clone()).or_default() += change;
    stock.write.entry(sku.clone()).or_default(); // the item exists
    stock.stream.push((sku, Change::Reserve(change)));
    StatusCode::ACCEPTED
}

async fn sell(State(state): State<Shared>, Path(sku): Path<String>, Json(body): Json<Value>) -> StatusCode {
    let change = quantity(&body);
    let mut stock = state.lock().unwrap();
    // A refused sale writes nothing: not even an empty item.
    if stock.write.get(&sku).copied().unwrap_or(0) < change {
        return StatusCode::CONFLICT;
    }
    *stock.write.entry(sku.clone()).or_default() -= change;
    stock.stream.push((sku, Change::Add(-change)));
    StatusCode::ACCEPTED
}

async fn read_side(State(state): State<Shared>, Path(sku): Path<String>) -> Result<Json<Value>, StatusCode> {
    let stock = state.lock().unwrap();
    let quantity = stock.read.get(&sku).ok_or(StatusCode::NOT_FOUND)?;
    if stock.reserved {
        let reserved = stock.read_reserved.get(&sku).copied().unwrap_or(0);
        return Ok(Json(json!({ "sku": sku, "quantity": quantity, "reserved": reserved })));
    }
    Ok(Json(json!({ "sku": sku, "quantity": quantity })))
}

async fn write_side(State(state): State<Shared>, Path(sku): Path<String>) -> Result<Json<Value>, StatusCode> {
    let stock = state.lock().unwrap();
    let quantity = stock.write.get(&sku).ok_or(StatusCode::NOT_FOUND)?;
    let reserved = stock.write_reserved.get(&sku).copied().unwrap_or(0);
    Ok(Json(json!({ "sku": sku, "quantity": quantity, "reserved": reserved })))
}

async fn truth(State(state): State<Shared>) -> Json<Value> {
    let stock = state.lock().unwrap();
    let wrong = stock.write.iter().filter(|(sku, q)| stock.read.get(*sku).copied().unwrap_or(0) != **q).count();
    // Per number, over the keys with a row (those without one are `absent`).
    let with_row = || stock.write.keys().filter(|sku| stock.read.contains_key(*sku));
    let wrong_quantity = with_row().filter(|sku| stock.read[*sku] != stock.write[*sku]).count();
    let reserved_of = |side: &BTreeMap<String, i64>, sku: &str| side.get(sku).copied().unwrap_or(0);
    let wrong_reserved = with_row()
        .filter(|sku| reserved_of(&stock.read_reserved, sku) != reserved_of(&stock.write_reserved, sku))
        .count();
    let absent = stock.write.keys().filter(|sku| !stock.read.contains_key(*sku)).count();
    // Left in the stream by a stopped projector: never projected.
    let unconsumed_reservations =
        stock.stream[stock.consumed..].iter().filter(|(_, change)| matches!(change, Change::Reserve(_))).count() as u64;
    Json(json!({
        "updates": stock.stream.len(),
        "lost": stock.lost,
        "lost_reserved": stock.lost_reserved,
        "reservations": stock.reservations + unconsumed_reservations,
        "reservations_unprojected": stock.reservations_unprojected + unconsumed_reservations,
        "wrong_keys": wrong,
        "wrong_quantity": wrong_quantity,
        "wrong_reserved": wrong_reserved,
        "absent": absent,
        "projected": stock.consumed == stock.stream.len(),
    }))
}

/// Consumes the stream every 10 ms, losing every `lose_every`-th entry and every
/// `lose_reserved_every`-th reservation, and nothing from entry `stop_after` on.
async fn project(state: Shared, lose_every: usize, lose_reserved_every: usize, stop_after: usize) {
    let mut reservations = 0usize;
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut stock = state.lock().unwrap();
        while stock.consumed < stock.stream.len().min(stop_after) {
            let (sku, change) = stock.stream[stock.consumed].clone();
            stock.consumed += 1;
            let is_reservation = matches!(change, Change::Reserve(_));
            let dropped = stock.consumed.is_multiple_of(lose_every)
                || (is_reservation && {
                    reservations += 1;
                    reservations.is_multiple_of(lose_reserved_every)
                });
            if is_reservation {
                stock.reservations += 1;
                if dropped {
                    stock.short_reserved.insert(sku.clone());
                }
                if stock.short_reserved.contains(&sku) {
                    stock.reservations_unprojected += 1;
                }
            }
            if dropped {
                stock.lost += 1;
                stock.lost_reserved += u64::from(is_reservation);
                continue;
            }
            let quantity = stock.read.entry(sku.clone()).or_default();
            match change {
                Change::Add(n) => *quantity += n,
                Change::Set(n) => *quantity = n,
                Change::Reserve(n) => *stock.read_reserved.entry(sku).or_default() += n,
            }
        }
    }
}
