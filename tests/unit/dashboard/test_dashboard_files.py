"""Static files of the dashboard: only shipped files, with a strict content policy."""

from __future__ import annotations

import re

from cloud.local.dashboard_files import is_static, static_file


def test_page_and_assets_are_served_with_types_and_policy() -> None:
    status, body, headers = static_file("/")
    assert status == 200 and b"/dashboard/app.js" in body
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert static_file("/dashboard/app.js")[2]["Content-Type"].startswith("text/javascript")
    assert static_file("/dashboard/style.css?v=2")[0] == 200


def test_anything_else_is_404() -> None:
    for path in (
        "/dashboard/../static.py",
        "/dashboard/x/app.js",
        "/dashboard/.hidden.js",
        "/dashboard/service.py",
        "/dashboard/missing.css",
    ):
        assert static_file(path)[0] == 404, path


def test_only_get_of_the_page_paths_is_static() -> None:
    assert is_static("GET", "/") and is_static("GET", "/dashboard/app.js")
    assert not is_static("POST", "/") and not is_static("GET", "/api/sites")


def test_page_loads_nothing_from_elsewhere() -> None:
    _, html, _ = static_file("/")
    _, js, _ = static_file("/dashboard/app.js")
    _, css, _ = static_file("/dashboard/style.css")
    for text in (html, js, css):
        assert not re.search(rb"https?://(?!www\.w3\.org/2000/svg)", text)
    assert b"innerHTML" not in js  # data is only ever set as text


def test_the_chart_library_is_served_from_the_package_with_its_licence() -> None:
    status, body, headers = static_file("/dashboard/uplot.iife.min.js")
    assert status == 200, (
        "run `make install`: it puts uPlot in the package (scripts/vendor-uplot.sh)"
    )
    assert body.startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert headers["Content-Type"].startswith("text/javascript")
    assert static_file("/dashboard/uplot.min.css")[0] == 200
    _, html, _ = static_file("/")
    assert html.index(b"uplot.iife.min.js") < html.index(b"/dashboard/app.js")
    from importlib import resources

    licence = resources.files("cloud.local").joinpath("dashboard", "uplot.LICENSE.txt")
    assert "MIT License" in licence.read_text()
