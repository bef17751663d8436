#!/usr/bin/env bash
# Peak memory of `snapshot create` and `snapshot restore` on a generated stream (default 10 GiB), measured
# with GNU time (max RSS of the silo process alone). Goal (issue 2): under 128 MiB for both, independent of
# stream size. Usage: benches/memory.sh [SIZE]   e.g. benches/memory.sh 1G for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-10G}"
scripts/setup.sh
# SILO_BENCH_PROFILE=dev measures the test build (dependencies at opt-level 3) when release is not built.
profile="${SILO_BENCH_PROFILE:-release}"
if [ "$profile" = release ]; then dir=release; else dir=debug; fi
cargo build --profile "$profile" --quiet --bin silo --example gendump
silo=target/$dir/silo gen=target/$dir/examples/gendump
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export SILO_REPO="$work/repo" SILO_PASSWORD=bench SILO_CACHE_DIR="$work/cache"
$silo init --kdf-memory 65536 >/dev/null
$gen "$size" 1 | /usr/bin/time -f '%M %e' -o "$work/create" $silo snapshot create --name mem >/dev/null
/usr/bin/time -f '%M %e' -o "$work/restore" $silo snapshot restore mem:latest | wc -c > "$work/bytes"
read -r c_kib c_s < "$work/create"; read -r r_kib r_s < "$work/restore"
stored=$(du -sb "$SILO_REPO" | cut -f1)
printf 'stream %s (%s bytes), stored %s bytes\n' "$size" "$(cat "$work/bytes")" "$stored"
printf 'create : peak RSS %6.1f MiB, %6.1f s\n' "$(echo "$c_kib/1024" | bc -l)" "$c_s"
printf 'restore: peak RSS %6.1f MiB, %6.1f s\n' "$(echo "$r_kib/1024" | bc -l)" "$r_s"
limit=$((128 * 1024))
[ "$c_kib" -lt "$limit" ] && [ "$r_kib" -lt "$limit" ] && echo "OK: both under 128 MiB" || { echo "OVER 128 MiB"; exit 1; }
