//! The bank endpoints of the reference targets (PRODUCT §4 example), over any `Bank`,
//! plus the admin endpoints tests and `[[action]]`s use to inject faults into the
//! `memory` target and to read a target's ground truth.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::bank::{Bank, RefSlice, Refusal};
use super::memory::MemoryApp;

impl MemoryApp {
    /// The HTTP endpoints (see `serve`): the bank's and the fault-injection admin ones.
    /// Here rather than in `memory`, so the store knows nothing of HTTP.
    pub fn router(&self) -> Router {
        router(self.clone()).merge(fault_admin(self.clone()))
    }
}

/// The bank endpoints over `bank`.
pub fn router<B: Bank>(bank: B) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/accounts", get(top_accounts::<B>))
        .route("/accounts/{id}", get(get_account::<B>))
        .route("/accounts/{id}/refs", get(account_refs::<B>))
        .route("/accounts/{id}/open", post(open::<B>))
        .route("/accounts/{id}/deposit", post(deposit::<B>))
        .route("/accounts/{id}/withdraw", post(withdraw::<B>))
        .route("/admin/ground-truth", get(ground_truth::<B>))
        .with_state(bank)
}

/// Fault injection on the `memory` target.
pub fn fault_admin(app: MemoryApp) -> Router {
    Router::new()
        .route("/admin/fault-clock/reset", post(reset_clock))
        .route("/admin/stall", post(stall))
        .route("/admin/pause", post(pause))
        .route("/admin/crash", post(crash))
        .with_state(app)
}

#[derive(Deserialize)]
struct Change {
    amount: i64,
    #[serde(rename = "ref")]
    op_ref: String,
}

fn refusal(r: Refusal) -> Response {
    let (status, message) = match r {
        Refusal::NotFound => (StatusCode::NOT_FOUND, "no such account"),
        Refusal::Exists => (StatusCode::CONFLICT, "account exists"),
        Refusal::InsufficientFunds => (StatusCode::CONFLICT, "insufficient funds"),
        Refusal::Injected => (StatusCode::INTERNAL_SERVER_ERROR, "injected failure"),
        Refusal::BusFull => (StatusCode::SERVICE_UNAVAILABLE, "event bus full"),
        Refusal::Unavailable(why) => {
            return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": why }))).into_response();
        }
    };
    (status, Json(json!({ "error": message }))).into_response()
}

async fn open<B: Bank>(State(bank): State<B>, Path(id): Path<String>) -> Response {
    bank.before_request().await;
    match bank.open(&id).await {
        Ok(version) => {
            (StatusCode::CREATED, Json(json!({ "id": id, "version": version, "balance": 0 }))).into_response()
        }
        Err(r) => refusal(r),
    }
}

async fn deposit<B: Bank>(state: State<B>, id: Path<String>, body: Json<Change>) -> Response {
    change(state, id, body, 1).await
}

async fn withdraw<B: Bank>(state: State<B>, id: Path<String>, body: Json<Change>) -> Response {
    change(state, id, body, -1).await
}

async fn change<B: Bank>(
    State(bank): State<B>,
    Path(id): Path<String>,
    Json(body): Json<Change>,
    sign: i64,
) -> Response {
    bank.before_request().await;
    if body.amount <= 0 {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "amount must be positive" }))).into_response();
    }
    match bank.change(&id, sign * body.amount, &body.op_ref).await {
        Ok(changed) => {
            let (version, balance) = (changed.version, changed.balance);
            if let Some(delay) = changed.answer_after {
                // Applied already; only the answer is late.
                tokio::time::sleep(delay).await;
            }
            bank.acknowledged(&id, version);
            Json(json!({ "id": id, "version": version, "balance": balance })).into_response()
        }
        Err(r) => refusal(r),
    }
}

/// The header the harness's probes send (`operation::PROBE_HEADER`); a target is an
/// outside system to the harness, so it names it itself.
const PROBE_HEADER: &str = "x-cqrs-bench-probe";

/// Refs in `GET /accounts/{id}`: the most recent ones only, so the answer stays small
/// however long the run (issue 18); all of them are on `/accounts/{id}/refs`.
pub const RECENT_REFS: usize = 100;
/// Refs per page of `GET /accounts/{id}/refs?page=N`.
pub const REFS_PAGE: usize = 1000;

