#!/usr/bin/env bash
# `check --read-data` on S3 (issue 34 item 7): requests and bytes downloaded per GB checked, silo beside restic
# on the same store. Starts a one-node Garage on loopback ports (the binary from scripts/install-garage.sh),
# stores DAYS daily pgbench dumps (scale SCALE, a few seconds of TPC-B between days, each dump piped in) with
# silo and with restic, then runs each tool's full data check and reads the store's own request counters
# (Garage's admin /metrics: api_s3_request_counter per endpoint, and block_bytes_read — what the store read
# from its disks to answer, compressed as Garage stores it) around it.
#   benches/check_s3.sh [DAYS] [SCALE]        defaults: 5 days, scale 10 (SILO_BIN=path: that binary)
# Prints one table; needs PostgreSQL at 127.0.0.1:5432 (user postgres). restic and pgbench come from Debian's
# packages (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-5} scale=${2:-10}
source benches/tools.sh
need_tools restic:restic pgbench:postgresql-contrib
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | head -1)
garage=$(scripts/install-garage.sh)
# SILO_BIN: a silo binary to measure (request counts do not depend on the build profile).
if [ -z "${SILO_BIN:-}" ]; then cargo build --release -q; fi
silo=${SILO_BIN:-$PWD/target/release/silo}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

# One Garage node.
garage_start "$work"

# The store's counters: GET requests (whole and ranged alike), all requests, and bytes read from its disks.
counters() {
  curl -s -H "Authorization: Bearer $secret" "http://127.0.0.1:$admin/metrics" | awk '
    /^api_s3_request_counter/ && /GetObject/ { gets += $NF }
    /^api_s3_request_counter/ { all += $NF }
    /^block_bytes_read/ { bytes += $NF }
    END { printf "%d %d %d\n", gets, all, bytes }'
}

# The days' dumps.
export PGHOST=127.0.0.1 PGUSER=postgres
db=silo_bench_check
dropdb --if-exists "$db"; createdb "$db"
"$pgbench" -q -i -s "$scale" "$db" >/dev/null 2>&1
export SILO_REPO="s3:http://127.0.0.1:$s3/bench/silo" SILO_PASSWORD=bench SILO_CACHE_DIR="$work/silo-cache"
export RESTIC_REPOSITORY="s3:http://127.0.0.1:$s3/bench/restic" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$work/restic-cache"
"$silo" init >/dev/null
restic init -q >/dev/null
for day in $(seq 1 "$days"); do
  pg_dump --no-password "$db" > "$work/dump.sql"
  cat "$work/dump.sql" | "$silo" snapshot create --name db >/dev/null
  cat "$work/dump.sql" | restic backup -q --stdin --stdin-filename dump.sql >/dev/null
  "$pgbench" -n -T 5 -c 2 "$db" >/dev/null
done
dump_mb=$(( $(stat -c %s "$work/dump.sql") / 1000000 ))

measure() {
  local before after
  before=$(counters)
  "$@" >/dev/null 2>&1
  after=$(counters)
  paste -d' ' <(echo "$before") <(echo "$after") | awk '{ printf "%d %d %d\n", $4-$1, $5-$2, $6-$3 }'
}
rm -rf "$SILO_CACHE_DIR" "$RESTIC_CACHE_DIR"
read -r s_get s_all s_bytes < <(measure "$silo" check --read-data)
read -r r_get r_all r_bytes < <(measure restic check --read-data)
info=$(g bucket info bench)
stored=$(echo "$info" | awk -F': *' '/Size/ {print $2; exit}')
printf '%s days of pgbench scale %s (a dump is %s MB), Garage bucket %s\n' "$days" "$scale" "$dump_mb" "$stored"
printf '%-8s %12s %14s %16s\n' tool "GET requests" "all requests" "store read bytes"
printf '%-8s %12s %14s %16s\n' silo "$s_get" "$s_all" "$s_bytes"
printf '%-8s %12s %14s %16s\n' restic "$r_get" "$r_all" "$r_bytes"
dropdb --if-exists "$db"
