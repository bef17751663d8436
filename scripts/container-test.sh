#!/usr/bin/env bash
# The container image (Containerfile) built and run, offline: no image registry is needed.
#
# 1. Installs podman, runc and mmdebstrap when podman is missing (Debian/Ubuntu, as scripts/setup.sh does).
# 2. Builds the base image from Debian's packages: mmdebstrap of bookworm (or the host's Debian/Ubuntu suite,
#    so the host-built binary's glibc matches) with the dump clients, into a tarball, then `podman import`.
#    About a minute on a fresh machine, so the tarball is not kept; the imported image stays in podman's
#    store, tagged by suite, mirror and package list, and a later run uses it (SILO_CONTAINER_FRESH=1: build
#    it again).
# 3. Builds Containerfile with that base (BASE) and the silo binary built here (SILO_BUILD=prebuilt).
# 4. Runs it: a jobs file mounted read-only that backs up a PostgreSQL database of the local server
#    (127.0.0.1:5432, user postgres) into a repository on a mounted volume; `silo init` and `silo run` in the
#    container with --network=host; then on the host `silo snapshot list --json` must show the snapshot and
#    `silo snapshot restore shop:latest` must give a dump holding the rows.
#
# When podman cannot run containers here (no root, no user namespaces, ...) or PostgreSQL is not reachable it
# prints SKIPPED and why and exits 0; with SILO_REQUIRE_SERVICES=1 (CI) it fails instead. Prints each stage's
# time. podman runs with runc, cgroupfs and no default ulimits through a containers.conf of its own
# (CONTAINERS_CONF, a temporary file; the system's is not changed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$PWD
export CARGO_TERM_COLOR=never

