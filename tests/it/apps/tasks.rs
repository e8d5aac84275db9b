//! A task service shaped like a NestJS app on MongoDB (issue 31, item 5): `POST /tasks`
//! answers 201 with an empty body and no `Location`, so nothing of the answer names the
//! task; the server makes a Mongo-like hex `_id`; a projector copies each created task
//! into the read model `delay` after its create, so a task is absent from `GET /tasks`
//! (and 404 on `GET /tasks/{id}`) until projected. `stop_after` stops the projector for
//! good once it has projected that many creates (its later ones are never projected).
//!
//! - `POST /tasks` `{"describe": "..."}` → 201, empty body, no `Location`
//! - `PATCH /tasks/{id}` `{"describe": "..."}` → 200 (404 for an unknown id)
//! - `POST /tasks/{id}/done` → 204 (404 for an unknown id)
//! - `GET /tasks` → `{"data": [{"_id", "describe", "done"}, …]}` (projected tasks)
//! - `GET /tasks/{id}` → `{"data": {"_id", "describe", "done"}}` or 404 until projected
//! - `GET /truth` → `{"created", "projected", "commands", "unknown_id_commands",
//!   "resolve_reads"}`: creates acknowledged; creates projected; commands (PATCH and
//!   done) received on an existing id; commands on an id the service never made; list
//!   reads with the harness's `x-cqrs-bench-probe: resolve` header

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::App;

#[derive(Default)]
struct Tasks {
    /// Write side: (id, describe, done, created at).
    written: Vec<(String, String, bool, Instant)>,
    /// How many of `written` the projector has copied.
    projected: usize,
    /// Read model rows.
    rows: Vec<Value>,
    commands: u64,
    unknown_id_commands: u64,
    resolve_reads: u64,
}

#[derive(Clone, Copy)]
pub struct Projector {
    /// A create is projected this long after it was made.
    pub delay: Duration,
    /// The projector stops after projecting this many creates.
    pub stop_after: Option<usize>,
}

type Shared = Arc<Mutex<Tasks>>;

pub fn start(projector: Projector) -> App {
    let state: Shared = Arc::default();
    let router = axum::Router::new()
        .route("/tasks", post(create).get(list))
        .route("/tasks/{id}", get(one).patch(rename))
        .route("/tasks/{id}/done", post(done))
        .route("/truth", get(truth))
        .with_state(state.clone());
    App::serve(router, project(state, projector))
}

async fn create(State(state): State<Shared>, Json(body): Json<Value>) -> StatusCode {
    let describe = body.get("describe").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut tasks = state.lock().unwrap();
    // A Mongo-like ObjectId: 4 bytes of time, then a counter; 24 hex digits.
    let id = format!("65a1f0c2{:016x}", 0x00c0_ffee_0000_0000_u64 + tasks.written.len() as u64);
    tasks.written.push((id, describe, false, Instant::now()));
    StatusCode::CREATED
}

/// A command on `id`: counted as on an existing task or an unknown one.
fn command(tasks: &mut Tasks, id: &str, change: impl FnOnce(&mut (String, String, bool, Instant))) -> bool {
    match tasks.written.iter_mut().find(|t| t.0 == id) {
        Some(task) => {
            change(task);
            tasks.commands += 1;
            true
        }
        None => {
            tasks.unknown_id_commands += 1;
            false
        }
    }
}

async fn rename(State(state): State<Shared>, Path(id): Path<String>, Json(body): Json<Value>) -> StatusCode {
    let describe = body.get("describe").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut tasks = state.lock().unwrap();
    if command(&mut tasks, &id, |t| t.1 = describe) { StatusCode::OK } else { StatusCode::NOT_FOUND }
}

async fn done(State(state): State<Shared>, Path(id): Path<String>) -> StatusCode {
    let mut tasks = state.lock().unwrap();
    if !command(&mut tasks, &id, |t| t.2 = true) {
        return StatusCode::NOT_FOUND;
    }
    // Done is shown at once on a projected task (its lag is not what this app is about).
    for row in tasks.rows.iter_mut().filter(|r| r["_id"] == id.as_str()) {
        row["done"] = json!(true);
    }
    StatusCode::NO_CONTENT
}

async fn list(State(state): State<Shared>, headers: HeaderMap) -> Json<Value> {
    let mut tasks = state.lock().unwrap();
    tasks.resolve_reads += u64::from(headers.get("x-cqrs-bench-probe").is_some_and(|v| v == "resolve"));
    Json(json!({ "data": tasks.rows }))
}

async fn one(State(state): State<Shared>, Path(id): Path<String>) -> Result<Json<Value>, StatusCode> {
    let tasks = state.lock().unwrap();
    let row = tasks.rows.iter().find(|r| r["_id"] == id.as_str()).cloned().ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({ "data": row })))
}

async fn truth(State(state): State<Shared>) -> Json<Value> {
    let tasks = state.lock().unwrap();
    Json(json!({
        "created": tasks.written.len(),
        "projected": tasks.projected,
        "commands": tasks.commands,
        "unknown_id_commands": tasks.unknown_id_commands,
        "resolve_reads": tasks.resolve_reads,
    }))
}

/// Every 5 ms: project the creates made at least `delay` ago, in order, until stopped.
/// (Renames are not projected: the tests read ids, not names.)
async fn project(state: Shared, projector: Projector) {
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut tasks = state.lock().unwrap();
        while tasks.projected < tasks.written.len()
            && projector.stop_after.is_none_or(|n| tasks.projected < n)
            && tasks.written[tasks.projected].3.elapsed() >= projector.delay
        {
            let (id, describe, done, _) = tasks.written[tasks.projected].clone();
            tasks.rows.push(json!({ "_id": id, "describe": describe, "done": done }));
            tasks.projected += 1;
        }
    }
}
