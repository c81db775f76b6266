"""The README's *Contents* list links every section and subsection after it, in order,
with the anchors GitHub gives the headings, so the list stays true as sections move."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of the ``##`` and ``###`` headings outside code fences."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^(#{2,3}) (.+)$", line)):
            found.append((len(m.group(1)), m.group(2)))
    return found


def github_anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation other than '-' and '_' dropped,
    spaces made '-'."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _contents(text: str) -> list[tuple[int, str, str]]:
    """(level, label, anchor) of each entry of the Contents list."""
    block = text.split("\n## Contents\n", 1)[1].split("\n## ", 1)[0]
    return [
        (2 if not indent else 3, label, anchor)
        for indent, label, anchor in re.findall(r"^( *)- \[(.+?)\]\(#(.+?)\)$", block, re.M)
    ]


def test_github_anchor_follows_githubs_rule():
    assert github_anchor("1. Load a generator") == "1-load-a-generator"
    assert github_anchor("The toy world (built in, offline)") == "the-toy-world-built-in-offline"
    assert (
        github_anchor("Choose what to annotate: `dgan-data suggest`")
        == "choose-what-to-annotate-dgan-data-suggest"
    )


def test_contents_lists_every_later_section_in_order():
    text = README.read_text("utf-8")
    headings = _headings(text)
    after = headings[[title for _, title in headings].index("Contents") + 1 :]
    entries = _contents(text)
    assert [(level, github_anchor(title)) for level, title in after] == [
        (level, anchor) for level, _, anchor in entries
    ]
    anchors = [github_anchor(title) for _, title in headings]
    assert len(anchors) == len(set(anchors)), "two headings share an anchor"
    for _, label, anchor in entries:
        assert label == next(t for _, t in after if github_anchor(t) == anchor).replace("`", "")
