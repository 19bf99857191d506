#!/usr/bin/env bash
# Starts Cobalt on loopback with the bundled rules and an embedded SQLite database (./cobalt.db).
# Installs the system libraries a fresh Debian machine lacks (libzmq3-dev, libsqlite3-dev), builds, and runs
# `cobalt serve --config deploy/cobalt.yaml`. Extra arguments are passed to `cobalt serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s libzmq3-dev >/dev/null 2>&1 || need+=(libzmq3-dev)
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]} — run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

swift build -c release --product cobalt
umask 077  # the database holds patient data: readable by this user only
exec .build/release/cobalt serve --config deploy/cobalt.yaml "$@"
