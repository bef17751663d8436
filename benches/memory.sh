#!/usr/bin/env bash
# Peak memory of `snapshot create` and `snapshot restore` on a generated stream (default 10 GiB), measured
# with GNU time (max RSS of the silo process alone). Goal (issue 2): under 128 MiB for both, independent of
# stream size. Then a second day of the same stream with scattered rows changed (one line in 256), stored as
# deltas of the first (issue 16: the previous snapshot is read back beside the new stream), and its restore
# (chains to decode). Usage: benches/memory.sh [SIZE]   e.g. benches/memory.sh 1G for a quick look.
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
stored=$(du -sb "$SILO_REPO" | cut -f1)
$gen "$size" 1 | sed 's/customer-00/customer-zz/' | /usr/bin/time -f '%M %e' -o "$work/create2" \
  $silo snapshot create --name mem >/dev/null 2>"$work/create2.err"
/usr/bin/time -f '%M %e' -o "$work/restore2" $silo snapshot restore mem:latest | wc -c > /dev/null
read -r c_kib c_s < "$work/create"; read -r r_kib r_s < "$work/restore"
read -r c2_kib c2_s < "$work/create2"; read -r r2_kib r2_s < "$work/restore2"
printf 'stream %s (%s bytes), stored %s bytes; the second day added %s bytes (%s)\n' "$size" "$(cat "$work/bytes")" \
  "$stored" "$(( $(du -sb "$SILO_REPO" | cut -f1) - stored ))" "$(tail -1 "$work/create2.err")"
printf 'create : peak RSS %6.1f MiB, %6.1f s\n' "$(echo "$c_kib/1024" | bc -l)" "$c_s"
printf 'restore: peak RSS %6.1f MiB, %6.1f s\n' "$(echo "$r_kib/1024" | bc -l)" "$r_s"
printf 'create of the second day (deltas): peak RSS %6.1f MiB, %6.1f s\n' "$(echo "$c2_kib/1024" | bc -l)" "$c2_s"
printf 'restore of the second day (chains): peak RSS %6.1f MiB, %6.1f s\n' "$(echo "$r2_kib/1024" | bc -l)" "$r2_s"
limit=$((128 * 1024))
for k in "$c_kib" "$r_kib" "$c2_kib" "$r2_kib"; do
  [ "$k" -lt "$limit" ] || { echo "OVER 128 MiB"; exit 1; }
done
echo "OK: all under 128 MiB"
