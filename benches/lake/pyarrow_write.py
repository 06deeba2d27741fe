"""Times pyarrow writing the rows of a Parquet file again, with given settings; prints JSON.

Usage: pyarrow_write.py FILE RUNS SETTINGS_JSON

The file is read into one Arrow table (untimed, chunks combined), then
`pq.write_table(table, BufferOutputStream, **settings)` is timed RUNS times after one
warm-up. Printed: pyarrow's version, each run's wall seconds, the process CPU seconds of
the fastest run, the output's size and row groups, and whether it reads back as the rows
it was given (checked after timing). `lake-parquet` (benches/lake_parquet.rs) runs it.
"""

import json
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, runs, settings = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    if runs < 1:
        sys.exit("RUNS must be at least 1")
    table = pq.read_table(path).combine_chunks()

    def once():
        sink = pa.BufferOutputStream()
        cpu = time.process_time()
        start = time.perf_counter()
        pq.write_table(table, sink, **settings)
        buffer = sink.getvalue()
        return time.perf_counter() - start, time.process_time() - cpu, buffer

    once()
    results = [once() for _ in range(runs)]
    best = min(results, key=lambda r: r[0])
    buffer = best[2]
    written = pq.ParquetFile(pa.BufferReader(buffer))
    back = written.read()
    print(
        json.dumps(
            {
                "pyarrow": pa.__version__,
                "rows": table.num_rows,
                "runs_secs": [r[0] for r in results],
                "best_cpu_secs": best[1],
                "bytes": buffer.size,
                "row_groups": written.metadata.num_row_groups,
                "arrow_nbytes": table.nbytes,
                "same_rows": back.num_rows == table.num_rows and back.equals(table),
            }
        )
    )


if __name__ == "__main__":
    main()
