#!/usr/bin/env bash
# Make the Debian base image locally, from Debian's package mirror, for machines
# that reach Debian's packages but not an image registry (Docker Hub).  The
# result stands in for the usual `debian:bookworm`: the same suite, the same
# minimal package set (debootstrap's minbase variant, as Debian's own images),
# the same apt sources (the release, its updates, its security fixes).
#
#   tools/image/make-base.sh [TAG]      default TAG: socklab-base:bookworm
#
# Cached: when the image TAG exists already, nothing is done (REBUILD=1 redoes it).
# Needs root (debootstrap), debootstrap and a running Docker engine.
set -euo pipefail

TAG=${1:-socklab-base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

if [ "${REBUILD:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "==> base image $TAG exists (REBUILD=1 to make it again)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "make-base.sh: debootstrap needs root" >&2
  exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "==> debootstrap $SUITE (minbase) from $MIRROR"
start=$(date +%s)
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# apt sources as in Debian's own image: the release, its point updates, security
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
# No downloaded packages or package lists in the image (the Dockerfile updates)
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

echo "==> docker import as $TAG"
tar --numeric-owner -C "$root" -c . |
  docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' \
    -m "debootstrap --variant=minbase $SUITE $MIRROR" \
    - "$TAG" >/dev/null
echo "==> base image $TAG made in $(( $(date +%s) - start )) s:" \
  "$(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
