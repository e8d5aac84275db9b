#!/usr/bin/env bash
# Runs the one workload of scenarios/variants/ against every reference variant, each
# served by `cqrs-bench target serve` on loopback, then puts the runs side by side with
# `cqrs-bench compare`. Needs Postgres and Redis (CQRS_BENCH_PG_URL, CQRS_BENCH_REDIS_URL,
# defaults on 127.0.0.1); Kafka is librdkafka's mock cluster unless
# CQRS_BENCH_KAFKA_BROKERS names a broker.
#
#   scenarios/variants/run-all.sh [OUT_DIR]     # default reports/variants-<UTC time>
set -euo pipefail
cd "$(dirname "$0")/../.."

out="${1:-reports/variants-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
cargo build --release --quiet
bin=target/release/cqrs-bench
kafka="${CQRS_BENCH_KAFKA_BROKERS:-mock}"

declare -A serve_flags=(
  [memory]="--variant memory"
  [pg-sync]="--variant pg-sync --schema cqrs_bench_pg_sync"
  [outbox]="--variant outbox --schema cqrs_bench_outbox --kafka $kafka"
  [event-sourced]="--variant event-sourced --schema cqrs_bench_es"
)
# Fresh state for each comparison: the Postgres schemas and Redis keys of earlier runs go.
psql "${CQRS_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}" -q -c \
  "DROP SCHEMA IF EXISTS cqrs_bench_pg_sync CASCADE; DROP SCHEMA IF EXISTS cqrs_bench_outbox CASCADE;
   DROP SCHEMA IF EXISTS cqrs_bench_es CASCADE;" 2>/dev/null || true
redis-cli -u "${CQRS_BENCH_REDIS_URL:-redis://127.0.0.1:6379}" --scan --pattern 'cqrs_bench_outbox:*' \
  | xargs -r redis-cli -u "${CQRS_BENCH_REDIS_URL:-redis://127.0.0.1:6379}" del >/dev/null || true

runs=()
for variant in memory pg-sync outbox event-sourced; do
  port=$(sed -n 's|^base_url = "http://127.0.0.1:\([0-9]*\)"|\1|p' "scenarios/variants/$variant.toml")
  banner="$out/$variant.serve.log"
  # shellcheck disable=SC2086
  $bin target serve ${serve_flags[$variant]} --listen "127.0.0.1:$port" >"$banner" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 300); do grep -q '^listening on' "$banner" && break; sleep 0.1; done
  grep -q '^listening on' "$banner" || { cat "$banner"; exit 3; }
  brokers=$(sed -n 's/^kafka \([^ ]*\) .*/\1/p' "$banner")
  CQRS_BENCH_KAFKA_BROKERS="${brokers:-${CQRS_BENCH_KAFKA_BROKERS:-}}" \
    $bin run "scenarios/variants/$variant.toml" --out "$out/$variant" || true
  kill "$server"; wait "$server" 2>/dev/null || true
  runs+=("$out/$variant")
done
$bin compare "${runs[@]}" --out "$out/compare"
