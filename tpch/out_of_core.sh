#!/usr/bin/env bash
# Out-of-core check (issue 5): every TPC-H query at scale factor SF under a
# memory limit, one quarry process per query, timed and measured with
# /usr/bin/time -v; each answer compared with DuckDB's (decimals exact,
# doubles to 1e-9) and the spill directory checked empty afterwards.
#
#   tpch/out_of_core.sh [SF [LIMIT [QUERY...]]]     (default: 10 2GB 1..22)
#
# Needs a release build (cargo build --release), /usr/bin/time, python3.
# Data: data/tpch-sf<SF> (generated when missing); DuckDB's answers:
# target/out-of-core/sf<SF>/duckdb (computed once, with tpch/.venv, made
# from tpch/requirements.txt when missing); outputs in target/out-of-core/.
set -euo pipefail
cd "$(dirname "$0")/.."
sf=${1:-10}; limit=${2:-2GB}; shift $(( $# > 2 ? 2 : $# ))
queries=("$@"); [ ${#queries[@]} -gt 0 ] || queries=($(seq 1 22))
quarry=target/release/quarry
data=data/tpch-sf$sf
work=target/out-of-core/sf$sf
mkdir -p "$work/out" "$work/spill"
[ -x "$quarry" ] || cargo build --release
[ -f "$data/lineitem.parquet" ] || "$quarry" tpch gen --sf "$sf" --out "$data"
if [ ! -f "$work/duckdb/q22.csv" ]; then
  [ -x tpch/.venv/bin/python ] || { python3 -m venv tpch/.venv && tpch/.venv/bin/pip install -q -r tpch/requirements.txt; }
  mkdir -p "$work/duckdb"
  tpch/.venv/bin/python tpch/duckdb_answers.py "$data" queries/tpch "$work/duckdb" > /dev/null
fi
prelude=$work/prelude.sql
for t in lineitem orders customer part partsupp supplier nation region; do
  echo "CREATE EXTERNAL TABLE $t STORED AS PARQUET LOCATION '$data/$t.parquet';"
done > "$prelude"
echo "TPC-H SF $sf, --memory-limit $limit, $(nproc) cores, $(date -u +%F)"
printf '%-4s %9s %12s %6s  %s\n' query seconds max_rss_MiB files answer
for n in "${queries[@]}"; do
  q=$(printf 'q%02d' "$n")
  set +e
  /usr/bin/time -v "$quarry" --memory-limit "$limit" --temp-dir "$work/spill" --format csv \
      -f "$prelude" -f "queries/tpch/$q.sql" > "$work/out/$q.csv" 2> "$work/out/$q.err"
  rc=$?
  set -e
  wall=$(awk -F': ' '/Elapsed \(wall/ {print $2}' "$work/out/$q.err" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2/1024}' "$work/out/$q.err")
  left=$(find "$work/spill" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    verdict=$(python3 - "$work/out/$q.csv" "$work/duckdb/$q.csv" "$work/duckdb/$q.types" <<'PY'
import csv, decimal, math, sys
a = list(csv.reader(open(sys.argv[1], newline='')))
b = list(csv.reader(open(sys.argv[2], newline='')))
types = [l.strip().split(': ', 1)[-1].upper() for l in open(sys.argv[3]) if l.strip()]
def same(x, y, t):
    if x == y: return True
    try:
        if t in ('DOUBLE', 'FLOAT'):
            return math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12)
        return decimal.Decimal(x) == decimal.Decimal(y)
    except Exception:
        return False
if len(a) != len(b):
    print(f"DIFFERS: {len(a)-1} rows, DuckDB {len(b)-1}"); sys.exit()
for i, (ra, rb) in enumerate(zip(a[1:], b[1:])):
    for j, (x, y) in enumerate(zip(ra, rb)):
        if len(ra) != len(rb) or not same(x, y, types[j]):
            print(f"DIFFERS: row {i} column {j}: {x!r}, DuckDB {y!r}"); sys.exit()
print(f"agrees with DuckDB ({len(a)-1} rows)")
PY
)
  else
    verdict="FAILED: $(grep -m1 -v '^\s' "$work/out/$q.err")"
  fi
  printf '%-4s %9.2f %12s %6s  %s\n' "$q" "$wall" "$rss" "$left" "$verdict"
done
