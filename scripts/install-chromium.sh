#!/usr/bin/env bash
# Installs Chromium and its driver from the OS packages for the dashboard's browser tests;
# says plainly what to do when that is not possible.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing and this system has no apt-get: install the 'chromium' package with your package manager." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "Chromium is missing: run 'apt-get install chromium chromium-driver' as root." >&2
    exit 1
  fi
fi
echo "Installing Chromium from the OS packages..."
if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
  echo "Could not install Chromium with apt-get: install the 'chromium' and 'chromium-driver' packages and run again." >&2
  exit 1
fi
