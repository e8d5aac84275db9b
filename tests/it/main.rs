//! One integration-test binary (one link step): the real `cqrs-bench` binary driven
//! end to end against the reference target, embedded and over HTTP.

mod cli;
mod consistency;
mod end_to_end;
mod kafka;
mod reports;
mod support;
mod variants;
