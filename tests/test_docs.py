"""The documentation site builds strictly (no broken link or anchor) and documents every public name, error, extra and notebook."""

from __future__ import annotations

import html
import html.parser
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlejax
from mlejax.format import errors

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


class _Ids(html.parser.HTMLParser):
    """Every ``id`` attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.ids |= {value for name, value in attrs if name == "id" and value}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("material")
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                         cwd=out.parent, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    seconds = time.perf_counter() - start
    assert run.returncode == 0, run.stderr[-4000:]
    return out, seconds


def test_site_builds_strictly_in_under_a_minute(site):
    out, seconds = site
    assert seconds < 60, f"mkdocs build took {seconds:.0f} s"
    for page in ("index.html", "installing/index.html", "frameworks/torch/index.html", "format/index.html",
                 "troubleshooting/index.html", "api/index.html", "img/trees.png", "img/display.png"):
        assert (out / page).is_file(), page
    spec_headings = re.findall(r"^## (.+)$", (ROOT / "format" / "SPEC.md").read_text(encoding="utf-8"), flags=re.M)
    format_page = (out / "format" / "index.html").read_text(encoding="utf-8")
    plain = [h for h in spec_headings if "`" not in h]
    assert len(plain) > 5 and all(html.escape(h, quote=False) in format_page for h in plain)  # SPEC.md included whole


def test_every_public_name_is_in_the_api_reference(site):
    out, _ = site
    parser = _Ids()
    parser.feed((out / "api" / "index.html").read_text(encoding="utf-8"))
    missing = [name for name in mlejax.__all__ if not any(i == name or i.endswith("." + name) for i in parser.ids)]
    assert not missing, f"add these to docs/api.md: {missing}"
    undocumented = [name for name in mlejax.__all__ if name != "__version__" and not (getattr(mlejax, name).__doc__ or "").strip()]
    assert not undocumented, f"give these a docstring: {undocumented}"


def test_every_error_class_has_a_troubleshooting_entry():
    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\w+)$", page, flags=re.M))
    assert set(errors.__all__) <= headings, set(errors.__all__) - headings


def test_every_extra_and_notebook_is_documented():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    installing = (DOCS / "installing.md").read_text(encoding="utf-8")
    listed = {name for cell in re.findall(r"^\| ([^|]+) \|", installing, flags=re.M) for name in re.findall(r"`([\w-]+)`", cell)}
    assert set(extras) <= listed, set(extras) - listed
    notebooks = (DOCS / "notebooks.md").read_text(encoding="utf-8")
    assert all(f"`{p.stem}`" in notebooks for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_readme_front_page_links_and_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), f"README links to missing {target}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = ci.split("# README's test command:")[1].strip().splitlines()[0]
    assert f"&& {command}\n" in readme, f"README's test command is not CI's {command!r}"
