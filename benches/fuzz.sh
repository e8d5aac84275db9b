#!/usr/bin/env bash
# Issue 16: fuzz scenario loading and template rendering with libFuzzer (cargo-fuzz), then
# fold what the fuzzer found into the regression corpus that `cargo test` replays
# (tests/it/fuzz_corpus.rs). Not part of CI: it takes minutes and a nightly-flagged build.
#
#   cargo install cargo-fuzz                    # once
#   benches/fuzz.sh [RUNS]                      # default: 1,000,000 executions per target
#
# The machine's stable toolchain builds it with RUSTC_BOOTSTRAP=1; `-s none` because the
# crate forbids unsafe code (panics, hangs and memory blow-ups are what is sought).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs=${1:-1000000}
export RUSTC_BOOTSTRAP=1
for target in scenario template; do
  cargo fuzz build -s none "$target"
  work=$(mktemp -d)
  cp corpus/"$target"/* "$work"/
  bin=target/x86_64-unknown-linux-gnu/release/$target
  "$bin" "$work" -runs="$runs" -max_len=4096 -timeout=10 -rss_limit_mb=2048
  # Keep only inputs that add coverage (set cover), beside the committed ones.
  min=$(mktemp -d)
  "$bin" -set_cover_merge=1 "$min" corpus/"$target" "$work"
  cp "$min"/* corpus/"$target"/
  rm -rf "$work" "$min"
done
