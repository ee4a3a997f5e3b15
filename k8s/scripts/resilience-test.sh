#!/usr/bin/env bash
# Deletes a producer pod, a processor pod and a Kafka pod, one after the
# other, measures how long the system takes to recover from each, then
# proves from InfluxDB that no record was lost.
#
#   k8s/scripts/resilience-test.sh [--hard] [--settle S] [--max-recovery S]
#
#   --hard            delete with --grace-period=0 --force (a crash) instead
#                     of a graceful SIGTERM
#   --settle S        run time before, between and after the faults (60)
#   --max-recovery S  fail when a recovery takes longer (300)
#
# Recovery of a fault = until the replacement pod is ready and points written
# after the fault reach InfluxDB. Loss check: every source series (tags
# line_id, plus the producer tag: each producer pod's name) carries `seq`
# numbered 1, 2, 3, ...; over the test window each series must hold every
# seq between its first and last one, once (re-delivered points overwrite
# themselves: same series, same timestamp). The window ends `settle` seconds
# before the check and the processor's consumer lag must be back near 0.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

hard=0
settle=60
max_recovery=300
while [[ $# -gt 0 ]]; do
	case $1 in
	--hard) hard=1; shift ;;
	--settle) settle=${2:?}; shift 2 ;;
	--max-recovery) max_recovery=${2:?}; shift 2 ;;
	-h | --help) usage_from_header "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
require_cluster
"$(dirname "${BASH_SOURCE[0]}")/validate.sh" --timeout 120 || die "the system is not healthy before the test"
influx_setup
port_forward prometheus 9090
prom=http://127.0.0.1:$PF_PORT

now_ns() { echo "$(date +%s)000000000"; }
points_since() {
	influx_query "SELECT count(\"seq\") FROM \"conveyor_speed\" WHERE time > $1" |
		json_get 'd["results"][0]["series"][0]["values"][0][1] if d["results"][0].get("series") else 0'
}
flowing_since() { (($(points_since "$1") > 0)); }
workload_ready() {
	local kind=$1 name=$2 want have
	want=$(kc get "$kind" "$name" -o jsonpath='{.spec.replicas}')
	if [[ $kind == deployment ]]; then
		have=$(kc get "$kind" "$name" -o jsonpath='{.status.availableReplicas}')
	else
		have=$(kc get "$kind" "$name" -o jsonpath='{.status.readyReplicas}')
	fi
	[[ ${have:-0} -ge ${want:-1} ]]
}
pod_replaced() {
	# The deleted pod (by uid) is gone and the workload is ready again.
	! kc get pods -o jsonpath='{.items[*].metadata.uid}' | grep -qw "$1" && workload_ready "$2" "$3"
}

start_ns=$(now_ns)
log "test window opens; settling ${settle}s"
sleep "$settle"

results=()
for target in deployment/producer deployment/processor statefulset/kafka; do
	kind=${target%/*}
	name=${target#*/}
	pod=$(kc get pods -l "app.kubernetes.io/name=$name" -o jsonpath='{.items[0].metadata.name}')
	uid=$(kc get pod "$pod" -o jsonpath='{.metadata.uid}')
	fault_ns=$(now_ns)
	if [[ $hard == 1 ]]; then
		log "killing pod $pod (no grace period)"
		kc delete pod "$pod" --grace-period=0 --force --wait=false >/dev/null 2>&1
	else
		log "deleting pod $pod (graceful)"
		kc delete pod "$pod" --wait=false >/dev/null
	fi
	ready_s=$(wait_for "$max_recovery" "$target to replace $pod" pod_replaced "$uid" "$kind" "$name")
	flow_s=$(wait_for "$max_recovery" "points written after the fault in InfluxDB" flowing_since "$fault_ns")
	results+=("$target: replacement ready after ${ready_s}s, data flowing $((flow_s))s after that")
	log "${results[${#results[@]} - 1]}"
	sleep "$settle"
done

# The processor catches up before the check.
lag_small() {
	local lag
	lag=$(curl -sf --max-time 10 --get --data-urlencode 'query=sum(conveyor_kafka_consumer_lag)' \
		"$prom/api/v1/query" | json_get 'float(d["data"]["result"][0]["value"][1]) if d["data"]["result"] else 0')
	python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 1000 else 1)' "$lag"
}
wait_for "$max_recovery" "the processor's consumer lag to drain" lag_small >/dev/null
end_ns=$(($(date +%s) - settle))000000000

log "checking seq continuity of every series between the window's ends"
report=$(influx_query "SELECT count(\"seq\") AS n, count(distinct(\"seq\")) AS d, min(\"seq\") AS lo, max(\"seq\") AS hi FROM \"conveyor_speed\" WHERE time >= $start_ns AND time < $end_ns GROUP BY *" |
	python3 -c '
import json, sys
d = json.load(sys.stdin)
series = d["results"][0].get("series", [])
if not series:
    print("FAIL no points in the test window"); sys.exit(0)
bad = 0
for s in series:
    cols = s["columns"]; v = dict(zip(cols, s["values"][0]))
    expected = int(v["hi"]) - int(v["lo"]) + 1
    tags = ",".join("%s=%s" % kv for kv in sorted(s.get("tags", {}).items()))
    if v["d"] != expected:
        bad += 1
        print("FAIL %s: %d of %d seq values present (%d lost) between %d and %d"
              % (tags, v["d"], expected, expected - v["d"], v["lo"], v["hi"]))
    elif v["n"] != v["d"]:
        bad += 1
        print("FAIL %s: %d points for %d seq values: duplicates (or a restarted source without its own tag)"
              % (tags, v["n"], v["d"]))
    else:
        print("ok   %s: seq %d..%d complete (%d points)" % (tags, v["lo"], v["hi"], v["n"]))
print("SUMMARY %d series, %d with problems" % (len(series), bad))
')
printf '%s\n' "$report"
printf 'recovery: %s\n' "${results[@]}"
if grep -q '^FAIL' <<<"$report"; then
	die "records were lost or duplicated (see above)"
fi
log "resilience-test: no record lost"
