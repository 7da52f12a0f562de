"""The local dashboard page's files (package data in cloud/local/dashboard/), served by the
local stack's HTTP server at / next to the API."""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page loads nothing but its own files and talks only to its own origin.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
PREFIX = "/dashboard/"


def is_static(method: str, target: str) -> bool:
    """Whether a request is for the page rather than the API."""
    path = urlsplit(target).path
    return method == "GET" and (path in ("/", "/index.html") or path.startswith(PREFIX))


def static_file(target: str) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers for a static path; 404 for anything not shipped."""
    path = urlsplit(target).path
    name = "index.html" if path in ("/", "/index.html") else path[len(PREFIX) :]
    suffix = name[name.rfind(".") :] if "." in name else ""
    # Only plain file names of known types: no sub-folders, so no way out of the folder.
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in TYPES:
        return _missing(path)
    entry = resources.files("cloud.local").joinpath("dashboard", name)
    if not entry.is_file():
        return _missing(path)
    return 200, entry.read_bytes(), {"Content-Type": TYPES[suffix], **HEADERS}


def _missing(path: str) -> tuple[int, bytes, dict[str, str]]:
    body = f'{{"message": "no file {path[:100]}: the dashboard is at /"}}'.encode()
    return 404, body, {"Content-Type": "application/json", **HEADERS}
