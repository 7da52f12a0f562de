"""Writing key material and bundles: private files 0600 from creation, atomic replacement."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
PUBLIC_FILE_MODE = 0o644


def make_private_dir(path: Path) -> Path:
    """Create `path` (and parents) with the leaf folder 0700; an existing folder is kept as is."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Write `data` to `path`, owner-only, atomically replacing any previous file."""
    return _write_atomic(path, data, PRIVATE_FILE_MODE)


def write_public(path: Path, data: bytes) -> Path:
    """Write non-secret material (certificates, CRL, config) atomically."""
    return _write_atomic(path, data, PUBLIC_FILE_MODE)


def _write_atomic(path: Path, data: bytes, mode: int) -> Path:
    # The mode is given to os.open so a secret is never readable by others, not even for the
    # instant between creation and a chmod; the rename keeps readers from seeing half a file.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path
