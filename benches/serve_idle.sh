#!/usr/bin/env bash
# `silo serve` idle at scale (issue 32: RSS <= 64 MiB at 10 000 snapshots, CPU while idle): a repository with
# SNAPSHOTS snapshots over 20 names (each create also leaves its run record), then `silo serve` re-reading
# it every REFRESH for MINUTES, its RSS (VmRSS, VmHWM) and CPU (user+sys from /proc) sampled after each
# read. Prints the peak RSS and the CPU per hour of refreshes.
#
#   benches/serve_idle.sh [SNAPSHOTS] [MINUTES] [REFRESH]     defaults: 10000 60 60s
set -euo pipefail
cd "$(dirname "$0")/.."
snapshots="${1:-10000}" minutes="${2:-60}" refresh="${3:-60s}"
cargo build --release --quiet --bin silo
silo="$PWD/target/release/silo"
work=$(mktemp -d "${TMPDIR:-/tmp}/silo-serve-idle.XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
export SILO_REPO="$work/repo" SILO_CACHE_DIR="$work/cache" SILO_PASSWORD=bench
"$silo" init --kdf-memory 64 --kdf-iterations 1 > /dev/null
start=$SECONDS
for i in $(seq "$snapshots"); do
  printf 'row %s of job %s\n' "$i" $((i % 20)) | "$silo" snapshot create --name "job$((i % 20))" > /dev/null 2>&1
done
echo "made $snapshots snapshots in $((SECONDS - start)) s" >&2
"$silo" serve --listen 127.0.0.1:0 --refresh "$refresh" 2> "$work/serve.log" &
pid=$!
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$pid/stat"; }
sleep 2
end=$((SECONDS + minutes * 60))
first=$(cpu) peak=0
while [ $SECONDS -lt $end ]; do
  sleep 10
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  [ "$rss" -gt "$peak" ] && peak=$rss
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
used=$(echo "$(cpu) - $first" | bc -l)
printf 'snapshots %s, refresh %s, %s min: peak RSS %.1f MiB (high-water %.1f MiB), CPU %.2f s, %.1f s per hour\n' \
  "$snapshots" "$refresh" "$minutes" "$(echo "$peak / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)" \
  "$used" "$(echo "$used * 60 / $minutes" | bc -l)"
