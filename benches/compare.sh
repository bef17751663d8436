#!/usr/bin/env bash
# silo against restic and borg on the same machine, in one run: a deterministic series of SQL-dump-like
# days (examples/dumpseries.rs) is ingested from stdin by each tool, RUNS times in fresh repositories, and the
# medians are printed with silo/peer ratios.
#
#   benches/compare.sh [SIZE] [RUNS] [VARIANT]     defaults: 536M (a 562 MB dump) 3 churn   (VARIANT: churn | append)
#   SILO_BENCH_PIPE=1 benches/compare.sh ...         every ingest through a pipe (`cat dump | tool`)
#
# Per tool and run: ingest day 0 into an empty repository; the same dump again (unchanged re-run); day 1
# (a day of churn); restore the newest snapshot to stdout (timed into /dev/null, then checked against day 1 by a second restore); repository bytes after day 0 and
# after day 1; peak RSS of each command (GNU time). Settings: restic defaults (repository v2, compression
# auto), borg `--compression zstd,3` (its default lz4 stores much more), silo defaults (zstd 3). Each tool
# derives its key from a password on every command, as in real use. restic and borg are installed from
# Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-536M}" runs="${2:-3}" variant="${3:-churn}"
scripts/setup.sh
source benches/tools.sh
need_tools restic:restic borg:borgbackup
profile="${SILO_BENCH_PROFILE:-dev}"
if [ "$profile" = release ]; then dir=release; else dir=debug; fi
cargo build --profile "$profile" --quiet --bin silo --example dumpseries
silo="$PWD/target/$dir/silo" gen="$PWD/target/$dir/examples/dumpseries"

work=$(mktemp -d "${TMPDIR:-/tmp}/silo-compare.XXXXXX"); trap 'rm -rf "$work"' EXIT
"$gen" "$size" 0 "$variant" > "$work/day0.sql"
"$gen" "$size" 1 "$variant" > "$work/day1.sql"
echo "# input: $(stat -c %s "$work/day0.sql") bytes day 0, $(stat -c %s "$work/day1.sql") bytes day 1 ($variant)" >&2

# timed NAME CMD...: runs CMD (stdin/stdout as redirected by the caller), appends "tool NAME seconds KiB".
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/t" "$@"
  echo "$tool $name $(cat "$work/t")" >> "$results"
}
bytes() { echo "$tool $1 $(du -sb "$2" | cut -f1) 0" >> "$results"; }
# ingest_from NAME FILE: the tool's ingest of FILE, timed; with SILO_BENCH_PIPE=1 through a pipe (`cat FILE |
# tool`, as from pg_dump; the time and peak RSS then include cat's), else from the file redirected (which
# silo maps).
ingest_from() {
  if [ -n "${SILO_BENCH_PIPE:-}" ]; then
    timed "$1" bash -c 'f=$1; shift; cat "$f" | "$@"' _ "$2" "${ingest[@]}" > /dev/null
  else
    timed "$1" "${ingest[@]}" < "$2" > /dev/null
  fi
}

results="$work/results"
: > "$results"
for run in $(seq "$runs"); do
  for tool in silo restic borg; do
    r="$work/$tool-repo" c="$work/$tool-cache"
    tool_init "$tool" "$r" "$c"
    sync
    ingest_from ingest "$work/day0.sql"
    bytes bytes0 "$r"
    ingest_from rerun "$work/day0.sql"
    ingest_from day1 "$work/day1.sql"
    bytes bytes1 "$r"
    tool_restore "$tool"
    timed restore "${restore[@]}" > /dev/null
    # Verified in a second, untimed restore (a consumer in the timed pipe would bound the fastest tool).
    "${restore[@]}" | cmp -s - "$work/day1.sql" \
      || { echo "compare: $tool restored something else than day 1" >&2; exit 1; }
    rm -rf "$r" "$c"
  done
  echo "# run $run of $runs done" >&2
done

cp "$results" "${TMPDIR:-/tmp}/silo-compare-raw.txt"  # every measurement, for a closer look
python3 - "$results" "$size" "$runs" "$variant" <<'EOF'
import collections, os, statistics, sys
path, size, runs, variant = sys.argv[1:]
t = collections.defaultdict(list)
m = collections.defaultdict(list)
for line in open(path):
    tool, what, secs, kib = line.split()
    t[tool, what].append(float(secs))
    m[tool, what].append(int(kib))
tools = ["silo", "restic", "borg"]
med = lambda tool, what: statistics.median(t[tool, what])
rss = lambda tool, what: statistics.median(m[tool, what]) / 1024
how = "through a pipe" if os.environ.get("SILO_BENCH_PIPE") else "from the file"
print(f"input {size} ({variant}, {how}), medians of {runs} runs")
print()
print("| | " + " | ".join(tools) + " | silo/restic | silo/borg |")
print("|---|" + "---|" * (len(tools) + 2))
def row(label, f, fmt):
    vals = [f(x) for x in tools]
    ratios = [vals[0] / v if v else float("nan") for v in vals[1:]]
    print(f"| {label} | " + " | ".join(fmt(v) for v in vals) + " | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
row("ingest day 0 (s)", lambda x: med(x, "ingest"), lambda v: f"{v:.2f}")
row("unchanged re-run (s)", lambda x: med(x, "rerun"), lambda v: f"{v:.2f}")
row("ingest day 1 (s)", lambda x: med(x, "day1"), lambda v: f"{v:.2f}")
row("restore to stdout (s)", lambda x: med(x, "restore"), lambda v: f"{v:.2f}")
row("peak RSS ingest (MiB)", lambda x: max(rss(x, w) for w in ("ingest", "rerun", "day1")), lambda v: f"{v:.0f}")
row("peak RSS restore (MiB)", lambda x: rss(x, "restore"), lambda v: f"{v:.0f}")
row("repository after day 0 (MB)", lambda x: med(x, "bytes0") / 1e6, lambda v: f"{v:.1f}")
row("day 1 adds (MB)", lambda x: (med(x, "bytes1") - med(x, "bytes0")) / 1e6, lambda v: f"{v:.1f}")
fastest = min(med(x, "ingest") for x in tools[1:])
print()
print(f"targets: ingest {med('silo','ingest')/fastest:.2f}x of the fastest peer (<= 0.5), "
      f"re-run {med('silo','rerun')/min(med(x,'rerun') for x in tools[1:]):.2f}x (<= 0.25), "
      f"restore {med('silo','restore')/min(med(x,'restore') for x in tools[1:]):.2f}x (<= 0.5), "
      f"stored {med('silo','bytes0')/med('restic','bytes0'):.2f}x restic's (<= 0.9)")
EOF
