#!/usr/bin/env bash
# The python:3.11-slim base image for building the Dockerfile: pulled where the registry is
# reachable, else a stand-in: Debian bookworm (the release that image is built on) with its
# Python 3.11 made into a venv at /usr/local, so python, pip and the console scripts live in
# /usr/local/bin as they do in the official image, with the headers the compile needs. Built
# once with debootstrap into the cache (2 minutes and a 270 MB tarball here), then
# imported into podman's store under the official name, which `podman build --pull=never` uses.
set -euo pipefail

cache=${PREFORK_CI_CACHE:-/var/cache/prefork-ci}
image=docker.io/library/python:3.11-slim
podman=(podman --storage-driver vfs)

if "${podman[@]}" image exists "$image"; then
    exit 0
fi
# the real image wherever the registry answers (here the lookup fails at once)
if timeout 300 "${podman[@]}" pull --quiet "$image" >/dev/null 2>&1; then
    echo "pulled $image"
    exit 0
fi
tarball=$cache/python-3.11-slim-standin.tar
if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    echo "building the python:3.11-slim stand-in with debootstrap (once, into $cache)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python3-dev \
        bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
        { tail -n 20 "$cache/debootstrap.log"; exit 1; }
    chmod 755 "$rootfs"  # mktemp made it 0700: the image's root must be open to every user
    chroot "$rootfs" python3 -m venv /usr/local
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
fi
"${podman[@]}" import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$tarball" "$image" >/dev/null
echo "imported $image (stand-in) from $tarball"
