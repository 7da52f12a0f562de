#!/usr/bin/env bash
# Installs Debian/Ubuntu packages the local stack or the tests need, when PROGRAM is missing;
# says plainly what to do when that is not possible.
# Usage: [AFTER_INSTALL=command] install-os-packages.sh "Label" /path/to/program package [...]
# AFTER_INSTALL runs (as root, failures ignored) only when packages were installed.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: install-os-packages.sh LABEL PROGRAM PACKAGE [PACKAGE ...]" >&2
  exit 2
fi
label=$1 program=$2
shift 2
packages=("$@")
if [ -x "$program" ] || command -v "$(basename "$program")" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$label is missing and this system has no apt-get: install the package(s) ${packages[*]} with your package manager." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "$label is missing: run 'apt-get install ${packages[*]}' as root." >&2
    exit 1
  fi
fi
echo "Installing $label from the OS packages..."
if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null; }; then
  echo "Could not install $label with apt-get: install the package(s) ${packages[*]} and run again." >&2
  exit 1
fi
if [ -n "${AFTER_INSTALL:-}" ]; then
  $SUDO $AFTER_INSTALL >/dev/null 2>&1 || true
fi
