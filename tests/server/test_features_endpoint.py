"""POST /v1/features/online against a real project, on the SQLite and the Redis online store."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard import Yard
from modelyard.errors import InvalidInputError, NotFoundError, error_from_dict

from .conftest import ONLINE, day

if TYPE_CHECKING:
    from starlette.testclient import TestClient


def strict_json(text: str) -> Any:
    """Parse JSON refusing NaN and Infinity, which JSON does not have."""
    def refuse(constant: str) -> None:
        raise AssertionError(f"the body holds {constant}, which is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def post(client: TestClient, body: Any) -> Any:
    if isinstance(body, (bytes, str)):
        return client.post(ONLINE, content=body, headers={"content-type": "application/json"})
    return client.post(ONLINE, json=body)


def assert_error(response: Any, status: int, error: str) -> dict[str, Any]:
    """The error body: its shape, its status, its class; it rebuilds the same error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = strict_json(response.text)
    assert set(body) == {"error", "message", "status", "details"}
    assert body["status"] == status and body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    assert type(error_from_dict(body)).__name__ == error
    return dict(body)


def test_found_and_missing_rows(client: TestClient) -> None:
    response = post(client, {"features": ["stats:amount", "stats:amount_sum_7d", "stats:city"],
                             "entities": {"customer_id": [2, 999]}})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert strict_json(response.text) == {
        "features": ["stats@v1:amount", "stats@v1:amount_sum_7d", "stats@v1:city"],
        "rows": [
            {"customer_id": 2, "amount": 3.0, "amount_sum_7d": 3.0, "city": "Lyon",
             "status": "found"},
            {"customer_id": 999, "amount": None, "amount_sum_7d": None, "city": None,
             "status": "missing"},
        ]}


def test_group_star_times_and_nan(client: TestClient) -> None:
    """group:* is every feature in the group's order; a timestamp is ISO 8601; NaN is null."""
    response = post(client, {"features": ["stats:*"], "entities": {"customer_id": [1]}})
    assert response.status_code == 200, response.text
    body = strict_json(response.text)
    assert body["features"] == ["stats@v1:amount", "stats@v1:city", "stats@v1:seen",
                                "stats@v1:amount_sum_7d"]
    assert body["rows"] == [{"customer_id": 1, "amount": None, "city": "Oslo",
                             "seen": day(1).isoformat(), "amount_sum_7d": None,
                             "status": "found"}]


def test_same_answer_as_the_python_api(client: TestClient, served_yard: Yard) -> None:
    features = ["stats:amount", "stats:city", "stats:seen"]
    expected = served_yard.online_features(features, {"customer_id": [2, 1, 999]})
    response = post(client, {"features": features, "entities": {"customer_id": [2, 1, 999]}})
    rows = strict_json(response.text)["rows"]
    assert [r["status"] for r in rows] == expected.status
    assert [r["city"] for r in rows] == expected.values["city"]
    assert [r["seen"] for r in rows] == [
        None if v is None else v.isoformat() for v in expected.values["seen"]]


def test_entities_as_rows_and_as_one_value(client: TestClient) -> None:
    columns = post(client, {"features": ["stats:city"], "entities": {"customer_id": [1, 2]}})
    rows = post(client, {"features": ["stats:city"],
                         "entities": [{"customer_id": 1}, {"customer_id": 2}]})
    assert columns.status_code == rows.status_code == 200
    assert columns.json() == rows.json()
    one = post(client, {"features": ["stats:city"], "entities": {"customer_id": 2}})
    assert one.json()["rows"] == [{"customer_id": 2, "city": "Lyon", "status": "found"}]
    none = post(client, {"features": ["stats:city"], "entities": {"customer_id": []}})
    assert none.json() == {"features": ["stats@v1:city"], "rows": []}


def test_at_measures_the_ttl(client: TestClient) -> None:
    """Past the 10-day TTL the row expires: row-level features null, windows kept."""
    asked = {"features": ["stats:city", "stats:amount_sum_7d"], "entities": {"customer_id": [2]}}
    fresh = post(client, {**asked, "at": day(4).isoformat().replace("+00:00", "Z")})
    assert fresh.json()["rows"] == [{"customer_id": 2, "city": "Lyon", "amount_sum_7d": 3.0,
                                     "status": "found"}]
    late = post(client, {**asked, "at": day(60).isoformat()})
    assert late.json()["rows"] == [{"customer_id": 2, "city": None, "amount_sum_7d": 3.0,
                                    "status": "expired"}]
    assert post(client, {**asked, "at": None}).status_code == 200


