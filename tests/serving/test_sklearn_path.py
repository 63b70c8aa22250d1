"""scikit-learn models served without an ONNX twin: the direct path, batching, threads."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge

from .support import open_yard

NAMES = [f"f{i}" for i in range(6)]


def _data(n: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(n, len(NAMES))), columns=NAMES)
    return frame, np.asarray(frame.sum(axis=1) + rng.normal(0, 0.1, n))


def _serve(project: Path, make_server: Any, model: Any, example: pd.DataFrame | None,
           **options: Any) -> Any:
    yard = open_yard(project)
    yard.models.register(model, "m", input_example=example, onnx=False)
    server, _ = make_server(yard, ["m"], prefer_onnx=False, **options)
    return yard, server


@pytest.mark.parametrize("fitted_on", ["frame", "array"])
def test_a_forest_answers_exactly_as_its_own_predict(project: Path, make_server: Any,
                                                     fitted_on: str) -> None:
    frame, target = _data()
    model = RandomForestRegressor(n_estimators=12, random_state=0, n_jobs=2).fit(
        frame if fitted_on == "frame" else frame.to_numpy(), target)
    # on one thread, the trees' outputs are added in a fixed order
    expected = copy.deepcopy(model).set_params(n_jobs=1).predict(frame.to_numpy()).tolist()
    yard, server = _serve(project, make_server, model, frame.head(20))
    try:
        loaded = server.deployment("m").primary.current.loaded
        assert loaded.runtime == "sklearn" and loaded._sklearn is not None
        assert loaded._sklearn.trees is not None  # the trees are walked directly
        assert loaded.model.n_jobs == 1  # the loaded copy predicts on one thread
        rows = frame.to_dict("records")
        assert server.predict("m", {"instances": rows}).predictions == expected
        assert server.predict("m", {"instances": rows[3:4]}).predictions == expected[3:4]
    finally:
        yard.close()


def test_other_estimators_get_arrays_when_fitted_on_arrays(project: Path,
                                                           make_server: Any) -> None:
    frame, target = _data()
    model = Ridge().fit(frame.to_numpy(), target)  # no feature names recorded
    yard, server = _serve(project, make_server, model, frame.head(20))
    try:
        path = server.deployment("m").primary.current.loaded._sklearn
        assert path is not None and not path.as_frame and path.trees is None
        answer = server.predict("m", {"instances": frame.head(5).to_dict("records")})
        assert answer.predictions == pytest.approx(model.predict(frame.head(5).to_numpy()))
    finally:
        yard.close()


def test_batched_concurrent_requests_each_get_their_own_rows(project: Path,
                                                             make_server: Any) -> None:
    frame, target = _data()
    model = RandomForestRegressor(n_estimators=8, random_state=0).fit(frame, target)
    expected = model.predict(frame).tolist()
    yard, server = _serve(project, make_server, model, frame.head(20), batching=True)
    try:
        assert server.deployment("m").primary.current.batcher is not None
        rows = frame.to_dict("records")
        requests = [rows[i:i + 1 + i % 3] for i in range(0, 120)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(
                lambda r: server.predict("m", {"instances": r}).predictions, requests))
        for start, (request, answer) in enumerate(zip(requests, answers, strict=True)):
            assert answer == expected[start:start + len(request)]
    finally:
        yard.close()


@pytest.mark.parametrize("batching", [False, True])
def test_only_versions_answering_from_a_matrix_at_once_are_answered_inline(
        project: Path, make_server: Any, batching: bool) -> None:
    frame, target = _data()
    model = RandomForestRegressor(n_estimators=4, random_state=0).fit(frame, target)
    yard, server = _serve(project, make_server, model, frame.head(20), batching=batching)
    try:
        assert server.answers_inline("m") is not batching  # a batcher needs its thread
        assert not server.answers_inline("not-served")
    finally:
        yard.close()
