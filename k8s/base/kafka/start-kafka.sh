#!/bin/bash
# Starts one Kafka broker+controller (KRaft combined mode) of the kafka
# StatefulSet. The node id is the pod ordinal; the controller quorum is every
# pod of the set, found through the headless service. The storage is formatted
# on first start only (--ignore-formatted) with the fixed KAFKA_CLUSTER_ID.
set -euo pipefail

: "${POD_NAME:?}" "${POD_NAMESPACE:?}" "${KAFKA_CLUSTER_ID:?}" "${KAFKA_REPLICAS:?}"
service=kafka-headless
ordinal=${POD_NAME##*-}
[[ $ordinal =~ ^[0-9]+$ ]] || { echo "start-kafka: cannot read an ordinal from $POD_NAME" >&2; exit 1; }
statefulset=${POD_NAME%-*}

voters=
for ((i = 0; i < KAFKA_REPLICAS; i++)); do
	voters+="${voters:+,}${i}@${statefulset}-${i}.${service}.${POD_NAMESPACE}.svc:9093"
done
min_isr=$((KAFKA_REPLICAS > 2 ? 2 : 1))
rf=$((KAFKA_REPLICAS > 3 ? 3 : KAFKA_REPLICAS))

conf_dir=/tmp/kafka-config
mkdir -p "$conf_dir"
cat >"$conf_dir/server.properties" <<CONF
process.roles=broker,controller
node.id=${ordinal}
controller.quorum.voters=${voters}
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://${POD_NAME}.${service}.${POD_NAMESPACE}.svc:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=/var/lib/kafka/data/kraft
num.partitions=6
default.replication.factor=${rf}
min.insync.replicas=${min_isr}
offsets.topic.replication.factor=${rf}
transaction.state.log.replication.factor=${rf}
transaction.state.log.min.isr=${min_isr}
unclean.leader.election.enable=false
auto.create.topics.enable=false
log.retention.hours=${KAFKA_LOG_RETENTION_HOURS:-168}
group.initial.rebalance.delay.ms=3000
controlled.shutdown.enable=true
CONF

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
	--cluster-id "$KAFKA_CLUSTER_ID" --config "$conf_dir/server.properties"
exec /opt/kafka/bin/kafka-server-start.sh "$conf_dir/server.properties"
