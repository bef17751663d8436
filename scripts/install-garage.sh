#!/usr/bin/env bash
# Installs Garage (the S3-compatible store the S3 tests start) into ~/.cache/silo-tools/bin, outside the
# clone, once: `cargo install garage --locked` takes ~9 minutes on 2 cores. Prints the binary's path.
set -euo pipefail
tools="${SILO_TOOLS_DIR:-$HOME/.cache/silo-tools}"
version="${SILO_GARAGE_VERSION:-2.5.0}"
bin="$tools/bin/garage"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$version"; then
  echo "$bin"
  exit 0
fi
echo "install-garage: building garage $version into $tools (about 9 minutes)" >&2
mkdir -p "$tools"
CARGO_TARGET_DIR="$tools/garage-target" cargo install garage --locked --version "$version" --root "$tools" >&2
rm -rf "$tools/garage-target"
echo "$bin"
