"""The Python blocks of the documentation pages, as the docs tests run them.

Every fenced block whose language is ``python`` (or ``py``, ``python3``) is an example that the
test suite runs. A block that cannot run in a test (it starts a server that runs until
interrupted, needs a remote service...) is preceded by a marker giving the reason::

    <!-- not-run: starts a server that runs until interrupted -->
    ```python
    uvicorn.run(create_app(yard), port=8000)
    ```

Use another fence language (``bash``, ``text``, ``json``...) for what is not Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

ROOT = Path(__file__).resolve().parents[2]
PYTHON = frozenset({"python", "py", "python3"})
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*not-run\s*(?::(?P<reason>.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced Python block: where it is, its code, and why it is not run (if it is not)."""

    page: str
    line: int  # the line of the first line of code, counted from 1
    code: str
    not_run: str | None = None  # the reason, "" when the marker gives none

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def compiled(self, path: Path) -> CodeType:
        """The code compiled so that a traceback names the markdown file and its line (and
        ``inspect.getsource`` finds a function's source there, as a transform needs)."""
        return compile("\n" * (self.line - 1) + self.code, str(path), "exec")


@dataclass(frozen=True)
class Marker:
    page: str
    line: int
    reason: str


def pages() -> list[Path]:
    """Every page whose Python blocks are examples: the README and docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def parse(markdown: str, page: str) -> tuple[list[Block], list[Marker]]:
    """The page's Python blocks in order, and any not-run marker that no Python block
    follows (a misplaced marker, to be reported)."""
    blocks: list[Block] = []
    dangling: list[Marker] = []
    pending: Marker | None = None
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        text = lines[i]
        marker = MARKER.match(text)
        fence = FENCE.match(text)
        if marker:
            if pending is not None:
                dangling.append(pending)
            pending = Marker(page, i + 1, (marker.group("reason") or "").strip())
            i += 1
            continue
        if fence is None:
            if text.strip() and pending is not None:  # prose between marker and block
                dangling.append(pending)
                pending = None
            i += 1
            continue
        opening = fence.group("fence")
        language = fence.group("info").strip().split(" ", 1)[0].split("{", 1)[0].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if (closing and closing.group("fence")[0] == opening[0]
                    and len(closing.group("fence")) >= len(opening)
                    and not closing.group("info").strip()):
                break
            body.append(lines[j])
            j += 1
        indent = len(fence.group("indent"))
        code = "\n".join(line[indent:] if line[:indent].isspace() else line for line in body)
        if language in PYTHON:
            blocks.append(Block(page, i + 2, code + "\n",
                                None if pending is None else pending.reason))
        elif pending is not None:
            dangling.append(pending)
        pending = None
        i = j + 1
    if pending is not None:
        dangling.append(pending)
    return blocks, dangling


def read(path: Path) -> tuple[list[Block], list[Marker]]:
    return parse(path.read_text(encoding="utf-8"), page_name(path))
