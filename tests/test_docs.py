"""The front page and the docs site: the README stays a front page (at most 220 lines,
with the test command CI runs), every page mkdocs.yml lists exists and every page in
docs/ is listed, and the README's links into docs/ lead somewhere. `make docs` builds
the site with --strict (CI too); these checks need no MkDocs."""

from __future__ import annotations

import re
from collections.abc import Iterator

import yaml

from tests.helpers import REPO

DOCS = REPO / "docs"


def _nav_pages(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _nav_pages(value)


def test_every_page_in_the_nav_exists_and_every_page_is_in_the_nav() -> None:
    nav = list(_nav_pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]))
    assert len(nav) == len(set(nav))
    missing = [page for page in nav if not (DOCS / page).is_file()]
    assert not missing, missing
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk == set(nav), on_disk ^ set(nav)


def test_the_readme_is_a_front_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 220
    assert "make test" in readme  # .ci/run runs the README's test command
    links = re.findall(r"\]\((docs/[^)#\s]+)", readme)
    assert links and all((REPO / link).is_file() for link in links), links
