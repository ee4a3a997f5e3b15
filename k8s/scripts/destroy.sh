#!/usr/bin/env bash
# Removes the conveyor system from the cluster.
#
#   k8s/scripts/destroy.sh [--yes] [--purge] [--overlay NAME]
#
#   (default)  delete every object of `kubectl kustomize k8s/base` (or of
#              k8s/overlays/NAME with --overlay, as deployed), keep the
#              Secrets, the persistent volumes (Kafka, InfluxDB, Prometheus,
#              Loki data) and the namespace: a later deploy.sh resumes.
#   --purge    also delete the Secrets, the PersistentVolumeClaims (THE DATA)
#              and the namespace.
#   --yes      do not ask for confirmation.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

yes=0
purge=0
tree=$K8S_DIR/base
while [[ $# -gt 0 ]]; do
	case $1 in
	--overlay) tree=$K8S_DIR/overlays/${2:?--overlay needs a name}; shift 2 ;;
	--yes) yes=1; shift ;;
	--purge) purge=1; shift ;;
	-h | --help) usage_from_header "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
require_cluster

context=$("$KUBECTL" config current-context 2>/dev/null || echo unknown)
what="the conveyor system in namespace $NAMESPACE (context $context)"
[[ $purge == 1 ]] && what+=", ITS DATA VOLUMES AND SECRETS"
if [[ $yes == 0 ]]; then
	[[ -t 0 ]] || die "not a terminal: pass --yes to delete $what"
	read -r -p "Delete $what? Type the namespace to confirm: " answer
	[[ $answer == "$NAMESPACE" ]] || die "not confirmed"
fi

rendered=$(mktemp)
on_exit "rm -f '$rendered'"
[[ -f $tree/kustomization.yaml ]] || die "no kustomization in $tree"
"$KUBECTL" kustomize "$tree" >"$rendered"
# The namespace goes last (and only with --purge): deleting it first would
# take the volumes with it.
python3 - "$rendered" <<'PY'
import re, sys
path = sys.argv[1]
docs = re.split(r"(?m)^---\n", open(path).read())
keep = [d for d in docs if not re.search(r"(?m)^kind: Namespace$", d)]
open(path, "w").write("---\n".join(keep))
PY
log "deleting the workloads, services, policies and config"
"$KUBECTL" delete -f "$rendered" --ignore-not-found --wait=true --timeout=300s
kc delete job -l app.kubernetes.io/part-of=conveyor --ignore-not-found --timeout=120s
if [[ $purge == 1 ]]; then
	log "deleting Secrets, PersistentVolumeClaims and the namespace"
	kc delete secret influxdb-tls influxdb-auth grafana-admin --ignore-not-found
	kc delete pvc -l app.kubernetes.io/part-of=conveyor --ignore-not-found --wait=true --timeout=300s
	"$KUBECTL" delete namespace "$NAMESPACE" --ignore-not-found --wait=true --timeout=300s
else
	log "kept: Secrets, PersistentVolumeClaims and namespace $NAMESPACE (--purge removes them)"
fi
log "destroyed $what"
