# shellcheck shell=bash
# Shared by the operator scripts in this folder (sourced, not run).
# Needs: kubectl (or $KUBECTL) pointed at the cluster, curl, python3.

NAMESPACE=${NAMESPACE:-conveyor-pipeline}
KUBECTL=${KUBECTL:-kubectl}
# shellcheck disable=SC2034 # used by the scripts that source this file
K8S_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_cleanup_cmds=()

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# Runs at exit (in reverse order of registration): port-forwards, temp files.
on_exit() { _cleanup_cmds+=("$1"); }
_run_cleanup() {
	local i
	for ((i = ${#_cleanup_cmds[@]} - 1; i >= 0; i--)); do
		eval "${_cleanup_cmds[i]}" || true
	done
}
trap _run_cleanup EXIT

kc() { "$KUBECTL" --namespace "$NAMESPACE" "$@"; }

# metrics_api_ok: the cluster serves the metrics API (metrics-server) and it
# answers (the HPA reads pod CPU from it).
metrics_api_ok() {
	"$KUBECTL" get --raw /apis/metrics.k8s.io/v1beta1/nodes --request-timeout=10s >/dev/null 2>&1
}

# The message for a cluster without it: what to run.
# shellcheck disable=SC2034 # used by the scripts that source this file
METRICS_SERVER_HINT="install metrics-server: k8s/scripts/deploy.sh does it (--metrics-server auto,
the default), or minikube: \`minikube addons enable metrics-server\`; others:
kubectl apply -f https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.7.2/components.yaml
and, on Docker Desktop, kind and k3d (self-signed kubelet certificates), add --kubelet-insecure-tls:
kubectl -n kube-system patch deployment metrics-server --type=json -p '[{\"op\":\"add\",\"path\":\"/spec/template/spec/containers/0/args/-\",\"value\":\"--kubelet-insecure-tls\"}]'"

usage_from_header() {
	sed -n '2,/^set -euo/p' "$1" | sed -e '$d' -e 's/^# \{0,1\}//'
}

require_cluster() {
	command -v "$KUBECTL" >/dev/null 2>&1 || die "kubectl not found (set KUBECTL)"
	"$KUBECTL" version --request-timeout=10s >/dev/null 2>&1 ||
		die "no Kubernetes API answers (kubectl config current-context: $("$KUBECTL" config current-context 2>/dev/null || echo none))"
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 3 s until it succeeds;
# prints the seconds it took on stdout, dies after SECONDS.
wait_for() {
	local limit=$1 what=$2 start=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		((SECONDS - start < limit)) || die "timed out after ${limit}s waiting for $what"
		sleep 3
	done
	echo $((SECONDS - start))
}

# secret_value SECRET KEY: a key of a Secret, decoded.
secret_value() {
	# --decode: GNU's -d and old macOS' -D both know the long option.
	kc get secret "$1" -o "jsonpath={.data.${2//./\\.}}" | base64 --decode
}

# port_forward SERVICE PORT: forwards a free local port to the service; sets
# PF_PORT. Stopped at exit.
port_forward() {
	local svc=$1 port=$2 out deadline
	out=$(mktemp)
	# Not through kc: $! must be kubectl itself, or the kill at exit would
	# stop a subshell and leave the forward running.
	"$KUBECTL" --namespace "$NAMESPACE" port-forward "svc/$svc" ":$port" >"$out" 2>&1 &
	local pid=$!
	on_exit "kill $pid 2>/dev/null; rm -f '$out'"
	deadline=$((SECONDS + 30))
	PF_PORT=
	while [[ -z $PF_PORT ]]; do
		PF_PORT=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$out" | head -n1)
		[[ -n $PF_PORT ]] && break
		kill -0 "$pid" 2>/dev/null || die "port-forward to $svc failed: $(cat "$out")"
		((SECONDS < deadline)) || die "port-forward to $svc: no port after 30s"
		sleep 0.5
	done
}

# influx_setup: port-forward to InfluxDB and prepare verified-TLS reader
# access (the CA and reader credentials come from the cluster's Secrets).
influx_setup() {
	port_forward influxdb 8086
	INFLUX_PORT=$PF_PORT
	INFLUX_DIR=$(mktemp -d)
	on_exit "rm -rf '$INFLUX_DIR'"
	secret_value influxdb-tls ca.crt >"$INFLUX_DIR/ca.pem"
	printf 'machine localhost login %s password %s\n' "$(secret_value influxdb-auth reader-username)" \
		"$(secret_value influxdb-auth reader-password)" >"$INFLUX_DIR/netrc"
	chmod 600 "$INFLUX_DIR/netrc"
}

# influx_query INFLUXQL: JSON answer of a query on the conveyor database.
influx_query() {
	curl --silent --show-error --fail --max-time 60 --cacert "$INFLUX_DIR/ca.pem" \
		--netrc-file "$INFLUX_DIR/netrc" --get --data-urlencode "db=conveyor" \
		--data-urlencode "epoch=ns" --data-urlencode "q=$1" "https://localhost:$INFLUX_PORT/query"
}

# json_get EXPR: evaluates a Python expression on the JSON document on stdin
# (bound to `d`) and prints the result.
json_get() {
	python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}
