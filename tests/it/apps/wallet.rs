//! A wallet service shaped like a Python `eventsourcing` app (issue 30): commands answer
//! `{"status": "success"}` once the event is stored; a projector thread then writes the
//! balance table, creating a wallet's row with its first event. The projector stops for
//! good after `stop_after` events while the API goes on answering, so later wallets have
//! no row and earlier ones a stale balance. Every `hang_every`-th deposit is stored but
//! answered only after `hang` (longer than the harness's timeout): its outcome is unknown
//! to the harness. A withdrawal larger than the balance is refused with a 400. Amounts
//! are floats, as in the Python service (issue 31).
//!
//! - `POST /wallets/{id}/deposit` `{"amount"}` → 200
//! - `POST /wallets/{id}/withdraw` `{"amount"}` → 200, or 400 `{"detail": "insufficient funds"}`
//! - `GET /wallets/{id}` → `{"id", "balance"}` from the balance table, or 404
//! - `GET /wallets/{id}/history` → `[{"operation": "CREDIT"|"DEBIT", "amount", "timestamp"}]`,
//!   a list without refs written by the same projector (issue 31), or 404 before its first row
//! - `GET /truth` → `{"events", "applied", "absent_keys", "stale_keys", "unsure_keys"}`:
//!   wallets with a command answered in time but no row; with a row, no hung command and a
//!   balance that differs from the write side's; with a hung command and a row, or with
//!   no row and no command answered in time. For the history, classified as the harness
//!   does per wallet and kind (a kind with a hung deposit is unsure): `history_missed_rows`
//!   (stored events of the sure kinds without their row), `history_wrong_keys` (wallets
//!   with a sure kind short of rows), `history_unsure_keys` (the others with a hung deposit).
//!   For lag probes of every command answered in time (issue 31): `lag_acked` (such
//!   stored events, `lag_acked_deposits` of them deposits), `lag_ambiguous` (those stored
//!   after a hung command on their wallet: what the wallet shows after them is unknown
//!   to the harness) and `lag_unprojected` (the others the projector never applied).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::App;

#[derive(Clone, Copy)]
pub struct Faults {
    /// Events the projector applies before it stops for good.
    pub stop_after: usize,
    /// Every this-many deposits answers after `hang`.
    pub hang_every: usize,
    pub hang: Duration,
}

#[derive(Default)]
struct Wallets {
    /// Write side: balances.
    write: BTreeMap<String, f64>,
    /// The event store: (wallet, change); a deposit's change is positive, a withdrawal's negative.
    events: Vec<(String, f64)>,
    /// Per event: answered in time, and stored after a hung command on its wallet.
    answers: Vec<(bool, bool)>,
    applied: usize,
    /// The balance table.
    balances: BTreeMap<String, f64>,
    /// The history table: per wallet, one row per applied event.
    histories: BTreeMap<String, Vec<Value>>,
    deposits: usize,
    /// Wallets with a command answered in time, and with one answered late.
    answered: BTreeSet<String>,
    hung: BTreeSet<String>,
}

type Shared = Arc<Mutex<Wallets>>;

pub fn start(faults: Faults) -> App {
    let state: Shared = Arc::default();
    let router = axum::Router::new()
        .route("/wallets/{id}/deposit", post(deposit))
        .route("/wallets/{id}/withdraw", post(withdraw))
        .route("/wallets/{id}", get(balance))
        .route("/wallets/{id}/history", get(history))
        .route("/truth", get(truth))
        .with_state((state.clone(), faults));
    App::serve(router, project(state, faults.stop_after))
}

fn amount(body: &Value) -> f64 {
    body.get("amount").and_then(Value::as_f64).unwrap_or(0.0)
}

impl Wallets {
    /// Stores an event; `in_time`: it is answered before the harness's timeout.
    fn store(&mut self, id: &str, change: f64, in_time: bool) {
        let after_hang = self.hung.contains(id);
        self.events.push((id.to_owned(), change));
        self.answers.push((in_time, after_hang));
    }
}

async fn deposit(
    State((state, faults)): State<(Shared, Faults)>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let hangs = {
        let mut wallets = state.lock().unwrap();
        *wallets.write.entry(id.clone()).or_default() += amount(&body);
        wallets.deposits += 1;
        let hangs = wallets.deposits.is_multiple_of(faults.hang_every);
        wallets.store(&id, amount(&body), !hangs);
        if hangs {
            wallets.hung.insert(id);
        } else {
            wallets.answered.insert(id);
        }
        hangs
    };
    if hangs {
        tokio::time::sleep(faults.hang).await;
    }
    Json(json!({ "status": "success" }))
}

