#!/usr/bin/env bash
# Checks a running conveyor system end to end, against the live cluster:
#   workloads  every workload is ready (Deployments, StatefulSets, the
#              DaemonSet) and the setup Jobs succeeded (or were cleaned up);
#   hpa        the metrics API answers and the producer's HPA reads its CPU;
#   targets    Prometheus scrapes every engine pod and its targets are up;
#   flow       records flow: the producer's and the processor's sinks deliver
#              (Prometheus), and new points land in InfluxDB;
#   tls        InfluxDB speaks only HTTPS: plain HTTP gets no answer, HTTPS
#              verifies with the CA of the influxdb-tls Secret for the name
#              the processor uses, the reader logs in, the certificate is
#              valid for 14 days more;
#   netpol     every NetworkPolicy of the manifests exists, and they are
#              enforced: a probe pod outside the allowed set resolves
#              InfluxDB's name but cannot connect to it;
#   loki       Loki holds recent log lines of both engines (producer and
#              processor) with their level label;
#   grafana    Grafana is healthy, its InfluxDB datasource connects, and the
#              two dashboards are provisioned.
#
#   k8s/scripts/validate.sh [--timeout SECONDS] [--only STEP,...]
#                           [--allow-unenforced-netpol]
#
#   --timeout S     each step's bound (180)
#   --only LIST     run only these steps (names above, comma-separated)
#   --allow-unenforced-netpol
#                   report NetworkPolicies that the cluster ignores as a
#                   warning, not a failure (Docker Desktop's Kubernetes and
#                   minikube without a policy-enforcing CNI ignore them)
#
# Exit 0 when everything holds; otherwise the first failure is printed.
# Uses kubectl port-forward (stopped at exit) and, for the netpol step, one
# short-lived probe pod (curlimages/curl, deleted at exit); needs curl,
# openssl and python3. Runs with macOS's bash 3.2 and BSD tools.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_STEPS=workloads,hpa,targets,flow,tls,netpol,loki,grafana
timeout=180
only=$ALL_STEPS
allow_unenforced=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--only) only=${2:?--only needs step names}; shift 2 ;;
	--allow-unenforced-netpol) allow_unenforced=1; shift ;;
	-h | --help) usage_from_header "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
