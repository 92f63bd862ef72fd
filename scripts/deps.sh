#!/bin/sh
# Installs what sluice needs to build and test, from Debian's packages.
# Safe to run again: only missing packages are installed. Run as root (or
# with sudo available).
set -eu

PACKAGES="build-essential cmake pkg-config libzmq3-dev libmsgpack-dev \
libcriterion-dev libyaml-dev libjansson-dev libyajl-dev libcsv-dev \
libmicrohttpd-dev python3-prometheus-client libcurl4-openssl-dev libsqlite3-dev \
liblua5.4-dev libpq-dev postgresql curl iproute2 \
valgrind clang-14 libclang-rt-14-dev llvm-14"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "deps: all present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "deps: missing:$missing; run this script as root" >&2
        exit 1
    fi
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
