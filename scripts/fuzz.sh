#!/usr/bin/env bash
# Builds every fuzz target and runs each for N seconds (default 10; a longer mode: scripts/fuzz.sh 600).
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in $(cargo fuzz list); do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${secs}s" >&2
  cargo fuzz run -O "$target" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tail -n 2
done
echo "fuzz: all targets ran without a crash" >&2
