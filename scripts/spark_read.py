#!/usr/bin/env python3
"""Reads Delta tables with Apache Spark and Delta Lake, offline, and says what it read.

    python spark_read.py JARS_DIR TABLE [TABLE ...]

Run it with the venv's python that scripts/spark-env sets up; JARS_DIR is the folder of
Delta's jars it fills (the cache's spark-jars). TABLE is a table's path (a local folder,
or a URL Spark's Hadoop file systems read), or PATH::KEY to also checksum column KEY.

Prints one JSON line per table, in the order given:

    {"path": PATH, "rows": N, "columns": [NAME, ...]}
    {"path": PATH, "rows": N, "columns": [...], "key": KEY, "md5_keys": HEX}

md5_keys is the MD5 (hex) of the UTF-8 text of the key column's values, each as text,
sorted as text and joined with ","; a value as text is: an integer as Python's str()
("42"), a date as YYYY-MM-DD, a timestamp as ISO 8601 in UTC
("2024-01-02T03:04:05.123456+00:00", or without the offset for a timestamp_ntz), a
string as itself, a null as the empty string, anything else as Python's str().

Spark downloads nothing: the jars come from JARS_DIR through spark.jars (no
spark.jars.packages, so no ivy), and Spark binds to 127.0.0.1. Exits 0 when every table
was read, and otherwise 1 after one line "spark_read: cannot …" on stderr. What Spark
and the JVM print goes to a log file instead, deleted after a success and named in
that line after a failure.
"""

import datetime
import glob
import hashlib
import json
import os
import sys
import tempfile
import time

PROG = "spark_read"

# Spark's log: warnings and errors, on the JVM's stderr (which main points at a log file).
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{HH:mm:ss.SSS} %p %c{1}: %m%n
"""


class Failure(Exception):
    """A failure to report as one line."""


def fail(message):
    print(f"{PROG}: cannot {message}", file=sys.stderr)
    sys.exit(1)


def one_line(error):
    """The first line that says something of an exception's (often long) message; for a
    Java exception through Py4J, the Java exception's own message, not Py4J's."""
    text = str(error).strip()
    java = getattr(error, "java_exception", None)
    if java is not None:
        try:
            text = str(java.toString()).strip()
        except Exception:  # the JVM is gone: Py4J's text it is
            pass
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "JVM stacktrace")):
            return line[:500]
    return type(error).__name__


def parse_table(arg):
    path, sep, key = arg.rpartition("::")
    if not sep:
        path, key = arg, None
    elif not path or not key:
        raise Failure(f"read the table argument {arg!r}: expected PATH or PATH::KEY")
    return path, key


def spark_path(path):
    """The path as Spark should be given it: local paths made absolute."""
    if "://" in path or path.startswith("file:"):
        return path
    return os.path.abspath(path)


def as_text(value, utc):
    """A key value as text; utc: a timestamp (not a timestamp_ntz), which PySpark gives
    as a naive datetime in the process's time zone (UTC here, see main)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime.datetime):
        if utc:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, str):
        return value
    return str(value)


def find_jars(jars_dir):
    jars = sorted(glob.glob(os.path.join(os.path.abspath(jars_dir), "*.jar")))
    if not any(os.path.basename(j).startswith("delta-spark_") for j in jars):
        raise Failure(f"find Delta's jars (delta-spark_*.jar) in {jars_dir}: run scripts/spark-env")
    return jars


def first_line(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip() and not line.startswith("WARNING: Using incubator modules"):
                    return line.strip()[:300]
    except OSError:
        pass
    return None


def start_spark(jars, conf_dir, log_path):
    log4j = os.path.join(conf_dir, "log4j2.properties")
    with open(log4j, "w", encoding="utf-8") as f:
        f.write(LOG4J2)
    # Before the JVM starts: bind locally, and no Spark installation elsewhere is used.
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.pop("SPARK_HOME", None)
    os.environ.pop("PYSPARK_SUBMIT_ARGS", None)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise Failure(f"import pyspark ({e}): run this with the python of scripts/spark-env's venv")

    # A short-lived JVM: the C1 compiler alone and the serial collector take about half
    # the CPU time and 40% less memory than the defaults here (2 cores, small tables).
    java_opts = f"-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j2.configurationFile=file:{log4j} -Duser.timezone=UTC"
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("totesys-cdc-spark-read")
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "1g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.sql.session.timeZone", "UTC")
        # Delta rebuilds a table's state from its log with a shuffle of 50 partitions by
        # default: far too many for these small tables on 2 cores.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.warehouse.dir", os.path.join(conf_dir, "warehouse"))
        .config("spark.local.dir", os.path.join(conf_dir, "local"))
        # Nothing to fetch, and not even ivy's cache folder is made.
        .config("spark.jars.ivy", os.path.join(conf_dir, "ivy"))
    )
    try:
        return builder.getOrCreate()
    except Exception as e:  # Java missing, a jar conflict, …
        said = first_line(log_path)
        raise Failure(f"start Spark: {one_line(e)}" + (f" The JVM said: {said}" if said else ""))


def read_table(spark, arg):
    path, key = parse_table(arg)
    try:
        df = spark.read.format("delta").load(spark_path(path))
        columns = list(df.columns)
        if key is not None and key not in columns:
            raise Failure(f"checksum table {path}: it has no column {key!r} (its columns: {', '.join(columns)})")
        rows = df.count()
        out = {"path": path, "rows": rows, "columns": columns}
        if key is not None:
            from pyspark.sql.types import TimestampType

            utc = isinstance(df.schema[key].dataType, TimestampType)
            values = sorted(as_text(r[0], utc) for r in df.select(f"`{key}`").toLocalIterator())
            out["key"] = key
            out["md5_keys"] = hashlib.md5(",".join(values).encode("utf-8")).hexdigest()
        return out
    except Failure:
        raise
    except Exception as e:
        raise Failure(f"read the Delta table {path}: {one_line(e)}")


def main(argv):
    if len(argv) < 3 or argv[1] in ("-h", "--help"):
        print(f"usage: {os.path.basename(argv[0])} JARS_DIR TABLE_PATH[::KEY] [TABLE_PATH[::KEY] ...]", file=sys.stderr)
        return 2
    jars_dir, tables = argv[1], argv[2:]
    # PySpark turns timestamps into naive datetimes in this process's time zone: UTC.
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        for arg in tables:
            parse_table(arg)
        jars = find_jars(jars_dir)
    except Failure as e:
        fail(str(e))

    # The JVM inherits file descriptors 1 and 2: point them at a log, so that stdout holds
    # only the JSON lines and stderr only this script's line; the log is kept on failure.
    log_fd, log_path = tempfile.mkstemp(prefix="totesys-cdc-spark-read-", suffix=".log")
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8")
    sys.stdout.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    ok = False
    try:
        with tempfile.TemporaryDirectory(prefix="totesys-cdc-spark-") as conf_dir:
            spark = start_spark(jars, conf_dir, log_path)
            try:
                for arg in tables:
                    print(json.dumps(read_table(spark, arg)), file=out, flush=True)
            finally:
                spark.stop()
        ok = True
    except Failure as e:
        fail(f"{e} (Spark's log: {log_path})")
    except Exception as e:  # a bug here, or PySpark failing in a way not foreseen
        fail(f"read the tables: {type(e).__name__}: {one_line(e)} (Spark's log: {log_path})")
    finally:
        if ok:
            os.unlink(log_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
