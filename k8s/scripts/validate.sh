#!/usr/bin/env bash
# Checks a running conveyor system end to end, against the live cluster:
#   1. every workload is ready (Deployments, StatefulSets, the DaemonSet) and
#      the setup Jobs succeeded (or were cleaned up after success);
#   2. Prometheus scrapes every engine pod and its targets are up;
#   3. records flow: the producer's and the processor's sinks deliver
#      (Prometheus), and new points land in InfluxDB (queried over verified
#      TLS with the CA and reader account from the Secrets);
#   4. Loki has the engines' logs, with the level/pipeline/stage labels;
#   5. Grafana is healthy, its InfluxDB datasource connects, and the two
#      dashboards are provisioned.
#
#   k8s/scripts/validate.sh [--timeout SECONDS]     (each step's bound, 180)
#
# Exit 0 when everything holds; otherwise the first failure is printed.
# Uses kubectl port-forward (stopped at exit); needs curl and python3.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

timeout=180
while [[ $# -gt 0 ]]; do
	case $1 in
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	-h | --help) usage_from_header "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
require_cluster

# 1. Workloads ready.
deployment_ready() {
	local want have
	want=$(kc get deployment "$1" -o jsonpath='{.spec.replicas}')
	have=$(kc get deployment "$1" -o jsonpath='{.status.availableReplicas}')
	[[ -n $want && ${have:-0} -ge $want && $want -gt 0 ]]
}
statefulset_ready() {
	local want have
	want=$(kc get statefulset "$1" -o jsonpath='{.spec.replicas}')
	have=$(kc get statefulset "$1" -o jsonpath='{.status.readyReplicas}')
	[[ -n $want && ${have:-0} -ge $want ]]
}
daemonset_ready() {
	local want have
	want=$(kc get daemonset "$1" -o jsonpath='{.status.desiredNumberScheduled}')
	have=$(kc get daemonset "$1" -o jsonpath='{.status.numberReady}')
	[[ -n $want && $want -gt 0 && ${have:-0} -ge $want ]]
}
job_ok() {
	# A finished Job may already be gone (ttlSecondsAfterFinished).
	kc get job "$1" >/dev/null 2>&1 || return 0
	[[ $(kc get job "$1" -o jsonpath='{.status.succeeded}') == 1 ]]
}
for d in producer processor grafana; do
	wait_for "$timeout" "Deployment $d ready" deployment_ready "$d" >/dev/null
done
for s in kafka influxdb prometheus loki; do
	wait_for "$timeout" "StatefulSet $s ready" statefulset_ready "$s" >/dev/null
done
wait_for "$timeout" "DaemonSet promtail ready" daemonset_ready promtail >/dev/null
for j in kafka-create-topics influxdb-init; do
	wait_for "$timeout" "Job $j succeeded" job_ok "$j" >/dev/null
done
log "1/5 every workload is ready"

# 2. Prometheus targets.
port_forward prometheus 9090
prom=http://127.0.0.1:$PF_PORT
engines=$(kc get pods -l app.kubernetes.io/component=engine --field-selector=status.phase=Running -o name | wc -l)
targets_up() {
	local up
	up=$(curl -sf --max-time 10 "$prom/api/v1/targets?state=active" |
		json_get 'sum(1 for t in d["data"]["activeTargets"] if t["labels"].get("job") == "conveyor-engines" and t["health"] == "up")')
	[[ $up -ge $engines && $up -gt 0 ]]
}
wait_for "$timeout" "Prometheus targets of $engines engine pods up" targets_up >/dev/null
log "2/5 Prometheus scrapes $engines engine pods, all up"

# 3. Records flow.
prom_value() {
	curl -sf --max-time 10 --get --data-urlencode "query=$1" "$prom/api/v1/query" |
		json_get 'float(d["data"]["result"][0]["value"][1]) if d["data"]["result"] else 0.0'
}
sink_delivers() {
	python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' \
		"$(prom_value "sum(rate(conveyor_stage_records_out_total{kind=\"sink\",pipeline=\"$1\"}[1m]))")"
}
for p in producer processor; do
	wait_for "$timeout" "pipeline $p delivering (Prometheus)" sink_delivers "$p" >/dev/null
done
influx_setup
points_recent() {
	local n
	n=$(influx_query 'SELECT count("speed_ms") FROM "conveyor_speed" WHERE time > now() - 30s' |
		json_get 'd["results"][0]["series"][0]["values"][0][1] if d["results"][0].get("series") else 0')
	[[ $n -gt 0 ]]
}
wait_for "$timeout" "points written to InfluxDB in the last 30s" points_recent >/dev/null
log "3/5 records flow: both pipelines deliver, InfluxDB receives points (TLS verified)"

# 4. Logs in Loki.
port_forward loki 3100
loki=http://127.0.0.1:$PF_PORT
logs_present() {
	local n
	n=$(curl -sf --max-time 10 --get --data-urlencode 'match[]={namespace="conveyor-pipeline", app=~"producer|processor", level=~".+"}' \
		--data-urlencode "start=$(($(date +%s) - 3600))000000000" "$loki/loki/api/v1/series" |
		json_get 'len(d["data"])')
	[[ $n -gt 0 ]]
}
wait_for "$timeout" "engine logs with a level label in Loki" logs_present >/dev/null
log "4/5 Loki has the engines' logs (labels level, pipeline, stage)"

# 5. Grafana.
port_forward grafana 3000
grafana=http://127.0.0.1:$PF_PORT
gdir=$(mktemp -d)
on_exit "rm -rf '$gdir'"
printf 'machine 127.0.0.1 login %s password %s\n' "$(secret_value grafana-admin admin-user)" \
	"$(secret_value grafana-admin admin-password)" >"$gdir/netrc"
chmod 600 "$gdir/netrc"
gget() { curl -sf --max-time 20 --netrc-file "$gdir/netrc" "$grafana$1"; }
wait_for "$timeout" "Grafana /api/health" gget /api/health >/dev/null
influx_ds_ok() {
	[[ $(gget /api/datasources/uid/influxdb/health | json_get 'd.get("status")') == OK ]]
}
wait_for "$timeout" "Grafana's InfluxDB datasource (HTTPS, CA-verified) healthy" influx_ds_ok >/dev/null
dashboards=$(gget '/api/search?type=dash-db&tag=conveyor' | json_get 'len(d)')
[[ $dashboards -ge 2 ]] || die "Grafana has $dashboards conveyor dashboards, expected 2"
log "5/5 Grafana is healthy, InfluxDB datasource OK, $dashboards dashboards provisioned"
log "validate: the conveyor system works end to end"
