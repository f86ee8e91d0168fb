"""The README and docs/ point at things that exist, and CI runs what the README says it runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(path: Path) -> str:
    """The Markdown without its fenced code blocks (examples may name files that do not exist)."""
    return re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+)$", path.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_and_pictures_resolve(doc):
    text = _prose(doc)
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    for target in (t for t in targets if not re.match(r"[a-z]+:", t)):
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.name} links to {target}, which does not exist"
        if anchor:
            assert anchor in _anchors(linked), f"{doc.name} links to {target}: no such heading"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_source_files_exist(doc):
    """Paths like `livecam/engine/split.py` or `engine/split.py` name files of the package, scripts and tests."""
    for name in re.findall(r"`((?:\w+/)+\w+\.py)`", _prose(doc)):  # a bare `core.py` sits beside its folder
        candidates = [ROOT / name, ROOT / "livecam" / name]
        assert any(p.exists() for p in candidates), f"{doc.name} names {name}, which does not exist"


def test_ci_runs_ruff_then_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```bash\n(python3 -m venv .*)\n```", readme)
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.replace("pip install -q ", "pip install ") for line in ci.splitlines()]  # -q: quieter CI logs
    assert test_command in lines, "CI must run the README's test command as written"
    ruff = "ruff check . && ruff format --check ."
    assert ruff in lines, "CI must lint and check the format"
    assert lines.index(ruff) < lines.index(test_command), "CI must lint before the tests"
