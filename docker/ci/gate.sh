#!/usr/bin/env bash
# The CI performance gate as a plain script: what perf-gate.yml (GitHub Actions) runs,
# and what any other CI, or a person, can run as is.
#
#   docker/ci/gate.sh baseline   # on main: measure a baseline set (run --repeat) into $BASELINE_DIR
#   docker/ci/gate.sh check      # on a pull request: one run, compared with the baseline set
#
# check exits 1 when a figure regressed (compare's verdict: its 95 % interval beyond the
# noise band and the change beyond --max-regression), 0 otherwise; compare.md, ready for
# a pull-request comment, and the run's report are in $OUT. Without a baseline set yet,
# check measures one and passes (the first run of a new repository).
#
# Settings (environment):
#   SCENARIO      scenario file                         [scenarios/bank-http.toml]
#   BIN           cqrs-bench binary; built when unset   [target/release/cqrs-bench]
#   TARGET_CMD    starts the system under test (left running, stopped on exit); empty when
#                 CI starts it itself        [the memory reference target on $TARGET_URL]
#   TARGET_URL    base URL of the system under test      [http://127.0.0.1:3040]
#   BASELINE_DIR  the stored baseline set                [perf-baseline]
#   OUT           report folder                          [perf-report]
#   REPEAT        runs in a baseline set                 [3]
#   RUN_ARGS      more `run` arguments, e.g. "--duration 30s --rate 200"
#   MAX_REGRESSION, NOISE   compare's thresholds         [10%, 5%]
set -euo pipefail
mode=${1:?usage: gate.sh baseline|check}
scenario=${SCENARIO:-scenarios/bank-http.toml}
bin=${BIN:-target/release/cqrs-bench}
target_url=${TARGET_URL:-http://127.0.0.1:3040}
baseline_dir=${BASELINE_DIR:-perf-baseline}
out=${OUT:-perf-report}
repeat=${REPEAT:-3}
read -r -a run_args <<< "${RUN_ARGS:-}"

if [ -z "${BIN:-}" ] && [ ! -x "$bin" ]; then
  cargo build --release --locked --bin cqrs-bench
fi

# The system under test. Replace TARGET_CMD with yours (docker compose up -d, a jar, ...).
target_cmd=${TARGET_CMD-"$bin target serve --variant memory --listen ${target_url#http://}"}
if [ -n "$target_cmd" ]; then
  $target_cmd > "${TMPDIR:-/tmp}/gate-target.log" 2>&1 &
  target_pid=$!
  trap 'kill $target_pid 2>/dev/null || true' EXIT
fi
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$target_url" && break
  sleep 0.1
done

run() { "$bin" run "$scenario" --target "$target_url" --quiet "${run_args[@]}" "$@"; }

measure_baseline() {
  rm -rf "$baseline_dir"
  # A baseline set that fails its own SLOs is still a baseline: the gate is the comparison.
  run --repeat "$repeat" --out "$baseline_dir" || [ $? -eq 1 ]
}

case "$mode" in
  baseline)
    measure_baseline
    ;;
  check)
    if ! ls "$baseline_dir"/run-*/result.json > /dev/null 2>&1; then
      echo "no baseline set in $baseline_dir yet: measuring one; nothing to compare with"
      measure_baseline
      exit 0
    fi
    rm -rf "$out" && mkdir -p "$out"
    run --out "$out/run" || [ $? -eq 1 ]
    status=0
    "$bin" compare "$out/run" --baseline "$baseline_dir" --out "$out" \
      --max-regression "${MAX_REGRESSION:-10%}" --noise "${NOISE:-5%}" || status=$?
    echo "compare.md: $out/compare.md"
    exit $status
    ;;
  *)
    echo "usage: gate.sh baseline|check" >&2
    exit 2
    ;;
esac