say() { echo "container-test: $*" >&2; }
times=()
timed() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  times+=("$(printf '%-22s %5d s' "$name" $((SECONDS - start)))")
  say "$name: $((SECONDS - start)) s"
}
summary() {
  [ ${#times[@]} -gt 0 ] || return 0
  say "stage times"
  for t in "${times[@]}"; do echo "   $t" >&2; done
  echo "   total                  $SECONDS s" >&2
}
skip() {
  if [ "${SILO_REQUIRE_SERVICES:-}" = 1 ]; then
    say "FAILED: the container test is required (SILO_REQUIRE_SERVICES=1) but cannot run: $*"
    exit 1
  fi
  echo "SKIPPED: container test: $*; set SILO_REQUIRE_SERVICES=1 to make this a failure" >&2
  exit 0
}
fail() {
  say "FAILED: $*"
  exit 1
}

SUDO=""
if [ "$(id -u)" != 0 ]; then
  # podman runs rootful (the container's uid is the host's: the mounted files are chowned to it), and
  # mmdebstrap's root mode needs root too.
  sudo -n true 2>/dev/null || skip "needs root or passwordless sudo to run podman and mmdebstrap"
  SUDO="sudo -n"
fi

# --- 1. podman, runc, mmdebstrap
install_tools() {
  local need=()
  command -v podman >/dev/null || need+=(podman)
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  [ ${#need[@]} -gt 0 ] || return 0
  command -v apt-get >/dev/null || skip "podman is missing and there is no apt-get to install ${need[*]}"
  say "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
timed install install_tools

# --- the database the job backs up
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PGOPTIONS='-c client_min_messages=warning'
db=silo_container_test
command -v psql >/dev/null || skip "psql is not installed (scripts/setup.sh installs it)"
psql -X -q -d postgres -c 'select 1' >/dev/null 2>&1 || skip "PostgreSQL at 127.0.0.1:5432 is not reachable"

tmp="$(mktemp -d /tmp/silo-container-test.XXXXXX)"
chmod 0755 "$tmp"
conf="$tmp/containers.conf"
cat >"$conf" <<'EOF'
# scripts/container-test.sh's own podman configuration (CONTAINERS_CONF): the system's is not changed.
[containers]
# No default ulimits: raising RLIMIT_NOFILE is refused in some sandboxes.
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$conf"
podman_() { $SUDO env CONTAINERS_CONF="$conf" podman --runtime runc --cgroup-manager=cgroupfs "$@"; }
test_image=localhost/silo-container-test:latest
cleanup() {
  local rc=$?
  podman_ rmi -f "$test_image" >/dev/null 2>&1 || true
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  $SUDO rm -rf "$tmp"
  summary
  exit $rc
}
trap cleanup EXIT

podman_ info >/dev/null 2>"$tmp/podman-info.err" || skip "podman does not work here: $(tail -n 3 "$tmp/podman-info.err")"

# --- 2. the base image: Debian's packages, no registry
# shellcheck source=/dev/null
read -r host_id host_codename < <(. /etc/os-release && echo "${ID:-other} ${VERSION_CODENAME:-bookworm}")
case "$host_id" in
  debian) suite="${SILO_CONTAINER_SUITE:-$host_codename}" mirror="${SILO_CONTAINER_MIRROR:-http://deb.debian.org/debian}" ;;
  ubuntu) suite="${SILO_CONTAINER_SUITE:-$host_codename}" mirror="${SILO_CONTAINER_MIRROR:-http://archive.ubuntu.com/ubuntu}" ;;
  *) suite="${SILO_CONTAINER_SUITE:-bookworm}" mirror="${SILO_CONTAINER_MIRROR:-http://deb.debian.org/debian}" ;;
esac
packages="ca-certificates,postgresql-client,mariadb-client,sqlite3"
key="$(printf '%s %s %s v1' "$suite" "$mirror" "$packages" | sha256sum | cut -c1-12)"
base_image="localhost/silo-base:$suite-$key"
build_base() {
  if [ -z "${SILO_CONTAINER_FRESH:-}" ] && podman_ image exists "$base_image"; then
    say "base image $base_image is there already (SILO_CONTAINER_FRESH=1 builds it again)"
    return 0
  fi
  local tarball="$tmp/base.tar"
  say "mmdebstrap $suite ($mirror) with $packages"
  # Documentation and translations are left out: the image only runs the clients.
  $SUDO mmdebstrap --quiet --variant=minbase --include="$packages" --format=tar \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    "$suite" "$tarball" "$mirror" >&2
  podman_ import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$base_image" >/dev/null
  say "imported $base_image ($($SUDO du -h "$tarball" | cut -f1) tarball)"
  $SUDO rm -f "$tarball"
}
timed base-image build_base

# Can podman run a container here at all? (User namespaces, mounts, runc.)
if ! podman_ run --rm --network=host "$base_image" true 2>"$tmp/probe.err"; then
  skip "podman cannot run a container here: $(tail -n 3 "$tmp/probe.err")"
fi

# --- 3. the image: Containerfile with that base and the binary built here
silo="${CARGO_TARGET_DIR:-$repo_root/target}/debug/silo"
timed silo-binary cargo build --bin silo
build_image() {
  mkdir -p "$tmp/context"
  cp "$silo" "$tmp/context/silo"
  # The intermediate stage images this build leaves (unnamed) are removed afterwards; others are not touched.
  podman_ images -q --filter dangling=true | sort >"$tmp/dangling.before"
  podman_ build --quiet --network=host --pull=never -f "$repo_root/Containerfile" \
    --build-arg SILO_BUILD=prebuilt --build-arg BASE="$base_image" -t "$test_image" "$tmp/context" >/dev/null
  podman_ images -q --filter dangling=true | sort | comm -13 "$tmp/dangling.before" - >"$tmp/dangling.new"
  while read -r id; do podman_ rmi -f "$id" >/dev/null; done <"$tmp/dangling.new"
  say "built $test_image ($(podman_ image inspect --format '{{.Size}}' "$test_image" | awk '{printf "%d MB", $1/1e6}'))"
}
timed image build_image

# --- 4. run it
run_backup() {
  psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
    -c "CREATE TABLE orders (id int PRIMARY KEY, item text)" \
    -c "INSERT INTO orders VALUES (1, 'container-row-apple'), (2, 'container-row-pear'), (3, 'container-row-plum')"
  local uid
  uid="$(podman_ run --rm --network=host --entrypoint id "$test_image" -u)"
  [ "$uid" != 0 ] || fail "the image runs as root"
  mkdir -p "$tmp/backup" "$tmp/cache" "$tmp/secrets"
  # The password: a file owned by the container's user, owner-only, mounted read-only. Never printed, never
  # in the environment or on a command line.
  (umask 077 && head -c 24 /dev/urandom | base64 >"$tmp/secrets/password")
  chmod 0400 "$tmp/secrets/password"
  cat >"$tmp/jobs.toml" <<EOF
[repository]
location = "/srv/backup/repo"
password_file = "/run/secrets/silo-password"

[jobs.shop]
streams = [{ postgres = { database = "$db", host = "127.0.0.1", port = 5432, user = "postgres" } }]
keep = { last = 7 }
EOF
  chmod 0644 "$tmp/jobs.toml"
  $SUDO chown -R "$uid:$uid" "$tmp/backup" "$tmp/cache" "$tmp/secrets/password"
  local mounts=(-v "$tmp/jobs.toml:/etc/silo/jobs.toml:ro" -v "$tmp/secrets/password:/run/secrets/silo-password:ro"
    -v "$tmp/backup:/srv/backup" -v "$tmp/cache:/var/cache/silo")
  say "silo init and silo run shop in the container"
  podman_ run --rm --network=host "${mounts[@]}" "$test_image" \
    --repo /srv/backup/repo --password-file /run/secrets/silo-password init >&2 \
    || fail "silo init in the container failed"
  podman_ run --rm --network=host "${mounts[@]}" "$test_image" run shop 2>"$tmp/run.err" >&2 \
    || { cat "$tmp/run.err" >&2; fail "silo run shop in the container failed"; }
  cat "$tmp/run.err" >&2
  # The default command is `run --all`: the same job once more, a second snapshot.
  podman_ run --rm --network=host "${mounts[@]}" "$test_image" 2>"$tmp/run-all.err" >&2 \
    || { cat "$tmp/run-all.err" >&2; fail "the image's default command (silo run --all) failed"; }
  cat "$tmp/run-all.err" >&2
}
timed run run_backup

check_host() {
  local host=(--repo "$tmp/backup/repo" --password-file "$tmp/secrets/password" --cache-dir "$tmp/host-cache")
  $SUDO "$silo" "${host[@]}" snapshot list --json >"$tmp/list.json" || fail "snapshot list on the host failed"
  python3 - "$tmp/list.json" <<'EOF' || fail "snapshot list --json does not show the container's snapshots"
import json, sys
doc = json.load(open(sys.argv[1]))
snaps = doc if isinstance(doc, list) else doc.get("snapshots", [])
names = [s.get("name") for s in snaps]
assert names.count("shop") == 2, f"expected two snapshots named shop, got {names}"
print(f"container-test: snapshot list --json: {len(snaps)} snapshots, names {sorted(set(names))}", file=sys.stderr)
EOF
  $SUDO "$silo" "${host[@]}" snapshot restore shop:latest --output "$tmp/restored.sql" \
    || fail "snapshot restore shop:latest on the host failed"
  for row in container-row-apple container-row-pear container-row-plum; do
    $SUDO grep -q "$row" "$tmp/restored.sql" || fail "the restored dump lacks the row $row"
  done
  $SUDO grep -q '^COPY public.orders' "$tmp/restored.sql" || fail "the restored dump has no COPY of public.orders"
  say "restored shop:latest on the host: $($SUDO wc -c <"$tmp/restored.sql") bytes, the 3 rows are in it"
}
timed check check_host
# No secret in any output: not in what silo said in the container, nor in the image's history.
podman_ history --no-trunc "$test_image" >"$tmp/history.txt"
for f in "$tmp"/*.err "$tmp/history.txt"; do
  ! $SUDO grep -qF -f "$tmp/secrets/password" "$f" || fail "the repository password appears in $(basename "$f")"
done
say "passed"
