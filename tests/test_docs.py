"""The documentation site builds strictly and documents every public name."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def _documented_modules() -> list[str]:
    """Modules rendered by a ``::: module`` line in the API pages."""
    return sorted({m for page in API.glob("*.md") for m in re.findall(r"^::: (\S+)", page.read_text(), re.M)})


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--quiet",
                        "-d", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_every_public_package_has_an_api_page():
    documented = set(_documented_modules())
    packages = {f"poolwise.{p.name}" for p in (ROOT / "src" / "poolwise").iterdir()
                if (p / "__init__.py").is_file() and p.name not in ("cli", "integrations")}
    assert packages <= documented, f"packages without an API page: {sorted(packages - documented)}"


def test_every_public_name_is_documented(site):
    html = "".join(p.read_text() for p in (site / "api").rglob("*.html"))
    missing = []
    for module in _documented_modules():
        mod = importlib.import_module(module)
        own = [n for n, v in vars(mod).items()
               if not n.startswith("_") and getattr(v, "__module__", None) == module]
        names = getattr(mod, "__all__", None) or own
        missing += [f"{module}.{n}" for n in names if f'id="{module}.{n}"' not in html]
    assert not missing, f"public names missing from the API reference: {missing}"


def test_cli_page_shows_every_command(site):
    from poolwise.cli import build_parser

    page = (site / "cli" / "index.html").read_text()
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert all(f"poolwise {name}" in page for name in commands)
    assert "poolwise reproduce adapool-knn" in page and "--preset" in page


def test_every_test_the_docs_cite_exists():
    """The Guarantees page names the tests behind each promise: they must exist."""
    cited = set()
    for page in (ROOT / "docs").rglob("*.md"):
        cited |= set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", page.read_text()))
    assert cited
    missing = [f"{f}::{t}" for f, t in sorted(cited)
               if not (ROOT / f).is_file() or f"def {t}(" not in (ROOT / f).read_text()]
    assert not missing, f"tests cited in the docs that do not exist: {missing}"
