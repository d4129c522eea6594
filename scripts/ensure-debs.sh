#!/usr/bin/env bash
# Install the Debian packages named on the command line that are not installed yet.
# Used by `make run` / `make test`; does nothing (and needs no root) when all are present.
set -euo pipefail
missing=()
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "spamwarden: installing Debian packages: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "spamwarden: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
# Postfix asks how to configure itself; we run private instances, so: no configuration.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
# Daemons must not start on install (there may be no init system): policy-rc.d says no.
cleanup_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    cleanup_policy=1
fi
trap '[ $cleanup_policy -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -q >/dev/null || $SUDO apt-get update
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