for s in ${only//,/ }; do
	[[ ,$ALL_STEPS, == *,$s,* ]] || die "unknown step $s (steps: $ALL_STEPS)"
done
step_on() { [[ ,$only, == *,$1,* ]]; }
steps_total=$(echo "${only//,/ }" | wc -w | tr -d ' ')
steps_done=0
passed() {
	steps_done=$((steps_done + 1))
	log "$steps_done/$steps_total $*"
}
require_cluster

# ---------------------------------------------------------------- workloads
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
if step_on workloads; then
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
	passed "every workload is ready"
fi

# ---------------------------------------------------------------------- hpa
hpa_cpu() { kc get hpa producer -o 'jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}'; }
hpa_reads_cpu() { [[ -n $(hpa_cpu) ]]; }
if step_on hpa; then
	metrics_api_ok || die "the cluster has no working metrics API, so the producer's HPA cannot read CPU; $METRICS_SERVER_HINT"
	wait_for "$timeout" "the producer's HPA to read CPU (kubectl describe hpa producer)" hpa_reads_cpu >/dev/null
	passed "the producer's HPA reads CPU: $(hpa_cpu)% of the request"
fi

# ------------------------------------------------------------------ targets
if step_on targets || step_on flow; then
	port_forward prometheus 9090
	prom=http://127.0.0.1:$PF_PORT
fi
if step_on targets; then
	engines=$(kc get pods -l app.kubernetes.io/component=engine --field-selector=status.phase=Running -o name | wc -l | tr -d ' ')
	targets_up() {
		local up
		up=$(curl -sf --max-time 10 "$prom/api/v1/targets?state=active" |
			json_get 'sum(1 for t in d["data"]["activeTargets"] if t["labels"].get("job") == "conveyor-engines" and t["health"] == "up")')
		[[ $up -ge $engines && $up -gt 0 ]]
	}
	wait_for "$timeout" "Prometheus targets of $engines engine pods up" targets_up >/dev/null
	passed "Prometheus scrapes $engines engine pods, all up"
fi

# --------------------------------------------------------------------- flow
if step_on flow || step_on tls; then
	influx_setup
fi
if step_on flow; then
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
	points_recent() {
		local n
		n=$(influx_query 'SELECT count("speed_ms") FROM "conveyor_speed" WHERE time > now() - 30s' |
			json_get 'd["results"][0]["series"][0]["values"][0][1] if d["results"][0].get("series") else 0')
		[[ $n -gt 0 ]]
	}
	wait_for "$timeout" "points written to InfluxDB in the last 30s" points_recent >/dev/null
	passed "records flow: both pipelines deliver, InfluxDB receives points (TLS verified)"
fi

# ---------------------------------------------------------------------- tls
# The name the processor and Grafana use (in the certificate).
INFLUX_NAME=influxdb.$NAMESPACE.svc
if step_on tls; then
	# Plain HTTP: InfluxDB answers only TLS (Go's server says 400 to plain
	# HTTP); a 2xx would mean an HTTP listener.
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$INFLUX_PORT/ping" || true)
	[[ $code != 2* ]] || die "InfluxDB answers plain HTTP ($code): https-enabled is off"
	# HTTPS, verified with our CA for the service name (not just localhost).
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$INFLUX_DIR/ca.pem" \
		--resolve "$INFLUX_NAME:$INFLUX_PORT:127.0.0.1" "https://$INFLUX_NAME:$INFLUX_PORT/ping") ||
		die "InfluxDB's certificate does not verify for $INFLUX_NAME with the CA of Secret influxdb-tls (curl: $code)"
	[[ $code == 204 ]] || die "InfluxDB /ping over HTTPS answered $code, not 204"
	# Authentication on: anonymous queries refused, the reader accepted.
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$INFLUX_DIR/ca.pem" \
		--get --data-urlencode 'q=SHOW DATABASES' "https://localhost:$INFLUX_PORT/query" || true)
	[[ $code == 401 ]] || die "InfluxDB answered an anonymous query with $code, not 401 (auth-enabled off?)"
	influx_query 'SHOW MEASUREMENTS' >/dev/null || die "the reader account cannot query InfluxDB"
	# The certificate the server presents is valid for two more weeks.
	openssl s_client -connect "127.0.0.1:$INFLUX_PORT" -servername "$INFLUX_NAME" </dev/null 2>/dev/null |
		openssl x509 -noout -checkend 1209600 >/dev/null ||
		die "InfluxDB's certificate expires within 14 days (or none was presented): renew it (README, Day-2)"
	passed "InfluxDB speaks only HTTPS, verified for $INFLUX_NAME, auth on, certificate valid for 14 days more"
fi

# ------------------------------------------------------------------- netpol
# The NetworkPolicy names of the manifests (kustomize output: kind, then
# metadata.name at two spaces).
expected_policies() {
	"$KUBECTL" kustomize "$K8S_DIR/base" 2>/dev/null |
		awk '/^kind: /{kind=$2} /^  name: /{if (kind == "NetworkPolicy") print $2; kind=""}' | sort
}
# probe_influxdb POD: curl's exit code from a pod that no policy allows to
# reach InfluxDB (6: name not resolved, 7/28: refused/timed out, 0/35/60:
# reached). The caller deletes the pod.
probe_influxdb() {
	local pod=$1 phase i
	kc run "$pod" --image=curlimages/curl:8.11.1 --restart=Never \
		--labels=app.kubernetes.io/name=netpol-probe,app.kubernetes.io/part-of=conveyor \
		--overrides='{"spec":{"automountServiceAccountToken":false,"securityContext":{"runAsNonRoot":true,"runAsUser":100,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"'"$pod"'","image":"curlimages/curl:8.11.1","command":["sh","-c","curl -s -o /dev/null --connect-timeout 8 https://influxdb:8086/ping; echo probe-rc=$?"],"securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}},"resources":{"requests":{"cpu":"10m","memory":"16Mi"},"limits":{"cpu":"100m","memory":"32Mi"}}}]}}' \
		>/dev/null
	for ((i = 0; i < timeout / 2; i++)); do
		phase=$(kc get pod "$pod" -o jsonpath='{.status.phase}' 2>/dev/null || true)
		[[ $phase == Succeeded || $phase == Failed ]] && break
		sleep 2
	done
	kc logs "$pod" 2>/dev/null | sed -n 's/^probe-rc=\([0-9]*\)$/\1/p' | tail -n 1
}
if step_on netpol; then
	want=$(expected_policies)
	[[ -n $want ]] || die "no NetworkPolicy found in the rendered manifests ($K8S_DIR/base)"
	have=$(kc get networkpolicy -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}' | sort)
	missing=$(comm -23 <(printf '%s\n' "$want") <(printf '%s\n' "$have") | tr '\n' ' ')
	[[ -z ${missing// /} ]] || die "NetworkPolicies missing: $missing(re-run deploy.sh)"
	probe=netpol-probe-$$
	on_exit "kc delete pod $probe --ignore-not-found --wait=false >/dev/null 2>&1"
	rc=$(probe_influxdb "$probe")
	case $rc in
	7 | 28) passed "NetworkPolicies present ($(printf '%s\n' "$want" | wc -l | tr -d ' ')) and enforced: an unlisted pod cannot reach InfluxDB" ;;
	6) die "the netpol probe pod could not resolve influxdb: DNS egress blocked (allow-dns policy, kube-dns labels?)" ;;
	"") die "the netpol probe pod gave no answer within ${timeout}s (kubectl -n $NAMESPACE describe pod $probe)" ;;
	*)
		msg="NetworkPolicies are NOT enforced: a pod outside the allowed set reached InfluxDB (curl exit $rc); the cluster's network plugin ignores them (Docker Desktop; minikube without --cni=calico; use k3d/kind with policy support, or Calico/Cilium)"
		if [[ $allow_unenforced == 1 ]]; then
			log "WARNING: $msg"
			passed "NetworkPolicies present, NOT enforced (allowed by --allow-unenforced-netpol)"
		else
			die "$msg; --allow-unenforced-netpol accepts that"
		fi
		;;
	esac
