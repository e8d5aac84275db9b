//! cqrs-bench: a load-testing and benchmark harness for CQRS systems.
//!
//! The pipeline, one stage per module:
//!
//! ```text
//! scenario file ──scenario::load──▶ Scenario ──run::connect──▶ Target
//!      ──run::drive──▶ LoadOutcome ──results::build──▶ RunResult (+ SLO verdicts)
//!      ──report──▶ summary, result.json, … ──▶ exit code
//! ```
//!
//! `run` wires a run (`run::run` shows every stage on one screen, in
//! src/run/orchestrate.rs; `main` maps its outcome to an exit code): the `generator` paces and sends, the `probe`s observe and read
//! back; neither imports the other. Both reach the target through `operation` (one
//! operation, rendered and classified) and `target` (the adapters); `live` holds the
//! counters they share with the progress display and the `--metrics-listen` endpoint.
//! `measure` (the histogram shape and codec, per-second intervals, timeline rows) sits
//! below all of them and below `results`, which `run` fills in (`results::outcome`) and
//! builds; no two modules import each other
//! (tests/it/layering.rs).
//!
//! `capacity` sits on top: `saturate` runs `run::drive` at one rate per step and judges
//! each; `capacity` does that per projector count and fits the scalability law.
//!
//! `reference/` holds the reference CQRS systems the harness tests itself against;
//! it is reached only through a `Target`, like any external system.

pub mod capacity;
pub mod cli;
pub mod exit;
pub mod generator;
pub mod live;
pub mod measure;
pub mod merge;
pub mod operation;
pub mod probe;
pub mod reference;
pub mod refs;
pub mod repeat;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod target;

// `cqrs-bench run` and the checks `main` calls, where the binary and the tests name them.
pub use run::{RunOutcome, check_probe_answers, generator_threads, run, verdict_code};