@pytest.mark.parametrize(("body", "field"), [
    (b"{", "body"),
    (b"", "body"),
    (b"\xff\xfe", "body"),
    (b"[1, 2]", "body"),
    (b"null", "body"),
    ({"entities": {"customer_id": [1]}}, "features"),
    ({"features": "stats:city", "entities": {"customer_id": [1]}}, "features"),
    ({"features": [], "entities": {"customer_id": [1]}}, "features"),
    ({"features": ["stats:city", 3], "entities": {"customer_id": [1]}}, "features[1]"),
    ({"features": ["not a ref"], "entities": {"customer_id": [1]}}, "features"),
    ({"features": ["stats:city"]}, "entities"),
    ({"features": ["stats:city"], "entities": 3}, "entities"),
    ({"features": ["stats:city"], "entities": "customer_id=1"}, "entities"),
    ({"features": ["stats:city"], "entities": {"customer_id": {"a": 1}}},
     "entities.customer_id"),
    ({"features": ["stats:city"], "entities": [{"customer_id": 1}, 2]}, "entities[1]"),
    ({"features": ["stats:city"], "entities": {}}, "customer_id"),
    ({"features": ["stats:city"], "entities": {"customer_id": [1], "shop": [2]}}, "shop"),
    ({"features": ["stats:city"], "entities": {"customer_id": [1, "2"]}}, "customer_id"),
    ({"features": ["stats:city"], "entities": {"customer_id": [1.5]}}, "customer_id"),
    ({"features": ["stats:city"], "entities": {"customer_id": [None]}}, "customer_id"),
    ({"features": ["stats:city"], "entities": {"customer_id": [1]}, "at": "yesterday"}, "at"),
    ({"features": ["stats:city"], "entities": {"customer_id": [1]}, "at": "2025-01-05"}, "at"),
    ({"features": ["stats:city"], "entities": {"customer_id": [1]}, "at": 1735689600}, "at"),
    ({"features": ["stats:city"], "entities": {"customer_id": [1]}, "feature": ["x"]},
     "feature"),
])
def test_malformed_requests_answer_422_naming_the_field(client: TestClient, body: Any,
                                                        field: str) -> None:
    error = assert_error(post(client, body), 422, "InvalidInputError")
    assert error["details"]["field"] == field
    assert isinstance(error_from_dict(error), InvalidInputError)


@pytest.mark.parametrize(("features", "named"), [
    (["stats:nope"], "nope"),
    (["stats:city", "nostats:amount"], "nostats"),
    (["stats@v7:city"], "stats"),
])
def test_unknown_features_answer_404(client: TestClient, features: list[str],
                                     named: str) -> None:
    error = assert_error(post(client, {"features": features,
                                       "entities": {"customer_id": [1]}}), 404, "NotFoundError")
    assert named in error["message"]
    assert isinstance(error_from_dict(error), NotFoundError)


def test_a_group_never_materialized_answers_404(project: Any, online_uri: str,
                                                make_client: Any) -> None:
    from .conftest import feature_yard

    with feature_yard(project, online_uri, materialize=False) as yard:
        error = assert_error(post(make_client(yard), {"features": ["stats:city"],
                                                      "entities": {"customer_id": [1]}}),
                             404, "NotFoundError")
    assert "never been materialized" in error["message"]


def test_unknown_path_and_wrong_method(client: TestClient) -> None:
    error = assert_error(client.get("/v1/nothing"), 404, "NotFoundError")
    assert "/v1/nothing" in error["message"]
    response = client.get(ONLINE)
    assert response.headers["allow"] == "POST"
    assert "use POST" in assert_error(response, 405, "ModelyardError")["message"]


