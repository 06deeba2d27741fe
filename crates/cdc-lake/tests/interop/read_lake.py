"""Reads the lake's Delta tables as an analyst would, knowing nothing of its layout, and
prints what it finds as JSON lines.

    read_lake.py --lake DIR [--table NAME ...]

Each table DIR/raw/<table> (or each --table) is read with DuckDB's delta extension
(`delta_scan`, the extension from PyPI's duckdb-extension-delta, loaded from its file:
nothing is downloaded), and counted again with delta-rs's `deltalake` package; the two
must agree. For each table, one line
    {"table": T, "types": {column: duckdb type, ...}, "rows": N}
then one line per change row
    {"table": T, "row": {column: value, ...}}
Values: integers as numbers, timestamps without time zone as microseconds since the
epoch, timestamps with time zone as text, dates as YYYY-MM-DD, decimals as text,
booleans, structs as objects, lists as arrays.
"""

import argparse
import datetime
import decimal
import glob
import json
import os
import sys

import deltalake
import duckdb
import duckdb_extension_delta

EPOCH = datetime.datetime(1970, 1, 1)


def render(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return (value - EPOCH) // datetime.timedelta(microseconds=1)
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def q(name):
    return '"' + name.replace('"', '""') + '"'


def connect():
    """A DuckDB connection with the delta extension loaded from the PyPI package."""
    ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))
    if not ext:
        sys.exit("read_lake.py: duckdb-extension-delta holds no delta.duckdb_extension")
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    con.execute("LOAD " + "'" + ext[0].replace("'", "''") + "'")
    return con


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True)
    parser.add_argument("--table", action="append", default=[])
    args = parser.parse_args()
    raw = os.path.join(args.lake, "raw")
    tables = args.table or sorted(t for t in os.listdir(raw) if os.path.isdir(os.path.join(raw, t, "_delta_log")))
    con = connect()
    out = sys.stdout
    for table in tables:
        path = os.path.join(raw, table)
        source = "delta_scan('" + path.replace("'", "''") + "')"
        types = {name: kind for name, kind, *_ in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        # Timestamps with a time zone as text: DuckDB would need pytz to make them Python objects.
        zoned = [name for name, kind in types.items() if kind == "TIMESTAMP WITH TIME ZONE"]
        replace = f" REPLACE ({', '.join(f'CAST({q(n)} AS VARCHAR) AS {q(n)}' for n in zoned)})" if zoned else ""
        relation = con.sql(
            f"SELECT *{replace} FROM {source} ORDER BY _commit_lsn, _ordinal, _kafka_partition, _kafka_offset"
        )
        columns = relation.columns
        rows = relation.fetchall()
        counted = deltalake.DeltaTable(path).to_pyarrow_dataset().count_rows()
        if counted != len(rows):
            sys.exit(f"read_lake.py: {table}: DuckDB reads {len(rows)} rows, deltalake {counted}")
        out.write(json.dumps({"table": table, "types": types, "rows": len(rows)}) + "\n")
        for row in rows:
            out.write(json.dumps({"table": table, "row": {c: render(v) for c, v in zip(columns, row)}}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
    # DuckDB's and delta-rs's native runtimes abort the interpreter's exit when both loaded.
    sys.stdout.flush()
    os._exit(0)
