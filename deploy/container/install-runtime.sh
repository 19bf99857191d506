#!/bin/sh
# The runtime layer of deploy/Containerfile, kept in one script so that deploy/container/check.sh runs exactly
# these steps in a Debian root file system (the image is not built on machines without a container engine).
#
# The cobalt binary is built with --static-swift-stdlib, so besides Debian's base it needs only libzmq and SQLite.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends libzmq5 libsqlite3-0 >/dev/null
rm -rf /var/lib/apt/lists/*
# An unprivileged user owns the state directory only; rules and configuration stay read-only to it.
groupadd --system cobalt
useradd --system --gid cobalt --home-dir /var/lib/cobalt --no-create-home --shell /usr/sbin/nologin cobalt
install -d -o cobalt -g cobalt -m 0750 /var/lib/cobalt
install -d -m 0755 /etc/cobalt /etc/cobalt/keys
