#!/usr/bin/env bash
# Puts uPlot (MIT, a small time-series chart library) into the dashboard's static folder, from
# the npm registry, at install time: the page loads nothing from anywhere else at run time.
# The files are git-ignored; `make install` runs this once (again when the version changes).
# The tarball is fetched over HTTPS by Python, so neither Node.js nor npm is needed;
# NPM_CONFIG_REGISTRY points at a mirror of the registry when there is one.
set -euo pipefail
VERSION="1.6.32"
# sha256 of uplot-1.6.32.tgz as the registry serves it: a different tarball is refused.
SHA256="4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d"
DEST="${1:-cloud/local/dashboard}"
REGISTRY="${NPM_CONFIG_REGISTRY:-https://registry.npmjs.org}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" - "$REGISTRY" "$VERSION" "$SHA256" "$DEST" <<'PY'
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

registry, version, expected, dest = sys.argv[1:]
url = f"{registry.rstrip('/')}/uplot/-/uplot-{version}.tgz"
try:
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
except OSError as exc:
    sys.exit(f"could not fetch uplot {version} from the npm registry ({url}): {exc}")
if hashlib.sha256(data).hexdigest() != expected:
    sys.exit(f"uplot-{version}.tgz from {url} does not have the expected checksum: refusing it")
# The minified file keeps its own header line (project and version); the licence goes beside.
wanted = {
    "package/dist/uPlot.iife.min.js": "uplot.iife.min.js",
    "package/dist/uPlot.min.css": "uplot.min.css",
    "package/LICENSE": "uplot.LICENSE.txt",
}
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
    for member, name in wanted.items():
        source = archive.extractfile(member)
        if source is None:
            sys.exit(f"uplot-{version}.tgz has no {member}: expected the published layout")
        target = Path(dest) / name
        target.write_bytes(source.read())
        target.chmod(0o644)
print(f"uPlot {version} (MIT) installed in {dest}")
PY
