#!/bin/bash
# Creates the conveyor topic (idempotent) once the brokers answer, then
# prints its layout. Bounded: gives up after TOPIC_WAIT_SECONDS.
set -euo pipefail

: "${KAFKA_BOOTSTRAP:?}" "${TOPIC:?}" "${PARTITIONS:?}" "${REPLICATION_FACTOR:?}" "${MIN_INSYNC_REPLICAS:?}"
deadline=$((SECONDS + ${TOPIC_WAIT_SECONDS:-600}))
topics=/opt/kafka/bin/kafka-topics.sh

until "$topics" --bootstrap-server "$KAFKA_BOOTSTRAP" --list >/dev/null 2>&1; do
	if ((SECONDS >= deadline)); then
		echo "create-topics: brokers at $KAFKA_BOOTSTRAP did not answer in time" >&2
		exit 1
	fi
	echo "create-topics: waiting for $KAFKA_BOOTSTRAP"
	sleep 5
done

"$topics" --bootstrap-server "$KAFKA_BOOTSTRAP" --create --if-not-exists \
	--topic "$TOPIC" --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR" \
	--config min.insync.replicas="$MIN_INSYNC_REPLICAS"
# A topic that existed with fewer partitions grows (never shrinks).
current=$("$topics" --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --topic "$TOPIC" |
	sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' | head -n1)
if [[ -n $current && $current -lt $PARTITIONS ]]; then
	"$topics" --bootstrap-server "$KAFKA_BOOTSTRAP" --alter --topic "$TOPIC" --partitions "$PARTITIONS"
fi
"$topics" --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --topic "$TOPIC"
