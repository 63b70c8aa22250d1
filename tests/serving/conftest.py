"""Fixtures: a project whose model is registered, promoted and served."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelyard import Yard

from .support import NUMERIC, linear, open_yard, register, setup

if TYPE_CHECKING:
    from starlette.testclient import TestClient

    from modelyard.serving.service import Answer, ModelServer


@pytest.fixture
def served(project: Path) -> Iterator[dict[str, Any]]:
    """A Yard (SQLite online store) with the profile features and version 1 of the model
    (linear, with its ONNX twin) in production."""
    yard = open_yard(project)
    training = setup(yard)
    register(yard, linear(training), training, features=NUMERIC)
    try:
        yield {"yard": yard, "training": training}
    finally:
        yard.close()


@pytest.fixture
def make_server() -> Iterator[Callable[..., tuple[ModelServer, list[Answer]]]]:
    """Build a loaded ModelServer over a Yard; its answers are collected. Closed after."""
    from modelyard.serving.metrics import ServingMetrics
    from modelyard.serving.service import ModelServer

    made: list[ModelServer] = []

    def make(yard: Yard, targets: list[str] | None = None, **options: Any
             ) -> tuple[ModelServer, list[Answer]]:
        answers: list[Answer] = []
        server = ModelServer(yard, targets or ["claims-model@production"],
                             metrics=ServingMetrics(), sink=answers.append, **options)
        server.load_all()
        made.append(server)
        return server, answers

    yield make
    for server in made:
        server.close()


def open_client(app: Any) -> TestClient:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`",
                                category=UserWarning)
        from starlette.testclient import TestClient

    return TestClient(app)