async fn withdraw(
    State((state, _)): State<(Shared, Faults)>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let mut wallets = state.lock().unwrap();
    let change = amount(&body);
    let balance = wallets.write.entry(id.clone()).or_default();
    if *balance < change {
        return Err((StatusCode::BAD_REQUEST, Json(json!({ "detail": "insufficient funds" }))));
    }
    *balance -= change;
    wallets.store(&id, -change, true);
    wallets.answered.insert(id);
    Ok(Json(json!({ "status": "success" })))
}

async fn balance(
    State((state, _)): State<(Shared, Faults)>,
    Path(id): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    let wallets = state.lock().unwrap();
    let balance = wallets.balances.get(&id).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({ "id": id, "balance": balance })))
}

async fn history(
    State((state, _)): State<(Shared, Faults)>,
    Path(id): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    let wallets = state.lock().unwrap();
    let rows = wallets.histories.get(&id).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(Value::Array(rows.clone())))
}

/// The history's truth (issue 31): per wallet and kind (CREDIT, DEBIT), stored events
/// against rows; a wallet's CREDIT count is unknown to the harness when a deposit hung.
fn history_truth(w: &Wallets) -> Value {
    let mut stored: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for (id, change) in &w.events {
        *stored.entry((id.as_str(), *change > 0.0)).or_default() += 1;
    }
    let (mut missed, mut wrong, mut unsure) = (0, BTreeSet::new(), BTreeSet::new());
    for ((id, credit), events) in stored {
        if credit && w.hung.contains(id) {
            unsure.insert(id);
            continue;
        }
        let rows = w
            .histories
            .get(id)
            .map_or(0, |rows| rows.iter().filter(|r| (r["operation"] == "CREDIT") == credit).count());
        if rows < events {
            missed += events - rows;
            wrong.insert(id);
        }
    }
    json!({
        "history_missed_rows": missed,
        "history_wrong_keys": wrong.len(),
        "history_unsure_keys": unsure.difference(&wrong).count(),
    })
}

async fn truth(State((state, _)): State<(Shared, Faults)>) -> Json<Value> {
    let w = state.lock().unwrap();
    let absent = w.answered.iter().filter(|id| !w.balances.contains_key(*id)).count();
    let stale =
        w.balances.iter().filter(|(id, balance)| !w.hung.contains(*id) && w.write.get(*id) != Some(balance)).count();
    // A hung command leaves a wallet's number unknown; without a row, so does having no
    // command answered in time (it may rightly have none).
    let unsure = w.hung.iter().filter(|id| w.balances.contains_key(*id) || !w.answered.contains(*id)).count();
    let mut truth = json!({
        "events": w.events.len(),
        "applied": w.applied,
        "absent_keys": absent,
        "stale_keys": stale,
        "unsure_keys": unsure,
    });
    truth.as_object_mut().unwrap().extend(history_truth(&w).as_object().unwrap().clone());
    truth.as_object_mut().unwrap().extend(lag_truth(&w).as_object().unwrap().clone());
    Json(truth)
}

/// The lag probes' truth (issue 31): of the events answered in time, those stored after a
/// hung command on their wallet, and the others never applied.
fn lag_truth(w: &Wallets) -> Value {
    let in_time = || w.answers.iter().enumerate().filter(|(_, (in_time, _))| *in_time);
    let deposits = in_time().filter(|(at, _)| w.events[*at].1 > 0.0).count();
    let ambiguous = in_time().filter(|(_, (_, after_hang))| *after_hang).count();
    let unprojected = in_time().filter(|(at, (_, after_hang))| !after_hang && *at >= w.applied).count();
    json!({
        "lag_acked": in_time().count(),
        "lag_acked_deposits": deposits,
        "lag_ambiguous": ambiguous,
        "lag_unprojected": unprojected,
    })
}

/// Applies stored events every 10 ms, until `stop_after` of them: then it is gone.
async fn project(state: Shared, stop_after: usize) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut wallets = state.lock().unwrap();
        while wallets.applied < wallets.events.len().min(stop_after) {
            let (id, change) = wallets.events[wallets.applied].clone();
            *wallets.balances.entry(id.clone()).or_default() += change;
            let operation = if change > 0.0 { "CREDIT" } else { "DEBIT" };
            let timestamp =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
            let row = json!({ "operation": operation, "amount": change.abs(), "timestamp": timestamp });
            wallets.histories.entry(id).or_default().push(row);
            wallets.applied += 1;
        }
        if wallets.applied == stop_after {
            return;
        }
    }
}
