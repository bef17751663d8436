#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit + integration tests (through the real binary,
# against the local PostgreSQL, MariaDB and SQLite and a Garage S3 store the harness starts), the backend
# conformance suite on every backend, the same snapshot/gc/copy suites again with the repository on S3, and
# a short run of every fuzz target. Prints how long each stage took (and a summary at the end).
#
# RocksDB's C++ is compiled once: clippy runs with `--profile test`, and Cargo.toml gives build scripts' dependencies the
# same debug info as the code, so clippy's check build and the test build share RocksDB's build script.
# Quick mode for a development loop: SILO_QUICK=1 skips clippy and fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
times=()
stage() {
  local name="$1" start=$SECONDS
  shift
  echo "== stage $name" >&2
  "$@"
  times+=("$(printf '%-26s %5d s' "$name" $((SECONDS - start)))")
  echo "== stage $name: $((SECONDS - start)) s" >&2
}
summary() {
  echo "== stage times" >&2
  for t in "${times[@]}"; do echo "   $t" >&2; done
  echo "   total                      $SECONDS s" >&2
}
trap summary EXIT
garage() { SILO_GARAGE_BIN="$(scripts/install-garage.sh)"; export SILO_GARAGE_BIN; }
# The fault-injection tests and the dump corpus print their counts (flips per object kind, kills; dumps, flag
# sets, cuts): run them visibly, once.
faults() {
  cargo test --test check --test faults --test gc --test dump_corpus -- --nocapture every_single_byte_flip \
    at_random_points truncated_or_deleted _corpus 2>&1 \
    | grep -E '^(test |running|test result)|flips|fault injection|killed|dump corpus'
}

stage setup scripts/setup.sh
stage garage garage
stage fmt cargo fmt --all --check
if [ -z "${SILO_QUICK:-}" ]; then
  stage clippy cargo clippy --workspace --all-targets --profile test -- -D warnings
fi
stage build cargo test --workspace --no-run
stage tests cargo test --workspace -- --skip every_single_byte_flip --skip at_random_points --skip truncated_or_deleted \
  --skip _corpus
stage fault-injection faults
# The repository-level suites once more with every repository on S3 (one Garage node, started by the harness);
# security among them, since only there do children see AWS_SECRET_ACCESS_KEY to leak.
stage s3-suites env SILO_TEST_BACKEND=s3 cargo test --test snapshot --test gc --test copy --test keys --test security
# The Containerfile built offline (mmdebstrap, podman) and `silo run` through it against the test PostgreSQL:
# about 2 minutes on a fresh machine, seconds once its base image is in podman's store.
stage container scripts/container-test.sh
if [ -z "${SILO_QUICK:-}" ]; then
  stage fuzz scripts/fuzz.sh "${SILO_FUZZ_SECONDS:-10}"
fi
