#!/usr/bin/env python3
r"""DuckDB side of quarry's differential test (tests/differential.rs).

    python duckdb_worker.py DATA_DIR TEMP_DIR

DATA_DIR holds <table>.parquet for the 8 TPC-H tables. The worker reads
requests from stdin, one a line: `ID<TAB>SQL` (the SQL on one line). For each
it writes to stdout either

    OK<TAB>ID<TAB>NCOLS<TAB>NROWS
    name<TAB>name...        (the column names)
    TYPE<TAB>TYPE...        (DuckDB's column types)
    value<TAB>value...      (NROWS lines)

or one line `ERR<TAB>ID<TAB>message`. In fields, backslash, tab, newline and
carriage return are escaped as \\, \t, \n, \r, and NULL is \N. Values:
decimals printed exactly (no exponent), doubles with Python's shortest
round-trip repr ("NaN", "inf", "-inf"), dates as YYYY-MM-DD, booleans as
true/false: the conventions of tpch/duckdb_answers.py. TIMESTAMP,
TIMESTAMP WITH TIME ZONE and INTERVAL columns are printed by DuckDB itself
(CAST(... AS VARCHAR), which quarry's output matches): Python's datetime
and timedelta would lose an interval's months and print differently. The
session's time zone is UTC, quarry's only one. A first line
`READY<TAB>duckdb-version` says the worker is up.
"""

import datetime
import decimal
import math
import pathlib
import sys

import duckdb

TABLES = ["lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region"]


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


# DuckDB types whose values go through CAST(... AS VARCHAR)
TEMPORAL = ("TIMESTAMP", "INTERVAL", "TIME")


def as_text(rel):
    """`rel` with its temporal columns cast to VARCHAR (a projection keeps
    the order of the rows)."""
    types = [str(t) for t in rel.types]
    if not any(t.startswith(TEMPORAL) for t in types):
        return rel
    items = []
    for name, t in zip(rel.columns, types):
        quoted = '"' + name.replace('"', '""') + '"'
        if t.startswith(TEMPORAL):
            items.append(f"CAST({quoted} AS VARCHAR) AS {quoted}")
        else:
            items.append(quoted)
    return rel.project(", ".join(items))


def esc(text):
    if text is None:
        return "\\N"
    return (
        text.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def line(fields):
    return "\t".join(esc(f) for f in fields) + "\n"


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    data_dir = pathlib.Path(argv[1])
    con = duckdb.connect()
    # One thread: answers do not depend on it, and the test runs quarry beside.
    con.execute("SET threads = 1")
    # Spill files go to TEMP_DIR (not ./.tmp of the caller), and at most
    # 2 GB of them: some generated queries make DuckDB spill without end (a
    # non-equi correlated EXISTS beside an OR), which once filled the disk.
    temp = str(pathlib.Path(argv[2]).resolve()).replace("'", "''")
    con.execute(f"SET temp_directory = '{temp}'")
    con.execute("SET max_temp_directory_size = '2GB'")
    con.execute("SET memory_limit = '2GB'")
    # quarry's one time zone (TIMESTAMPTZ values, casts, date_trunc, ...)
    con.execute("SET TimeZone = 'UTC'")
    for table in TABLES:
        path = data_dir / f"{table}.parquet"
        if not path.exists():
            print(f"missing {path}", file=sys.stderr)
            return 1
        quoted = str(path.resolve()).replace("'", "''")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{quoted}')")
    out = sys.stdout
    out.write(f"READY\t{duckdb.__version__}\n")
    out.flush()
    for request in sys.stdin:
        request = request.rstrip("\n")
        if not request:
            continue
        rid, _, sql = request.partition("\t")
        try:
            rel = con.sql(sql)
            if rel is None:
                raise ValueError("not a query")
            columns = rel.columns
            types = [str(t) for t in rel.types]
            rows = as_text(rel).fetchall()
            text = [f"OK\t{rid}\t{len(columns)}\t{len(rows)}\n", line(columns), line(types)]
            text.extend(line([fmt(v) for v in row]) for row in rows)
            out.write("".join(text))
        except Exception as e:  # every DuckDB error is an answer: ERR
            out.write(f"ERR\t{rid}\t{esc(type(e).__name__ + ': ' + str(e))}\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
