#!/usr/bin/env bash
# Makes the TLS material of InfluxDB: a private CA and a server certificate
# signed by it, whose subjectAltNames are every name InfluxDB is reached by in
# the cluster (the `influxdb` Service, the StatefulSet pod through
# `influxdb-headless`) plus localhost for `kubectl port-forward`.
#
#   k8s/tls/generate-influxdb-certs.sh [OUT_DIR]      (default: k8s/tls)
#
# Writes OUT_DIR/ca.pem, ca.key (kept: re-running renews only the server
# certificate under the same CA, so clients keep trusting it), influxdb.pem,
# influxdb.key. --new-ca replaces the CA too. Environment: NAMESPACE
# (conveyor-pipeline), CLUSTER_DOMAIN (cluster.local), DAYS (server, 397),
# CA_DAYS (3650). k8s/scripts/make-secrets.sh puts them in the influxdb-tls
# Secret (ca.crt, tls.crt, tls.key).
set -euo pipefail

new_ca=0
out_dir=
for arg in "$@"; do
	case $arg in
	--new-ca) new_ca=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "generate-influxdb-certs: unknown option $arg" >&2; exit 2 ;;
	*) out_dir=$arg ;;
	esac
done
out_dir=${out_dir:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
namespace=${NAMESPACE:-conveyor-pipeline}
domain=${CLUSTER_DOMAIN:-cluster.local}
days=${DAYS:-397}
ca_days=${CA_DAYS:-3650}
service=influxdb
headless=influxdb-headless
pod=influxdb-0

command -v openssl >/dev/null || { echo "generate-influxdb-certs: openssl not found" >&2; exit 1; }
mkdir -p "$out_dir"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sans="DNS:$service,DNS:$service.$namespace,DNS:$service.$namespace.svc"
sans+=",DNS:$service.$namespace.svc.$domain"
sans+=",DNS:$pod.$headless,DNS:$pod.$headless.$namespace.svc,DNS:$pod.$headless.$namespace.svc.$domain"
sans+=",DNS:localhost,IP:127.0.0.1"

if [[ $new_ca == 1 || ! -s $out_dir/ca.pem || ! -s $out_dir/ca.key ]]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$work/ca.key" -out "$work/ca.pem" -days "$ca_days" \
		-subj "/O=Conveyor/CN=Conveyor InfluxDB CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	mv "$work/ca.key" "$work/ca.pem" "$out_dir/"
	echo "generate-influxdb-certs: new CA in $out_dir/ca.pem"
fi

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$work/influxdb.key" -out "$work/influxdb.csr" \
	-subj "/O=Conveyor/CN=$service.$namespace.svc" 2>/dev/null
cat >"$work/ext.cnf" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $sans
EXT
openssl x509 -req -in "$work/influxdb.csr" -CA "$out_dir/ca.pem" -CAkey "$out_dir/ca.key" \
	-CAcreateserial -CAserial "$work/ca.srl" -days "$days" -sha256 \
	-extfile "$work/ext.cnf" -out "$work/influxdb.pem" 2>/dev/null
openssl verify -CAfile "$out_dir/ca.pem" "$work/influxdb.pem" >/dev/null
mv "$work/influxdb.key" "$work/influxdb.pem" "$out_dir/"
chmod 0644 "$out_dir/ca.pem" "$out_dir/influxdb.pem"
echo "generate-influxdb-certs: $out_dir/influxdb.pem for $sans (valid $days days)"
