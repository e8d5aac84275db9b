#!/usr/bin/env bash
# Capacity planning figures (issue 10), on the two targets whose capacity is known:
#
#   1. the embedded memory target, 10 ms per event in each projector + 1 ms in a shared
#      section: N projectors apply min(N/11 ms, 1000) events/s. Counts 1, 2, 4 fit the
#      USL; count 8 is measured separately to check the fit's prediction.
#   2. the outbox variant (Postgres, librdkafka's mock cluster, Redis), served by the
#      harness at each count with --projector-cost 10ms: 100·N events/s.
#
#   benches/capacity.sh [memory|outbox|all]     (default: all; needs Postgres and Redis for outbox)
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/cqrs-bench
out=${OUT:-$(mktemp -d)}
if [[ $which == memory || $which == all ]]; then
  time $bin capacity scenarios/capacity.toml --projectors 1,2,4 --target-rate 500 --out "$out/memory" || true
  time $bin saturate scenarios/capacity.toml --set target.projectors=8 --set saturate.start_rate=600 --out "$out/memory-8" || true
  python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
cap = json.load(open(f"{out}/memory/capacity.json"))
eight = json.load(open(f"{out}/memory-8/saturate.json"))
truth = lambda n: min(n / 0.011, 1000.0)
for p in cap["points"]:
    m = p["max_events_per_s"]
    print(f'N={p["projectors"]}: measured {m:.1f} events/s, truth {truth(p["projectors"]):.1f} ({(m / truth(p["projectors"]) - 1) * 100:+.1f} %)')
usl = cap["usl"]
pred8 = next(x["events_per_s"] for x in cap["predicted"] if x["projectors"] == 8)
m8 = eight["max_events_per_s"]
print(f'N=8: measured {m8:.1f} events/s, truth {truth(8):.1f}; USL fitted on 1,2,4 predicts {pred8:.1f} ({(pred8 / m8 - 1) * 100:+.1f} % off the measurement)')
print(f'USL: lambda {usl["lambda"]:.2f} sigma {usl["sigma"]:.4f} kappa {usl["kappa"]:.5f}; capacity run {cap["elapsed_s"] / 60:.1f} min')
print(cap["recommendation"]["answer"])
PY
fi
if [[ $which == outbox || $which == all ]]; then
  time $bin capacity scenarios/outbox-capacity.toml --projectors 1,2,4 --target-rate 300 --out "$out/outbox" || true
  python3 - "$out" <<'PY'
import json, sys
cap = json.load(open(f"{sys.argv[1]}/outbox/capacity.json"))
for p in cap["points"]:
    m = p["max_events_per_s"]
    truth = 100.0 * p["projectors"]
    print(f'N={p["projectors"]}: measured {m:.1f} events/s, truth {truth:.1f} ({(m / truth - 1) * 100:+.1f} %)')
print(f'capacity run {cap["elapsed_s"] / 60:.1f} min; {cap["recommendation"]["answer"]}')
PY
fi
echo "results: $out"
