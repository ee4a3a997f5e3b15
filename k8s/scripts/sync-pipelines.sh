#!/usr/bin/env bash
# Copies pipelines/producer.yaml and pipelines/processor.yaml into
# k8s/base/pipelines/, where kustomize's configMapGenerator can read them (its
# default load restrictor refuses files outside the kustomization's folder).
# tests/k8s fails when the copies drift: run this after editing a pipeline.
#
#   k8s/scripts/sync-pipelines.sh [--check]    --check: report drift, copy nothing
set -euo pipefail

k8s_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src_dir=$k8s_dir/../pipelines
check=0
[[ ${1:-} == --check ]] && check=1

status=0
for name in producer.yaml processor.yaml; do
	if [[ ! -f $src_dir/$name ]]; then
		echo "sync-pipelines: pipelines/$name is missing" >&2
		exit 1
	fi
	if cmp -s "$src_dir/$name" "$k8s_dir/base/pipelines/$name"; then
		continue
	fi
	if [[ $check == 1 ]]; then
		echo "sync-pipelines: k8s/base/pipelines/$name differs from pipelines/$name" >&2
		status=1
	else
		cp "$src_dir/$name" "$k8s_dir/base/pipelines/$name"
		echo "sync-pipelines: updated k8s/base/pipelines/$name"
	fi
done
exit "$status"
