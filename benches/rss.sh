#!/usr/bin/env bash
# The harness's memory over a long run: RSS sampled every second.
#
#   benches/rss.sh [SCENARIO] [RATE] [DURATION]
#
# - Saturated target (issue 17, the default): scenarios/bank-http.toml at 5,000 ops/s for
#   600 s against `target serve --variant memory`, which saturates below that on a 2-core
#   machine, so the backlog fills and the rest is dropped.
# - Soak (issue 16): `benches/rss.sh scenarios/ceiling.toml 10000 1000s` sends 10 million
#   operations the target keeps up with.
#
# Prints the peak backlog, RSS at 3 s / peak / end, the slope, and the results folder's
# size. CSV: /tmp/rss.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/bank-http.toml}
rate=${2:-5000}
duration=${3:-600s}
port=${BACKLOG_PORT:-3938}
bin=${CQRS_BENCH_BIN:-target/release/cqrs-bench}
[ -n "${CQRS_BENCH_BIN:-}" ] || cargo build --release --quiet
$bin target serve --variant memory --listen 127.0.0.1:$port >/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 0.5
out=$(mktemp -d)
$bin run "$scenario" --quiet --target "http://127.0.0.1:$port" --rate "$rate" \
  --duration "$duration" --out "$out" &
run=$!
echo "t_s,rss_kib" >/tmp/rss.csv
t=0
while kill -0 $run 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$run/status 2>/dev/null || echo "")
  [ -n "$rss" ] && echo "$t,$rss" >>/tmp/rss.csv
  sleep 1
  t=$((t + 1))
done
wait $run || true
python3 - "$out/result.json" /tmp/rss.csv <<'PY'
import csv, json, sys
r = json.load(open(sys.argv[1]))
rows = [(int(a), int(b)) for a, b in list(csv.reader(open(sys.argv[2])))[1:]]
peak = max(b for _, b in rows)
# RSS once the load runs but before the backlog has grown (3 s in), against the peak.
base = next((b for t, b in rows if t >= 3), rows[0][1])
g, t = r["generator"], r["throughput"]
print(f"offered {t['offered_per_s']:.0f}/s, achieved {t['achieved_per_s']:.0f}/s, dropped {t['dropped']}")
print(f"send lag p50 {g['send_lag_ms']['p50']} ms, p99 {g['send_lag_ms']['p99']} ms; verdict {r['verdict']}; "
      f"command p99 {r['commands']['latency_ms']['p99']} ms, query p99 {r['queries']['latency_ms']['p99']} ms")
print(f"peak backlog {g['max_backlog']} operations ({g['max_backlog_bytes']} bytes of slots)")
print(f"RSS: at 3 s {base/1024:.1f} MiB, peak {peak/1024:.1f} MiB, end {rows[-1][1]/1024:.1f} MiB")
print(f"operations: {t['offered']} offered; RSS slope after 60 s: "
      f"{(rows[-1][1]-next(b for t_, b in rows if t_ >= 60))/1024/max(1, (rows[-1][0]-60)/60):.2f} MiB/min"
      if rows[-1][0] > 120 else "")
PY
du -sh "$out"
rm -rf "$out"
