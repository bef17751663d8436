#!/usr/bin/env bash
# The seed lottery (issue 33): chunk counts of real clients' dumps over 20 chunker seeds, by rule 1 (FastCDC
# 2020, format 1 repositories) and rule 2 (no cut inside a run of one byte, config body version 2).
#
#   benches/seed_lottery.sh [SCALE] [TABLES] [ROWS]     defaults: 20 4 400000
#
# pgbench plain dump of `pgbench -i -s SCALE`; sysbench oltp_read_write tables on MariaDB dumped as the
# mariadb preset dumps them. pgbench and sysbench are installed from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-20}" tables="${2:-4}" rows="${3:-400000}"
scripts/setup.sh
source benches/tools.sh
need_tools sysbench:sysbench pgbench:postgresql-contrib
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | head -1)
work=$(mktemp -d "${TMPDIR:-/tmp}/silo-lottery.XXXXXX"); trap 'rm -rf "$work"' EXIT
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
my=(--host=127.0.0.1 --port=3306 --user=root)
db=silo_bench_lottery
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
"$pgbench" -q -i -s "$scale" "$db" 2>/dev/null
pg_dump --no-password "$db" > "$work/pgbench.sql"
psql -X -q -d postgres -c "DROP DATABASE $db WITH (FORCE)"
mysql "${my[@]}" -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root \
  --mysql-db="$db" --tables="$tables" --table-size="$rows" prepare > /dev/null
mysqldump "${my[@]}" --single-transaction --quick --routines --events --triggers --net-buffer-length=8M "$db" \
  > "$work/sysbench.sql"
mysql "${my[@]}" -e "DROP DATABASE $db"
cargo bench --quiet --bench seed_lottery -- "$work/pgbench.sql" "$work/sysbench.sql"
