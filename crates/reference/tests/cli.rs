//! `cqrs-bench-reference serve|replay` refuses bad flags before it connects anywhere, with
//! the harness's exit code for the user's input (2), so `cqrs-bench target serve` of these
//! variants fails the same way it did when it served them itself. (The variants served
//! against Postgres, Redis and Kafka: the harness's tests/it/variants.rs, through
//! `cqrs-bench target serve`.)

use assert_cmd::Command;
use predicates::prelude::*;

fn reference() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cqrs-bench-reference"))
}

#[test]
fn an_unknown_variant_exits_2_naming_the_variants() {
    reference()
        .args(["serve", "--variant", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown variant `nope`; available: memory, pg-sync, outbox, event-sourced"));
}

#[test]
fn a_schema_that_is_not_a_plain_name_exits_2() {
    reference()
        .args(["serve", "--variant", "pg-sync", "--schema", "x; drop table y"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--schema `x; drop table y`: use lowercase letters, digits and _"));
}

#[test]
fn a_fault_the_variant_does_not_inject_exits_2() {
    reference()
        .args(["serve", "--variant", "event-sourced", "--drop-every", "3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the event-sourced variant does not inject --drop-every"));
}

#[test]
fn replay_is_the_event_sourced_variants_only() {
    reference()
        .args(["replay", "--variant", "pg-sync"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("only the event-sourced variant can replay"));
}
