#!/usr/bin/env bash
# Issue 17: the harness's memory against a target it saturates.
#
#   benches/backlog_rss.sh [RATE] [DURATION]      (default: 5000 600s)
#
# Runs scenarios/bank-http.toml at RATE against `target serve --variant memory` (which
# saturates near 2,000-2,500 ops/s on a 2-core machine, so the backlog fills and the rest
# is dropped), samples the harness's RSS every second, and prints the peak RSS, the peak
# backlog and the RSS each backlogged operation cost. CSV: /tmp/backlog-rss.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-5000}
duration=${2:-600s}
port=${BACKLOG_PORT:-3938}
bin=${CQRS_BENCH_BIN:-target/release/cqrs-bench}
[ -n "${CQRS_BENCH_BIN:-}" ] || cargo build --release --quiet
$bin target serve --variant memory --listen 127.0.0.1:$port >/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 0.5
out=$(mktemp -d)
$bin run scenarios/bank-http.toml --quiet --target "http://127.0.0.1:$port" --rate "$rate" \
  --duration "$duration" --out "$out" &
run=$!
echo "t_s,rss_kib" >/tmp/backlog-rss.csv
t=0
while kill -0 $run 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$run/status 2>/dev/null || echo "")
  [ -n "$rss" ] && echo "$t,$rss" >>/tmp/backlog-rss.csv
  sleep 1
  t=$((t + 1))
done
wait $run || true
python3 - "$out/result.json" /tmp/backlog-rss.csv <<'PY'
import csv, json, sys
r = json.load(open(sys.argv[1]))
rows = [(int(a), int(b)) for a, b in list(csv.reader(open(sys.argv[2])))[1:]]
peak = max(b for _, b in rows)
# RSS once the load runs but before the backlog has grown (3 s in), against the peak.
base = next((b for t, b in rows if t >= 3), rows[0][1])
g, t = r["generator"], r["throughput"]
print(f"offered {t['offered_per_s']:.0f}/s, achieved {t['achieved_per_s']:.0f}/s, dropped {t['dropped']}")
print(f"peak backlog {g['max_backlog']} operations ({g['max_backlog_bytes']} bytes of slots)")
print(f"RSS: at 3 s {base/1024:.1f} MiB, peak {peak/1024:.1f} MiB, end {rows[-1][1]/1024:.1f} MiB")
if g["max_backlog"]:
    print(f"RSS per backlogged operation: {(peak-base)*1024/g['max_backlog']:.0f} bytes")
PY
rm -rf "$out"
