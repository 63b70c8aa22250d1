"""The model endpoints over HTTP: /v1 predict and describe, the Open Inference Protocol
(/v2), /metrics, /readyz and the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import open_client
from .support import MODEL

if TYPE_CHECKING:
    from starlette.testclient import TestClient

PREDICT = f"/v1/models/{MODEL}/predict"
INFER = f"/v2/models/{MODEL}/infer"
ROW = {"age": 30.0, "vehicle_value": 12_000.0}


@pytest.fixture
def client(served: dict[str, Any], make_server: Callable[..., Any]) -> Iterator[TestClient]:
    from modelyard.server.app import create_app

    server, answers = make_server(served["yard"])
    with open_client(create_app(served["yard"], models=server)) as client:
        client.answers = answers  # type: ignore[attr-defined]
        yield client


def test_predict_answers_with_the_version_and_the_request_id(client: TestClient) -> None:
    response = client.post(PREDICT, json={"instances": [ROW, ROW]},
                           headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == MODEL and body["version"] == 1
    assert body["request_id"] == "abc-123" == response.headers["x-request-id"]
    assert len(body["predictions"]) == 2 and body["predictions"][0] == body["predictions"][1]
    entity = client.post(PREDICT, json={"entities": [{"customer_id": 2}]}).json()
    assert entity["status"] == ["found"] and isinstance(entity["predictions"][0], float)


def test_client_mistakes_get_4xx_naming_the_field(client: TestClient) -> None:
    bad = client.post(PREDICT, json={"instances": [{"age": "old"}]})
    assert bad.status_code == 422
    fields = {p["field"] for p in bad.json()["details"]["problems"]}
    assert fields == {"instances[0].age", "instances[0]"}
    assert client.post(PREDICT, content=b"{not json").status_code == 422
    unknown = client.post("/v1/models/nope/predict", json={"instances": [ROW]})
    assert unknown.status_code == 404 and "not served here" in unknown.json()["message"]
    assert client.get(PREDICT).status_code == 405
    assert client.post(PREDICT, json={"instances": [ROW]}).status_code == 200  # unharmed


def test_describe_lists_versions_signature_and_features(client: TestClient) -> None:
    listed = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in listed] == [MODEL]
    shown = client.get(f"/v1/models/{MODEL}").json()
    assert shown["roles"]["primary"]["version"] == 1
    assert shown["roles"]["primary"]["runtime"] == "onnx"
    assert [c["name"] for c in shown["signature"]["inputs"]] == ["age", "vehicle_value"]
    assert shown["features"]["keys"] == ["customer_id"]


def test_v2_infer_takes_a_tensor_per_column_or_one_matrix(client: TestClient) -> None:
    per_column = {"id": "x1", "inputs": [
        {"name": "age", "shape": [2], "datatype": "FP64", "data": [30, 50]},
        {"name": "vehicle_value", "shape": [2, 1], "datatype": "FP32", "data": [[1e4], [2e4]]}]}
    first = client.post(INFER, json=per_column)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (MODEL, "1", "x1")
    [output] = body["outputs"]
    assert output["shape"] == [2] and output["datatype"] == "FP64"
    matrix = {"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP64",
                          "data": [30, 1e4, 50, 2e4]}]}
    second = client.post(f"/v2/models/{MODEL}/versions/1/infer", json=matrix).json()
    assert second["outputs"][0]["data"] == output["data"]
    v1 = client.post(PREDICT, json={"instances": [{"age": 30, "vehicle_value": 1e4}]}).json()
    assert np.isclose(v1["predictions"][0], output["data"][0])


def test_v2_errors_and_metadata_follow_the_protocol(client: TestClient) -> None:
    wrong = client.post(INFER, json={"inputs": [{"name": "age", "shape": [3],
                                                 "datatype": "FP64", "data": [1, 2]}]})
    assert wrong.status_code == 400 and "shape" in wrong.json()["error"]
    assert client.post(f"/v2/models/{MODEL}/versions/9/infer",
                       json={"inputs": []}).status_code == 404
    assert client.post("/v2/models/nope/infer", json={"inputs": []}).json()["error"]
    meta = client.get(f"/v2/models/{MODEL}").json()
    assert meta["versions"] == ["1"] and meta["platform"] == "modelyard/onnx"
    assert [i["datatype"] for i in meta["inputs"]] == ["FP64", "FP64"]
    assert client.get(f"/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2").json()["name"] == "modelyard"


def test_metrics_count_requests_rows_and_versions(client: TestClient) -> None:
    client.post(PREDICT, json={"instances": [ROW, ROW, ROW]})
    client.post(PREDICT, json={"instances": [{"age": "x"}]})
    text = client.get("/metrics").text
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert samples[f'modelyard_requests_total{{endpoint="predict",model="{MODEL}",'
                   'outcome="ok"}'] == 1
    assert samples[f'modelyard_requests_total{{endpoint="predict",model="{MODEL}",'
                   'outcome="client_error"}'] == 1
    assert samples[f'modelyard_predicted_rows_total{{model="{MODEL}",role="primary",'
                   'version="1"}'] == 3
    assert samples[f'modelyard_model_version{{model="{MODEL}",role="primary"}}'] == 1
    assert samples[f'modelyard_request_seconds_count{{endpoint="predict",model="{MODEL}"}}'] \
        == 2


def test_readiness_and_openapi_cover_the_models(client: TestClient) -> None:
    from openapi_spec_validator import validate

    ready = client.get("/readyz").json()
    assert ready["checks"]["models"] == "ok"
    spec = client.get("/openapi.json").json()
    validate(spec)
    served = {(route.path, method.lower()) for route in client.app.routes  # type: ignore[attr-defined]
              for method in route.methods - {"HEAD"}}
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    own = {(f"/v1/models/{MODEL}/predict", "post"), (f"/v1/models/{MODEL}/explain", "post"),
           (f"/v2/models/{MODEL}/infer", "post")}  # the model's own paths, with its inputs
    assert served == documented - own and own <= documented
    assert {PREDICT.replace(MODEL, "{name}"), "/v2/models/{name}/infer", "/metrics"} <= {
        p for p, _ in documented}


def test_a_server_without_models_has_no_model_endpoints(served: dict[str, Any]) -> None:
    from modelyard.server.app import create_app

    with open_client(create_app(served["yard"])) as client:
        response = client.post(PREDICT, json={"instances": [ROW]})
    assert response.status_code == 404
    assert response.json()["message"].startswith(f"no endpoint at {PREDICT}")


_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=5))
_rows = st.lists(st.dictionaries(st.sampled_from(["age", "vehicle_value", "customer_id",
                                                  "x"]), _values, max_size=4), max_size=4)
_bodies = st.one_of(
    _values, st.lists(_values, max_size=3),
    st.fixed_dictionaries({"instances": st.one_of(_rows, _values)}),
    st.fixed_dictionaries({"entities": st.one_of(_rows, _values)}),
    st.dictionaries(st.sampled_from(["instances", "entities", "parameters", "other"]),
                    st.one_of(_rows, _values), max_size=3))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_no_request_body_makes_a_500(client: TestClient, body: Any) -> None:
    for path, refused in ((PREDICT, 422), (INFER, 400)):
        response = client.post(path, content=json.dumps(body).encode())
        assert response.status_code in (200, 404, refused), response.text


def test_every_answer_is_logged_once_and_labels_attach_to_it(
        served: dict[str, Any], make_server: Callable[..., Any]) -> None:
    from modelyard.server.app import create_app
    from modelyard.serving.service import ModelServer

    yard = served["yard"]
    server = ModelServer(yard, [f"{MODEL}@production"], sink=yard.prediction_log.log_answer)
    server.load_all()
    ids = []
    with open_client(create_app(yard, models=server)) as client:
        for i in range(5):
            ids.append(client.post(PREDICT, json={"instances": [ROW, {**ROW, "age": i}]})
                       .json()["request_id"])
        ids.append(client.post(PREDICT, json={"entities": [{"customer_id": 4}]})
                   .json()["request_id"])
        assert client.post(PREDICT, json={"instances": [{}]}).status_code == 422
    assert yard.prediction_log.flush(timeout=10)
    logged = yard.read_predictions(MODEL)
    assert len(logged) == 11 and set(logged["request_id"]) == set(ids)
    assert set(logged["version"]) == {1} and set(logged["role"]) == {"primary"}
    entity_row = logged[logged["request_id"] == ids[-1]].iloc[0]
    assert entity_row["entity.customer_id"] == 4
    result = yard.log_labels(MODEL, [{"request_id": ids[0], "row": 1, "cost": 99.0}],
                             values=["cost"])
    assert result.matched == 1
    labelled = yard.read_predictions(MODEL)
    assert labelled.loc[(labelled["request_id"] == ids[0]) & (labelled["row"] == 1),
                        "label.cost"].tolist() == [99.0]


def test_explain_answers_contributions_that_add_up_to_the_prediction(
        client: TestClient) -> None:
    response = client.post(f"/v1/models/{MODEL}/explain", json={"instances": [ROW]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1 and body["method"] == "linear"
    [row] = body["rows"]
    assert set(row["contributions"]) == {"age", "vehicle_value"}
    total = body["base_value"] + sum(row["contributions"].values())
    assert np.isclose(total, row["prediction"], rtol=1e-6)
    predicted = client.post(PREDICT, json={"instances": [ROW]}).json()["predictions"][0]
    assert np.isclose(row["prediction"], predicted, rtol=1e-5)  # the twin, in float32
    entity = client.post(f"/v1/models/{MODEL}/explain",
                         json={"entities": [{"customer_id": 3}]})
    assert entity.status_code == 200 and len(entity.json()["rows"]) == 1
    bad = client.post(f"/v1/models/{MODEL}/explain", json={"instances": [{"age": 1}]})
    assert bad.status_code == 422


def test_failed_requests_are_logged_by_class_status_and_field_never_by_value(
        served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.server.app import create_app
    from modelyard.serving.service import ModelServer

    secret = "Jane Doe, 12 Rue Secrète"  # what a client might send where a number belongs
    yard = served["yard"]
    plog = yard.prediction_log
    server = ModelServer(yard, [f"{MODEL}@production"], sink=plog.log_answer,
                         failure_sink=plog.log_failure)
    server.load_all()
    try:
        with open_client(create_app(yard, models=server)) as client:
            def post(path: str, rid: str, **body: Any) -> int:
                response = client.post(path, headers={"X-Request-ID": rid}, **body)
                return int(response.status_code)

            assert post(PREDICT, "good", json={"instances": [ROW]}) == 200
            bad = client.post(PREDICT, headers={"X-Request-ID": "bad-input"}, json={
                "instances": [{"age": secret, "vehicle_value": 1.0}]})
            assert bad.status_code == 422 and secret in bad.text  # the client is told
            assert post(PREDICT, "bad-json", content=b'{"instances": [' + secret.encode()) \
                == 422
            assert post(INFER, "bad-tensor", json={"inputs": [
                {"name": "age", "shape": [2], "datatype": "BYTES", "data": [secret]}]}) == 400
            assert post(INFER, "bad-cell", json={"inputs": [
                {"name": "age", "shape": [1], "datatype": "BYTES", "data": [secret]},
                {"name": "vehicle_value", "shape": [1], "datatype": "FP64", "data": [1.0]}]}) \
                == 400
            assert post(f"/v1/models/{MODEL}/explain", "bad-explain",
                        json={"instances": [{"age": secret}]}) == 422
            assert post("/v1/models/nope/predict", "not-served",
                        json={"instances": [ROW]}) == 404

            def broken(*args: Any) -> Any:
                raise RuntimeError(f"model crashed on {secret}")

            loaded = server.deployments[MODEL].primary.current.loaded  # type: ignore[union-attr]
            for call in ("predict_matrix", "predict_columns"):  # the model call itself
                monkeypatch.setattr(loaded, call, broken)
            assert post(PREDICT, "crashed", json={"instances": [ROW]}) == 500
    finally:
        server.close()
    assert plog.flush(timeout=10)
    assert list(yard.read_predictions(MODEL).request_id) == ["good"]
    failures = yard.predictions.read_failures(MODEL).set_index("request_id")
    assert sorted(failures.index) == ["bad-cell", "bad-explain", "bad-input", "bad-json",
                                      "bad-tensor", "crashed"]
    assert failures.loc["bad-input"].to_dict() == {
        "model": MODEL, "version": 1, "role": "primary",
        "at_us": failures.loc["bad-input", "at_us"],
        "latency_ms": failures.loc["bad-input", "latency_ms"], "status": 422,
        "error": "InvalidInputError", "endpoint": "predict", "field": "instances[0].age"}
    assert failures.loc["bad-input", "latency_ms"] > 0
    assert failures.loc["bad-json", "field"] == "body"
    assert tuple(failures.loc["bad-tensor", ["endpoint", "status", "field"]]) == (
        "infer", 400, "age.data")
    assert tuple(failures.loc["bad-cell", ["version", "role", "status", "field"]]) == (
        1, "primary", 400, "age[0]")  # the model's own check, named after the tensor
    assert failures.loc["bad-explain", "endpoint"] == "explain"
    assert tuple(failures.loc["crashed", ["status", "error", "version"]]) == (
        500, "RuntimeError", 1)
    assert pd.isna(failures.loc["crashed", "field"])
    stored = [str(value) for value in failures.reset_index().to_numpy().ravel()]
    assert not any("Jane" in value or "Secr" in value for value in stored)
    assert yard.predictions.count_failures("nope") == 0  # not a model served here


def test_the_log_keeps_the_latency_each_client_saw(served: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from modelyard.monitoring.health import service_health
    from modelyard.server import models as endpoints
    from modelyard.server import v2_infer
    from modelyard.server.app import create_app
    from modelyard.serving.service import ModelServer

    parse = endpoints.parse_json

    def slow_parse(body: bytes) -> Any:  # reading a request of k rows takes k * 30 ms
        payload = parse(body)
        time.sleep(0.03 * len(payload["instances"]))
        return payload

    parse_v2 = v2_infer.parse_request

    def slow_v2(*parts: Any) -> Any:
        time.sleep(0.05)
        return parse_v2(*parts)

    monkeypatch.setattr(endpoints, "parse_json", slow_parse)
    monkeypatch.setattr(v2_infer, "parse_request", slow_v2)
    yard = served["yard"]
    plog = yard.prediction_log
    server = ModelServer(yard, [f"{MODEL}@production"], sink=plog.log_answer,
                         failure_sink=plog.log_failure)
    server.load_all()
    seen: dict[str, float] = {}
    try:
        with open_client(create_app(yard, models=server)) as client:
            for rows in (1, 2, 3, 4, 5):
                began = time.perf_counter()
                response = client.post(PREDICT, json={"instances": [ROW] * rows},
                                       headers={"X-Request-ID": f"r{rows}"})
                seen[f"r{rows}"] = (time.perf_counter() - began) * 1e3
                assert response.status_code == 200
            infer = client.post(INFER, headers={"X-Request-ID": "v2"}, json={"inputs": [
                {"name": "age", "shape": [1], "datatype": "FP64", "data": [30]},
                {"name": "vehicle_value", "shape": [1], "datatype": "FP64", "data": [1e4]}]})
            assert infer.status_code == 200, infer.text
    finally:
        server.close()
    assert plog.flush(timeout=10)
    logged = yard.read_predictions(MODEL)
    per_request = logged.groupby("request_id")["latency_ms"]
    assert (per_request.nunique() == 1).all()  # one latency per request, on all its rows
    latency = per_request.first()
    for rows in (1, 2, 3, 4, 5):
        # from the request's arrival to its response: the reading is inside, and no more
        # than the client waited
        assert 30 * rows <= latency[f"r{rows}"] <= seen[f"r{rows}"]
    assert latency["v2"] >= 50  # the Open Inference Protocol's requests alike
    logged = logged[logged["request_id"] != "v2"]
    health = service_health(logged, yard.predictions.read_failures(MODEL),
                            start_us=int(logged["at_us"].min()),
                            end_us=int(logged["at_us"].max()) + 1)
    assert (health.requests, health.rows) == (5, 15)
    summary = health.latency_ms
    assert summary.p50 is not None and summary.p99 is not None
    assert summary.p50 < summary.p90 < summary.p99  # not one figure copied to every row
    assert summary.p50 == pytest.approx(float(np.percentile(latency.drop("v2"), 50)))
