#!/usr/bin/env bash
# Installs the system packages silo's build and tests need, when missing (Debian/Ubuntu):
# libclang (bindgen for RocksDB), a C++ compiler, the database clients the pipeline tests drive, and tmux.
set -euo pipefail
need=()
have_libclang() { ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so* >/dev/null 2>&1; }
have_libclang || need+=(libclang-dev)
command -v g++ >/dev/null || need+=(g++)
command -v /usr/bin/time >/dev/null || need+=(time)
command -v bc >/dev/null || need+=(bc)
# Database clients for the pipeline tests and docs/recipes.md.
command -v pg_dump >/dev/null || need+=(postgresql-client)
command -v mysqldump >/dev/null || need+=(mariadb-client)
command -v sqlite3 >/dev/null || need+=(sqlite3)
# The jobs-file tests (tests/jobs.rs): Redis's client, and promtool (Debian's prometheus package) to check
# `silo status --prometheus` output.
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v promtool >/dev/null || need+=(prometheus)
# OpenLDAP's server and tools for the ldap preset's test (the harness starts slapd on a loopback port).
command -v slapcat >/dev/null || [ -x /usr/sbin/slapcat ] || need+=(slapd)
# An SMTP server for the e-mail notification test (Debian's python3 runs it).
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
# A browser for tests/serve.rs (the dashboard rendered headless, a screenshot taken).
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
# A terminal for tests/terminal.rs (progress line, colour at a TTY).
command -v tmux >/dev/null || need+=(tmux)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
