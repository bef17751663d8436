#!/usr/bin/env bash
# Chunk size and zstd level against the dump series: for each combination, days 0..DAYS of
# examples/dumpseries are ingested into a fresh repository; printed: the repository's size after day 0 and
# after the last day, and the median ingest time of day 0 over RUNS fresh repositories. The defaults
# (ChunkerParams::DEFAULT, --compression 3) were chosen from this table (docs/benchmarks.md).
#
#   benches/sweep.sh [SIZE] [DAYS] [RUNS] [VARIANT]     defaults: 256M 3 3 churn
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-256M}" days="${2:-3}" runs="${3:-3}" variant="${4:-churn}"
scripts/setup.sh
cargo build --quiet --bin silo --example dumpseries
silo="$PWD/target/debug/silo" gen="$PWD/target/debug/examples/dumpseries"
work=$(mktemp -d "${TMPDIR:-/tmp}/silo-sweep.XXXXXX"); trap 'rm -rf "$work"' EXIT
for d in $(seq 0 "$days"); do "$gen" "$size" "$d" "$variant" > "$work/day$d.sql"; done
export SILO_PASSWORD=bench
printf '%-8s %-5s %14s %16s %10s\n' avg zstd "day0 stored" "day0..$days stored" "ingest s"
for avg in 65536 131072 262144 524288 1048576; do
  min=$((avg / 4)) max=$((avg * 4))
  for level in 1 3 6; do
    times=()
    for run in $(seq "$runs"); do
      export SILO_REPO="$work/repo" SILO_CACHE_DIR="$work/cache"
      rm -rf "$SILO_REPO" "$SILO_CACHE_DIR"
      "$silo" init --kdf-memory 1024 --chunk-min "$min" --chunk-avg "$avg" --chunk-max "$max" --compression "$level" >/dev/null
      start=$(date +%s.%N)
      "$silo" snapshot create --name db < "$work/day0.sql" > /dev/null 2>&1
      times+=("$(echo "$(date +%s.%N) - $start" | bc -l)")
      day0=$(du -sb "$SILO_REPO" | cut -f1)
      if [ "$run" = 1 ]; then
        for d in $(seq 1 "$days"); do "$silo" snapshot create --name db < "$work/day$d.sql" > /dev/null 2>&1; done
        total=$(du -sb "$SILO_REPO" | cut -f1)
      fi
    done
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '%-8s %-5s %14s %16s %10.2f\n' "$avg" "$level" "$day0" "$total" "$median"
  done
done
