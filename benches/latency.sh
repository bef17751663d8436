#!/usr/bin/env bash
# silo against restic on S3 (a local Garage) through a proxy that adds latency to every request, in one run:
# ingest of a dump arriving through a pipe, and a cold restore (fresh cache) to /dev/null; medians of RUNS.
#
#   benches/latency.sh [SIZE] [RUNS] [DELAYS_MS]       defaults: 200M 3 "0 20 50"
#
# The proxy is the tests' fault-injecting proxy (tests/util/faultproxy.rs, as examples/latency_proxy.rs):
# one upstream connection per request, DELAY ms before each is forwarded — the same for both tools. Garage is
# built by scripts/install-garage.sh, restic comes from Debian's packages; both are installed when missing.
# A benchmark, not a test: it prints a table and asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/tools.sh
size="${1:-200M}" runs="${2:-3}" delays="${3:-0 20 50}"
scripts/setup.sh
if ! command -v restic >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq restic >/dev/null
fi
garage="$(scripts/install-garage.sh)"
profile="${SILO_BENCH_PROFILE:-dev}"
if [ "$profile" = release ]; then dir=release; else dir=debug; fi
cargo build --profile "$profile" --quiet --bin silo --example dumpseries --example latency_proxy
silo="$PWD/target/$dir/silo" gen="$PWD/target/$dir/examples/dumpseries" proxy="$PWD/target/$dir/examples/latency_proxy"

work=$(mktemp -d "${TMPDIR:-/tmp}/silo-latency.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$gen" "$size" 0 churn > "$work/dump.sql"
echo "# input: $(stat -c %s "$work/dump.sql") bytes, through a pipe" >&2

# One Garage node on loopback ports with a bucket and a key.
garage_start "$work"
pids+=("$garage_pid")

timed() { # NAME CMD... : appends "tool delay NAME seconds"
  local name=$1; shift
  /usr/bin/time -f "%e" -o "$work/t" "$@"
  echo "$tool $delay $name $(cat "$work/t")" >> "$work/results"
}
: > "$work/results"
for delay in $delays; do
  "$proxy" "$s3" "$delay" > "$work/proxy.port" & pids+=($!)
  for _ in $(seq 100); do [ -s "$work/proxy.port" ] && break; sleep 0.05; done
  through=$(cat "$work/proxy.port")
  for run in $(seq "$runs"); do
    prefix="r$delay-$run"
    tool=silo
    export SILO_REPO="s3:http://127.0.0.1:$through/bench/silo-$prefix" SILO_PASSWORD=bench
    SILO_CACHE_DIR="$work/cache-silo-$prefix-a" "$silo" init >/dev/null
    SILO_CACHE_DIR="$work/cache-silo-$prefix-a" timed create \
      sh -c "cat '$work/dump.sql' | '$silo' snapshot create --name db >/dev/null 2>&1"
    SILO_CACHE_DIR="$work/cache-silo-$prefix-b" timed cold-restore \
      sh -c "'$silo' snapshot restore db:latest > /dev/null"
    tool=restic
    export RESTIC_REPOSITORY="s3:http://127.0.0.1:$through/bench/restic-$prefix" RESTIC_PASSWORD=bench
    restic -q -o s3.region=garage init >/dev/null
    timed create sh -c "cat '$work/dump.sql' | restic -q -o s3.region=garage backup --stdin --stdin-filename dump.sql >/dev/null"
    timed cold-restore sh -c "restic -q -o s3.region=garage --no-cache dump latest dump.sql > /dev/null"
  done
  kill "${pids[-1]}" 2>/dev/null || true
  : > "$work/proxy.port"
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
m() { awk -v t="$1" -v d="$2" -v n="$3" '$1==t && $2==d && $3==n {print $4}' "$work/results" | median; }
echo "| added latency | silo create (s) | restic create (s) | silo/restic | silo cold restore (s) | restic cold restore (s) | silo/restic |"
echo "|---|---|---|---|---|---|---|"
for delay in $delays; do
  sc=$(m silo "$delay" create) rc=$(m restic "$delay" create) sr=$(m silo "$delay" cold-restore) rr=$(m restic "$delay" cold-restore)
  printf "| %s ms | %s | %s | %.2fx | %s | %s | %.2fx |\n" "$delay" "$sc" "$rc" "$(echo "$sc / $rc" | bc -l)" "$sr" "$rr" "$(echo "$sr / $rr" | bc -l)"
done
