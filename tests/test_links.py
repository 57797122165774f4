"""Every relative link in the project's Markdown points at a file or folder that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "results" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(document: Path) -> list[str]:
    """The link targets of ``document`` that are paths in the repository (no URL, no in-page anchor)."""
    targets = (m.group(1).split("#")[0] for m in LINK.finditer(document.read_text()))
    return [t for t in targets if t and not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path):
    missing = [t for t in relative_links(document) if not (document.parent / t).exists()]
    assert not missing, f"{document.relative_to(ROOT)} links to missing paths: {missing}"


def test_the_readme_links_are_found():
    # The parser sees the README's links to the results, so the test above can fail.
    assert "results/README.md" in relative_links(ROOT / "README.md")