fi

# --------------------------------------------------------------------- loki
if step_on loki; then
	port_forward loki 3100
	loki=http://127.0.0.1:$PF_PORT
	# recent_lines APP: log lines of APP's pods in the last 10 minutes that
	# Promtail labelled with a level.
	recent_lines() {
		curl -sf --max-time 10 --get \
			--data-urlencode "query={namespace=\"$NAMESPACE\", app=\"$1\", level=~\".+\"}" \
			--data-urlencode "start=$(($(date +%s) - 600))000000000" --data-urlencode limit=20 \
			"$loki/loki/api/v1/query_range" |
			json_get 'sum(len(s["values"]) for s in d["data"]["result"])'
	}
	logs_of() { [[ $(recent_lines "$1") -gt 0 ]]; }
	for app in producer processor; do
		wait_for "$timeout" "recent $app log lines with a level label in Loki (Promtail running? kubectl logs ds/promtail)" logs_of "$app" >/dev/null
	done
	passed "Loki receives the engines' logs (producer and processor, labels level, pipeline, stage)"
fi

# ------------------------------------------------------------------ grafana
if step_on grafana; then
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
	passed "Grafana is healthy, InfluxDB datasource OK, $dashboards dashboards provisioned"
fi
log "validate: the conveyor system works end to end ($steps_done checks: ${only//,/ })"
