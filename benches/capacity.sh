#!/usr/bin/env bash
# Capacity signal of the outbox variant: projection lag and consumer-group lag at 1, 2
# and 4 projector instances (or the counts given), each applying at most 1/COST events/s,
# under scenarios/outbox-capacity.toml (400 events/s). Needs Postgres and Redis; Kafka is
# the mock cluster unless CQRS_BENCH_KAFKA_BROKERS names a broker.
#
#   benches/capacity.sh [PROJECTORS...]      (default: 1 2 4; COST=4ms)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-1 2 4}")
read -r -a counts <<<"${counts[*]}"
cost=${COST:-4ms}
cargo build --release --quiet
bin=target/release/cqrs-bench
out=$(mktemp -d)
printf '%-11s %-12s %-12s %-12s %-16s %-14s %-6s\n' projectors lag_p50_ms lag_p99_ms lag_max_ms group_lag_msgs group_lag_s late
for n in "${counts[@]}"; do
  schema="cqrs_bench_cap_${n}_$$"
  $bin target serve --variant outbox --schema "$schema" --listen 127.0.0.1:0 --kafka "${CQRS_BENCH_KAFKA_BROKERS:-mock}" \
    --projectors "$n" --projector-cost "$cost" >"$out/serve-$n.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 300); do grep -q '^listening on' "$out/serve-$n.log" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$out/serve-$n.log")
  brokers=$(sed -n 's/^kafka \([^ ]*\) .*/\1/p' "$out/serve-$n.log")
  CQRS_BENCH_KAFKA_BROKERS="$brokers" $bin run scenarios/outbox-capacity.toml --quiet --target "$url" \
    --set "bus.topic=$schema.events" --set "bus.consumer_groups.0=$schema.projectors" \
    --set slo.projection_lag_p99=1h --out "$out/run-$n" || true
  kill $server; wait $server 2>/dev/null || true
  psql "${CQRS_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}" -q -c "DROP SCHEMA $schema CASCADE" 2>/dev/null || true
  redis-cli --scan --pattern "$schema:*" | xargs -r redis-cli del >/dev/null 2>&1 || true
  python3 - "$out/run-$n/result.json" "$n" "$schema.projectors" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["projection"]
group = r.get("bus", {}).get("consumer_lag", {}).get(sys.argv[3], {})
msgs, secs = group.get("max_messages", "-"), group.get("max_seconds", "-")
print(f'{sys.argv[2]:<11} {p["lag_ms"]["p50"]:<12.1f} {p["lag_ms"]["p99"]:<12.1f} {p["lag_ms"]["max"]:<12.1f} {msgs!s:<16} {secs if isinstance(secs, str) else round(secs, 2)!s:<14} {p["late"]:<6}')
PY
done
echo "runs: $out"
