"""Service health over rows scored in batch and logged (a backfill) rather than served: their
latency is null, so health counts their requests and rows but takes its latency percentiles
from the served requests alone, and says what it left out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from modelyard import Yard
from modelyard.backends.metadata.predictions import PredictionRecord, PredictionStore
from modelyard.backends.predictions import prediction_store_from_uri
from modelyard.errors import InvalidInputError
from modelyard.monitoring.health import service_health
from tests.monitoring.support import DAY0, INPUTS, MODEL, claims, log_window, register_regressor

HOUR = 3_600_000_000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionStore]:
    uri = {"sqlite": f"sqlite:///{tmp_path / 'meta.db'}",
           "parquet": f"file://{tmp_path / 'predictions'}"}.get(request.param)
    s = prediction_store_from_uri(uri or str(request.getfixturevalue("pg_uri")))
    try:
        yield s
    finally:
        s.close()


def backfill(count: int, *, at_us: int = 0, spacing_us: int = 60_000_000
             ) -> list[PredictionRecord]:
    """``count`` claims scored in one batch, one request each, logged at their own times."""
    return [PredictionRecord(f"claim-{i}", 0, "claims", 1, "primary", at_us + i * spacing_us,
                             None, {"customer_id": i}, {"age": 30 + i % 40},
                             {"prediction": 1_000.0 + i}) for i in range(count)]


def served(latencies: list[float], *, at_us: int) -> list[PredictionRecord]:
    """Requests a client sent, two rows each, with the latency the client saw."""
    return [PredictionRecord(f"req-{i}", row, "claims", 1, "primary", at_us + i * 1_000,
                             latency, None, {"age": 41}, {"prediction": 900.0})
            for i, latency in enumerate(latencies) for row in range(2)]


def test_backfilled_rows_count_but_report_no_latency(store: PredictionStore) -> None:
    store.write(backfill(120))
    frame = store.read("claims")
    assert frame["latency_ms"].isna().all()  # stored and read back as not measured
    health = service_health(frame, store.read_failures("claims"), start_us=0,
                            end_us=3 * HOUR, period_us=HOUR)
    assert (health.requests, health.rows, health.unmeasured) == (120, 120, 120)
    assert health.latency_ms.to_dict() == {"p50": None, "p90": None, "p99": None,
                                           "mean": None}
    assert [(p.requests, p.unmeasured, p.latency_p99_ms) for p in health.periods] == [
        (60, 60, None), (60, 60, None), (0, 0, None)]
    assert health.to_dict()["versions"]["1"]["unmeasured"] == 120


def test_with_served_requests_mixed_in_the_percentiles_are_theirs(
        store: PredictionStore) -> None:
    latencies = [float(x) for x in np.random.default_rng(3).gamma(2.0, 20.0, size=50)]
    store.write(backfill(200, spacing_us=1_000_000))
    store.write(served(latencies, at_us=30_000_000))
    health = service_health(store.read("claims"), store.read_failures("claims"),
                            start_us=0, end_us=HOUR, period_us=HOUR)
    assert (health.requests, health.rows, health.unmeasured) == (250, 300, 200)
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    assert health.latency_ms.p50 == pytest.approx(p50)
    assert health.latency_ms.p90 == pytest.approx(p90)
    assert health.latency_ms.p99 == pytest.approx(p99)
    assert health.latency_ms.mean == pytest.approx(np.mean(latencies))
    assert (health.periods[0].requests, health.periods[0].unmeasured) == (250, 200)
    assert health.periods[0].latency_p99_ms == pytest.approx(p99)


def test_a_latency_is_a_number_or_none(store: PredictionStore) -> None:
    bad = PredictionRecord("r", 0, "claims", 1, "primary", 5, float("nan"), None, {}, {})
    with pytest.raises(InvalidInputError, match="or None") as refused:
        store.write([bad])
    assert refused.value.details["field"] == "latency_ms"


def test_check_report_and_rules_say_the_latency_was_not_measured(
        yard: Yard, tmp_path: Path) -> None:
    version = register_regressor(yard, rows=600)
    window = claims(300, 5)
    predicted = yard.models.load(MODEL, version).predict(window[INPUTS])
    start_us = int(DAY0.timestamp() * 1e6)
    rows = window[INPUTS].to_dict("records")
    yard.predictions.write([PredictionRecord(f"claim-{i}", 0, MODEL, version, "primary",
                                             start_us + i * 60_000_000, None, None, rows[i],
                                             {"prediction": float(predicted[i])})
                            for i in range(len(window))])
    end = DAY0 + timedelta(days=1)
    rules = ["p99_latency_ms > 1"]
    alone = yard.monitoring.check(MODEL, start=DAY0, end=end, rules=rules, store=False,
                                  send=False)
    health = alone.to_dict()["health"]
    assert (health["requests"], health["unmeasured"]) == (300, 300)
    assert health["latency_ms"]["p99"] is None
    outcome = alone.alerts[0]
    assert not outcome.fired and "scored in batch" in outcome.message
    html = tmp_path / "batch.html"
    yard.monitoring.report(MODEL, result=alone, html=html)
    page = html.read_text()
    assert "Latency not measured: all 300 requests" in page
    assert "latency not measured (scored in batch), 300 requests" in page  # the card

    log_window(yard, version, claims(20, 6), DAY0 + timedelta(hours=2, seconds=30),
               prefix="live")  # served: 5-14 ms each
    mixed = yard.monitoring.check(MODEL, start=DAY0, end=end, rules=rules, store=False,
                                  send=False)
    health = mixed.to_dict()["health"]
    assert (health["requests"], health["unmeasured"]) == (320, 300)
    assert health["latency_ms"]["p99"] == pytest.approx(
        np.percentile([5.0 + i % 10 for i in range(20)], 99))
    outcome = mixed.alerts[0]
    assert outcome.fired and "over 20 answered requests (300 more scored in batch" in (
        outcome.message)
    yard.monitoring.report(MODEL, result=mixed, html=html)
    page = html.read_text()
    assert "Latency not measured for 300 of the 320 requests" in page
    assert "over 20 served, 320 requests" in page  # the card
    assert "<th>no latency</th>" in page and "scored in batch (no latency)" in page
