"""The layering holds: read from the source, every import (at module level, inside
functions, and under ``TYPE_CHECKING``) of the packages whose direction matters.

- ``modelyard.stats``, the statistics shared by the registry and monitoring, sits below
  both: it imports no domain service, entry point or facade.
- The registry and monitoring never import each other.
- A backend never imports a domain service, an entry point or the facade.
- A domain service never imports an entry point.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "modelyard"
SERVICES = ("features", "tracking", "registry", "serving", "monitoring", "pipelines",
            "security")
ENTRY_POINTS = ("cli", "server", "ui")
FACADE = ("client",)


def imports_of(path: Path, root: Path = SRC) -> set[str]:
    """Every ``modelyard.*`` module ``path`` imports (``from modelyard import x`` counts as
    ``modelyard.x``; relative imports are resolved against the file's package)."""
    package = ["modelyard", *path.relative_to(root).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "modelyard" or name.startswith("modelyard.")}


def package_imports(package: str) -> dict[str, set[str]]:
    """file (relative to src/modelyard) -> the modelyard modules it imports."""
    root = SRC / package if (SRC / package).is_dir() else SRC / f"{package}.py"
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    return {str(f.relative_to(SRC)): imports_of(f) for f in files}


def offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad: dict[str, list[str]] = {}
    for file, names in package_imports(package).items():
        hits = sorted(n for n in names
                      if any(n == f"modelyard.{f}" or n.startswith(f"modelyard.{f}.")
                             for f in forbidden))
        if hits:
            bad[file] = hits
    return bad


def test_the_import_reader_sees_every_form(tmp_path: Path) -> None:
    sample = tmp_path / "modelyard" / "monitoring" / "probe.py"
    sample.parent.mkdir(parents=True)
    sample.write_text("from typing import TYPE_CHECKING\nimport modelyard.stats.profile\n"
                      "from modelyard import registry\nfrom . import check\n"
                      "if TYPE_CHECKING:\n    from modelyard.registry.service import X\n"
                      "def f():\n    from ..registry import evaluation\n")
    found = imports_of(sample, tmp_path / "modelyard")
    assert {"modelyard.stats.profile", "modelyard.registry", "modelyard.monitoring.check",
            "modelyard.registry.service", "modelyard.registry.evaluation"} <= found


def test_stats_sits_below_the_registry_and_monitoring() -> None:
    assert package_imports("stats"), "no modelyard/stats package"
    assert offenders("stats", (*SERVICES, *ENTRY_POINTS, *FACADE, "backends")) == {}


@pytest.mark.parametrize(("package", "other"), [("registry", "monitoring"),
                                                ("monitoring", "registry")])
def test_the_registry_and_monitoring_do_not_import_each_other(package: str,
                                                              other: str) -> None:
    assert offenders(package, (other,)) == {}


def test_backends_import_no_service_entry_point_or_facade() -> None:
    assert offenders("backends", (*SERVICES, *ENTRY_POINTS, *FACADE)) == {}


@pytest.mark.parametrize("service", [s for s in SERVICES if (SRC / s).is_dir()])
def test_services_import_no_entry_point(service: str) -> None:
    assert offenders(service, ENTRY_POINTS) == {}
