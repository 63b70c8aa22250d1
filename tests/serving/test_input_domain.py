"""Every request value checked against its input's domain over HTTP (/v1 predict and explain,
/v2 infer): generated JSON of every type and size never gets a 5xx, an invalid request gets a
4xx naming its field, and the entity path checks a row's own values before its lookup, so a
found, an expired and a missing entity with the same bad value get the same answer."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard import Yard

from .conftest import open_client
from .support import (
    MODEL,
    NUMERIC,
    cost,
    expired_ids,
    open_yard,
    people,
    pipeline,
    register,
    setup,
)

if TYPE_CHECKING:
    from starlette.testclient import TestClient

    from modelyard.serving.service import ModelServer

PREDICT = f"/v1/models/{MODEL}/predict"
EXPLAIN = f"/v1/models/{MODEL}/explain"
INFER = f"/v2/models/{MODEL}/infer"
ROW = {"age": 30.0, "vehicle_value": 12_000.0, "region": "north"}
MISSING = 100_000  # no such customer
HUGE = 10**400
LITERAL_1E309 = "__1e309__"  # replaced by the bare literal 1e309 (it reads as Infinity)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A pipeline over the stored age and vehicle value (a profile expiring after 15 days)
    and the region sent with each request, served with metrics and a prediction log."""
    from modelyard import init_project
    from modelyard.server.app import create_app
    from modelyard.serving.metrics import ServingMetrics
    from modelyard.serving.service import ModelServer

    root = tmp_path_factory.mktemp("domain") / "proj"
    init_project(root, "domain")
    yard: Yard = open_yard(root)
    setup(yard, ttl="15d")
    rows = people()
    spine = pd.DataFrame({"customer_id": rows["customer_id"], "region": rows["region"],
                          "at": rows["ts"] + timedelta(days=1), "cost": cost(rows)})
    training = yard.training_set(spine, [f"profile:{n}" for n in NUMERIC], label="cost",
                                 timestamp="at")  # the region comes with each request
    register(yard, pipeline(training), training, features=[*NUMERIC, "region"])
    server = ModelServer(yard, [f"{MODEL}@production"], metrics=ServingMetrics(),
                         sink=yard.prediction_log.log_answer,
                         failure_sink=yard.prediction_log.log_failure)
    server.load_all()
    expired, found = expired_ids()
    with open_client(create_app(yard, models=server)) as client:
        yield {"yard": yard, "client": client, "server": server, "expired": expired,
               "found": found}
    server.close()
    yard.close()


def _field(body: Any) -> str | None:
    """The field an error body names (/v1 and /v2 bodies carry it in their details)."""
    if not isinstance(body, dict):
        return None
    details = body.get("details")
    field = details.get("field") if isinstance(details, dict) else None
    return field if isinstance(field, str) and field else body.get("field")


def _post(client: TestClient, path: str, body: Any) -> Any:
    text = json.dumps(body).replace(f'"{LITERAL_1E309}"', "1e309")
    return client.post(path, content=text.encode(), headers={"content-type":
                                                              "application/json"})


# --- generated requests -----------------------------------------------------------------------

_numbers = st.one_of(
    st.integers(), st.integers(min_value=-HUGE, max_value=HUGE),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, -(2**63), -(2**63) - 1, 2**53 + 1, 10**300,
                     3.5e38, 1.7976931348623157e308, LITERAL_1E309]),
    st.floats(allow_nan=True, allow_infinity=True))
_scalars = st.one_of(st.none(), st.booleans(), _numbers,
                     st.text(max_size=6), st.sampled_from(["", "\x00\x07", "north"]))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8)
_keys = st.one_of(st.sampled_from(["age", "vehicle_value", "region", "customer_id"]),
                  st.text(max_size=4))
_rows = st.lists(st.one_of(
    st.fixed_dictionaries({"age": _json, "vehicle_value": _json, "region": _json}),
    st.fixed_dictionaries({"age": _numbers, "vehicle_value": _numbers,
                           "region": st.sampled_from(["north", "south"])}),
    st.dictionaries(_keys, _json, max_size=4), _json), max_size=3)
_entities = st.lists(st.one_of(
    st.fixed_dictionaries({"customer_id": _json, "region": _json}),
    st.dictionaries(_keys, _json, max_size=3), _json), max_size=3)
_v1_bodies = st.one_of(
    _json, st.fixed_dictionaries({"instances": st.one_of(_rows, _json)}),
    st.fixed_dictionaries({"entities": st.one_of(_entities, _json)}),
    st.dictionaries(st.sampled_from(["instances", "entities", "parameters", "x"]),
                    st.one_of(_rows, _json), max_size=3))
