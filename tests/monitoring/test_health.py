"""Service health from the prediction log: requests, errors, latency per version and period."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard.backends.metadata.predictions import FailureRecord, PredictionRecord
from modelyard.backends.predictions import prediction_store_from_uri
from modelyard.backends.predictions.codec import failure_frame, prediction_frame
from modelyard.errors import InvalidInputError
from modelyard.monitoring.health import ServiceHealth, service_health

MINUTE = 60_000_000


def predictions(*answers: tuple[str, int, str, int, float, int]) -> pd.DataFrame:
    """A prediction frame: per answer (request_id, version, role, at_us, latency_ms, rows)."""
    return prediction_frame([(rid, row, "claims", version, role, at, latency, None, None, None,
                              '{"age": 30}', '{"score": 0.5}', None)
                             for rid, version, role, at, latency, rows in answers
                             for row in range(rows)])


def failures(*failed: tuple[str, int | None, int, int]) -> pd.DataFrame:
    """A failure frame: per failed request (request_id, version, at_us, status)."""
    return failure_frame([(rid, "claims", version, None if version is None else "primary",
                           at, 1.0, status, "InvalidInputError" if status < 500
                           else "StorageError", "predict", None)
                          for rid, version, at, status in failed])


def as_json(health: ServiceHealth) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(health.to_dict(), allow_nan=False))
    return body  # JSON-safe: no NaN anywhere


def test_latency_percentiles_are_per_request_like_numpy() -> None:
    rng = np.random.default_rng(7)
    latencies = rng.gamma(2.0, 15.0, size=200)
    rows = rng.integers(1, 6, size=200)  # per-row percentiles would weigh big requests more
    frame = predictions(*((f"r{i}", 4, "primary", i * 1_000, float(latencies[i]),
                           int(rows[i])) for i in range(200)))
    health = service_health(frame, failures(), start_us=0, end_us=MINUTE)
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    assert health.latency_ms.p50 == pytest.approx(p50)
    assert health.latency_ms.p90 == pytest.approx(p90)
    assert health.latency_ms.p99 == pytest.approx(p99)
    assert health.latency_ms.mean == pytest.approx(latencies.mean())
    assert (health.requests, health.rows) == (200, int(rows.sum()))
    assert health.errors == 0 and health.error_rate == 0.0
    assert health.rate_per_minute == pytest.approx(200.0)


def test_error_rate_counts_client_and_server_errors_apart() -> None:
    answered = predictions(*((f"r{i}", 4, "primary", 1_000 + i, 10.0, 2) for i in range(6)))
    failed = failures(("f1", 4, 2_000, 422), ("f2", 4, 2_100, 400), ("f3", 4, 2_200, 503),
                      ("f4", None, 2_300, 503))  # no version was loaded yet
    health = service_health(answered, failed, start_us=0, end_us=2 * MINUTE)
    assert (health.requests, health.rows, health.errors) == (6, 12, 4)
    assert (health.client_errors, health.server_errors) == (2, 2)
    assert health.error_rate == pytest.approx(4 / 10)
    assert health.rate_per_minute == pytest.approx(10 / 2)
    assert health.latency_ms.p99 == 10.0  # of successful requests only
    four = health.versions[4]
    assert (four.requests, four.errors, four.server_errors) == (6, 3, 1)
    assert four.error_rate == pytest.approx(3 / 9)
    assert list(as_json(health)["versions"]) == ["4"]


def test_versions_and_roles_are_split_and_a_shadow_is_not_what_clients_saw() -> None:
    frame = predictions(
        ("a", 4, "primary", 100, 10.0, 3), ("b", 4, "primary", 200, 20.0, 1),
        ("c", 5, "canary", 300, 40.0, 2),
        ("a", 5, "shadow", 100, 90.0, 3), ("b", 5, "shadow", 200, 95.0, 1),
        ("c", 5, "shadow", 300, 99.0, 2))
    failed = failure_frame([("d", "claims", 5, "canary", 400, 2.0, 500, "RuntimeError",
                             "predict", None)])
    health = service_health(frame, failed, start_us=0, end_us=MINUTE)
    assert (health.requests, health.rows, health.errors) == (3, 6, 1)
    assert health.latency_ms.p50 == 20.0  # 10, 20 and 40: the shadow's 90+ are not seen
    assert sorted(health.versions) == [4, 5]
    four, five = health.versions[4], health.versions[5]
    assert (four.requests, four.rows, four.errors, list(four.roles)) == (2, 4, 0, ["primary"])
    assert (five.requests, five.rows, five.errors) == (4, 8, 1)  # "c" as canary and shadow
    assert sorted(five.roles) == ["canary", "shadow"]
    canary, shadow = five.roles["canary"], five.roles["shadow"]
    assert (canary.requests, canary.errors, canary.error_rate) == (1, 1, 0.5)
    assert (shadow.requests, shadow.rows, shadow.errors) == (3, 6, 0)
    assert shadow.latency_ms.mean == pytest.approx((90 + 95 + 99) / 3)
    body = as_json(health)
    assert set(body) == {"requests", "rows", "unmeasured", "errors", "client_errors",
                         "server_errors", "error_rate", "rate_per_minute", "latency_ms",
                         "versions", "periods"}
    assert set(body["latency_ms"]) == {"p50", "p90", "p99", "mean"}
    assert body["versions"]["5"]["roles"]["canary"]["server_errors"] == 1
    assert set(body["versions"]["4"]) == set(body) - {"versions", "periods"} | {"roles"}


def test_periods_split_the_window_for_trends() -> None:
    frame = predictions(("a", 1, "primary", 0, 5.0, 1), ("b", 1, "primary", 10, 7.0, 4),
                        ("c", 1, "primary", 35, 50.0, 1))
    health = service_health(frame, failures(("f", 1, 12, 503), ("g", 1, 21, 422)),
                            start_us=0, end_us=45, period_us=20)
    assert [p.to_dict() for p in health.periods] == [
        {"start_us": 0, "requests": 2, "errors": 1,
         "latency_p99_ms": pytest.approx(float(np.percentile([5.0, 7.0], 99))),
         "unmeasured": 0},
        {"start_us": 20, "requests": 1, "errors": 1, "latency_p99_ms": 50.0, "unmeasured": 0},
        {"start_us": 40, "requests": 0, "errors": 0, "latency_p99_ms": None,
         "unmeasured": 0},  # shorter
    ]
    assert service_health(frame, failures(), start_us=0, end_us=45).periods == ()


def test_an_empty_window_is_zeros_and_none() -> None:
    outside = predictions(("a", 1, "primary", 5_000, 5.0, 2))
    for frame, failed in ((predictions(), failures()), (pd.DataFrame(), pd.DataFrame()),
                          (outside, failures(("f", 1, 9_000, 500)))):
        health = service_health(frame, failed, start_us=0, end_us=1_000, period_us=500)
        body = as_json(health)
        assert (body["requests"], body["rows"], body["errors"]) == (0, 0, 0)
        assert (body["client_errors"], body["server_errors"]) == (0, 0)
        assert body["error_rate"] is None and body["rate_per_minute"] == 0.0
        assert body["latency_ms"] == {"p50": None, "p90": None, "p99": None, "mean": None}
        assert body["versions"] == {}
        assert body["periods"] == [
            {"start_us": 0, "requests": 0, "errors": 0, "latency_p99_ms": None,
             "unmeasured": 0},
            {"start_us": 500, "requests": 0, "errors": 0, "latency_p99_ms": None,
             "unmeasured": 0}]


def test_the_window_ends_are_respected() -> None:
    frame = predictions(("early", 1, "primary", 99, 1.0, 1), ("first", 1, "primary", 100, 2.0, 1),
                        ("last", 1, "primary", 199, 3.0, 1), ("end", 1, "primary", 200, 4.0, 1))
    health = service_health(frame, failures(("f", 1, 200, 500)), start_us=100, end_us=200)
    assert (health.requests, health.errors) == (2, 0)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="before it starts"):
        service_health(predictions(), failures(), start_us=10, end_us=10)
    with pytest.raises(InvalidInputError, match="longer period"):
        service_health(predictions(), failures(), start_us=0, end_us=MINUTE, period_us=1)
    with pytest.raises(InvalidInputError, match="period_us"):
        service_health(predictions(), failures(), start_us=0, end_us=10, period_us=0)
    with pytest.raises(InvalidInputError, match="latency_ms"):
        service_health(pd.DataFrame({"request_id": ["a"], "at_us": [1]}), failures(),
                       start_us=0, end_us=10)


def test_health_from_a_real_store(tmp_path: Path) -> None:
    store = prediction_store_from_uri(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        store.write([PredictionRecord(f"r{i}", row, "claims", 2, "primary", 1_000 + i,
                                      float(i), None, {"age": 30}, {"score": 0.1})
                     for i in range(10) for row in range(2)])
        store.write_failures([FailureRecord("bad", "claims", 2, "primary", 1_005, 0.5, 422,
                                            "InvalidInputError", "predict", "instances")])
        health = service_health(store.read("claims"), store.read_failures("claims"),
                                start_us=1_000, end_us=2_000)
    finally:
        store.close()
    assert (health.requests, health.rows, health.errors) == (10, 20, 1)
    assert health.error_rate == pytest.approx(1 / 11)
    assert health.latency_ms.p90 == pytest.approx(np.percentile(np.arange(10.0), 90))
    assert as_json(health)["versions"]["2"]["client_errors"] == 1
