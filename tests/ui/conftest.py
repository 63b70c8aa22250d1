"""The UI tests' projects: one built per module for the pages (read only), one per test
for the actions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.support import Project, build, build_models


@pytest.fixture(scope="module")
def browse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    base = tmp_path_factory.mktemp("ui-browse")
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("MODELYARD_"):
                patch.delenv(key)
        patch.setenv("XDG_CONFIG_HOME", str(base / "xdg-config"))
        yield build(base / "project")


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A new project with the model's two versions and its gate, nothing promoted."""
    return build_models(tmp_path / "fresh")
