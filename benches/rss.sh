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
# - Flat memory over 10 million operations (issue 11):
#   `benches/rss.sh scenarios/ceiling.toml 20000 500s` = 10 million operations at 20,000/s.
#
# Prints the peak backlog, RSS at 3 s / peak / end, the slope, and the results folder's
# size. CSV: /tmp/rss.csv. Plot: RSS (MiB) over time (s), titled with the scenario, rate,
# operations and the flatness figure (RSS slope after the first 60 s, MiB/min), written to
# ${RSS_PNG:-/tmp/rss.png} (matplotlib, installed with pip if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/bank-http.toml}
rate=${2:-5000}
duration=${3:-600s}
port=${BACKLOG_PORT:-3938}
png=${RSS_PNG:-/tmp/rss.png}
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
python3 -c 'import matplotlib' 2>/dev/null || pip install -q matplotlib
python3 - "$out/result.json" /tmp/rss.csv "$png" "$scenario" "$rate" <<'PY'
import csv, json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
result, rss_csv, png, scenario, rate = sys.argv[1:]
r = json.load(open(result))
t = r["throughput"]
warmup = (r.get("warmup") or {}).get("count", 0)
rows = [(int(a), int(b) / 1024) for a, b in list(csv.reader(open(rss_csv)))[1:]]
xs, ys = zip(*rows)
fig, ax = plt.subplots(figsize=(10, 5))
ax.plot(xs, ys, lw=1.2, label="RSS, sampled every second")
# Flatness: the slope printed above, from the RSS at 60 s to the RSS at the end.
if xs[-1] > 120:
    t60, r60 = next((a, b) for a, b in rows if a >= 60)
    slope = (ys[-1] - r60) / max(1, (xs[-1] - 60) / 60)
    flat = f"RSS slope after 60 s: {slope:+.2f} MiB/min"
    ax.plot([t60, xs[-1]], [r60, ys[-1]], "--", color="tab:red", lw=1, label=flat)
    ax.axvline(60, color="grey", lw=0.6, ls=":")
else:
    flat = "RSS slope after 60 s: n/a (run of 120 s or less)"
ax.set_title(f"cqrs-bench RSS: {scenario} at {float(rate):,.0f} ops/s, {t['offered'] + warmup:,} operations "
             f"({warmup:,} of them warmup)\n"
             f"{flat}; peak {max(ys):.1f} MiB, end {ys[-1]:.1f} MiB")
ax.set_xlabel("time (s)")
ax.set_ylabel("RSS (MiB)")
ax.set_ylim(0, max(ys) * 1.15)
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
fig.tight_layout()
fig.savefig(png, dpi=100)
print(f"plot: {png}")
PY
rm -rf "$out"
