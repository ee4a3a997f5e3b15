#!/usr/bin/env bash
# Writes k8s/base/conveyor/pipelines.yaml, the ConfigMap
# conveyor-pipelines, from pipelines/producer.yaml and pipelines/processor.yaml
# (byte for byte, as literal block scalars). A plain ConfigMap, not a
# kustomize configMapGenerator, so that its name carries no content hash: a
# pipeline change is applied in place and the engines' --watch hot-reloads it
# (k8s/README.md, "Change a pipeline"). tests/k8s fails and deploy.sh refuses
# to deploy when the ConfigMap drifts: run this after editing a pipeline.
#
#   k8s/scripts/sync-pipelines.sh [--check]    --check: report drift, write nothing
#
# Runs with macOS's bash 3.2 and BSD tools.
set -euo pipefail

k8s_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src_dir=$k8s_dir/../pipelines
out=$k8s_dir/base/conveyor/pipelines.yaml
check=0
[[ ${1:-} == --check ]] && check=1

die() {
	echo "sync-pipelines: $*" >&2
	exit 1
}

new=$(mktemp)
trap 'rm -f "$new"' EXIT
cat >"$new" <<'EOF'
# The engines' pipeline specs, mounted at /etc/conveyor/pipelines. Written by
# k8s/scripts/sync-pipelines.sh from pipelines/producer.yaml and
# pipelines/processor.yaml: edit those and run the script, not this file
# (tests/k8s and deploy.sh refuse drift). The name carries no content hash:
# `kubectl apply` updates this ConfigMap in place and the engines' --watch
# reloads the change without a restart (k8s/README.md, "Change a pipeline").
apiVersion: v1
kind: ConfigMap
metadata:
  name: conveyor-pipelines
  labels:
    app.kubernetes.io/part-of: conveyor
data:
EOF
for name in producer.yaml processor.yaml; do
	src=$src_dir/$name
	[[ -f $src ]] || die "pipelines/$name is missing"
	# A literal block scalar `|` holds the file exactly when it ends with one
	# newline, its first line is not indented and it has no carriage return.
	[[ -s $src && -z $(tail -c 1 "$src") ]] || die "pipelines/$name must end with a newline"
	[[ -n $(tail -c 2 "$src" | tr -d '\n') ]] || die "pipelines/$name ends with an empty line"
	case $(head -n 1 "$src") in
	' '* | $'\t'*) die "pipelines/$name: its first line must not be indented" ;;
	esac
	if LC_ALL=C grep -q $'\r' "$src"; then
		die "pipelines/$name holds carriage returns"
	fi
	printf '  %s: |\n' "$name" >>"$new"
	# Empty lines stay empty (no trailing blanks); every other line is
	# indented by four spaces.
	LC_ALL=C awk '{ if ($0 == "") print ""; else print "    " $0 }' "$src" >>"$new"
done

if cmp -s "$new" "$out"; then
	exit 0
fi
if [[ $check == 1 ]]; then
	echo "sync-pipelines: k8s/base/conveyor/pipelines.yaml differs from pipelines/{producer,processor}.yaml" >&2
	exit 1
fi
cat "$new" >"$out"
echo "sync-pipelines: updated k8s/base/conveyor/pipelines.yaml"