def test_an_unexpected_error_answers_500_and_the_server_goes_on(
        client: TestClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from modelyard.features.online import OnlineService

    good = {"features": ["stats:city"], "entities": {"customer_id": [2]}}

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(OnlineService, "online_features", broken)
        with caplog.at_level(logging.ERROR, logger="modelyard.server"):
            response = post(client, good)
    error = assert_error(response, 500, "ModelyardError")
    request_id = error["details"]["request_id"]
    assert request_id in error["message"] and response.headers["x-request-id"] == request_id
    assert "disk on fire" not in response.text  # internals stay in the log
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "disk on fire" in str(logged[0].exc_info[1])
    assert post(client, good).json()["rows"][0]["city"] == "Lyon"


def test_a_bad_request_does_not_harm_the_next(client: TestClient) -> None:
    good = {"features": ["stats:city"], "entities": {"customer_id": [1]}}
    for bad in (b"{", {"features": [1], "entities": {}}, {"features": ["stats:nope"],
                                                           "entities": {"customer_id": [1]}}):
        assert post(client, bad).status_code in (404, 422)
        assert post(client, good).json()["rows"][0]["city"] == "Oslo"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)
_bodies = st.one_of(
    _json,
    st.fixed_dictionaries({"features": _json, "entities": _json}),
    st.fixed_dictionaries(
        {"features": st.lists(st.sampled_from(["stats:city", "stats:*", "stats:nope", "x:y",
                                               "stats@v2:city", "stats", ""]) | st.text(),
                              max_size=3),
         "entities": st.dictionaries(st.sampled_from(["customer_id", "shop"]),
                                     _json | st.lists(_json, max_size=3), max_size=2)
         | st.lists(st.dictionaries(st.sampled_from(["customer_id", "x"]), _json, max_size=2),
                    max_size=3)},
        optional={"at": _json | st.datetimes().map(lambda d: d.isoformat())}),
)


@pytest.mark.parametrize("online_uri", ["sqlite"], indirect=True)
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_no_request_body_makes_a_500(client: TestClient, body: Any) -> None:
    """Whatever a client sends, the answer is a success or a 4xx in the error shape."""
    response = client.post(ONLINE, content=json.dumps(body).encode(),
                           headers={"content-type": "application/json"})
    assert response.status_code in (200, 404, 422), response.text
    payload = strict_json(response.text)
    if response.status_code != 200:
        assert payload["status"] == response.status_code and payload["details"]


def test_the_document_describes_the_requests_and_answers(client: TestClient) -> None:
    from jsonschema import Draft202012Validator

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    request = Draft202012Validator(schemas["OnlineFeaturesRequest"])
    answer = Draft202012Validator(schemas["OnlineFeaturesResponse"])
    good = [
        {"features": ["stats:amount", "stats:city"], "entities": {"customer_id": [2, 999]}},
        {"features": ["stats:*"], "entities": {"customer_id": 2}},
        {"features": ["stats@v1:city"], "entities": [{"customer_id": 1}, {"customer_id": 2}],
         "at": day(4).isoformat()},
        {"features": [" stats:city "], "entities": {"customer_id": [1]}, "at": None},
    ]
    for body in good:
        assert request.is_valid(body), body
        response = post(client, body)
        assert response.status_code == 200, response.text
        answer.validate(response.json())
    refused = [
        {"entities": {"customer_id": [1]}},
        {"features": "stats:city", "entities": {"customer_id": [1]}},
        {"features": [], "entities": {"customer_id": [1]}},
        {"features": ["stats:city", 3], "entities": {"customer_id": [1]}},
        {"features": ["not a ref"], "entities": {"customer_id": [1]}},
        {"features": ["stats:city"]},
        {"features": ["stats:city"], "entities": 3},
        {"features": ["stats:city"], "entities": {"customer_id": {"a": 1}}},
        {"features": ["stats:city"], "entities": [{"customer_id": 1}, 2]},
        {"features": ["stats:city"], "entities": {}},
        {"features": ["stats:city"], "entities": []},
        {"features": ["stats:city"], "entities": {"customer_id": [1.5]}},
        {"features": ["stats:city"], "entities": {"customer_id": [None]}},
        {"features": ["stats:city"], "entities": {"customer_id": [1]}, "at": 1735689600},
        {"features": ["stats:city"], "entities": {"customer_id": [1]}, "feature": ["x"]},
    ]
    for body in refused:
        assert not request.is_valid(body), body
        assert post(client, body).status_code == 422, body  # and the server agrees
