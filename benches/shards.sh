#!/usr/bin/env bash
# Issue 13: are 4 merged shards the same measurement as one process sending the same
# total load? Against one served memory target, alternately: one process at RATE (with
# the default threads, and with as many threads as the shards have event loops), then
# 4 shard processes at RATE/4 each (one --start-at) merged; twice each. Prints the
# command and query latency percentiles of each run, so the merged-vs-single difference
# can be read against the single-vs-single noise.
#   benches/shards.sh [RATE] [DURATION]        (BIN=path/to/cqrs-bench to pick a build)
#
# PIN=1 gives the target one core and the generators (the one process, or all 4 shards)
# the other (taskset), as separate hosts would: on a 2-core machine the shards otherwise
# wake on the target's core. QUARTER=1 adds one process at RATE/4, a shard's own load, to
# tell the per-process rate's effect (an idle process wakes slower) from the merge's.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}
duration=${2:-20s}
bin=${BIN:-target/release/cqrs-bench}
# Generator threads per shard: 4 shards of 1 thread on a small machine compete less with
# each other (and with the target) than 4 of the machine's cores each.
shard_threads=${SHARD_THREADS:-1}
[ -x "$bin" ] || cargo build --release --bin cqrs-bench
out=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
pin_target=() pin_load=()
if [ "${PIN:-0}" = 1 ]; then pin_target=(taskset -c 1) pin_load=(taskset -c 0); fi
"${pin_target[@]}" "$bin" target serve --variant memory --listen 127.0.0.1:$port > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 1
target=http://127.0.0.1:$port
common=(--quiet --target "$target" --duration "$duration" --set load.warmup=\"2s\")

# single NAME RATE [ARGS…]
single() { "${pin_load[@]}" "$bin" run scenarios/bank-http.toml "${common[@]}" --rate "$2" --out "$out/$1" "${@:3}" > /dev/null || true; }
sharded() {
  local start_at
  start_at=$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%S.%3NZ)
  local pids=()
  for i in 0 1 2 3; do
    "${pin_load[@]}" "$bin" run scenarios/bank-http.toml "${common[@]}" --rate "$rate" --threads "$shard_threads" \
      --shard $i/4 --start-at "$start_at" --out "$out/$1-s$i" > /dev/null &
    pids+=($!)
  done
  wait "${pids[@]}" || true   # not the server's
  "$bin" merge "$out/$1"-s{0,1,2,3} --out "$out/$1" --quiet > /dev/null || true
}
# single: one process with the machine's cores as threads; single-t4: one process with as
# many event loops as the 4 shards have together (like for like on a small machine).
for round in 1 2; do
  single "single-$round" "$rate"
  single "single-t4-$round" "$rate" --threads $((4 * shard_threads))
  sharded "merged-$round"
  if [ "${QUARTER:-0}" = 1 ]; then single "quarter-$round" $((rate / 4)) --threads "$shard_threads"; fi
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print(f"{'run':<12} {'ops':>7} {'cmd p50':>8} {'cmd p99':>8} {'qry p50':>8} {'qry p99':>8} {'svc p50':>8} {'svc p99':>8} {'lag p99':>8}  (ms)")
import os
for name in ["single-1", "single-2", "single-t4-1", "single-t4-2", "merged-1", "merged-2", "quarter-1", "quarter-2"]:
    if not os.path.exists(f"{out}/{name}/result.json"):
        continue
    r = json.load(open(f"{out}/{name}/result.json"))
    c, q = r["commands"], r["queries"]
    svc = r["operations"]["get_account"]["service_time_ms"]
    print(f"{name:<12} {c['count'] + q['count']:>7} {c['latency_ms']['p50']:>8.3f} {c['latency_ms']['p99']:>8.3f} "
          f"{q['latency_ms']['p50']:>8.3f} {q['latency_ms']['p99']:>8.3f} {svc['p50']:>8.3f} {svc['p99']:>8.3f} "
          f"{r['generator']['send_lag_ms']['p99']:>8.3f}")
PY
# (svc: get_account's service time, send → answer; lag p99: the generator's send lag, the
# worst shard's for a merged run: the part of latency that is the generator's pacing.)
echo "folders: $out"
