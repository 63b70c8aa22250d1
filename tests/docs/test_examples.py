"""Every Python block of the README and docs/*.md runs, page by page.

A page's blocks run in order in one namespace (a block builds on the ones before it), in a
fresh project that the page's setup (``pages.py``) fills with the data its examples read. A
block that cannot run in a test carries a ``<!-- not-run: reason -->`` marker (see
``blocks.py``); a new block is picked up without any change here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from docs import pages as setups
from docs.blocks import ROOT, Block, page_name, pages, parse, read


def _runnable(path: Path) -> list[Block]:
    return [b for b in read(path)[0] if b.not_run is None]


PAGES = [page_name(p) for p in pages() if _runnable(p)]


def _marked(page: str) -> Any:
    """A page whose examples need the S3 server runs with the ``s3`` mark."""
    return pytest.param(page, marks=pytest.mark.s3) if setups.PAGES.get(
        page, setups.Page()).s3 else page


@pytest.mark.parametrize("page", [_marked(p) for p in PAGES])
def test_the_examples_of_a_page_run(page: str, tmp_path: Path, request: pytest.FixtureRequest,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard import init_project

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # for paths like ~/work/claims
    path = ROOT / page
    spec = setups.PAGES.get(page, setups.Page())
    project = tmp_path / "proj"
    project.mkdir()
    if spec.project:
        init_project(project, "claims")
    if spec.s3:  # a bucket of its own; AWS_* point at the server
        setups.s3_project(project, request.getfixturevalue("s3_bucket"))
    monkeypatch.chdir(project)
    names: dict[str, Any] = {"__name__": "__docs__"}
    names.update(spec.setup(project) if spec.setup else {})
    try:
        for block in _runnable(path):
            try:
                exec(block.compiled(path), names)
            except Exception as exc:
                raise AssertionError(f"the block at {block.where} failed: {exc!r}") from exc
        if spec.check:
            spec.check(names, project)
    finally:
        _close(names)


def _close(names: dict[str, Any]) -> None:
    """Close what the examples opened and left open: servers, then connections."""
    from modelyard import Yard

    values = [v for v in names.values() if type(v).__module__.startswith("modelyard.")
              and callable(getattr(v, "close", None))]
    for value in sorted(values, key=lambda v: isinstance(v, Yard)):
        with contextlib.suppress(Exception):
            value.close()


def test_every_page_with_examples_is_run() -> None:
    """Each page with a Python block is in the run, and every page setup names a page."""
    with_blocks = {page_name(p) for p in pages() if read(p)[0]}
    assert "README.md" in PAGES
    assert set(setups.PAGES) <= with_blocks, set(setups.PAGES) - with_blocks


def test_a_block_that_is_not_run_says_why() -> None:
    problems = []
    for path in pages():
        blocks, dangling = read(path)
        problems += [f"{b.where}: a not-run marker without a reason"
                     for b in blocks if b.not_run == ""]
        problems += [f"{m.page}:{m.line}: a not-run marker with no Python block right after it"
                     for m in dangling]
    assert not problems, "\n".join(problems)


def test_the_blocks_of_a_page_are_found_with_their_markers() -> None:
    page = "\n".join([
        "# A page", "", "```python", "a = 1", "```", "",
        "<!-- not-run: starts a server -->", "```py", "serve()", "```", "",
        "```bash", "modelyard doctor", "```",
        "<!-- not-run -->", "````python title", "```", "b = 2", "````",
        "<!-- not-run: a reason -->", "", "Prose.", "```python", "c = 3", "```",
        "- a list", "  ```python", "  d = 4", "  ```",
    ])
    blocks, dangling = parse(page, "page.md")
    assert [(b.line, b.code, b.not_run) for b in blocks] == [
        (4, "a = 1\n", None), (9, "serve()\n", "starts a server"),
        (17, "```\nb = 2\n", ""), (24, "c = 3\n", None), (28, "d = 4\n", None)]
    assert [(m.line, m.reason) for m in dangling] == [(20, "a reason")]
    namespace: dict[str, Any] = {}
    exec(blocks[0].compiled(Path("page.md")), namespace)  # line numbers as in the page
    assert namespace["a"] == 1
    with pytest.raises(ZeroDivisionError) as info:
        exec(Block("page.md", 7, "1 / 0\n").compiled(Path("page.md")), {})
    assert info.traceback[-1].lineno + 1 == 7


def test_a_function_defined_in_a_block_has_its_source(tmp_path: Path) -> None:
    """A transform's source is stored: inspect finds it in the page, at its line."""
    import inspect

    page = tmp_path / "page.md"
    page.write_text("# Transforms\n\n```python\ndef double(frame):\n    return frame * 2\n```\n")
    namespace: dict[str, Any] = {}
    exec(parse(page.read_text(), "page.md")[0][0].compiled(page), namespace)
    assert inspect.getsource(namespace["double"]) == "def double(frame):\n    return frame * 2\n"
