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
# Prints the peak backlog, RSS at 3 s / peak / end, the trend, and the results folder's
# size. CSV: /tmp/rss.csv. Plot: RSS (MiB) over time (s), titled with the scenario, rate,
# operations and the flatness figure (least-squares RSS trend from 60 s to the load's end,
# MiB/min), written to ${RSS_PNG:-/tmp/rss.png} (matplotlib, installed with pip if missing).
# - Hours-long runs (issue 15): `CQRS_BENCH_TIMELINE_ROWS=60 benches/rss.sh
#   scenarios/bank-http.toml 2000 1800s` caps the timeline at 60 rows (of 30 s), as the
#   default 3,600 caps an hours-long run's, so the trend shows what else grows: the ledger.
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
du -sh "$out"
python3 -c 'import matplotlib' 2>/dev/null || pip install -q matplotlib
python3 - "$out/result.json" /tmp/rss.csv "$png" "$scenario" "$rate" <<'PY'
import csv, json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
result, rss_csv, png, scenario, rate = sys.argv[1:]
r = json.load(open(result))
g, t = r["generator"], r["throughput"]
warmup = (r.get("warmup") or {}).get("count", 0)
rows = [(int(a), int(b) / 1024) for a, b in list(csv.reader(open(rss_csv)))[1:]]
xs, ys = zip(*rows)
print(f"offered {t['offered_per_s']:.0f}/s, achieved {t['achieved_per_s']:.0f}/s, dropped {t['dropped']}")
print(f"send lag p50 {g['send_lag_ms']['p50']} ms, p99 {g['send_lag_ms']['p99']} ms; verdict {r['verdict']}; "
      f"command p99 {r['commands']['latency_ms']['p99']} ms, query p99 {r['queries']['latency_ms']['p99']} ms")
print(f"peak backlog {g['max_backlog']} operations ({g['max_backlog_bytes']} bytes of slots)")
# RSS once the load runs but before the backlog has grown (3 s in), against the peak.
base = next((b for s, b in rows if s >= 3), ys[0])
print(f"RSS: at 3 s {base:.1f} MiB, peak {max(ys):.1f} MiB, end {ys[-1]:.1f} MiB; {t['offered']:,} operations offered")
# Flatness: the least-squares trend of the RSS from 60 s to 5 s before the process ended,
# so neither the start-up nor the results being written at the end (a one-off peak) tilt it.
trend = [(s, b) for s, b in rows if 60 <= s <= xs[-1] - 5]
if len(trend) > 60:
    mx = sum(s for s, _ in trend) / len(trend)
    my = sum(b for _, b in trend) / len(trend)
    slope = sum((s - mx) * (b - my) for s, b in trend) / sum((s - mx) ** 2 for s, _ in trend)
    trend_text = f"{slope * 60:+.3f} MiB/min ({slope * 3600:+.1f} MiB/h)"
    flat = f"RSS trend from 60 s to the load's end: {trend_text}"
    line = [(s, my + slope * (s - mx)) for s in (trend[0][0], trend[-1][0])]
else:
    trend_text, line = "n/a (a load of 2 minutes or less)", None
    flat = f"RSS trend: {trend_text}"
print(flat)
fig, ax = plt.subplots(figsize=(10, 5))
ax.plot(xs, ys, lw=1.2, label="RSS, sampled every second")
if line:
    ax.plot(*zip(*line), "--", color="tab:red", lw=1.2, label=flat)
    ax.axvline(60, color="grey", lw=0.6, ls=":")
step = r.get("timeline_step_s", 1)
ax.set_title(f"cqrs-bench RSS: {scenario.split('/')[-1]} at {float(rate):,.0f} ops/s, "
             f"{t['offered'] + warmup:,} operations, timeline rows of {step} s\n"
             f"trend after 60 s {trend_text}; peak {max(ys):.1f} MiB (results written)")
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
