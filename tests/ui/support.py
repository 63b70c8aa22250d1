"""A small project for the UI tests: tuned runs with metric histories and artifacts, a
model with a good and a bad version behind gates, two monitored weeks (the second shifted),
and a feature group; and a TestClient over the UI."""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import modelyard
from modelyard import Yard
from modelyard.registry.gates import MetricGate
from tests.monitoring.support import DAY0, INPUTS, MODEL, claims, fit_regressor, log_window
from tests.registry.support import setup_features

WEEK = timedelta(days=7)
DEPTHS = (2, 3, 5, 8, 13)


def tiny_png() -> bytes:
    """A valid 2x2 PNG, red and blue."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"\x00\xff\x00\x00\x00\x00\xff" * 2
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@dataclass(frozen=True)
class Project:
    root: Path
    runs: dict[str, str]  # run name -> id
    child: str
    results: list[str]  # the stored monitoring checks, oldest first


def connect(root: Path) -> Yard:
    return modelyard.connect(project=root, capture_packages=False, capture_git=False)


def log_runs(yard: Yard, files: Path) -> tuple[dict[str, str], str]:
    files.mkdir(parents=True, exist_ok=True)
    (files / "notes.txt").write_text("depth sweep\nline two <b>not bold</b>\n")
    (files / "plot.png").write_bytes(tiny_png())
    (files / "page.html").write_text("<script>alert(1)</script>")
    ids: dict[str, str] = {}
    child = ""
    for depth in DEPTHS:
        with yard.start_run("tuning", name=f"depth-{depth}") as run:
            run.log_params({"max_depth": depth, "learning_rate": 0.1})
            for step in range(30):
                run.log_metric("loss", 1.0 / (step + depth), step=step)
            run.log_metrics({"r2": 0.7 + depth / 100, "rmse": 3.0 - depth / 10})
            run.set_tags({"team": "pricing"})
            if depth == 2:
                run.log_artifact(files / "notes.txt")
                run.log_artifact(files / "plot.png")
                run.log_artifact(files / "page.html")
                with yard.start_run(name="depth-2-fold-1") as inner:
                    inner.log_metric("loss", 0.5)
                    child = inner.run_id
            ids[run.info.name] = run.run_id
    return ids, child


def register_versions(yard: Yard) -> None:
    """Version 1 (a fitted regressor) and version 2 (predicts the mean, r2 about 0), both
    evaluated on a holdout; the model's gate asks r2 >= 0.5 there."""
    from sklearn.dummy import DummyRegressor

    train, holdout = claims(1_500, 1), claims(800, 2)
    good = yard.models.register(fit_regressor(train), MODEL, input_example=train[INPUTS],
                                onnx=False)
    bad = yard.models.register(DummyRegressor().fit(train[INPUTS], train["cost"]), MODEL,
                               input_example=train[INPUTS], onnx=False)
    for version in (good.version, bad.version):
        yard.models.evaluate(f"{MODEL}:{version}", holdout, label="cost", dataset="holdout")
    yard.models.set_gates(MODEL, [MetricGate("r2", ">=", 0.5, data="holdout")])


def build_models(root: Path) -> Path:
    """A project with only the model's two versions and its gate (for the actions)."""
    modelyard.init_project(root, "uiactions")
    with connect(root) as yard:
        register_versions(yard)
    return root


def build(root: Path) -> Project:
    modelyard.init_project(root, "uiproj")
    with connect(root) as yard:
        runs, child = log_runs(yard, root / "files")
        register_versions(yard)
        yard.models.promote(MODEL, 1, "production", reason="first release")
        log_window(yard, 1, claims(600, 10), DAY0, prefix="a")
        log_window(yard, 1, claims(600, 11, shift=1.5, south=0.55), DAY0 + WEEK, prefix="b")
        yard.monitoring.set_rules(MODEL, ["dataset_drift"])
        results = [yard.monitoring.check(MODEL, start=DAY0 + n * WEEK,
                                         end=DAY0 + (n + 1) * WEEK).result_id
                   for n in (0, 1)]
        setup_features(yard)
    return Project(root, runs, child, results)


@contextmanager
def client(app: Any) -> Iterator[Any]:
    """A TestClient over ``app`` that follows no redirect."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client
