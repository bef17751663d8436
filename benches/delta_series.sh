#!/usr/bin/env bash
# What each day of a real client's database adds to the repository, for silo, restic and borg, against the
# ideal delta (`zstd -3 --long=31 --patch-from=yesterday today`): the measurement behind issue 16 (delta
# compression of similar chunks). Two series from real, independent clients, built here:
#
#   pgbench   PostgreSQL's own benchmark: `pgbench -i -s SCALE`, then SECONDS of TPC-B a day; plain pg_dump
#   sysbench  oltp_read_write on MariaDB (TABLES x ROWS rows), SECONDS a day; mysqldump as silo's mariadb
#             preset runs it (--single-transaction, 8 MB statements)
#
#   benches/delta_series.sh [DAYS] [SCALE] [SECONDS] [TABLES] [ROWS]     defaults: 4 20 20 4 400000
#
# Every tool ingests every day through a pipe (`cat dayN.sql | tool`), in a fresh repository per series;
# the bytes each day adds are the growth of the repository directory; each ingest, an unchanged re-run (the
# newest dump again) and a restore of the newest snapshot (to /dev/null; checked against the dump by a
# further, untimed restore) are timed, the last two SILO_BENCH_REPEAT times (default 3; the median is
# printed). Settings: silo defaults, restic defaults (repository v2, compression auto), borg
# `--compression zstd,3`. pgbench, sysbench, restic, borg and zstd are installed from Debian's packages
# when missing; the servers are the local PostgreSQL (127.0.0.1:5432, user postgres) and MariaDB
# (127.0.0.1:3306, root).
set -euo pipefail
cd "$(dirname "$0")/.."
days="${1:-4}" scale="${2:-20}" secs="${3:-20}" tables="${4:-4}" rows="${5:-400000}"
repeat="${SILO_BENCH_REPEAT:-3}"
scripts/setup.sh
source benches/tools.sh
need_tools restic:restic borg:borgbackup sysbench:sysbench zstd:zstd pgbench:postgresql-contrib
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | head -1)
profile="${SILO_BENCH_PROFILE:-dev}"
if [ "$profile" = release ]; then dir=release; else dir=debug; fi
cargo build --profile "$profile" --quiet --bin silo
silo="$PWD/target/$dir/silo"
work=$(mktemp -d "${TMPDIR:-/tmp}/silo-delta.XXXXXX"); trap 'rm -rf "$work"' EXIT
# SILO_SERIES_DIR=DIR keeps the dumps there and reuses them on the next run (same DAYS and sizes).
series_dir="${SILO_SERIES_DIR:-$work}"; mkdir -p "$series_dir"
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
my=(--host=127.0.0.1 --port=3306 --user=root)
pgdb=silo_bench_pgbench mydb=silo_bench_sysbench

# Series 1: pgbench.
if [ ! -s "$series_dir/pgbench-$days.sql" ]; then
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" -c "CREATE DATABASE $pgdb"
"$pgbench" -q -i -s "$scale" "$pgdb" 2>/dev/null
pg_dump --no-password "$pgdb" > "$series_dir/pgbench-0.sql"
for d in $(seq "$days"); do
  "$pgbench" -c 4 -j 2 -T "$secs" "$pgdb" > /dev/null 2>&1
  pg_dump --no-password "$pgdb" > "$series_dir/pgbench-$d.sql"
done
psql -X -q -d postgres -c "DROP DATABASE $pgdb WITH (FORCE)"
fi

# Series 2: sysbench oltp_read_write on MariaDB.
if [ ! -s "$series_dir/sysbench-$days.sql" ]; then
mysql "${my[@]}" -e "DROP DATABASE IF EXISTS $mydb; CREATE DATABASE $mydb"
sb=(sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root
    --mysql-db="$mydb" --tables="$tables" --table-size="$rows" --threads=4)
"${sb[@]}" prepare > /dev/null
dump_my() { mysqldump "${my[@]}" --single-transaction --quick --routines --events --triggers --net-buffer-length=8M "$mydb"; }
dump_my > "$series_dir/sysbench-0.sql"
for d in $(seq "$days"); do
  "${sb[@]}" --time="$secs" run > /dev/null
  dump_my > "$series_dir/sysbench-$d.sql"
done
mysql "${my[@]}" -e "DROP DATABASE $mydb"
fi

# Building the series leaves the servers checkpointing and purging for a while; measuring then would
# slow whichever tool runs first (silo).
psql -X -q -d postgres -c CHECKPOINT
quiet

