#!/usr/bin/env bash
# Puts uPlot (MIT, a small time-series chart library) into the dashboard's static folder, from
# the npm registry, at install time: the page loads nothing from anywhere else at run time.
# The files are git-ignored; `make install` runs this once (again when the version changes).
set -euo pipefail
VERSION="1.6.32"
# sha256 of uplot-1.6.32.tgz as the registry serves it: a different tarball is refused.
SHA256="4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d"
DEST="${1:-cloud/local/dashboard}"

command -v npm >/dev/null || {
  echo "npm is needed to fetch the dashboard's chart library: apt-get install npm" >&2
  exit 1
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@${VERSION}" >/dev/null) || {
  echo "could not fetch uplot@${VERSION} from the npm registry" >&2
  exit 1
}
echo "${SHA256}  ${work}/uplot-${VERSION}.tgz" | sha256sum --check --quiet - || {
  echo "uplot-${VERSION}.tgz does not have the expected checksum: refusing it" >&2
  exit 1
}
tar -xzf "${work}/uplot-${VERSION}.tgz" -C "$work"
# The minified file keeps its own header line (project and version); the licence goes beside.
install -m 0644 "${work}/package/dist/uPlot.iife.min.js" "${DEST}/uplot.iife.min.js"
install -m 0644 "${work}/package/dist/uPlot.min.css" "${DEST}/uplot.min.css"
install -m 0644 "${work}/package/LICENSE" "${DEST}/uplot.LICENSE.txt"
echo "uPlot ${VERSION} (MIT) installed in ${DEST}"
