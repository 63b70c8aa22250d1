"""``modelyard serve MODEL@ALIAS``'s options, as the command line gives them and as worker
processes receive them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.errors import InvalidInputError
from modelyard.serving.options import ENV, ServeOptions

from .support import MODEL, NUMERIC, linear, register


def test_canary_and_shadow_default_to_the_first_model() -> None:
    options = ServeOptions.parse([f"{MODEL}@production", "other:2"],
                                 ["challenger:10%", "other=3:5%"], ["staging"])
    assert options.canary == {MODEL: "challenger:10%", "other": "3:5%"}
    assert options.shadow == {MODEL: "staging"}
    with pytest.raises(InvalidInputError, match="two canarys"):
        ServeOptions.parse([MODEL], ["a:1%", "b:2%"], [])
    with pytest.raises(InvalidInputError, match="needs a model"):
        ServeOptions.parse([], ["a:1%"], [])


def test_options_travel_to_workers_through_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    options = ServeOptions.parse([MODEL], ["challenger:10%"], [], poll_interval=0.5,
                                 prefer_onnx=False, batching=True)
    monkeypatch.setenv(ENV, options.to_env())
    assert ServeOptions.from_env() == options
    monkeypatch.delenv(ENV)
    assert ServeOptions.from_env() is None


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import uvicorn

    calls: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    return calls


def test_serve_loads_the_models_before_listening(served: dict[str, Any], project: Path,
                                                 uvicorn_calls: list[Any]) -> None:
    yard, training = served["yard"], served["training"]
    register(yard, linear(training, scale=2.0), training, features=NUMERIC,
             alias="challenger")
    result = CliRunner().invoke(app, ["serve", f"{MODEL}@production", "--canary",
                                      "challenger:25%", "--shadow", "2", "--no-onnx"])
    assert result.exit_code == 0, result.output
    for text in ("primary  claims-model@production -> version 1 (sklearn)",
                 "canary   claims-model@challenger -> version 2 (sklearn), 25% of requests",
                 "shadow   claims-model:2 -> version 2", "POST /v1/models/NAME/predict"):
        assert text in result.output, text
    [(args, _)] = uvicorn_calls
    paths = {route.path for route in args[0].routes}
    assert {"/v1/models/{name}/predict", "/v2/models/{name}/infer", "/metrics"} <= paths


def test_serving_an_unknown_model_is_one_clear_error(served: dict[str, Any],
                                                     uvicorn_calls: list[Any]) -> None:
    result = CliRunner().invoke(app, ["serve", "nope@production"])
    assert result.exit_code == 1 and not uvicorn_calls