_tensor = st.fixed_dictionaries({
    "name": st.one_of(st.sampled_from(["age", "vehicle_value", "region", "input"]), _json),
    "shape": st.one_of(st.lists(st.integers(min_value=-1, max_value=3), max_size=3), _json),
    "datatype": st.one_of(st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL"]), _json),
    "data": st.one_of(st.lists(_json, max_size=4), _json)})
_v2_bodies = st.one_of(_json, st.fixed_dictionaries({"inputs": st.one_of(
    st.lists(_tensor, max_size=3), _json)}))


def _valid_number(value: Any) -> bool:
    """Whether a float input takes ``value`` (the model computes in float32 or float64)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and number == value and abs(number) <= 3.4e38


def _valid_v1(body: Any) -> bool:
    """An oracle for the instances path: every row exactly the inputs, each in its domain
    (``parameters`` is reserved: any value, ignored)."""
    if not isinstance(body, dict) or set(body) - {"parameters"} != {"instances"}:
        return False
    rows = body["instances"]
    return isinstance(rows, list) and bool(rows) and all(
        isinstance(r, dict) and set(r) == {"age", "vehicle_value", "region"}
        and _valid_number(r["age"]) and _valid_number(r["vehicle_value"])
        and isinstance(r["region"], str) for r in rows)


def _check(response: Any, valid: bool | None) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert _field(response.json()), response.text
        assert valid is not True, response.text
    elif valid is False:
        raise AssertionError(f"an invalid request was answered 200: {response.text}")


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_v1_bodies)
def test_no_v1_predict_answers_5xx_and_every_refusal_names_a_field(
        service: dict[str, Any], body: Any) -> None:
    client = service["client"]
    valid = True if _valid_v1(body) else (None if isinstance(body, dict) and "entities" in body
                                          else False)
    _check(_post(client, PREDICT, body), valid)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_v1_bodies)
def test_no_explain_answers_5xx_and_every_refusal_names_a_field(
        service: dict[str, Any], body: Any) -> None:
    _check(_post(service["client"], EXPLAIN, body), None if _valid_v1(body) else (
        None if isinstance(body, dict) and "entities" in body else False))


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_v2_bodies, versioned=st.booleans())
def test_no_v2_infer_answers_5xx_and_every_refusal_names_a_field(
        service: dict[str, Any], body: Any, versioned: bool) -> None:
    path = INFER.replace("/infer", "/versions/1/infer") if versioned else INFER
    _check(_post(service["client"], path, body), None)


# --- the domain, named ------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (HUGE, "(float32)"), (LITERAL_1E309, "(float32)"), (float("inf"), "(float32)"),
    (3.5e38, "(float32)"), (2**53 + 1, "float64 holds exactly"), (True, "got a boolean"),
    (float("nan"), "may not be null"), (None, "may not be null")])
def test_v1_and_v2_refuse_the_same_value_naming_the_field_and_the_range(
        service: dict[str, Any], value: Any, expected: str) -> None:
    client = service["client"]
    rows = [ROW, ROW, ROW, {**ROW, "age": value}]
    v1 = _post(client, PREDICT, {"instances": rows})
    assert v1.status_code == 422 and _field(v1.json()) == "instances[3].age", v1.text
    assert expected in v1.text
    tensors = [{"name": n, "shape": [4], "datatype": "BYTES" if n == "region" else "FP64",
                "data": [r[n] for r in rows]} for n in ("age", "vehicle_value", "region")]
    v2 = _post(client, INFER, {"inputs": tensors})
    assert v2.status_code == 400 and _field(v2.json()) == "age[3]", v2.text
    # /v2 checks a tensor's datatype first: a boolean or a null in an FP64 tensor is refused
    # for its datatype there, before the input's domain is consulted
    assert expected in v2.text or "an FP64 tensor holds a number" in v2.text, v2.text


def test_an_unknown_feature_is_refused_by_name_on_v1_and_v2(service: dict[str, Any]) -> None:
    client = service["client"]
    v1 = _post(client, PREDICT, {"instances": [{**ROW, "colour": "red"}]})
    assert v1.status_code == 422 and _field(v1.json()) == "instances[0].colour"
    tensors = [{"name": n, "shape": [1], "datatype": "BYTES" if n in ("region", "colour")
                else "FP64", "data": [{**ROW, "colour": "red"}[n]]}
               for n in ("age", "vehicle_value", "region", "colour")]
    assert _post(client, INFER, {"inputs": tensors}).status_code == 400


def test_lossless_values_are_accepted(service: dict[str, Any]) -> None:
    client = service["client"]
    exact = _post(client, PREDICT, {"instances": [{**ROW, "age": 30, "vehicle_value": 2**60}]})
    assert exact.status_code == 200, exact.text


# --- the entity path --------------------------------------------------------------------------

@pytest.mark.parametrize(("row", "field"), [
    ({"region": 7}, "entities[0].region"),
    ({"region": "north", "age": 40}, "entities[0].age"),  # a stored feature, sent
    ({"region": "north", "colour": "red"}, "entities[0].colour"),
    ({"region": None}, "entities[0].region"),
])
def test_an_entity_row_gets_the_same_422_whatever_its_status(
        service: dict[str, Any], row: dict[str, Any], field: str) -> None:
    client = service["client"]
    answers = []
    for key in (service["found"][0], service["expired"][0], MISSING):
        response = _post(client, PREDICT, {"entities": [{"customer_id": key, **row}]})
        assert response.status_code == 422, response.text
        body = response.json()
        assert _field(body) == field
        answers.append((body["details"].get("problems"), body["message"]))
    assert answers[0] == answers[1] == answers[2]
    huge = _post(client, PREDICT, {"entities": [{"customer_id": HUGE, "region": "north"}]})
    assert huge.status_code == 422 and _field(huge.json()) == "entities[0].customer_id"


def test_every_answered_row_is_logged_with_its_status(service: dict[str, Any]) -> None:
    yard, client = service["yard"], service["client"]
    keys = [service["found"][0], service["expired"][0], MISSING]
    response = _post(client, PREDICT, {"entities": [{"customer_id": k, "region": "north"}
                                                    for k in keys]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == ["found", "expired", "missing"]
    assert answer["predictions"][0] is not None and answer["predictions"][1:] == [None, None]
    assert yard.prediction_log.flush(timeout=10)
    logged = yard.read_predictions(MODEL)
    mine = logged[logged["request_id"] == answer["request_id"]].sort_values("row")
    assert mine["status"].tolist() == ["found", "expired", "missing"]
    assert mine["reason"].tolist()[0] is None
    assert mine["reason"].tolist()[1].startswith("expired entity: no value for age")
    assert mine["reason"].tolist()[2].startswith("missing entity")


# --- metrics ----------------------------------------------------------------------------------

def _series(client: TestClient) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").text
    return {(sample.name, tuple(sorted(sample.labels.items())))
            for family in text_string_to_metric_families(text) for sample in family.samples
            if not sample.name.startswith(("process_", "python_", "modelyard_worker"))}


def test_unknown_model_names_add_no_series(service: dict[str, Any]) -> None:
    client = service["client"]
    _post(client, "/v1/models/warm-up/predict", {"instances": [ROW]})  # the unknown bucket
    _post(client, "/v2/models/warm-up/infer", {"inputs": []})
    before = _series(client)
    for i in range(40):
        name = f"nope-{i % 20}%01"  # a control character, percent-encoded
        assert _post(client, f"/v1/models/{name}/predict", {"instances": [ROW]}
                     ).status_code == 404
        assert _post(client, f"/v2/models/{name}/infer", {"inputs": []}).status_code == 404
    after = _series(client)
    assert after == before
    models = {dict(labels).get("model") for _, labels in after} - {None}
    assert models <= {MODEL, "unknown"}


def test_metrics_parse_with_latency_by_version_and_role_and_process_series(
        service: dict[str, Any]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client = service["client"]
    assert _post(client, PREDICT, {"instances": [ROW]}).status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    answered = [s for s in families["modelyard_answer_seconds"].samples
                if s.name.endswith("_count")]
    assert {(s.labels["model"], s.labels["version"], s.labels["role"]) for s in answered} == {
        (MODEL, "1", "primary")}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds",
            "python_gc_objects_collected", "python_info"} <= set(families)


def _server(service: dict[str, Any]) -> ModelServer:
    server: ModelServer = service["server"]
    return server


def test_the_log_holds_no_rows_of_refused_requests(service: dict[str, Any],
                                                    tmp_path: Path) -> None:
    yard = service["yard"]
    refused = _post(service["client"], PREDICT, {"instances": [{**ROW, "age": HUGE}]})
    assert refused.status_code == 422
    rid = refused.headers["x-request-id"]
    assert yard.prediction_log.flush(timeout=10)
    assert rid not in set(yard.read_predictions(MODEL)["request_id"])
    failures = yard.prediction_log.store.read_failures(MODEL)
    assert failures.loc[failures["request_id"] == rid, "field"].tolist() == [
        "instances[0].age"]
    assert _server(service).deployments[MODEL].primary.current is not None
