#!/usr/bin/env python3
"""The peers of `quarry tpch bench`: TPC-H queries with DuckDB or Polars.

    python tpch/peers.py < job.json

The harness (`crates/quarry-tpch/src/bench/`) starts one process of this program per
engine, in the virtual environment it made from `tpch/requirements.txt`,
and writes the job to its stdin as one JSON object:

    {"engine": "duckdb" | "polars",
     "data": "/abs/data/tpch-sf1",          # holds <table>.parquet
     "queries": [{"query": 1, "sql": "..."}, ...],   # the queries/tpch/*.sql text
     "runs": 3,
     "threads": 2 | null,                   # null: the engine's default
     "memory_limit": "4GiB" | null}

It answers with JSON lines on stdout (the same events as the quarry worker,
`quarry tpch bench-worker`):

    {"event": "ready", "engine", "version", "settings", "notes", "peak_rss_bytes"}
    {"event": "start", "query", "run"}                       # before each run
    {"event": "query", "query", "seconds": [...], "answer": {...}, "peak_rss_bytes"}
    {"event": "query", "query", "seconds": [...], "error": "...", "peak_rss_bytes"}
    {"event": "done", "peak_rss_bytes"}
    {"event": "fatal", "error": "..."}                       # could not start

What is timed, per run: from handing the SQL text to the engine until the
whole result is materialised in this process, in the engine's own format
(DuckDB: `execute`, which returns a materialised result set; Polars:
`SQLContext.execute` then `collect`, a DataFrame). Each engine reads the
Parquet files itself on every run: DuckDB through views over `read_parquet`,
Polars through `scan_parquet`; nothing is loaded beforehand.

The answer (of the first run, converted to text after its timing) is sent: NULL as null, decimals printed
exactly, floats as Python's shortest round-trip repr, dates as YYYY-MM-DD,
with each column's type and kind (decimal, float, integer, text) so the
harness compares decimals exactly and floats to a relative 1e-9.

POLARS_MAX_THREADS must be set in the environment before this program starts
(the harness does it) for `threads` to reach Polars.
"""

import datetime
import decimal
import json
import math
import os
import resource
import sys
import time

TABLES = ["lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region"]


def peak_rss_bytes():
    """Peak resident set size of this process, in bytes.

    On Linux, VmHWM of /proc/self/status: getrusage's ru_maxrss would also
    count the harness's memory, inherited through fork and exec.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss if sys.platform == "darwin" else rss * 1024


def fmt(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def kind_of_duckdb(type_name):
    t = type_name.upper()
    if t.startswith("DECIMAL") or t.startswith("NUMERIC"):
        return "decimal"
    if t in ("DOUBLE", "FLOAT", "REAL"):
        return "float"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
             "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"):
        return "integer"
    return "text"


def kind_of_polars(dtype):
    import polars as pl

    if isinstance(dtype, pl.Decimal) or dtype == pl.Decimal:
        return "decimal"
    if dtype.is_float():
        return "float"
    if dtype.is_integer():
        return "integer"
    return "text"


def sql_text(sql):
    # The queries are single statements ending in ';'; Polars' SQL
    # interface wants the statement without it. Same text for both engines.
    text = sql.strip()
    return text[:-1].rstrip() if text.endswith(";") else text


class DuckDB:
    name = "duckdb"

    def __init__(self, job):
        import duckdb

        self.version = duckdb.__version__
        self.con = duckdb.connect()  # in memory
        if job.get("threads"):
            self.con.execute(f"SET threads = {int(job['threads'])}")
        if job.get("memory_limit"):
            limit = str(job["memory_limit"]).replace("'", "''")
            self.con.execute(f"SET memory_limit = '{limit}'")
        for table in TABLES:
            path = os.path.join(job["data"], f"{table}.parquet").replace("'", "''")
            self.con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
        names = ("threads", "memory_limit", "enable_external_file_cache", "cache_local_files",
                 "parquet_metadata_cache", "preserve_insertion_order")
        rows = self.con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ("
            + ", ".join(f"'{n}'" for n in names) + ")"
        ).fetchall()
        self.settings = {n: str(v) for n, v in rows}
        self.notes = []

    def run(self, sql):
        # execute() returns once the whole result is materialised in DuckDB's
        # result set; fetching it as Python objects (for the answer) is not timed.
        return self.con.execute(sql)

    def answer(self, result):
        description = result.description
        rows = result.fetchall()
        types = [str(d[1]) for d in description]
        return {
            "columns": [d[0] for d in description],
            "types": types,
            "kinds": [kind_of_duckdb(t) for t in types],
            "rows": [[fmt(v) for v in row] for row in rows],
        }


class Polars:
    name = "polars"

    def __init__(self, job):
        import polars as pl

        self.pl = pl
        self.version = pl.__version__
        self.ctx = pl.SQLContext(
            {t: pl.scan_parquet(os.path.join(job["data"], f"{t}.parquet")) for t in TABLES}
        )
        self.settings = {
            "thread_pool_size": str(pl.thread_pool_size()),
            "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "(unset)"),
        }
        self.notes = []
        if job.get("memory_limit"):
            self.notes.append("memory limit not applied: Polars has no memory limit setting")

    def run(self, sql):
        return self.ctx.execute(sql).collect()

    def answer(self, df):
        dtypes = list(df.schema.values())
        return {
            "columns": list(df.columns),
            "types": [str(t) for t in dtypes],
            "kinds": [kind_of_polars(t) for t in dtypes],
            "rows": [[fmt(v) for v in row] for row in df.rows()],
        }


ENGINES = {"duckdb": DuckDB, "polars": Polars}


def main():
    # The protocol owns the real stdout; anything an engine prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(**event):
        out.write(json.dumps(event) + "\n")
        out.flush()

    try:
        job = json.load(sys.stdin)
        engine_class = ENGINES[job["engine"]]
        engine = engine_class(job)
    except Exception as e:  # a missing package, bad files, a bad job
        emit(event="fatal", error=f"{type(e).__name__}: {e}")
        return 1

    emit(event="ready", engine=engine.name, version=engine.version, settings=engine.settings,
         notes=engine.notes, peak_rss_bytes=peak_rss_bytes())
    runs = max(1, int(job.get("runs", 1)))
    for q in job["queries"]:
        n, sql = q["query"], sql_text(q["sql"])
        seconds, answer, error = [], None, None
        for r in range(runs):
            emit(event="start", query=n, run=r + 1)
            try:
                start = time.perf_counter()
                result = engine.run(sql)
                seconds.append(time.perf_counter() - start)
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
                break
            if answer is None:  # the first run's, converted outside the timing
                try:
                    answer = engine.answer(result)
                except Exception as e:
                    error = f"cannot format the answer: {type(e).__name__}: {e}"
                    break
            result = None
        event = {"event": "query", "query": n, "seconds": seconds}
        if error is None:
            event["answer"] = answer
        else:
            event["error"] = error
        event["peak_rss_bytes"] = peak_rss_bytes()
        emit(**event)
    emit(event="done", peak_rss_bytes=peak_rss_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
