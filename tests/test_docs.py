"""The documentation's links lead somewhere: the README, docs/, the model cards and the measured
results link each other and their outputs by relative paths, and a moved file leaves them dead."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def documents() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "nucseg").rglob("*.md")),
        *sorted((ROOT / "results" / "measured").rglob("*.md")),
    ]


def dead_links(document: Path) -> list[str]:
    dead = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        path = target.split("#")[0]
        if path and not re.match(r"[a-z]+:", path) and not (document.parent / path).exists():
            dead.append(target)
    return dead


def test_every_relative_link_of_the_documentation_names_a_file_that_exists():
    found = {str(doc.relative_to(ROOT)): dead_links(doc) for doc in documents()}
    assert len(found) > 20  # the README, docs/ and the results' pages were all read
    assert not {doc: dead for doc, dead in found.items() if dead}


def test_a_dead_link_is_seen(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.txt").write_text("x")
    page.write_text("[a](there.txt) ![b](gone/figure.png) [c](https://example.org/x) [d](there.txt#part)")
    assert dead_links(page) == ["gone/figure.png"]
