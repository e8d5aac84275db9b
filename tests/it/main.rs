//! One integration-test binary (one link step): the real `cqrs-bench` binary driven
//! end to end against the reference target, embedded and over HTTP.

mod apps;
mod backlog;
mod backlog_more;
mod backlog_rabbit_sql;
mod browser;
mod capacity;
mod cdp;
mod cli;
mod conflicts;
mod consistency;
mod docs;
mod end_to_end;
mod forged_inputs;
mod fuzz_corpus;
mod gate;
mod goodput_and_lag;
mod hardening;
mod ids_by_reading;
mod kafka;
mod layering;
mod long_runs;
mod metrics;
mod probe_load;
mod read_models;
mod redis_variant;
mod reports;
mod schema;
mod shards;
mod staleness;
mod support;
mod variants;
mod verification;
mod walkthrough;