size() { du -sb "$1" | cut -f1; }
results="$work/results"; : > "$results"
for series in pgbench sysbench; do
  for d in $(seq 0 "$days"); do
    f="$series_dir/$series-$d.sql"
    if [ "$d" = 0 ]; then
      zstd -q -3 --long=31 -c "$f" > "$work/z"
    else
      zstd -q -3 --long=31 --patch-from="$series_dir/$series-$((d - 1)).sql" -c "$f" > "$work/z"
    fi
    echo "$series patch-from $d $(stat -c %s "$f") $(stat -c %s "$work/z") 0" >> "$results"
  done
  for tool in ${SILO_BENCH_TOOLS:-silo restic borg}; do
    r="$work/$tool-repo" c="$work/$tool-cache"
    tool_init "$tool" "$r" "$c"
    before=$(size "$r")
    for d in $(seq 0 "$days"); do
      t0=$(date +%s%N)
      cat "$series_dir/$series-$d.sql" | "${ingest[@]}" > /dev/null
      t1=$(date +%s%N)
      after=$(size "$r")
      echo "$series $tool $d $(stat -c %s "$series_dir/$series-$d.sql") $((after - before)) $(( (t1 - t0) / 1000000 ))" >> "$results"
      before=$after
    done
    # The unchanged re-run: the newest dump again, as a second run of the same night's job stores it; then
    # a restore of the newest snapshot. Each REPEAT times (median), since one run of a sub-second command
    # on a shared VM varies by a third.
    tool_restore "$tool"
    for _ in $(seq "$repeat"); do
      t0=$(date +%s%N)
      cat "$series_dir/$series-$days.sql" | "${ingest[@]}" > /dev/null
      t1=$(date +%s%N)
      echo "$series $tool rerun 0 0 $(( (t1 - t0) / 1000000 ))" >> "$results"
    done
    for _ in $(seq "$repeat"); do
      t0=$(date +%s%N)
      "${restore[@]}" > /dev/null
      t1=$(date +%s%N)
      echo "$series $tool restore 0 0 $(( (t1 - t0) / 1000000 ))" >> "$results"
    done
    # Checked in a second, untimed restore (a consumer in the timed one would bound the fastest tool).
    "${restore[@]}" | cmp -s - "$series_dir/$series-$days.sql" || { echo "delta_series: $tool restored something else" >&2; exit 1; }
    rm -rf "$r" "$c"
  done
done
cp "$results" "${TMPDIR:-/tmp}/silo-delta-raw.txt"
python3 - "$results" "$days" <<'EOF'
import collections, statistics, sys
path, days = sys.argv[1], int(sys.argv[2])
added = collections.defaultdict(dict)
dump = collections.defaultdict(dict)
ms = collections.defaultdict(dict)
for line in open(path):
    series, tool, day, size, add, millis = line.split()
    if day in ("restore", "rerun"):
        ms[series, tool].setdefault(day, []).append(int(millis))
        continue
    added[series, tool][int(day)] = int(add)
    ms[series, tool][int(day)] = int(millis)
    dump[series][int(day)] = int(size)
tools = [t for t in ["silo", "restic", "borg", "patch-from"] if any(k[1] == t for k in added)]
peers = [t for t in ["restic", "borg"] if t in tools]
for series in ["pgbench", "sysbench"]:
    print(f"\n{series}: dump {dump[series][0] / 1e6:.0f} MB; MB each day adds (day 0: the first snapshot)")
    print("| day | " + " | ".join(tools) + " | silo / patch-from |")
    print("|---|" + "---|" * (len(tools) + 1))
    for d in range(days + 1):
        vals = [added[series, t][d] / 1e6 for t in tools]
        print(f"| {d} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {vals[0] / vals[-1]:.1f}x |")
    print(f"\n{series}: seconds, through a pipe (a day of changes: median of days 1-{days})")
    print("| | " + " | ".join(["silo"] + peers + [f"silo/{p}" for p in peers]) + " |")
    print("|---|" + "---|" * (1 + 2 * len(peers)))
    for label, key in [("first ingest (day 0)", lambda t: ms[series, t][0]),
                       ("ingest a day of changes", lambda t: statistics.median(ms[series, t][d] for d in range(1, days + 1))),
                       ("unchanged re-run (the newest dump again)", lambda t: statistics.median(ms[series, t]["rerun"])),
                       ("restore the newest", lambda t: statistics.median(ms[series, t]["restore"]))]:
        v = [key(t) / 1000 for t in ["silo"] + peers]
        print(f"| {label} | " + " | ".join(f"{x:.2f}" for x in v) + " | " + " | ".join(f"{v[0] / x:.2f}x" for x in v[1:]) + " |")
EOF
