#!/usr/bin/env bash
# The main job on the default local backend: build silo, create a repository, store a 64 MiB dump from a command,
# store it again (deduplicated), restore it through a pipe and compare, print the stats.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --quiet --profile test --bin silo --example gendump   # the tests' profile: RocksDB is compiled once
silo=target/debug/silo
export SILO_REPO="${SILO_REPO:-$(mktemp -d)/repo}" SILO_PASSWORD="${SILO_PASSWORD:-demo password}"
export SILO_CACHE_DIR="${SILO_CACHE_DIR:-$(dirname "$SILO_REPO")/cache}"
# 64 MiB of deterministic SQL-dump-like text (the generator the tests and benchmarks use).
target/debug/examples/gendump 64M 1 > "$(dirname "$SILO_REPO")/original.sql"
$silo init
$silo snapshot create --name demo -- cat "$(dirname "$SILO_REPO")/original.sql"
$silo snapshot create --name demo -- cat "$(dirname "$SILO_REPO")/original.sql"
$silo snapshot list
$silo snapshot restore demo:latest | cmp - "$(dirname "$SILO_REPO")/original.sql" && echo "restore: byte-identical"
$silo stats
echo "repository: $SILO_REPO"
