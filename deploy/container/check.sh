#!/usr/bin/env bash
# Checks deploy/Containerfile's runtime stage on a machine without a container engine (needs root, debootstrap
# and Debian's package mirror). It does what the image build does, outside Docker:
#   1. builds cobalt as the build stage does (release, --static-swift-stdlib);
#   2. makes a Debian 12 minbase root file system (what debian:bookworm-slim is made from) and runs
#      install-runtime.sh in it, then copies the binary, Rules and cobalt.yaml to the image's paths;
#   3. inside it, as the cobalt user: `rules check` passes; `serve` with the container config but no keys refuses
#      to start and names the missing key file; with keys it starts (endpoints moved to loopback ports for the
#      check), a CURVE-authenticated `send` of vignette C09 is acknowledged and `status` answers; SIGTERM exits 0.
# Usage: sudo bash deploy/container/check.sh [ROOTFS_DIR]   (default: a new temporary directory, removed after)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:-}
keep=1
if [ -z "$root" ]; then root=$(mktemp -d /tmp/cobalt-rootfs.XXXXXX); chmod 0755 "$root"; keep=0; fi
daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null || true
  for m in proc dev; do umount "$root/$m" 2>/dev/null || true; done
  [ "$keep" = 0 ] && rm -rf "$root"
}
trap cleanup EXIT
step() { echo "== $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

step "build (release, static Swift standard library)"
swift build -c release --product cobalt --static-swift-stdlib --scratch-path .build-static >/dev/null
binary=.build-static/release/cobalt

if [ ! -x "$root/bin/sh" ]; then
  step "debootstrap Debian 12 minbase into $root"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
fi
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
step "runtime layer: deploy/container/install-runtime.sh"
if ! chroot "$root" id cobalt >/dev/null 2>&1; then
  cp deploy/container/install-runtime.sh "$root/tmp/" && chroot "$root" sh /tmp/install-runtime.sh
fi
install -m 0755 "$binary" "$root/usr/local/bin/cobalt"
rm -rf "$root/etc/cobalt/Rules" && cp -r Rules "$root/etc/cobalt/Rules"
cp deploy/container/cobalt.yaml "$root/etc/cobalt/cobalt.yaml"
cp docs/examples/c09-neuro.jsonl "$root/tmp/"
as_cobalt() { chroot --userspec=cobalt:cobalt "$root" env HOME=/var/lib/cobalt "$@"; }

step "libraries: every one the binary needs resolves in the image"
missing=$(chroot "$root" ldd /usr/local/bin/cobalt | grep "not found" || true)
[ -z "$missing" ] || fail "unresolved libraries: $missing"

step "cobalt rules check /etc/cobalt/Rules"
as_cobalt sh -c 'cd /var/lib/cobalt && cobalt rules check /etc/cobalt/Rules' >/dev/null || fail "rules check"

step "serve without keys refuses to start and names the file"
rm -f "$root"/etc/cobalt/keys/*
if out=$(as_cobalt sh -c 'cd /var/lib/cobalt && timeout 20 cobalt serve --config /etc/cobalt/cobalt.yaml' 2>&1); then
  fail "the daemon started without keys"
fi
echo "$out" | grep -q "/etc/cobalt/keys/server.key" || fail "no mention of the missing key file: $out"

step "serve with keys (endpoints on loopback for the check), send C09 over CURVE, status, SIGTERM"
chroot "$root" sh -c 'cd /etc/cobalt/keys && cobalt keygen server >/dev/null && cobalt keygen ehr >/dev/null \
  && cobalt keygen ops >/dev/null && chown cobalt:cobalt server.key ehr.key ops.key \
  && echo "$(cat ehr.pub) ehr *" > ingest.allow && echo "$(cat ops.pub) ops" > operators.allow \
  && : > subscribers.allow'
port=$((20000 + RANDOM % 20000))
endpoints=(--ingest "tcp://127.0.0.1:$port" --alerts "tcp://127.0.0.1:$((port + 1))"
  --replay "tcp://127.0.0.1:$((port + 2))" --control "tcp://127.0.0.1:$((port + 3))" --metrics "http://127.0.0.1:$((port + 4))")
chroot --userspec=cobalt:cobalt "$root" env HOME=/var/lib/cobalt sh -c \
  "cd /var/lib/cobalt && exec cobalt serve --config /etc/cobalt/cobalt.yaml ${endpoints[*]}" 2>"$root/tmp/serve.log" &
daemon=$!
for _ in $(seq 1 100); do grep -q "cobalt started" "$root/tmp/serve.log" && break; sleep 0.1; done
grep -q "cobalt started" "$root/tmp/serve.log" || fail "daemon did not start: $(cat "$root/tmp/serve.log")"
keys=(--server-key /etc/cobalt/keys/server.pub)
sent=$(as_cobalt cobalt send --ingest "tcp://127.0.0.1:$port" "${keys[@]}" --key /etc/cobalt/keys/ehr.key /tmp/c09-neuro.jsonl)
echo "$sent" | grep -q "2 acknowledged, 0 rejected" || fail "send: $sent"
status=$(as_cobalt cobalt status --control "tcp://127.0.0.1:$((port + 3))" "${keys[@]}" --key /etc/cobalt/keys/ops.key)
echo "$status" | grep -q '"accepted" *: *2' || fail "status: $status"
kill -TERM "$daemon"
wait "$daemon" || fail "exit status $? after SIGTERM"
daemon=
[ -s "$root/var/lib/cobalt/cobalt.db" ] || fail "no database in the state directory"
step "passed"
