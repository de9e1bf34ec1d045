#!/usr/bin/env bash
# Install Debian packages the tests need (e.g. prometheus-alertmanager), idempotently:
#   deploy/ci/system-packages.sh prometheus-alertmanager [more packages...]
# Packages already installed are skipped; apt runs only for the missing ones. Services the
# packages ship are not started (policy-rc.d answers 101 for the duration of the install):
# the tests start their own processes on free ports.
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: $0 PACKAGE [PACKAGE...]" >&2
    exit 2
fi
missing=()
for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "system packages present: $*"
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
policy=/usr/sbin/policy-rc.d
restore=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    restore="yes"
fi
cleanup() { if [ -n "$restore" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
