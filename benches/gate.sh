#!/usr/bin/env bash
# Issue 15: does the compare gate tell noise from a real regression on this machine?
# Against two memory targets that answer every command 10 ms (same) or 12 ms (20 %
# slower) after applying it: a baseline set (run --repeat), then COMPARISONS runs of each
# target, alternating, each compared with the set. Prints, per kind, how many comparisons
# were "within noise" on every figure and how many said "regressed" (and on what).
#   benches/gate.sh [COMPARISONS] [DURATION] [RATE]     (BIN=path/to/cqrs-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
comparisons=${1:-20}
duration=${2:-10s}
rate=${3:-200}
bin=${BIN:-target/release/cqrs-bench}
[ -x "$bin" ] || cargo build --release --bin cqrs-bench
out=$(mktemp -d)
base_port=$((20000 + RANDOM % 20000))
slow_port=$((base_port + 1))
"$bin" target serve --variant memory --listen 127.0.0.1:$base_port --slow-every 1 --slow-delay 10ms > "$out/base.log" 2>&1 &
base_pid=$!
"$bin" target serve --variant memory --listen 127.0.0.1:$slow_port --slow-every 1 --slow-delay 12ms > "$out/slow.log" 2>&1 &
slow_pid=$!
trap 'kill $base_pid $slow_pid 2>/dev/null || true' EXIT
sleep 1
run() {
  "$bin" run scenarios/bank-http.toml --quiet --duration "$duration" --rate "$rate" \
    --set 'load.warmup="2s"' --set slo.min_throughput=1 --target "http://127.0.0.1:$1" --out "$2" "${@:3}" > /dev/null || true
}
run $base_port "$out/baseline" --repeat "${REPEAT:-5}"
cat "$out/baseline/repeat.md"
same_noise=0; slow_regressed=0
for i in $(seq 1 "$comparisons"); do
  run $base_port "$out/same-$i"
  run $slow_port "$out/slow-$i"
  for kind in same slow; do
    code=0
    "$bin" compare "$out/$kind-$i" --baseline "$out/baseline" --out "$out/compare-$kind-$i" > "$out/compare-$kind-$i.txt" || code=$?
    # The table rows whose verdict is not "within noise": "<metric> <p..>".
    flagged=$(grep -E '(regressed ▲|improved ▼|worse, allowed)$' "$out/compare-$kind-$i.txt" | awk '{print $1, $2, $3}' | paste -sd, - || true)
    echo "$kind-$i: exit $code ${flagged:+(not within noise: $flagged)}"
    if [ "$kind" = same ] && [ -z "$flagged" ]; then same_noise=$((same_noise + 1)); fi
    if [ "$kind" = slow ] && [ "$code" -eq 1 ]; then slow_regressed=$((slow_regressed + 1)); fi
  done
done
echo
echo "same build:        within noise on every figure in $same_noise of $comparisons comparisons"
echo "20 % slower cmds:  regressed in $slow_regressed of $comparisons comparisons"
echo "example comparison (slow-1):"
cat "$out/compare-slow-1.txt"
echo "folders: $out"
