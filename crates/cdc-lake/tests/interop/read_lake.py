"""Reads the lake with DuckDB, as an analyst would, and prints what it finds as JSON lines.

    read_lake.py --lake DIR [--table NAME ...]

For each table directory under DIR/raw (or each --table), one line
    {"table": T, "types": {column: duckdb type, ...}, "rows": N}
then one line per change row
    {"table": T, "row": {column: value, ...}}
Values: integers as numbers, timestamps without time zone as microseconds since the
epoch, timestamps with time zone as text, dates as YYYY-MM-DD, decimals as text,
booleans, structs as objects, lists as arrays. Files are read with hive partitioning on
(the `date=` directory becomes a DATE column) and union_by_name (old and new shapes).
"""

import argparse
import datetime
import decimal
import json
import os
import sys

import duckdb

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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True)
    parser.add_argument("--table", action="append", default=[])
    args = parser.parse_args()
    raw = os.path.join(args.lake, "raw")
    tables = args.table or sorted(os.listdir(raw))
    con = duckdb.connect()
    out = sys.stdout
    for table in tables:
        glob = os.path.join(raw, table, "*", "*.parquet").replace("'", "''")
        source = f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
        types = {name: kind for name, kind, *_ in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        # Timestamps with a time zone as text: DuckDB would need pytz to make them Python objects.
        zoned = [name for name, kind in types.items() if kind == "TIMESTAMP WITH TIME ZONE"]
        replace = f" REPLACE ({', '.join(f'CAST({q(n)} AS VARCHAR) AS {q(n)}' for n in zoned)})" if zoned else ""
        relation = con.sql(
            f"SELECT *{replace} FROM {source} ORDER BY _commit_lsn, _ordinal, _kafka_partition, _kafka_offset"
        )
        columns = relation.columns
        rows = relation.fetchall()
        out.write(json.dumps({"table": table, "types": types, "rows": len(rows)}) + "\n")
        for row in rows:
            out.write(json.dumps({"table": table, "row": {c: render(v) for c, v in zip(columns, row)}}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
