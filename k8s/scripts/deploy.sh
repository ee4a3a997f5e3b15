#!/usr/bin/env bash
# Deploys (or updates) the whole conveyor system into namespace
# conveyor-pipeline and waits until it runs.
#
#   k8s/scripts/deploy.sh [--overlay laptop] [--image IMAGE] [--timeout SECONDS]
#                         [--metrics-server auto|no] [--no-wait]
#
#   --overlay NAME  deploy k8s/overlays/NAME instead of k8s/base (the
#                   production shape). `laptop`: one Kafka node, one
#                   processor, small requests (2 CPUs, 4 GiB in all) for
#                   Docker Desktop, kind, minikube or k3d
#   --image IMAGE   engine image to run instead of conveyor:<version>
#                   (e.g. registry.example.com/conveyor:0.1.0)
#   --timeout S     how long to wait for everything to be ready (900)
#   --metrics-server auto|no
#                   auto (default): when the cluster has no metrics API (the
#                   producer's HPA reads CPU from it), install metrics-server
#                   METRICS_SERVER_VERSION (v0.7.2) from its release manifest,
#                   with --kubelet-insecure-tls (the kubelets of Docker
#                   Desktop, kind and k3d serve self-signed certificates).
#                   METRICS_SERVER_MANIFEST=FILE|URL installs that manifest
#                   instead (a mirror, an air-gapped copy). no: never install
#   --secrets FILE  the Secrets to apply (default k8s/secrets.yaml)
#   --no-wait       apply and return
#
# Order: namespace, Secrets (k8s/secrets.yaml: make it with make-secrets.sh),
# metrics-server if missing, finished setup Jobs removed (their templates are
# immutable), then `kubectl kustomize k8s/base` (or the overlay) applied, then
# wait for Kafka and InfluxDB, the topic and database Jobs, the engines and
# the monitoring stack. Idempotent.
# Environment: KUBECTL (kubectl), NAMESPACE (conveyor-pipeline: the manifests
# name it, change both together). Runs with macOS's bash 3.2 and BSD tools.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

image=
timeout=900
wait=1
overlay=
secrets=$K8S_DIR/secrets.yaml
metrics_server=auto
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.7.2}
METRICS_SERVER_MANIFEST=${METRICS_SERVER_MANIFEST:-https://github.com/kubernetes-sigs/metrics-server/releases/download/$METRICS_SERVER_VERSION/components.yaml}
while [[ $# -gt 0 ]]; do
	case $1 in
	--overlay) overlay=${2:?--overlay needs a name (laptop)}; shift 2 ;;
	--metrics-server) metrics_server=${2:?--metrics-server needs auto or no}; shift 2 ;;
	--image) image=${2:?--image needs a value}; shift 2 ;;
	--secrets) secrets=${2:?--secrets needs a file}; shift 2 ;;
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--no-wait) wait=0; shift ;;
	-h | --help) usage_from_header "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

case $metrics_server in
auto | no) ;;
*) die "--metrics-server takes auto or no, not $metrics_server" ;;
esac
tree=$K8S_DIR/base
if [[ -n $overlay ]]; then
	tree=$K8S_DIR/overlays/$overlay
	[[ -f $tree/kustomization.yaml ]] ||
		die "no overlay $overlay in $K8S_DIR/overlays"
fi

[[ -f $secrets ]] || die "$secrets is missing: run k8s/scripts/make-secrets.sh (or fill in secrets.yaml.template)"
if grep -Eq 'CHANGE_ME|REPLACE with' "$secrets"; then
	die "$secrets still holds placeholder values"
fi
"$K8S_DIR/scripts/sync-pipelines.sh" --check ||
	die "k8s/base/conveyor/pipelines.yaml is out of date: run k8s/scripts/sync-pipelines.sh"
require_cluster

rendered=$(mktemp)
on_exit "rm -f '$rendered' '$rendered.new'"
"$KUBECTL" kustomize "$tree" >"$rendered"
if [[ -n $image ]]; then
	[[ $image =~ ^[A-Za-z0-9./:@_-]+$ ]] || die "--image $image: not an image reference"
	# Portable sed (BSD and GNU): no -i, a new file instead.
	sed -E "s#^([[:space:]]*image:[[:space:]]*)conveyor:[^[:space:]]+#\\1$image#" "$rendered" >"$rendered.new"
	mv "$rendered.new" "$rendered"
	replaced=$(sed -n 's#^[[:space:]]*image:[[:space:]]*##p' "$rendered" | grep -cxF "$image" || true)
	[[ $replaced -ge 2 ]] || die "--image: the engine image was not replaced in the rendered manifests"
	if grep -Eq "^[[:space:]]*image:[[:space:]]*conveyor:" "$rendered"; then
		die "--image: an engine image conveyor:... is left in the rendered manifests"
	fi
	log "engine image: $image ($replaced containers)"
fi

# The producer's HPA reads CPU from the metrics API (metrics-server).
metrics_api() { "$KUBECTL" get apiservice v1beta1.metrics.k8s.io >/dev/null 2>&1; }
if metrics_api; then
	log "metrics API present (metrics-server)"
elif [[ $metrics_server == no ]]; then
	log "WARNING: no metrics API: the producer's HPA will show <unknown> CPU and never scale;" \
		"install metrics-server (or re-run without --metrics-server no)"
else
	log "no metrics API: installing metrics-server from $METRICS_SERVER_MANIFEST"
	"$KUBECTL" apply -f "$METRICS_SERVER_MANIFEST" ||
		die "installing metrics-server failed; install it yourself (minikube: minikube addons enable metrics-server) or pass --metrics-server no"
	# Laptop clusters' kubelets serve self-signed certificates.
	"$KUBECTL" -n kube-system patch deployment metrics-server --type=json \
		-p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
fi

log "namespace and secrets"
"$KUBECTL" apply -f "$K8S_DIR/base/namespace.yaml"
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
if [[ $metrics_server != no ]]; then
	log "waiting for the metrics API"
	"$KUBECTL" wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout="$(left)" ||
		die "the metrics API is not available, the HPA cannot read CPU: see" \
			"\`$KUBECTL -n kube-system logs deploy/metrics-server\`; on a laptop cluster, a" \
			"'x509' error there is fixed by: $KUBECTL -n kube-system patch deployment metrics-server" \
			"--type=json -p '[{\"op\":\"add\",\"path\":\"/spec/template/spec/containers/0/args/-\",\"value\":\"--kubelet-insecure-tls\"}]'"
fi
log "deployed; check it end to end with k8s/scripts/validate.sh"
