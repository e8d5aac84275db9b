#!/usr/bin/env bash
# Whole-tool benchmark: the highest rate cqrs-bench sustains against `target serve`,
# and the same server's ceiling measured with wrk, in the same run, on this machine.
#
#   benches/ceiling.sh [RATES...]      (default: 5000 10000 15000 20000 30000 40000)
#
# "Sustains" = achieved within 1 % of offered, nothing dropped, and the generator kept its
# schedule: send lag p99 under 5 ms (past that, the figures measure the generator's own
# queue, not the target). Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
rates=("${@:-5000 10000 15000 20000 30000 40000}")
read -r -a rates <<<"${rates[*]}"
port=${CEILING_PORT:-3939}
cargo build --release --quiet
bin=target/release/cqrs-bench
$bin target serve --variant memory --listen 127.0.0.1:$port >/dev/null &
server=$!
trap 'kill $server 2>/dev/null' EXIT
sleep 0.5

echo "== wrk (closed loop, 2 threads, 64 connections, 10 s) on GET /accounts/acct-1"
wrk -t2 -c64 -d10s "http://127.0.0.1:$port/accounts/acct-1" | tee /tmp/ceiling-wrk.txt
wrk_rps=$(awk '/Requests\/sec/ {print $2}' /tmp/ceiling-wrk.txt)

best=0
printf '\n%-8s %-10s %-10s %-8s %-10s %-10s\n' rate offered/s achieved/s dropped p99_ms send_lag_p99
for rate in "${rates[@]}"; do
  out=$(mktemp -d)
  $bin run scenarios/ceiling.toml --quiet --target "http://127.0.0.1:$port" --rate "$rate" --out "$out" || true
  read -r offered achieved dropped p99 lag < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
t=r["throughput"]; print(round(t["offered_per_s"]), round(t["achieved_per_s"]), t["dropped"], r["queries"]["latency_ms"]["p99"], r["generator"]["send_lag_ms"]["p99"])' "$out/result.json")
  printf '%-8s %-10s %-10s %-8s %-10s %-10s\n' "$rate" "$offered" "$achieved" "$dropped" "$p99" "$lag"
  if [ "$dropped" = 0 ] && python3 -c "import sys; sys.exit(0 if $achieved >= 0.99*$offered and $lag < 5 else 1)"; then best=$rate; fi
  rm -rf "$out"
done
echo
echo "cqrs-bench sustained: $best ops/s; wrk ceiling: $wrk_rps req/s; ratio: $(python3 -c "print(f'{$best/$wrk_rps:.2f}')")"
