#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit + integration tests (through the real binary,
# against the local PostgreSQL, MariaDB and SQLite and a Garage S3 store the harness starts), the same
# snapshot/gc/copy suites again with the repository on S3, and a short run of every fuzz target. One profile
# (dev, with dependencies at opt-level 3) throughout, so RocksDB's C++ is compiled once.
# Quick mode for a development loop: SILO_QUICK=1 skips clippy and fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
SILO_GARAGE_BIN="$(scripts/install-garage.sh)"
export SILO_GARAGE_BIN CARGO_TERM_COLOR=never
cargo fmt --all --check
if [ -z "${SILO_QUICK:-}" ]; then
  cargo clippy --workspace --all-targets -- -D warnings
fi
# The fault-injection tests print their counts (flips per object kind, kills): run them visibly, once.
cargo test --workspace -- --skip every_single_byte_flip --skip at_random_points --skip truncated_or_deleted
cargo test --test check --test faults --test gc -- --nocapture every_single_byte_flip at_random_points truncated_or_deleted 2>&1 \
  | grep -E '^(test |running|test result)|flips|fault injection|killed'
# The repository-level suites once more with every repository on S3 (one Garage node, started by the harness).
SILO_TEST_BACKEND=s3 cargo test --test snapshot --test gc --test copy
if [ -z "${SILO_QUICK:-}" ]; then
  scripts/fuzz.sh "${SILO_FUZZ_SECONDS:-10}"
fi
