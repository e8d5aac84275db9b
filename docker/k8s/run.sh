#!/usr/bin/env bash
# Runs one distributed cqrs-bench run on the current kubectl context:
#   docker/k8s/run.sh SCENARIO.toml TARGET_URL [SHARDS] [IMAGE]
# 1. the scenario as a ConfigMap, the results volume;
# 2. the shards' Indexed Job, all starting at one time 90 s from now (pods need time to be
#    scheduled and to pull the image; a shard that starts late says so in its result);
# 3. once they are complete, the merge Job; its log is the run's summary, its exit code
#    the verdict. The folders stay on the volume (shard-0 … shard-N-1, merged).
# Without Kubernetes, the same thing is N processes started alike (systemd, Nomad, SSH):
#   cqrs-bench run S.toml --shard I/N --start-at 2026-11-24T10:00:00Z --out shard-I
#   cqrs-bench merge shard-* --out merged
set -euo pipefail
scenario=${1:?usage: run.sh SCENARIO.toml TARGET_URL [SHARDS] [IMAGE]}
export TARGET_URL=${2:?usage: run.sh SCENARIO.toml TARGET_URL [SHARDS] [IMAGE]}
export SHARDS=${3:-4}
export IMAGE=${4:-cqrs-bench:latest}
export START_AT=${START_AT:-$(date -u -d '+90 seconds' +%Y-%m-%dT%H:%M:%SZ)}
here=$(cd "$(dirname "$0")" && pwd)

render() { envsubst '${SHARDS} ${START_AT} ${TARGET_URL} ${IMAGE}' < "$1"; }

# Until the Job is Complete (0) or Failed (1).
wait_job() {
  while :; do
    state=$(kubectl get job "$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')
    case "$state" in *Complete*) return 0 ;; *Failed*) return 1 ;; esac
    sleep 5
  done
}

kubectl delete job cqrs-bench-shards cqrs-bench-merge --ignore-not-found
kubectl create configmap cqrs-bench-scenario --from-file=scenario.toml="$scenario" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f "$here/results-pvc.yaml"
render "$here/shards-job.yaml" | kubectl apply -f -
echo "shards start at $START_AT"
wait_job cqrs-bench-shards || { echo "a shard failed (exit 2 or 3): kubectl logs -l job-name=cqrs-bench-shards" >&2; exit 3; }
render "$here/merge-job.yaml" | kubectl apply -f -
wait_job cqrs-bench-merge || true
kubectl logs job/cqrs-bench-merge
code=$(kubectl get pod -l job-name=cqrs-bench-merge -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.exitCode}')
exit "${code:-3}"
