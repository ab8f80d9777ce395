#!/usr/bin/env python3
"""Compute TPC-H answers with DuckDB over quarry's Parquet files.

    python tpch/duckdb_answers.py DATA_DIR QUERY_DIR OUT_DIR [QUERY_NUMBER ...]

DATA_DIR holds <table>.parquet for the 8 TPC-H tables (as written by
`quarry tpch gen`); QUERY_DIR holds q01.sql .. q22.sql. For each query the
answer is written to OUT_DIR/qNN.csv: a header row of column names, then the
rows in the order the query returns them; NULL is an empty field, decimals
are printed exactly (as DuckDB holds them, no exponent), doubles with
Python's shortest round-trip repr, dates as YYYY-MM-DD.

Alongside, OUT_DIR/qNN.types gets DuckDB's column types, one per line (for
reading the answers; the comparison itself goes by the result's types).
"""

import csv
import datetime
import decimal
import math
import pathlib
import sys

import duckdb

TABLES = ["lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region"]


def fmt(value):
    if value is None:
        return ""
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


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    data_dir, query_dir, out_dir = (pathlib.Path(a) for a in argv[1:4])
    numbers = [int(n) for n in argv[4:]] or list(range(1, 23))
    out_dir.mkdir(parents=True, exist_ok=True)

    con = duckdb.connect()
    for table in TABLES:
        path = data_dir / f"{table}.parquet"
        if not path.exists():
            print(f"missing {path}", file=sys.stderr)
            return 1
        quoted = str(path.resolve()).replace("'", "''")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{quoted}')")

    for n in numbers:
        sql = (query_dir / f"q{n:02d}.sql").read_text()
        rel = con.execute(sql)
        columns = [d[0] for d in rel.description]
        types = [str(d[1]) for d in rel.description]
        rows = rel.fetchall()
        with open(out_dir / f"q{n:02d}.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(columns)
            for row in rows:
                w.writerow([fmt(v) for v in row])
        with open(out_dir / f"q{n:02d}.types", "w") as f:
            for c, t in zip(columns, types):
                f.write(f"{c}: {t}\n")
        print(f"q{n:02d}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
