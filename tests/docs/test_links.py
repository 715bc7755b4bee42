"""Every document stands alone in a clone: README.md and docs/*.md link only to files of this
repository (and to their headings), and name no document that a clone does not have."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# [text](target) and [text](target "title"); images too. Reference-style links are not used.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a link in a shell example is not a link)."""
    return FENCE.sub("", text)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a markdown text (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(_prose(text)):
        base = _anchor(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def relative_links(text: str) -> list[str]:
    """The link targets of a document's text that are not URLs (``http:``, ``mailto:``...)."""
    return [
        target
        for target in LINK.findall(_prose(text))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)
    ]


def broken_links(path: Path, text: str | None = None) -> list[str]:
    """Each relative link of ``path`` (its ``text``, default the file's) that leaves the
    repository, names a missing file or a missing heading, with the reason."""
    problems = []
    text = path.read_text(encoding="utf-8") if text is None else text
    for target in relative_links(text):
        file_part, _, fragment = target.partition("#")
        if not file_part:
            if fragment not in anchors(text):
                problems.append(f"{target}: no heading #{fragment} in {path.relative_to(REPO)}")
            continue
        resolved = (path.parent / file_part).resolve()
        try:
            resolved.relative_to(REPO)
        except ValueError:
            problems.append(f"{target}: outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{target}: no such file {resolved.relative_to(REPO)}")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in anchors(
            resolved.read_text(encoding="utf-8")
        ):
            problems.append(f"{target}: no heading #{fragment} in {resolved.relative_to(REPO)}")
    return problems


def test_the_documents_are_found():
    names = {p.name for p in DOCS}
    assert {"README.md", "API.md", "DEPLOY.md", "ML.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(doc):
    assert broken_links(doc) == []


def foreign_names(path: Path, text: str | None = None) -> list[str]:
    """Names of documents outside this repository: ``../shared``, or an ``ARCHITECTURE.md``
    that is not this repository's docs/ARCHITECTURE.md (relative to the document or the root)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    found = ["../shared"] if "../shared" in text else []
    ours = REPO / "docs" / "ARCHITECTURE.md"
    for named in re.findall(r"[\w./-]*ARCHITECTURE\.md", text):
        if ours not in {(path.parent / named).resolve(), (REPO / named).resolve()}:
            found.append(named)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_document_names_a_file_outside_the_repository(doc):
    assert foreign_names(doc) == []


def test_architecture_is_in_the_repository_and_linked_from_the_readme():
    assert (REPO / "docs" / "ARCHITECTURE.md").is_file()
    assert "docs/ARCHITECTURE.md" in relative_links((REPO / "README.md").read_text(encoding="utf-8"))


def test_the_checks_find_what_they_are_meant_to_catch():
    doc = REPO / "docs" / "_probe.md"
    text = (
        "# Errors\n[a](../../shared/x.md) [b](missing.md) [c](API.md#no-such-heading) "
        "[d](API.md#errors) [e](https://example.com) [f](#errors) [g](#nope)\n"
        "```\n[h](nowhere.md)\n```\nsee ARCHITECTURE.md and ../ARCHITECTURE.md\n"
    )
    assert broken_links(doc, text) == [
        "../../shared/x.md: outside the repository",
        "missing.md: no such file docs/missing.md",
        "API.md#no-such-heading: no heading #no-such-heading in docs/API.md",
        "#nope: no heading #nope in docs/_probe.md",
    ]
    readme = REPO / "README.md"
    assert foreign_names(readme, "see ARCHITECTURE.md or ../shared/ARCHITECTURE.md") == [
        "../shared", "ARCHITECTURE.md", "../shared/ARCHITECTURE.md"]
    assert foreign_names(readme, "[arch](docs/ARCHITECTURE.md)") == []
    assert foreign_names(doc, "[arch](ARCHITECTURE.md), docs/ARCHITECTURE.md") == []
