//! A todo service shaped like a NestJS @nestjs/cqrs app: `POST /todos` answers 201 with
//! the server-made id in `Location` and no body; a cron-style projector copies the
//! event log into a list of objects every 20 ms (or as often as `start_projecting_every`
//! says). It is not idempotent: every
//! `duplicate_every`-th create is inserted twice; every `drop_every`-th is lost.
//!
//! - `POST /todos` `{"describe": "..."}` → 201, `Location: /todos/{id}`
//! - `POST /todos/{id}/finish` → 204 (404 for an unknown id)
//! - `GET /todos[?page=N&limit=M]` → `{"data": [{"_id", "describe", "finished"}, …]}`
//! - `GET /todos/{id}` → `{"data": {"_id", "describe", "finished"}}` or 404
//! - `GET /truth` → `{"created", "finished", "duplicated_rows", "lost", "traffic_reads",
//!   "stale_reads", "lag_polls"}`: reads of one todo without the harness's probe header,
//!   and those that found no row for it (its create was acknowledged before: its id
//!   comes from the create's answer); reads of the list by lag probes

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::App;

#[derive(Default)]
struct Todos {
    /// Write side: (id, describe, finished).
    written: Vec<(String, String, bool)>,
    /// The event log, and how far the projector has read it.
    events: Vec<Event>,
    applied: usize,
    /// Read model rows (duplicates included).
    rows: Vec<Value>,
    duplicated_rows: u64,
    lost: u64,
    traffic_reads: u64,
    stale_reads: u64,
    /// `GET /todos` with `x-cqrs-bench-probe: lag`.
    lag_polls: u64,
}

#[derive(Clone)]
enum Event {
    Created { id: String, describe: String },
    Finished { id: String },
}

#[derive(Clone, Copy)]
pub struct Faults {
    pub duplicate_every: usize,
    pub drop_every: usize,
}

type Shared = Arc<Mutex<Todos>>;

pub fn start(faults: Faults) -> App {
    start_projecting_every(faults, Duration::from_millis(20))
}

pub fn start_projecting_every(faults: Faults, every: Duration) -> App {
    let state: Shared = Arc::default();
    let router = axum::Router::new()
        .route("/todos", post(create).get(list))
        .route("/todos/{id}", get(one))
        .route("/todos/{id}/finish", post(finish))
        .route("/truth", get(truth))
        .with_state(state.clone());
    App::serve(router, project(state, faults, every))
}

async fn create(State(state): State<Shared>, Json(body): Json<Value>) -> impl IntoResponse {
    let describe = body.get("describe").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut todos = state.lock().unwrap();
    // Ids made by the server: not the client's key.
    let id = format!("t{:05x}", todos.written.len() * 7 + 3);
    todos.written.push((id.clone(), describe.clone(), false));
    todos.events.push(Event::Created { id: id.clone(), describe });
    (StatusCode::CREATED, [(header::LOCATION, format!("/todos/{id}"))])
}

async fn finish(State(state): State<Shared>, Path(id): Path<String>) -> StatusCode {
    let mut todos = state.lock().unwrap();
    let Some(todo) = todos.written.iter_mut().find(|t| t.0 == id) else {
        return StatusCode::NOT_FOUND;
    };
    todo.2 = true;
    todos.events.push(Event::Finished { id });
    StatusCode::NO_CONTENT
}

#[derive(serde::Deserialize)]
struct Paging {
    page: Option<usize>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<Shared>,
    Query(paging): Query<Paging>,
    headers: axum::http::HeaderMap,
) -> Json<Value> {
    let mut todos = state.lock().unwrap();
    todos.lag_polls += u64::from(headers.get("x-cqrs-bench-probe").is_some_and(|v| v == "lag"));
    let rows: Vec<Value> = match (paging.page, paging.limit) {
        (Some(page), Some(limit)) => {
            todos.rows.iter().skip(page.saturating_sub(1) * limit).take(limit).cloned().collect()
        }
        _ => todos.rows.clone(),
    };
    Json(json!({ "data": rows }))
}

async fn one(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, StatusCode> {
    let mut todos = state.lock().unwrap();
    let row = todos.rows.iter().find(|r| r["_id"] == id.as_str()).cloned();
    if !headers.contains_key("x-cqrs-bench-probe") && todos.written.iter().any(|t| t.0 == id) {
        todos.traffic_reads += 1;
        todos.stale_reads += u64::from(row.is_none());
    }
    let row = row.ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({ "data": row })))
}

async fn truth(State(state): State<Shared>) -> Json<Value> {
    let todos = state.lock().unwrap();
    let finished = todos.written.iter().filter(|t| t.2).count();
    Json(json!({
        "created": todos.written.len(),
        "finished": finished,
        "duplicated_rows": todos.duplicated_rows,
        "lost": todos.lost,
        "traffic_reads": todos.traffic_reads,
        "stale_reads": todos.stale_reads,
        "lag_polls": todos.lag_polls,
        "projected": todos.applied == todos.events.len(),
    }))
}

/// The cron projector: every `every`, apply the events logged since the last run.
async fn project(state: Shared, faults: Faults, every: Duration) {
    let mut creates = 0usize;
    loop {
        tokio::time::sleep(every).await;
        let mut todos = state.lock().unwrap();
        let pending: Vec<Event> = todos.events[todos.applied..].to_vec();
        todos.applied = todos.events.len();
        for event in pending {
            match event {
                Event::Created { id, describe } => {
                    creates += 1;
                    if creates.is_multiple_of(faults.drop_every) {
                        todos.lost += 1;
                        continue;
                    }
                    let row = json!({ "_id": id, "describe": describe, "finished": false });
                    if creates.is_multiple_of(faults.duplicate_every) {
                        todos.rows.push(row.clone());
                        todos.duplicated_rows += 1;
                    }
                    todos.rows.push(row);
                }
                Event::Finished { id } => {
                    for row in todos.rows.iter_mut().filter(|r| r["_id"] == id.as_str()) {
                        row["finished"] = json!(true);
                    }
                }
            }
        }
    }
}
