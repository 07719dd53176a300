"""The one renderer of the README's generated blocks (and of the notebooks' runtime lines).

A block is the text between two marker lines, ``<!-- name -->`` and ``<!-- /name -->`` (in a
notebook's markdown cell, ``# <!-- name -->``): each command that measures something writes its
block with :func:`write_block` (or :func:`render_block`, from its committed JSON record), and a test
reads it back with :func:`read_block` and compares it with the same rendering. Nothing between
markers is written by hand.

The blocks of README.md (the course's front page), docs/results.md (what the runs measured) and docs/lab.md
(the lab's records about itself), each block's file given by :data:`HOMES`, and the command that writes each:

    course-map, headline, results python -m mage_lite results
    pretrained-check              python -m mage_lite pretrained compare --render reports/cpu/pretrained_check.json
    budget-table                  python -m mage_lite config
    ci-time, bench-table, bench-gpu-table   python -m mage_lite bench --render-ci / --render FILE
    threads-table                 python -m mage_lite bench-threads --render reports/bench/threads.json
    bank-table                    python -m mage_lite bank-check --render reports/bank/bank_check.json
    design-table                  python -m mage_lite design-check --render FILES
    report-summary, report-table  python -m mage_lite report --render-only
    budget-curve, budget-curve-cpu   python -m mage_lite budget-curve --render FILE
    generation-study              python -m mage_lite generation-study --render reports/generation/cpu.json
"""

from pathlib import Path
from typing import Callable

from ..artifacts import REPO_ROOT, load_json

README = REPO_ROOT / "README.md"
RESULTS_PAGE = REPO_ROOT / "docs" / "results.md"
LAB_RECORDS = REPO_ROOT / "docs" / "lab.md"
# The blocks that live outside README.md, which stays short enough to read as the course's front page:
# the full tables of what the runs measured, and the lab's records about itself.
HOMES = {
    **{name: RESULTS_PAGE for name in ("results", "budget-table", "report-table", "budget-curve", "budget-curve-cpu",
                                          "generation-study")},
    **{name: LAB_RECORDS for name in ("ci-time", "threads-table", "bank-table", "design-table", "bench-table",
                                      "bench-gpu-table")},
}


def home(name: str) -> Path:
    """The file block ``name`` lives in: README.md unless :data:`HOMES` names docs/results.md or docs/lab.md."""
    return HOMES.get(name, README)


def link_base(name: str) -> str:
    """What a repository-relative link inside block ``name`` needs in front ("../" for a block under docs/)."""
    return "../" * len(home(name).relative_to(REPO_ROOT).parent.parts)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name} -->", f"<!-- /{name} -->"


def _span(text: str, name: str) -> tuple[int, int]:
    """Where block ``name``'s content lies in ``text``: after its start marker, up to the line of its end marker."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise ValueError(f"the markers {start} and {end} are missing; add them where the block belongs")
    i = text.index(start) + len(start)
    j = text.rfind("\n", 0, text.index(end)) + 1
    if j <= i:
        raise ValueError(f"{start} and {end} must stand on lines of their own, start first")
    return i, j


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with block ``name``'s content replaced by ``content``."""
    i, j = _span(text, name)
    return text[:i] + "\n" + content.strip("\n") + "\n" + text[j:]


def read_block(name: str, text: str | None = None) -> str:
    """Block ``name``'s content (stripped), from ``text`` or else from the file it lives in (:func:`home`)."""
    text = home(name).read_text() if text is None else text
    i, j = _span(text, name)
    return text[i:j].strip()


def write_block(name: str, content: str, path: Path | None = None) -> Path:
    """Replace block ``name`` of the file at ``path`` (the block's :func:`home` unless given) by ``content``;
    returns the path."""
    path = home(name) if path is None else Path(path)
    path.write_text(replace_block(path.read_text(), name, content))
    return path


def render_block(name: str, json_path: Path | str, render: Callable[[dict], str], path: Path | None = None) -> Path:
    """:func:`write_block` of ``render(<the JSON record at json_path>)``: a block rendered from a committed record."""
    return write_block(name, render(load_json(json_path)), path)
