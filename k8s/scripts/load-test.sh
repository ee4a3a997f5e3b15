#!/usr/bin/env bash
# Drives the producer's HorizontalPodAutoscaler up and back down, and
# reports how long each took.
#
#   k8s/scripts/load-test.sh [--peak N] [--up-timeout S] [--down-timeout S]
#
#   --peak N          replicas the HPA must reach (default: its maxReplicas)
#   --up-timeout S    bound on the scale-up (600)
#   --down-timeout S  bound on the scale-down (900; the HPA waits 120 s, then
#                     removes one pod a minute)
#
# Load: the producers run flat out (SIM_RATE=0), so each pod's CPU goes to its
# limit and the HPA (70% of the request) adds pods; then SIM_RATE goes back
# to what it was and the HPA removes them. The rate is restored on any exit,
# Ctrl-C included. Needs metrics-server (the HPA reads CPU from it): checked
# first, with the way to install it when missing.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

peak=
up_timeout=600
down_timeout=900
while [[ $# -gt 0 ]]; do
	case $1 in
	--peak) peak=${2:?}; shift 2 ;;
	--up-timeout) up_timeout=${2:?}; shift 2 ;;
	--down-timeout) down_timeout=${2:?}; shift 2 ;;
	-h | --help) usage_from_header "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
require_cluster
# First: without the metrics API the HPA never reads CPU (it would only show
# after the wait below).
metrics_api_ok || die "the cluster has no working metrics API, so the HPA cannot scale; $METRICS_SERVER_HINT"

hpa() { kc get hpa producer -o "jsonpath={$1}"; }
min=$(hpa .spec.minReplicas)
max=$(hpa .spec.maxReplicas)
peak=${peak:-$max}
((peak > min && peak <= max)) || die "--peak must be within $((min + 1))..$max"
cpu_known() { [[ -n $(hpa '.status.currentMetrics[0].resource.current.averageUtilization') ]]; }
wait_for 180 "the HPA to read CPU (is metrics-server installed?)" cpu_known >/dev/null
replicas() { hpa .status.currentReplicas; }
[[ $(replicas) == "$min" ]] || log "note: the HPA starts at $(replicas) replicas, not $min"

original=$(kc get deployment producer -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="SIM_RATE")].value}')
restore() {
	log "restoring SIM_RATE=${original:-<unset>}"
	if [[ -n $original ]]; then
		kc set env deployment/producer "SIM_RATE=$original" >/dev/null
	else
		kc set env deployment/producer SIM_RATE- >/dev/null
	fi
}
on_exit restore

log "load on: producers flat out (SIM_RATE=0); waiting for $peak replicas"
kc set env deployment/producer SIM_RATE=0 >/dev/null
at_peak() { (($(replicas) >= peak)); }
up=$(wait_for "$up_timeout" "the HPA to reach $peak replicas" at_peak)
log "scaled up to $(replicas) replicas in ${up}s"
kc rollout status deployment/producer --timeout=300s >/dev/null

restore
_cleanup_cmds=("${_cleanup_cmds[@]/restore/true}")
log "load off; waiting for the HPA to come back to $min replica(s)"
at_min() { (($(replicas) <= min)); }
down=$(wait_for "$down_timeout" "the HPA to scale back to $min" at_min)
log "scaled down to $(replicas) replica(s) in ${down}s"
printf 'load-test: scale-up to %s replicas: %ss; scale-down to %s: %ss\n' "$peak" "$up" "$min" "$down"
