"""The page's static files must ship in a wheel (a non-editable install), or `gendet serve` cannot start:
every file under gendet/serve/static/ has to match a [tool.setuptools.package-data] glob in pyproject.toml."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[2]


def test_static_files_are_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gendet"]
    package = REPO / "gendet"
    shipped = {p for pattern in patterns for p in glob.glob(pattern, root_dir=package, recursive=True)}
    static = {str(p.relative_to(package)) for p in (package / "serve" / "static").rglob("*") if p.is_file()}
    assert {"serve/static/index.html", "serve/static/app.js", "serve/static/style.css"} <= static
    missing = sorted(static - shipped)
    assert not missing, f"not in package-data (add \"serve/static/*\" to pyproject.toml): {missing}"