/// `{id, balance, version, refs_total, refs, last_event}`: `refs` are the last
/// `RECENT_REFS` applied; `last_event` (`{ref, received_at, applied_at}`, ms since the
/// Unix epoch) says when the projector took the account's last applied event and applied
/// it, where the variant knows (memory, outbox), for lag attribution.
async fn get_account<B: Bank>(State(bank): State<B>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    bank.before_request().await;
    // Taken before the read: a command acknowledged while it runs is not counted.
    let acked = match headers.contains_key(PROBE_HEADER) {
        true => None,
        false => bank.acknowledged_version(&id).filter(|v| *v > 0),
    };
    let view = bank.view(&id, RefSlice::Last(RECENT_REFS)).await;
    if let (Some(acked), Ok(view)) = (acked, &view) {
        bank.count_traffic_read(acked, view.as_ref());
    }
    match view {
        Ok(Some(view)) => {
            let refs: Vec<&str> = view.refs.iter().map(|r| &**r).collect();
            let (balance, version, total) = (view.balance, view.version, view.refs_total);
            let last_event = view.last_event.as_ref().map(
                |e| json!({ "ref": e.op_ref.as_deref(), "received_at": e.received_at, "applied_at": e.applied_at }),
            );
            Json(json!({
                "id": view.id, "balance": balance, "version": version, "refs_total": total, "refs": refs,
                "last_event": last_event,
            }))
            .into_response()
        }
        Ok(None) => refusal(Refusal::NotFound),
        Err(r) => refusal(r),
    }
}

#[derive(Deserialize)]
struct Page {
    page: Option<usize>,
}

/// `GET /accounts/{id}/refs?page=N` (from 1): `REFS_PAGE` refs in the order applied;
/// a page past the end has `refs: []`. What `[verify]` reads, page by page.
async fn account_refs<B: Bank>(State(bank): State<B>, Path(id): Path<String>, Query(q): Query<Page>) -> Response {
    bank.before_request().await;
    let page = q.page.unwrap_or(1).max(1);
    let slice = RefSlice::Range { start: (page - 1).saturating_mul(REFS_PAGE), len: REFS_PAGE };
    match bank.view(&id, slice).await {
        Ok(Some(view)) => {
            let refs: Vec<&str> = view.refs.iter().map(|r| &**r).collect();
            let (version, total) = (view.version, view.refs_total);
            Json(json!({ "id": view.id, "version": version, "page": page, "refs_total": total, "refs": refs }))
                .into_response()
        }
        Ok(None) => refusal(Refusal::NotFound),
        Err(r) => refusal(r),
    }
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn top_accounts<B: Bank>(State(bank): State<B>, Query(q): Query<Limit>) -> Response {
    bank.before_request().await;
    match bank.top(q.limit.unwrap_or(10).min(1000)).await {
        Ok(top) => {
            let top: Vec<_> = top
                .into_iter()
                .map(|(id, balance, version)| json!({ "id": id, "balance": balance, "version": version }))
                .collect();
            Json(top).into_response()
        }
        Err(r) => refusal(r),
    }
}

async fn ground_truth<B: Bank>(State(bank): State<B>) -> Response {
    Json(bank.ground_truth()).into_response()
}

async fn reset_clock(State(app): State<MemoryApp>) -> StatusCode {
    app.restart_fault_clock();
    StatusCode::NO_CONTENT
}

/// `?for=DURATION` of the admin endpoints.
#[derive(Deserialize)]
pub struct For {
    #[serde(rename = "for")]
    duration: Option<String>,
}

impl For {
    /// Runs `act` for the duration asked (1 s when not given): 204, or 400 when `for` is
    /// not a duration.
    pub fn then(&self, act: impl FnOnce(Duration)) -> Response {
        let parsed = match &self.duration {
            None => Ok(Duration::from_secs(1)),
            Some(text) => humantime::parse_duration(text).map_err(|e| format!("for={text}: {e}")),
        };
        match parsed {
            Ok(duration) => {
                act(duration);
                StatusCode::NO_CONTENT.into_response()
            }
            Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
        }
    }
}

async fn stall(State(app): State<MemoryApp>, Query(q): Query<For>) -> Response {
    q.then(|d| app.stall_for(d))
}

async fn pause(State(app): State<MemoryApp>, Query(q): Query<For>) -> Response {
    q.then(|d| app.pause_for(d))
}

async fn crash(State(app): State<MemoryApp>) -> StatusCode {
    app.crash();
    StatusCode::NO_CONTENT
}
