#!/usr/bin/env bash
# Deploys (or updates) the whole conveyor system into namespace
# conveyor-pipeline and waits until it runs.
#
#   k8s/scripts/deploy.sh [--image IMAGE] [--timeout SECONDS] [--no-wait]
#
#   --image IMAGE   engine image to run instead of conveyor:<version>
#                   (e.g. registry.example.com/conveyor:0.1.0)
#   --timeout S     how long to wait for everything to be ready (900)
#   --no-wait       apply and return
#
# Order: namespace, Secrets (k8s/secrets.yaml: make it with make-secrets.sh),
# finished setup Jobs removed (their templates are immutable), then
# `kubectl apply -k k8s/`, then wait for Kafka and InfluxDB, the topic and
# database Jobs, the engines and the monitoring stack. Idempotent.
# Environment: KUBECTL (kubectl), NAMESPACE (conveyor-pipeline: the manifests
# name it, change both together).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

image=
timeout=900
wait=1
while [[ $# -gt 0 ]]; do
	case $1 in
	--image) image=${2:?--image needs a value}; shift 2 ;;
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--no-wait) wait=0; shift ;;
	-h | --help) usage_from_header "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

secrets=$K8S_DIR/secrets.yaml
[[ -f $secrets ]] || die "$secrets is missing: run k8s/scripts/make-secrets.sh (or fill in secrets.yaml.template)"
if grep -Eq 'CHANGE_ME|REPLACE with' "$secrets"; then
	die "$secrets still holds placeholder values"
fi
"$K8S_DIR/scripts/sync-pipelines.sh" --check ||
	die "k8s/pipelines/ is out of date: run k8s/scripts/sync-pipelines.sh"
require_cluster

rendered=$(mktemp)
on_exit "rm -f '$rendered'"
"$KUBECTL" kustomize "$K8S_DIR" >"$rendered"
if [[ -n $image ]]; then
	sed -i -E "s#^([[:space:]]*image:[[:space:]]*)conveyor:[^[:space:]]+#\\1$image#" "$rendered"
fi

log "namespace and secrets"
"$KUBECTL" apply -f "$K8S_DIR/namespace.yaml"
"$KUBECTL" apply -f "$secrets"
log "removing finished setup Jobs (re-created below)"
kc delete job -l app.kubernetes.io/component=setup --ignore-not-found --wait=true --timeout=120s
log "applying the system"
"$KUBECTL" apply -f "$rendered"

[[ $wait == 1 ]] || exit 0
deadline=$((SECONDS + timeout))
left() { echo $((deadline - SECONDS > 1 ? deadline - SECONDS : 1))s; }
for sts in kafka influxdb; do
	log "waiting for StatefulSet $sts"
	kc rollout status "statefulset/$sts" --timeout="$(left)"
done
for job in kafka-create-topics influxdb-init; do
	log "waiting for Job $job"
	kc wait --for=condition=complete "job/$job" --timeout="$(left)"
done
for sts in prometheus loki; do
	log "waiting for StatefulSet $sts"
	kc rollout status "statefulset/$sts" --timeout="$(left)"
done
for deploy in processor producer grafana; do
	log "waiting for Deployment $deploy"
	kc rollout status "deployment/$deploy" --timeout="$(left)"
done
log "waiting for DaemonSet promtail"
kc rollout status daemonset/promtail --timeout="$(left)"
log "deployed; check it end to end with k8s/scripts/validate.sh"
