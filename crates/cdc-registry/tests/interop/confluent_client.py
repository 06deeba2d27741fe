"""Interop check: Confluent's own Python client against our registry.

Runs in the test suite as `crates/cdc-registry/tests/python_interop.rs`, which starts
the registry on a fresh database and runs this script with the venv's python from
`scripts/python-env`. By hand, against a registry on an empty database (ids must start at 1):

    scripts/python-env
    CDC_REGISTRY_DATABASE='host=… dbname=…' cargo run -p cdc-registry --example registry-server -- --listen 127.0.0.1:18081 &
    ~/.cache/totesys-cdc/venv/bin/python crates/cdc-registry/tests/interop/confluent_client.py http://127.0.0.1:18081

Over HTTPS with basic auth, the CA file and `user:password` come from the environment
(CDC_REGISTRY_CA, CDC_REGISTRY_USER_INFO); a client without credentials must then get 401.

Exits non-zero on the first mismatch.
"""

import os
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:18081"
CA = os.environ.get("CDC_REGISTRY_CA")
USER_INFO = os.environ.get("CDC_REGISTRY_USER_INFO")


def client(with_credentials=True):
    """A stock client of the registry, with its CA and (by default) its credentials."""
    conf = {"url": URL}
    if CA:
        conf["ssl.ca.location"] = CA
    if USER_INFO and with_credentials:
        conf["basic.auth.user.info"] = USER_INFO
    return SchemaRegistryClient(conf)
V1 = ('{"type":"record","name":"Staff","namespace":"totesys","fields":'
      '[{"name":"id","type":"int"},{"name":"name","type":"string"}]}')
V2 = ('{"type":"record","name":"Staff","namespace":"totesys","fields":'
      '[{"name":"id","type":"int"},{"name":"name","type":"string"},'
      '{"name":"dept","type":["null","string"],"default":null}]}')
BAD = ('{"type":"record","name":"Staff","namespace":"totesys","fields":'
       '[{"name":"id","type":"string"}]}')


def refused(call, status, code):
    try:
        call()
    except SchemaRegistryError as e:
        assert (e.http_status_code, e.error_code) == (status, code), (e.http_status_code, e.error_code)
        return
    raise AssertionError("expected a refusal")


def main():
    if USER_INFO:
        refused(lambda: client(with_credentials=False).get_subjects(), 401, 401)
    sr = client()
    subject = "staff-value"
    id1 = sr.register_schema(subject, Schema(V1, "AVRO"))
    assert id1 == 1 and sr.register_schema(subject, Schema(V1, "AVRO")) == 1
    assert sr.get_schema(id1).schema_str == V1
    found = sr.lookup_schema(subject, Schema(V1, "AVRO"))
    assert (found.version, found.schema_id) == (1, 1)
    assert sr.get_latest_version(subject).version == 1
    assert sr.test_compatibility(subject, Schema(V2, "AVRO")) is True
    assert sr.test_compatibility(subject, Schema(BAD, "AVRO")) is False
    id2 = sr.register_schema(subject, Schema(V2, "AVRO"))
    assert id2 == 2 and sr.get_versions(subject) == [1, 2]
    assert sr.get_version(subject, 1).schema_id == 1
    refused(lambda: sr.register_schema(subject, Schema(BAD, "AVRO")), 409, 409)
    refused(lambda: sr.register_schema(subject, Schema('{"x":1}', "PROTOBUF")), 422, 42201)
    refused(lambda: sr.get_schema(999), 404, 40403)

    assert sr.set_compatibility(subject, "FULL") == {"compatibility": "FULL"}
    assert sr.get_compatibility(subject) == "FULL"
    assert sr.get_config(subject).compatibility_level.value == "FULL"
    assert sr.get_config().compatibility_level.value == "BACKWARD"
    assert sr.delete_config(subject).compatibility_level.value == "FULL"
    refused(lambda: sr.get_compatibility(subject), 404, 40408)
    assert sr.get_subjects() == [subject]
    assert [(v.subject, v.version) for v in sr.get_schema_versions(id1)] == [(subject, 1)]
    assert sr.get_subjects_by_schema_id(id1) == [subject]
    assert sr.get_mode(subject) == "READWRITE"

    # A producer's serializer and a consumer's deserializer (with a cold cache).
    ctx = SerializationContext("staff", MessageField.VALUE)
    payload = AvroSerializer(sr, V2, conf={"auto.register.schemas": True})(
        {"id": 7, "name": "Ada", "dept": "eng"}, ctx)
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == id2
    decode = AvroDeserializer(client())
    assert decode(payload, ctx) == {"id": 7, "name": "Ada", "dept": "eng"}
    other = AvroSerializer(sr, V1, conf={"auto.register.schemas": True})(
        {"id": 1, "name": "x"}, SerializationContext("other", MessageField.VALUE))
    assert int.from_bytes(other[1:5], "big") == id1

    assert sr.delete_version(subject, 2) == 2 and sr.get_versions(subject) == [1]
    assert sr.delete_subject(subject) == [1]
    refused(lambda: sr.delete_subject(subject), 404, 40404)
    assert sr.delete_subject(subject, permanent=True) == [1, 2]
    assert sr.get_subjects() == ["other-value"]
    refused(lambda: client().get_latest_version(subject), 404, 40401)
    # Ids outlive their subjects: old messages still decode.
    decode = AvroDeserializer(client())
    assert decode(payload, ctx) == {"id": 7, "name": "Ada", "dept": "eng"}
    print("confluent-kafka", "interop ok against", URL)


if __name__ == "__main__":
    main()
