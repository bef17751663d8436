# Sourced by the benchmark scripts: the three tools, set up the same way in each (compare.sh, delta_series.sh),
# and the packages they need (need_tools, also for validation.sh).
#   tool_init TOOL REPO CACHE   a fresh repository for TOOL (silo, restic, borg); sets `ingest` (stdin -> snapshot)
#   tool_restore TOOL           sets `restore` (the newest snapshot -> stdout)
#   quiet                       waits (at most a minute) until the machine is idle: no benchmark starts while
#                               a database server still works off the load that built its series
# Settings: silo defaults ($silo is the binary), restic defaults (repository v2, compression auto), borg
# `--compression zstd,3` (its default lz4 stores much more). Each tool derives its key from a password on
# every command, as in real use.
tool_init() {
  local tool=$1 r=$2 c=$3
  rm -rf "$r" "$c"
  case $tool in
    silo)
      export SILO_REPO="$r" SILO_PASSWORD=bench SILO_CACHE_DIR="$c"
      "$silo" init >/dev/null
      ingest=("$silo" snapshot create --name db) ;;
    restic)
      export RESTIC_REPOSITORY="$r" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$c"
      restic init -q >/dev/null
      ingest=(restic backup -q --stdin --stdin-filename dump.sql) ;;
    borg)
      export BORG_REPO="$r" BORG_PASSPHRASE=bench BORG_BASE_DIR="$c" BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
      borg init -e repokey-blake2 >/dev/null 2>&1
      ingest=(borg create --compression zstd,3 "::{now:%Y-%m-%dT%H:%M:%S.%f}" -) ;;
  esac
}

tool_restore() {
  case $1 in
    silo) restore=("$silo" snapshot restore db:latest) ;;
    restic) restore=(restic dump -q latest dump.sql) ;;
    borg) restore=(borg extract --stdout "::$(borg list --last 1 --short)") ;;
  esac
}

# need_tools COMMAND:PACKAGE...: installs from Debian's packages each PACKAGE whose COMMAND is missing (pgbench
# also counts as present in the PostgreSQL server's own bin directory). Shared by every benchmark script.
need_tools() {
  local need=() pair cmd
  for pair in "$@"; do
    cmd=${pair%%:*}
    if [ "$cmd" = pgbench ] && [ -x "$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | head -1)" ]; then continue; fi
    command -v "$cmd" >/dev/null || need+=("${pair#*:}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}

quiet() {
  local waited=0 idle total i1 t1 i2 t2
  while [ "$waited" -lt 60 ]; do
    read -r _ a b c i1 e f g h _ < /proc/stat; t1=$((a + b + c + i1 + e + f + g + h))
    sleep 1
    read -r _ a b c i2 e f g h _ < /proc/stat; t2=$((a + b + c + i2 + e + f + g + h))
    idle=$(( 100 * (i2 - i1) / (t2 - t1 > 0 ? t2 - t1 : 1) ))
    [ "$idle" -ge 90 ] && break
    waited=$((waited + 1))
  done
  [ "$waited" -gt 0 ] && echo "# waited ${waited}s for the machine to be idle (${idle}% idle)" >&2
  return 0
}

# garage_start DIR: one Garage node on loopback ports (the binary in $garage, from scripts/install-garage.sh),
# laid out, with a bucket `bench` and a key for it; exports AWS_*, sets s3 and admin (ports), secret (admin
# and metrics token), garage_pid, and g (the node's CLI). Shared by latency.sh and check_s3.sh.
garage_start() {
  local dir=$1 rpc node key
  port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  rpc=$(port) s3=$(port) admin=$(port) secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  garage_config="$dir/garage.toml"
  cat > "$garage_config" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$secret"
metrics_token = "$secret"
EOF
  RUST_LOG=warn "$garage" -c "$garage_config" server >/dev/null 2>&1 &
  garage_pid=$!
  for _ in $(seq 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
  node=$(g node id -q | cut -d@ -f1)
  g layout assign -z dc1 -c 10G "$node" >/dev/null
  g layout apply --version 1 >/dev/null
  for _ in $(seq 50); do g bucket create bench >/dev/null 2>&1 && break; sleep 0.2; done
  key=$(g key create bench)
  AWS_ACCESS_KEY_ID=$(echo "$key" | awk -F': *' '/Key ID/ {print $2}')
  AWS_SECRET_ACCESS_KEY=$(echo "$key" | awk -F': *' '/Secret key/ {print $2}')
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION=garage AWS_DEFAULT_REGION=garage
  g bucket allow --read --write --owner bench --key bench >/dev/null
}
g() { RUST_LOG=error "$garage" -c "$garage_config" "$@"; }
