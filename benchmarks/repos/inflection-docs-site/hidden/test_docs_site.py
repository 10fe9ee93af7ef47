"""inflection's documentation site: MkDocs builds it strictly, with an API reference.

The site is built in a subprocess (``mkdocs build --strict`` with the repository's
``mkdocs.yml``) into a temporary directory; mkdocstrings gives each documented function a
heading whose id is its dotted path.
"""

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import inflection
import pytest

ROOT = Path(__file__).resolve().parent
PUBLIC = sorted(
    name
    for name, value in vars(inflection).items()
    if inspect.isfunction(value) and value.__module__ == "inflection" and not name.startswith("_")
)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """``mkdocs build --strict`` of the repository's ``mkdocs.yml``, and the site's directory."""
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return run, out


def built(build):
    """The site's directory; the build must have succeeded, warnings being errors."""
    run, out = build
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


def text_of(page):
    return re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))


def test_the_site_builds_strictly(build):
    assert (built(build) / "index.html").is_file()


def test_the_api_reference_documents_every_public_function(build):
    pages = "".join(p.read_text(encoding="utf-8") for p in built(build).rglob("*.html"))
    missing = [name for name in PUBLIC if f'id="inflection.{name}"' not in pages]
    assert len(PUBLIC) >= 12
    assert not missing, f"not in the API reference: {', '.join(missing)}"


def test_the_home_page_shows_how_to_use_inflection(build):
    home = text_of(built(build) / "index.html")
    assert re.search(r"\b(import inflection|from inflection import)\b", home)
