"""Schemathesis over the whole served OpenAPI document, against the app in process.

The app serves a regressor whose features live in the feature store (so it also takes
entity keys; its ONNX twin computes in float32) and a classifier over a text input. Every
operation of the document is fuzzed with bodies generated from it; each answer must be no
5xx, of a documented status, content type and schema, and every model's own predict,
explain and infer paths must reach 200s: the document describes each model's real inputs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard import Yard
from tests.serving.support import (
    CLASSIFIER,
    MODEL,
    NUMERIC,
    linear,
    open_yard,
    pipeline,
    register,
    regressor_and_classifier,
    setup,
)

EXAMPLES = 25  # per operation


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    from modelyard import init_project

    root: Path = tmp_path_factory.mktemp("fuzz") / "proj"
    init_project(root, "fuzz")
    yard = open_yard(root)
    try:
        regressor_and_classifier(yard)
        yield yard
    finally:
        yard.close()


@pytest.fixture
def app(yard: Yard) -> Iterator[Any]:
    from modelyard.server.app import create_app
    from modelyard.serving.metrics import ServingMetrics
    from modelyard.serving.service import ModelServer

    server = ModelServer(yard, [f"{MODEL}@production", f"{CLASSIFIER}@production"],
                         metrics=ServingMetrics())
    server.load_all()
    try:
        yield create_app(yard, models=server)
    finally:
        from schemathesis.python.asgi import shutdown_lifespans

        shutdown_lifespans()  # schemathesis keeps an app's lifespan running until then
        server.close()


@pytest.mark.slow
def test_the_document_describes_each_model(app: Any) -> None:
    from openapi_spec_validator import validate

    from .conftest import open_client

    spec = open_client(app).get("/openapi.json").json()  # no lifespan: the fixture owns it
    validate(spec)
    schemas = spec["components"]["schemas"]
    paths = spec["paths"]
    for name in (MODEL, CLASSIFIER):
        for path in (f"/v1/models/{name}/predict", f"/v1/models/{name}/explain",
                     f"/v2/models/{name}/infer"):
            assert path in paths
    forms = schemas[f"PredictRequest.{MODEL}"]["oneOf"]
    row = forms[0]["properties"]["instances"]["items"]
    assert row["additionalProperties"] is False
    assert row["required"] == ["age", "vehicle_value"]
    assert row["properties"]["age"] == {"type": "number", "minimum": -3.4028234663852886e38,
                                        "maximum": 3.4028234663852886e38}  # float32 (ONNX)
    entity = forms[1]["properties"]["entities"]["items"]
    assert entity["required"] == ["customer_id"]
    assert entity["properties"]["customer_id"]["type"] == "integer"  # as the store keeps it
    classes = schemas[f"PredictRequest.{CLASSIFIER}"]["oneOf"][0]["properties"][
        "instances"]["items"]
    assert classes["properties"]["region"] == {"type": "string"}
    assert classes["properties"]["age"]["maximum"] > 1e300  # float64: no ONNX twin
    infer = schemas[f"InferRequest.{MODEL}"]["properties"]["inputs"]["anyOf"]
    assert [t["properties"]["name"]["const"] for t in infer[0]["prefixItems"]] == NUMERIC
    assert [t["properties"]["datatype"]["const"] for t in infer[0]["prefixItems"]] == [
        "FP64", "FP64"]


@pytest.mark.slow
def test_schemathesis_finds_no_fault(app: Any) -> None:
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        positive_data_acceptance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    statuses: dict[str, Counter[int]] = {}
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        # On a model's own /v1 paths a body the document allows is answered (or a 404 for
        # an entity with nothing to explain). Not on /v2, whose INT64 tensors refuse 2.0,
        # which JSON Schema cannot tell from 2, nor on the generic paths (any model's body).
        own = operation.path.startswith("/v1/models/") and "{" not in operation.path
        extra = [positive_data_acceptance] if own else []
        fuzz = _fuzzer(operation, checks + extra, statuses.setdefault(label, Counter()))
        try:
            fuzz()
        except Exception as exc:  # every operation is fuzzed; all failures reported at once
            failures[label] = f"{type(exc).__name__}: {exc}"
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    for name in (MODEL, CLASSIFIER):
        for path in (f"POST /v1/models/{name}/predict", f"POST /v1/models/{name}/explain",
                     f"POST /v2/models/{name}/infer"):
            assert statuses[path][200] > 0, (path, statuses[path])
    assert all(status < 500 for seen in statuses.values() for status in seen), statuses


def _fuzzer(operation: Any, checks: list[Any], seen: Counter[int]) -> Any:
    """A Hypothesis test of ``operation``: bodies and parameters generated from the document,
    each answer counted in ``seen`` and checked."""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def fuzz(case: Any) -> None:
        response = case.call()
        seen[response.status_code] += 1
        case.validate_response(response, checks=checks)

    return fuzz


@pytest.mark.slow
def test_entity_keys_as_whole_floats_and_entities_without_values(app: Any) -> None:
    from .conftest import open_client

    client = open_client(app)  # no lifespan: the fixture owns it
    for name in (MODEL, CLASSIFIER):
        answers = [client.post(f"/v1/models/{name}/predict",
                               json={"entities": [{"customer_id": key}]}) for key in (2, 2.0)]
        assert [a.status_code for a in answers] == [200, 200], answers[1].text
        assert answers[0].json()["predictions"] == answers[1].json()["predictions"]
        assert answers[1].json()["status"] == ["found"]
        refused = client.post(f"/v1/models/{name}/predict",
                              json={"entities": [{"customer_id": 2.5}]})
        assert refused.status_code == 422
        assert refused.json()["details"]["field"] == "entities[0].customer_id"
        explained = client.post(f"/v1/models/{name}/explain",
                                json={"entities": [{"customer_id": 2}, {"customer_id": 0}]})
        assert explained.status_code == 404  # no stored values: nothing to explain
        assert explained.json()["error"] == "NotFoundError"
        assert explained.json()["details"]["field"] == "entities[1]"
        assert "entities[1] (missing)" in explained.json()["message"]


@pytest.mark.slow
def test_the_document_follows_a_hot_swap(project: Path) -> None:
    from modelyard.server.app import create_app
    from modelyard.serving.service import ModelServer

    from .conftest import open_client

    yard = open_yard(project)
    server = ModelServer(yard, [f"{MODEL}@production"])
    try:
        training = setup(yard)
        register(yard, linear(training), training, features=NUMERIC)
        server.load_all()
        client = open_client(create_app(yard, models=server))

        def inputs() -> tuple[list[str], str]:
            spec = client.get("/openapi.json").json()
            form = spec["components"]["schemas"][f"PredictRequest.{MODEL}"]["oneOf"][0]
            summary = spec["paths"][f"/v1/models/{MODEL}/predict"]["post"]["summary"]
            return form["properties"]["instances"]["items"]["required"], summary

        before = inputs()
        assert before[0] == NUMERIC and "version 1 answers" in before[1]
        assert inputs() == before  # built once for the versions served
        register(yard, pipeline(training), training, onnx=False)  # takes the region too
        assert server.poll() == [(MODEL, "primary", 2)]
        after = inputs()
        assert after[0] == [*NUMERIC, "region"] and "version 2 answers" in after[1]
        answer = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [
            {"age": 40.0, "vehicle_value": 9_000.0, "region": "north"}]})
        assert answer.status_code == 200 and answer.json()["version"] == 2
    finally:
        server.close()
        yard.close()


@pytest.mark.parametrize(("kind", "nullable", "accepted", "refused"), [
    ("int", False, [0, -(2**63), 2**63 - 1, 3.0], [2**63, 2.5, "3", None, True]),
    ("float", False, [1.5, -1e308, 3], ["1.5", None, True]),
    ("float", True, [1.5, None], ["x"]),
    ("bool", False, [True, False], [0, 1, "true"]),
    ("string", False, ["north"], [1, None]),
    ("category", True, ["north", None], [1]),
    ("timestamp", False, ["2025-03-01T10:00:00Z"], ["yesterday", 1]),
    ("date", False, ["2025-03-01"], ["01/03/2025"]),
])
def test_an_input_value_schema(kind: str, nullable: bool, accepted: list[Any],
                               refused: list[Any]) -> None:
    from jsonschema import Draft202012Validator, FormatChecker

    from modelyard.registry.signature import ColumnSpec
    from modelyard.server.openapi_models import value_schema

    validator = Draft202012Validator(value_schema(ColumnSpec("x", kind, nullable)),
                                     format_checker=FormatChecker())
    assert [v for v in accepted if not validator.is_valid(v)] == []
    assert [v for v in refused if validator.is_valid(v)] == []
