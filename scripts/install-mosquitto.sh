#!/usr/bin/env bash
# Installs Mosquitto from the OS packages; says plainly what to do when that is not possible.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Mosquitto is missing and this system has no apt-get: install the 'mosquitto' package with your package manager." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "Mosquitto is missing: run 'apt-get install mosquitto' as root." >&2
    exit 1
  fi
fi
echo "Installing Mosquitto from the OS packages..."
if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; }; then
  echo "Could not install Mosquitto with apt-get: install the 'mosquitto' package and run again." >&2
  exit 1
fi
# The packaged service is not needed: the local stack starts its own broker on a free port.
$SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
