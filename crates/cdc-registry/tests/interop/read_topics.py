"""Reads Avro topics with Confluent's stock Python consumer and prints each message as JSON.

    read_topics.py --bootstrap HOST:PORT --registry URL --group G --expect N topic [topic...]

Subscribes to the topics as consumer group G from the earliest offset, decodes key and
value with `AvroDeserializer` (schemas fetched from the registry by the id in each
message's Confluent framing), and prints one line per message to stdout, in the order
received (in offset order within a partition):

    {"key": {...} or null, "offset": 0, "partition": 0, "topic": "...", "value": {...} or null}

Values are made JSON-safe: Decimal -> its exact str(), datetime/date/time -> ISO 8601,
bytes -> hex, UUID -> str; nested records, arrays and maps likewise. A tombstone's value
is null. Stops after N messages in all (tombstones count) and exits 0; the group's
offsets are committed for what was printed.

Exit codes: 0 read N messages; 3 no new message for --idle-timeout seconds (default 60);
2 bad arguments, or a message that does not decode, or a fatal client error. Needs the
venv from scripts/python-env; used by the suite's Rust tests, which parse stdout.
"""

import argparse
import datetime
import decimal
import json
import sys
import time
import uuid

from confluent_kafka import DeserializingConsumer, KafkaError, KafkaException
from confluent_kafka.error import ConsumeError, KeyDeserializationError, ValueDeserializationError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer


def json_safe(value):
    """A copy of a decoded Avro datum that json.dumps can write without losing precision."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="bootstrap.servers, e.g. 127.0.0.1:9092")
    parser.add_argument("--registry", required=True, help="schema registry URL")
    parser.add_argument("--group", required=True, help="consumer group id")
    parser.add_argument("--expect", required=True, type=int, help="messages to read in all topics")
    parser.add_argument("--idle-timeout", type=float, default=60.0,
                        help="seconds without a new message before giving up (default 60)")
    parser.add_argument("topics", nargs="+", metavar="topic")
    args = parser.parse_args(argv)
    if args.expect < 0:
        parser.error("--expect must be 0 or more")
    return args


def fail(code, message):
    print(f"read_topics: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def main(argv):
    args = parse_args(argv)
    registry = SchemaRegistryClient({"url": args.registry})
    consumer = DeserializingConsumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        # Topics created after we subscribed are found within a second.
        "topic.metadata.refresh.interval.ms": 1000,
        "key.deserializer": AvroDeserializer(registry),
        "value.deserializer": AvroDeserializer(registry),
    })
    consumer.subscribe(args.topics)
    read = 0
    last_message = time.monotonic()
    try:
        while read < args.expect:
            idle = time.monotonic() - last_message
            if idle >= args.idle_timeout:
                fail(3, f"read {read} of {args.expect} messages from {', '.join(args.topics)}; "
                        f"no new message for {args.idle_timeout:g} s")
            try:
                msg = consumer.poll(min(1.0, args.idle_timeout - idle))
            except (KeyDeserializationError, ValueDeserializationError) as e:
                field = "key" if isinstance(e, KeyDeserializationError) else "value"
                m = e.kafka_message
                where = f"{m.topic()}[{m.partition()}]@{m.offset()}" if m is not None else "a message"
                fail(2, f"cannot decode the {field} of {where}: {e.exception or e}")
            except ConsumeError as e:
                err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
                if err is not None and err.fatal():
                    fail(2, f"fatal consumer error: {err}")
                # Transient (broker not up yet, topic not created yet): librdkafka retries.
                print(f"read_topics: (retrying) {e}", file=sys.stderr, flush=True)
                continue
            if msg is None:
                continue
            read += 1
            last_message = time.monotonic()
            line = {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": json_safe(msg.key()),
                "value": json_safe(msg.value()),
            }
            print(json.dumps(line, sort_keys=True), flush=True)
    except KafkaException as e:
        fail(2, f"consumer error: {e}")
    finally:
        consumer.close()


if __name__ == "__main__":
    main(sys.argv[1:])
