#!/usr/bin/env bash
# Install the Debian packages batchd needs: `build` for make and make run
# (every shipped sink builds, so the backend client libraries too),
# `test` for everything .ci/run does (real PostgreSQL and Redis servers,
# sanitizers, valgrind, fuzzing). Uses sudo only when not root, so the
# same command works as root on a bare machine and as a user with sudo.
set -euo pipefail
what=${1:-build}

build_pkgs=(build-essential pkg-config libevent-dev libmsgpack-dev
    libsystemd-dev libinih-dev check libpq-dev libhiredis-dev
    libcurl4-openssl-dev libjansson-dev librdkafka-dev scdoc)
test_pkgs=(clang libclang-rt-14-dev valgrind cppcheck util-linux procps
    postgresql redis-server redis-tools python3 python3-msgpack)

case $what in
build) pkgs=("${build_pkgs[@]}") ;;
test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
