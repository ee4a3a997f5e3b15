#!/bin/sh
# Creates the conveyor database and its users in InfluxDB over verified TLS.
# Idempotent: re-run on every deploy; it also applies rotated passwords.
#   admin  : first user, all privileges (auth is on, so the first CREATE USER
#            is the only query InfluxDB accepts without credentials)
#   writer : WRITE on the database (the processor)
#   reader : READ on the database (Grafana)
# Passwords come from files and reach curl on stdin and in a netrc file, never
# on a command line.
set -eu

: "${INFLUXDB_URL:?}" "${INFLUXDB_CA_FILE:?}" "${INFLUXDB_DATABASE:?}" "${SECRETS_DIR:?}"
retention=${INFLUXDB_RETENTION:-30d}
deadline=$(($(date +%s) + ${INFLUXDB_WAIT_SECONDS:-600}))

secret() { cat "$SECRETS_DIR/$1"; }
admin_user=$(secret admin-username)
writer_user=$(secret writer-username)
reader_user=$(secret reader-username)

# InfluxQL literals: 'string' with \ and ' escaped, "identifier" with " escaped.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g")"; }
ident() { printf '"%s"' "$(printf '%s' "$1" | sed 's/"/\\"/g')"; }

netrc=$(mktemp)
trap 'rm -f "$netrc"' EXIT
host=$(printf '%s' "$INFLUXDB_URL" | sed -e 's|^https\{0,1\}://||' -e 's|[:/].*$||')
printf 'machine %s login %s password %s\n' "$host" "$admin_user" "$(secret admin-password)" >"$netrc"

# query auth|noauth: POSTs the InfluxQL statement read from stdin; fails on
# an HTTP error and on an error InfluxDB reports inside a 200 answer.
query() {
	if [ "$1" = auth ]; then set -- --netrc-file "$netrc"; else set --; fi
	answer=$(curl --silent --show-error --fail-with-body --max-time 30 \
		--cacert "$INFLUXDB_CA_FILE" "$@" \
		--data-urlencode "q@-" "$INFLUXDB_URL/query") || { echo "$answer" >&2; return 1; }
	case $answer in
	*'"error"'*) echo "$answer" >&2; return 1 ;;
	esac
	echo "$answer"
}

until curl --silent --fail --max-time 5 --cacert "$INFLUXDB_CA_FILE" "$INFLUXDB_URL/ping" >/dev/null; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "init-influxdb: $INFLUXDB_URL/ping did not answer over verified TLS in time" >&2
		exit 1
	fi
	echo "init-influxdb: waiting for $INFLUXDB_URL"
	sleep 3
done

# The admin: created without credentials on a fresh server; on a server that
# has users already this fails with 401/403, which is fine.
printf 'CREATE USER %s WITH PASSWORD %s WITH ALL PRIVILEGES' \
	"$(ident "$admin_user")" "$(quote "$(secret admin-password)")" | query noauth >/dev/null 2>&1 || true

db=$(ident "$INFLUXDB_DATABASE")
printf 'CREATE DATABASE %s' "$db" | query auth
# Retention: create once, then bring a changed INFLUXDB_RETENTION into force.
printf 'CREATE RETENTION POLICY "main" ON %s DURATION %s REPLICATION 1 DEFAULT' \
	"$db" "$retention" | query auth >/dev/null 2>&1 || true
printf 'ALTER RETENTION POLICY "main" ON %s DURATION %s DEFAULT' "$db" "$retention" | query auth
for who in writer reader; do
	user=$(secret "$who-username")
	password=$(quote "$(secret "$who-password")")
	printf 'CREATE USER %s WITH PASSWORD %s' "$(ident "$user")" "$password" | query auth >/dev/null 2>&1 || true
	printf 'SET PASSWORD FOR %s = %s' "$(ident "$user")" "$password" | query auth >/dev/null
done
printf 'GRANT WRITE ON %s TO %s' "$db" "$(ident "$writer_user")" | query auth
printf 'GRANT READ ON %s TO %s' "$db" "$(ident "$reader_user")" | query auth
echo 'SHOW USERS' | query auth
echo "init-influxdb: database $INFLUXDB_DATABASE ready"
