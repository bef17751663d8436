#!/usr/bin/env bash
# Thirty days of a real client's database in silo (issue 16's long-run report): what each day adds, against
# the ideal delta (`zstd -3 --long=31 --patch-from=yesterday today`) and restic; the repository's total; how
# deep delta chains get; and the restore time of the newest and the oldest snapshot, against restic's.
#
#   benches/delta_30days.sh [DAYS] [SCALE] [SECONDS] [TABLES] [ROWS]     defaults: 30 20 20 4 400000
#
# The series are built as in benches/delta_series.sh (pgbench on PostgreSQL, sysbench oltp_read_write on
# MariaDB, SECONDS of load a day, dumped the way silo's presets dump), but each day is ingested as soon as it
# is dumped, through a pipe, and only the last two dumps are kept (30 days of sysbench are ~10 GB). Restores
# go to /dev/null, timed (the newest is checked against its dump, the oldest against day 0's SHA-256, in a
# second, untimed restore). SILO_SERIES_DIR=DIR keeps the repositories there; with SILO_RESTORE_ONLY=1 the
# script only times the restores of repositories a previous run kept. SILO_SERIES=sysbench runs one series.
# SILO_DUMPS_DIR=DIR keeps every day's dump there (DIR/SERIES/dayNN.sql, ~10 GB for sysbench) and, when a
# series' last day is already there, replays those dumps instead of loading the databases: two versions of
# silo are then compared on the very same days.
set -euo pipefail
cd "$(dirname "$0")/.."
days="${1:-30}" scale="${2:-20}" secs="${3:-20}" tables="${4:-4}" rows="${5:-400000}"
scripts/setup.sh
source benches/tools.sh
need_tools restic:restic sysbench:sysbench zstd:zstd pgbench:postgresql-contrib
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | head -1)
profile="${SILO_BENCH_PROFILE:-dev}"
if [ "$profile" = release ]; then dir=release; else dir=debug; fi
cargo build --profile "$profile" --quiet --bin silo
keep="${SILO_SERIES_DIR:-}"
work=$(mktemp -d "${TMPDIR:-/tmp}/silo-30days.XXXXXX")
trap 'rm -rf "$work"' EXIT
# A copy: a build during the run (a test, another checkout's bench) must not change what is measured.
cp "target/$dir/silo" "$work/silo"; silo="$work/silo"
state="${keep:-$work}"; mkdir -p "$state"
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
my=(--host=127.0.0.1 --port=3306 --user=root)
size() { du -sb "$1" | cut -f1; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# day_load SERIES: one day of load. day_dump SERIES FILE: the dump.
day_load() {
  case $1 in
    pgbench) "$pgbench" -c 4 -j 2 -T "$secs" silo_bench_30_pg > /dev/null 2>&1 ;;
    sysbench) "${sb[@]}" --time="$secs" run > /dev/null ;;
  esac
}
day_dump() {
  case $1 in
    pgbench) pg_dump --no-password silo_bench_30_pg > "$2" ;;
    sysbench) mysqldump "${my[@]}" --single-transaction --quick --routines --events --triggers \
                --net-buffer-length=8M silo_bench_30_my > "$2" ;;
  esac
}
sb=(sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root
    --mysql-db=silo_bench_30_my --tables="$tables" --table-size="$rows" --threads=4)

