"""Reads every change topic with Confluent's stock consumer and counts each change.

    topic_changes.py BOOTSTRAP REGISTRY_URL TOPIC [TOPIC ...]

Reads each topic from its first offset to its high watermark as taken at start, with
isolation.level=read_committed (what a reader of exactly-once topics uses), decoding
values with AvroDeserializer (schemas from the registry by the id in each record).
Prints one JSON object per table on stdout:

    {"table": "payment", "snapshot": N, "snapshot_positions": N,
     "truncates": N, "twice": [[commit_lsn, ordinal, times, [copy, ...]], ...],
     "twice_total": N,
     "per_xid": {"<xid>": changes, ...}}

"twice" lists streamed changes ((commit_lsn, ordinal)) found in more than one record
(a truncate is written to every partition, so its position counts once). Exit 2 on a
client or decoding error. Used by the chaos harness (crates/cdc/tests/support/chaos.rs).
"""

import collections
import json
import sys

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main(bootstrap, registry_url, topics):
    registry = SchemaRegistryClient({"url": registry_url})
    values = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "totesys-cdc-chaos-check",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    metadata = consumer.list_topics(timeout=30)
    assignment, ends = [], {}
    for topic in topics:
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            if high > low:
                assignment.append(TopicPartition(topic, partition, low))
                ends[(topic, partition)] = high
    consumer.assign(assignment)
    tables = collections.defaultdict(lambda: {
        "snapshot": 0, "snapshot_positions": set(), "truncates": set(),
        "positions": collections.Counter(), "copies": collections.defaultdict(list),
        "per_xid": collections.Counter()})
    open_partitions = set(ends)
    while open_partitions:
        message = consumer.poll(5.0)
        if message is None:
            # Transaction markers end a partition without a record at its last offset.
            for tp in consumer.position([TopicPartition(t, p) for t, p in open_partitions]):
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    open_partitions.discard((tp.topic, tp.partition))
            continue
        key = (message.topic(), message.partition())
        if message.error():
            if message.error().code() == -191:  # _PARTITION_EOF
                open_partitions.discard(key)
                continue
            raise KafkaException(message.error())
        if message.offset() + 1 >= ends[key]:
            open_partitions.discard(key)
        if message.value() is None:
            continue  # a tombstone
        value = values(message.value(), SerializationContext(message.topic(), MessageField.VALUE))
        source = value["source"]
        table = tables[source["table"]]
        position = (source["commit_lsn"], source["ordinal"])
        if value["op"] == "r":
            table["snapshot"] += 1
            table["snapshot_positions"].add(position)
        elif value["op"] == "t":
            table["truncates"].add(position)
        else:
            table["positions"][position] += 1
            # Where each copy is: partition@offset and the broker's timestamp (ms), to trace a duplicate.
            table["copies"][position].append(f"{message.partition()}@{message.offset()} t={message.timestamp()[1]}")
            if table["positions"][position] == 1:
                table["per_xid"][str(source["xid"])] += 1
    consumer.close()
    for name, table in sorted(tables.items()):
        print(json.dumps({
            "table": name,
            "snapshot": table["snapshot"],
            "snapshot_positions": len(table["snapshot_positions"]),
            "truncates": len(table["truncates"]),
            "twice": [[lsn, ordinal, n, table["copies"][(lsn, ordinal)]]
                      for (lsn, ordinal), n in table["positions"].items() if n > 1][:20],
            "twice_total": sum(n - 1 for n in table["positions"].values() if n > 1),
            "per_xid": dict(table["per_xid"]),
        }))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1], sys.argv[2], sys.argv[3:])
    except Exception as error:  # one line naming what failed
        print(f"topic_changes: {error}", file=sys.stderr)
        sys.exit(2)
