#!/usr/bin/env bash
# The main job on the default local backend: build silo, create a repository, store a dump from a command,
# store it again (deduplicated), restore it through a pipe and compare, print the stats.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
silo=target/release/silo
export SILO_REPO="${SILO_REPO:-$(mktemp -d)/repo}" SILO_PASSWORD="${SILO_PASSWORD:-demo password}"
export SILO_CACHE_DIR="${SILO_CACHE_DIR:-$(dirname "$SILO_REPO")/cache}"
dump() { if command -v pg_dump >/dev/null && pg_dump -h 127.0.0.1 -U postgres test >/dev/null 2>&1; then pg_dump -h 127.0.0.1 -U postgres test; else seq -f "INSERT INTO t VALUES (%g, 'row');" 1 3000000; fi; }
dump > "$(dirname "$SILO_REPO")/original.sql"
$silo init
$silo snapshot create --name demo -- cat "$(dirname "$SILO_REPO")/original.sql"
$silo snapshot create --name demo -- cat "$(dirname "$SILO_REPO")/original.sql"
$silo snapshot list
$silo snapshot restore demo:latest | cmp - "$(dirname "$SILO_REPO")/original.sql" && echo "restore: byte-identical"
$silo stats
echo "repository: $SILO_REPO"