for series in ${SILO_SERIES:-pgbench sysbench}; do
  s="$state/$series"
  # day_file D: where day D's dump is written (and found, when replaying).
  kept=""; replay=""
  if [ -n "${SILO_DUMPS_DIR:-}" ]; then
    kept="$SILO_DUMPS_DIR/$series"; mkdir -p "$kept"
    [ -s "$kept/day$(printf %02d "$days").sql" ] && replay=1
  fi
  day_file() { if [ -n "$kept" ]; then echo "$kept/day$(printf %02d "$1").sql"; else echo "$s/today.sql"; fi; }
  yesterday="$(day_file "$days")"; [ -n "$kept" ] || yesterday="$s/yesterday.sql"
  if [ "${SILO_RESTORE_ONLY:-}" != 1 ]; then
    rm -rf "$s"; mkdir -p "$s"
    [ -n "$replay" ] || case $series in
      pgbench)
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS silo_bench_30_pg WITH (FORCE)" -c "CREATE DATABASE silo_bench_30_pg"
        "$pgbench" -q -i -s "$scale" silo_bench_30_pg 2>/dev/null ;;
      sysbench)
        mysql "${my[@]}" -e "DROP DATABASE IF EXISTS silo_bench_30_my; CREATE DATABASE silo_bench_30_my"
        "${sb[@]}" prepare > /dev/null ;;
    esac
    tool_init silo "$s/silo-repo" "$s/silo-cache"; silo_ingest=("${ingest[@]}")
    tool_init restic "$s/restic-repo" "$s/restic-cache"; restic_ingest=("${ingest[@]}")
    : > "$s/days"
    for d in $(seq 0 "$days"); do
      today="$(day_file "$d")"
      if [ -z "$replay" ]; then
        [ "$d" = 0 ] || day_load "$series"
        day_dump "$series" "$today"
      fi
      [ "$d" = 0 ] && sha256sum < "$today" > "$s/day0.sum"
      if [ "$d" = 0 ]; then zstd -q -3 --long=31 -c "$today" > "$s/z"
      else zstd -q -3 --long=31 --patch-from="$yesterday" -c "$today" > "$s/z"; fi
      export SILO_REPO="$s/silo-repo" SILO_PASSWORD=bench SILO_CACHE_DIR="$s/silo-cache"
      before=$(size "$s/silo-repo"); t0=$(date +%s%N)
      cat "$today" | "${silo_ingest[@]}" > /dev/null 2>&1
      silo_ms=$(ms "$t0"); silo_add=$(( $(size "$s/silo-repo") - before ))
      export RESTIC_REPOSITORY="$s/restic-repo" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$s/restic-cache"
      before=$(size "$s/restic-repo")
      cat "$today" | "${restic_ingest[@]}" > /dev/null
      restic_add=$(( $(size "$s/restic-repo") - before ))
      echo "$d $(stat -c %s "$today") $silo_add $restic_add $(stat -c %s "$s/z") $silo_ms" >> "$s/days"
      if [ -n "$kept" ]; then yesterday="$today"; else mv "$today" "$yesterday"; fi
    done
    [ -n "$replay" ] || case $series in
      pgbench) psql -X -q -d postgres -c "DROP DATABASE silo_bench_30_pg WITH (FORCE)" ;;
      sysbench) mysql "${my[@]}" -e "DROP DATABASE silo_bench_30_my" ;;
    esac
  fi
  # Restores: the newest and the oldest silo snapshot, and restic's newest, each SILO_BENCH_REPEAT times
  # (default 3; interleaved, the median reported: single restores on a VM vary by 20%), once the
  # servers have worked off the last day's load.
  quiet
  export SILO_REPO="$s/silo-repo" SILO_PASSWORD=bench SILO_CACHE_DIR="$s/silo-cache"
  export RESTIC_REPOSITORY="$s/restic-repo" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$s/restic-cache"
  ids=$("$silo" --json snapshot list | python3 -c 'import json,sys; l=json.load(sys.stdin); print(l[0]["id"], l[-1]["id"])')
  oldest=${ids% *} newest=${ids#* }
  : > "$s/restores"
  for i in $(seq "${SILO_BENCH_REPEAT:-3}"); do
    for what in newest oldest restic; do
      t0=$(date +%s%N)
      case $what in
        newest) "$silo" snapshot restore "$newest" > /dev/null ;;
        oldest) "$silo" snapshot restore "$oldest" > /dev/null ;;
        restic) restic dump -q latest dump.sql > /dev/null ;;
      esac
      echo "$what $(ms "$t0")" >> "$s/restores"
    done
  done
  "$silo" snapshot restore "$newest" | cmp -s - "$yesterday" || { echo "30days: $series newest restores wrong" >&2; exit 1; }
  [ "$("$silo" snapshot restore "$oldest" | sha256sum)" = "$(cat "$s/day0.sum")" ] || { echo "30days: $series oldest restores wrong" >&2; exit 1; }
  "$silo" --json stats > "$s/stats.json"
  du -sb "$s/restic-repo" | cut -f1 > "$s/restic-total"
done

python3 - "$state" "$days" "${SILO_SERIES:-pgbench sysbench}" <<'EOF'
import json, statistics, sys
state, days = sys.argv[1], int(sys.argv[2])
for series in sys.argv[3].split():
    s = f"{state}/{series}"
    rows = [list(map(int, l.split())) for l in open(f"{s}/days")]
    st = json.load(open(f"{s}/stats.json"))
    print(f"\n{series}: {len(rows) - 1} days, dump {rows[-1][1] / 1e6:.0f} MB; MB each day adds")
    print("| day | silo | restic | patch-from | silo / patch-from | silo ingest (s) |")
    print("|---|---|---|---|---|---|")
    for d, dump, silo, restic, patch, millis in rows:
        print(f"| {d} | {silo / 1e6:.2f} | {restic / 1e6:.2f} | {patch / 1e6:.2f} | {silo / max(patch, 1):.1f}x | {millis / 1000:.2f} |")
    later = rows[1:]
    med = lambda i: statistics.median(r[i] for r in later) / 1e6
    print(f"| median of days 1-{len(later)} | {med(2):.2f} | {med(3):.2f} | {med(4):.2f} | {med(2) / med(4):.1f}x | |")
    total = st["stored_bytes"]
    restic_total = int(open(f"{s}/restic-total").read())
    print(f"\n{series}: repository after {len(later)} days: silo {total / 1e6:.1f} MB, restic {restic_total / 1e6:.1f} MB; "
          f"patch-from total {sum(r[4] for r in rows) / 1e6:.1f} MB; silo delta chunks {st['delta_chunks']}, "
          f"deepest chain {st['delta_max_depth']}")
    t = {}
    for line in open(f"{s}/restores"):
        what, millis = line.split()
        t.setdefault(what, []).append(int(millis))
    m = {k: statistics.median(v) / 1000 for k, v in t.items()}
    print(f"{series}: restore (median of {len(t['newest'])}): silo newest {m['newest']:.2f} s, silo oldest {m['oldest']:.2f} s, "
          f"restic newest {m['restic']:.2f} s; silo newest / restic {m['newest'] / m['restic']:.2f}x")
EOF
