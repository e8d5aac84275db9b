#!/usr/bin/env bash
# Issue 15: does the compare gate tell noise from a real regression on this machine?
# Against memory targets that answer every command 10 ms (same) or 12 ms (20 % slower)
# after applying it, a fresh one per run: a baseline set of REPEAT runs, then COMPARISONS runs of each
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
# Below the ephemeral range (32768+), where a client socket could hold the port.
base_port=$((20000 + RANDOM % 12000))
slow_port=$((base_port + 1))
# A fresh target for every run: the memory target's answers list every ref of an account,
# so a target kept across runs answers more slowly run after run (a real drift, which the
# gate rightly calls a regression, not the noise this bench is after).
target_pid=
trap 'kill $target_pid 2>/dev/null || true' EXIT
serve() {  # PORT SLOW_DELAY
  if [ -n "$target_pid" ]; then
    kill "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
  "$bin" target serve --variant memory --listen 127.0.0.1:$1 --slow-every 1 --slow-delay $2 > "$out/serve-$1.log" 2>&1 &
  target_pid=$!
  # Up to 30 s: on a crowded machine a start can take seconds.
  for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$1" && return; sleep 0.1; done
  echo "gate.sh: the target on port $1 did not come up in 30 s (log: $out/serve-$1.log)" >&2
  exit 1
}
delay_of() { if [ "$1" = "$base_port" ]; then echo 10ms; else echo 12ms; fi; }
run_once() {
  serve "$1" "$(delay_of "$1")"
  "$bin" run scenarios/bank-http.toml --quiet --duration "$duration" --rate "$rate" \
    --set 'load.warmup="2s"' --set slo.min_throughput=1 --target "http://127.0.0.1:$1" --out "$2" > /dev/null || true
}
run() {  # PORT OUT [--repeat K]: K runs into OUT/run-1..K (a baseline set)
  if [ "${3:-}" = --repeat ]; then
    for k in $(seq 1 "$4"); do run_once "$1" "$2/run-$k"; done
  else
    run_once "$1" "$2"
  fi
}
run $base_port "$out/baseline" --repeat "${REPEAT:-5}"
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
