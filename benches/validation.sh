#!/usr/bin/env bash
# What dump validation (issue 17: every stream recognised and checked while it is stored) costs at ingest:
# `cat dump | silo snapshot create` with validation (the default) against `--no-validate`, first ingest into a
# fresh repository and the unchanged re-run, on real clients' dumps built here:
#
#   pgbench plain   `pgbench -i -s SCALE`, plain pg_dump (COPY rows counted per table)
#   pgbench custom  the same database, `pg_dump -Fc -Z0` (TOC parsed, every data block followed)
#   sysbench        oltp_read_write tables on MariaDB (TABLES x ROWS), mysqldump as the mariadb preset runs it
#                   (extended INSERTs, tuples counted quote-aware)
#
#   benches/validation.sh [RUNS] [SCALE] [TABLES] [ROWS]     defaults: 3 20 4 400000
#
# Prints the median wall time of RUNS runs per case and the ratio validated / not validated.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}" scale="${2:-20}" tables="${3:-4}" rows="${4:-400000}"
scripts/setup.sh
source benches/tools.sh
need_tools sysbench:sysbench pgbench:postgresql-contrib
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | head -1)
profile="${SILO_BENCH_PROFILE:-dev}"
if [ "$profile" = release ]; then dir=release; else dir=debug; fi
cargo build --profile "$profile" --quiet --bin silo
silo="$PWD/target/$dir/silo"
work=$(mktemp -d "${TMPDIR:-/tmp}/silo-validation.XXXXXX"); trap 'rm -rf "$work"' EXIT
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
my=(--host=127.0.0.1 --port=3306 --user=root)
pgdb=silo_bench_validation mydb=silo_bench_validation

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" -c "CREATE DATABASE $pgdb"
"$pgbench" -q -i -s "$scale" "$pgdb" 2>/dev/null
pg_dump --no-password "$pgdb" > "$work/pgbench-plain.sql"
pg_dump --no-password -Fc -Z0 "$pgdb" > "$work/pgbench-custom.dump"
psql -X -q -d postgres -c "DROP DATABASE $pgdb WITH (FORCE)"
mysql "${my[@]}" -e "DROP DATABASE IF EXISTS $mydb; CREATE DATABASE $mydb"
sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root \
  --mysql-db="$mydb" --tables="$tables" --table-size="$rows" prepare > /dev/null
mysqldump "${my[@]}" --single-transaction --quick --routines --events --triggers --net-buffer-length=8M "$mydb" \
  > "$work/sysbench.sql"
mysql "${my[@]}" -e "DROP DATABASE $mydb"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seconds() { local s=$EPOCHREALTIME; "$@" > /dev/null; echo "$EPOCHREALTIME - $s" | bc; }
export SILO_PASSWORD=bench
printf '%-16s %8s %10s %10s %8s %10s %10s %8s\n' case MB first-val first-off ratio rerun-val rerun-off ratio
for f in pgbench-plain.sql pgbench-custom.dump sysbench.sql; do
  declare -A t=()
  for mode in val off; do
    extra=(); [ "$mode" = off ] && extra=(--no-validate)
    first=() rerun=()
    for _ in $(seq "$runs"); do
      export SILO_REPO="$work/repo" SILO_CACHE_DIR="$work/cache"
      rm -rf "$work/repo" "$work/cache"
      "$silo" init --kdf-memory 64 --kdf-iterations 1 > /dev/null
      first+=("$(seconds sh -c "cat '$work/$f' | '$silo' snapshot create --name db ${extra[*]}")")
      rerun+=("$(seconds sh -c "cat '$work/$f' | '$silo' snapshot create --name db ${extra[*]}")")
    done
    t[$mode-first]=$(printf '%s\n' "${first[@]}" | median)
    t[$mode-rerun]=$(printf '%s\n' "${rerun[@]}" | median)
  done
  mb=$(echo "scale=1; $(stat -c %s "$work/$f") / 1000000" | bc)
  printf '%-16s %8s %10.2f %10.2f %8.2f %10.2f %10.2f %8.2f\n' "$f" "$mb" \
    "${t[val-first]}" "${t[off-first]}" "$(echo "${t[val-first]} / ${t[off-first]}" | bc -l)" \
    "${t[val-rerun]}" "${t[off-rerun]}" "$(echo "${t[val-rerun]} / ${t[off-rerun]}" | bc -l)"
  unset t
done
