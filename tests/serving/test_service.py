"""The model server's core: instances and entities, canary and shadow, hot swap, rollback."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard import FeatureGroup
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.serving.deployment import parse_canary, parse_target

from .support import (
    FEATURES,
    MODEL,
    NUMERIC,
    cost,
    customer,
    linear,
    open_yard,
    people,
    pipeline,
    policies,
    profile,
    register,
)

Make = Callable[..., Any]


def _expected(model: Any, rows: list[dict[str, Any]], columns: list[str]) -> np.ndarray:
    import pandas as pd

    return np.asarray(model.predict(pd.DataFrame(rows)[columns]))


def test_instances_are_predicted_by_the_onnx_twin_like_the_model(served: dict[str, Any],
                                                                 make_server: Make) -> None:
    server, answers = make_server(served["yard"])
    rows = [{"age": 30.0, "vehicle_value": 12_000.0}, {"age": 61, "vehicle_value": 500}]
    answer = server.predict(MODEL, {"instances": rows}, "req-1")
    original = served["yard"].models.load(f"{MODEL}:1")
    assert answer.version == 1 and answer.request_id == "req-1" and answer.role == "primary"
    np.testing.assert_allclose(answer.predictions, _expected(original, rows, NUMERIC),
                               rtol=1e-5)
    deployment = server.deployment(MODEL)
    assert deployment.primary.current is not None
    assert deployment.primary.current.loaded.runtime == "onnx"
    assert answers == [answer]
    assert answer.inputs == rows


def test_without_the_twin_the_model_itself_answers_exactly(served: dict[str, Any],
                                                           make_server: Make) -> None:
    server, _ = make_server(served["yard"], prefer_onnx=False)
    rows = [{"age": 30.0, "vehicle_value": 12_000.0}]
    answer = server.predict(MODEL, {"instances": rows})
    original = served["yard"].models.load(f"{MODEL}:1")
    assert answer.predictions == _expected(original, rows, NUMERIC).tolist()
    assert server.deployment(MODEL).primary.current.loaded.runtime == "sklearn"  # type: ignore[union-attr]


def test_entities_get_their_features_from_the_online_store(served: dict[str, Any],
                                                            make_server: Make) -> None:
    yard = served["yard"]
    server, answers = make_server(yard)
    answer = server.predict(MODEL, {"entities": [{"customer_id": 3}, {"customer_id": 10_000},
                                                 {"customer_id": 7}]})
    assert answer.status == ["found", "missing", "found"]
    assert answer.predictions[1] is None
    assert answer.errors == {1: "missing entity: no value for age, vehicle_value"}
    looked = yard.online_features(["profile:age", "profile:vehicle_value"],
                                  {"customer_id": [3, 7]}).to_records()
    original = yard.models.load(f"{MODEL}:1")
    np.testing.assert_allclose([answer.predictions[0], answer.predictions[2]],
                               _expected(original, looked, NUMERIC), rtol=1e-5)
    assert answer.entities == [{"customer_id": 3}, {"customer_id": 10_000},
                               {"customer_id": 7}]
    assert answers[0].inputs[0]["age"] == looked[0]["age"]


def test_the_servers_clock_judges_the_features_ttl(project: Path, make_server: Make) -> None:
    """Values stamped 10 to 20 days ago, kept 30 days: fresh now, expired on a clock two
    months ahead, fresh again on one a week back."""
    aged = FeatureGroup("profile", entity=customer, source=policies, ttl="30d",
                        features=list(profile.features))
    yard = open_yard(project)
    try:
        rows = people()
        yard.apply([aged])
        yard.ingest(policies, rows)
        yard.materialize()
        spine = pd.DataFrame({"customer_id": rows["customer_id"],
                              "at": rows["ts"] + timedelta(days=1), "cost": cost(rows)})
        training = yard.training_set(spine, FEATURES, label="cost", timestamp="at")
        register(yard, linear(training), training, features=NUMERIC)
        entities = {"entities": [{"customer_id": 3}, {"customer_id": 7}]}
        now, _ = make_server(yard)
        assert now.predict(MODEL, entities).status == ["found", "found"]
        ahead, _ = make_server(yard, clock=lambda: datetime.now(UTC) + timedelta(days=60))
        answer = ahead.predict(MODEL, entities)
        assert answer.status == ["expired", "expired"] and answer.predictions == [None, None]
        back, _ = make_server(yard, clock=lambda: datetime.now(UTC) - timedelta(days=7))
        assert back.predict(MODEL, entities).status == ["found", "found"]
    finally:
        yard.close()


def test_an_entity_row_without_its_key_is_refused(served: dict[str, Any],
                                                   make_server: Make) -> None:
    server, _ = make_server(served["yard"])
    with pytest.raises(InvalidInputError, match=r"entities\[1\]: lacks customer_id") as raised:
        server.predict(MODEL, {"entities": [{"customer_id": 1}, {"id": 2}]})
    assert {p["field"] for p in raised.value.details["problems"]} == {"entities[1]",
                                                                      "entities[1].id"}


def test_request_values_complete_the_stored_features(served: dict[str, Any],
                                                      make_server: Make) -> None:
    """A pipeline taking the stored age and vehicle value, and a region sent by the client
    (the model was registered with the region as one of its inputs)."""
    yard, training = served["yard"], served["training"]
    model = pipeline(training)
    register(yard, model, training, features=[*NUMERIC, "region"], alias="staging")
    server, _ = make_server(yard, [f"{MODEL}@staging"])
    source = server.deployment(MODEL).primary.current.features  # type: ignore[union-attr]
    assert source is not None
    assert set(source.stored) == {"age", "vehicle_value", "region"}
    answer = server.predict(MODEL, {"entities": [{"customer_id": 5}]})
    stored = yard.online_features(FEATURES_ALL, {"customer_id": [5]}).to_records()
    assert answer.predictions == pytest.approx(
        _expected(model, stored, [*NUMERIC, "region"]).tolist())


FEATURES_ALL = ["profile:age", "profile:vehicle_value", "profile:region"]


def test_bad_requests_are_refused_with_the_field(served: dict[str, Any],
                                                 make_server: Make) -> None:
    server, _ = make_server(served["yard"])
    with pytest.raises(NotFoundError, match="not served here"):
        server.predict("other", {"instances": [{}]})
    for payload, field in (([1], "body"), ({"instances": [{}], "entities": []}, "body"),
                           ({"rows": []}, "rows"), ({"instances": "x"}, "instances")):
        with pytest.raises(InvalidInputError) as raised:
            server.predict(MODEL, payload)
        assert raised.value.details["field"] == field


def test_a_moved_alias_is_swapped_in_and_rolled_back(served: dict[str, Any],
                                                      make_server: Make) -> None:
    yard, training = served["yard"], served["training"]
    server, _ = make_server(yard)
    row = {"instances": [{"age": 40, "vehicle_value": 10_000}]}
    first = server.predict(MODEL, row).predictions[0]
    assert server.poll() == []
    register(yard, linear(training, scale=2.0), training, features=NUMERIC)
    assert server.poll() == [(MODEL, "primary", 2)]
    second = server.predict(MODEL, row)
    assert second.version == 2 and second.predictions[0] == pytest.approx(2 * first, rel=1e-4)
    yard.models.rollback(MODEL, "production")
    assert server.poll() == [(MODEL, "primary", 1)]
    assert server.predict(MODEL, row).version == 1


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(served: dict[str, Any],
                                                                 make_server: Make) -> None:
    yard, training = served["yard"], served["training"]
    server, _ = make_server(yard, prefer_onnx=False)
    register(yard, linear(training, scale=3.0), training, features=NUMERIC)
    record = yard.models.get_version(f"{MODEL}:2")
    path = yard.tracking.artifacts._path(record.artifact_sha256)  # type: ignore[attr-defined]
    path.chmod(0o644)
    path.write_bytes(b"corrupted")
    assert server.poll() == []
    slot = server.deployment(MODEL).primary
    assert slot.current is not None and slot.current.version == 1
    assert slot.last_error is not None and "corrupted" in slot.last_error
    assert server.predict(MODEL, {"instances": [{"age": 1, "vehicle_value": 1}]}).version == 1
    assert server.describe(MODEL)["roles"]["primary"]["error"] == slot.last_error


def test_a_canary_answers_its_share_and_a_shadow_never_answers(served: dict[str, Any],
                                                                make_server: Make) -> None:
    yard, training = served["yard"], served["training"]
    register(yard, linear(training, scale=2.0), training, features=NUMERIC,
             alias="challenger")
    server, answers = make_server(yard, canary={MODEL: "challenger:30%"},
                                  shadow={MODEL: "challenger"})
    row = {"instances": [{"age": 40, "vehicle_value": 10_000}]}
    returned = Counter()
    for _ in range(300):
        answer = server.predict(MODEL, row)
        returned[(answer.role, answer.version)] += 1
    server._shadow.shutdown(wait=True)  # every mirrored request has been answered
    assert set(returned) == {("primary", 1), ("canary", 2)}
    assert 45 <= returned[("canary", 2)] <= 135  # 30% of 300, generously
    logged = Counter((a.role, a.version) for a in answers)
    assert logged[("shadow", 2)] == 300
    assert server.describe(MODEL)["roles"]["canary"]["share_percent"] == 30.0


def test_a_failure_is_recorded_against_the_version_that_was_answering(
        served: dict[str, Any], make_server: Make) -> None:
    from modelyard.backends.metadata.predictions import FailureRecord

    yard, training = served["yard"], served["training"]
    register(yard, linear(training, scale=2.0), training, features=NUMERIC,
             alias="challenger")
    recorded: list[FailureRecord] = []
    server, _ = make_server(yard, canary={MODEL: "challenger:100%"},
                            failure_sink=recorded.append)
    errors = []
    payloads: list[dict[str, Any]] = [
        {"instances": [{"age": "forty", "vehicle_value": 1.0}]},  # the canary refuses it
        {"rows": []}]  # refused before a version was chosen: the primary's
    for payload in payloads:
        with pytest.raises(InvalidInputError) as caught:
            server.predict(MODEL, payload)
        errors.append(caught.value)
        server.record_failure(MODEL, f"r{len(errors)}", 422, caught.value, "predict", 0.004)
    server.record_failure("elsewhere", "r9", 404, NotFoundError("no"), "predict", 0.001)
    assert [(r.request_id, r.version, r.role, r.field) for r in recorded] == [
        ("r1", 2, "canary", "instances[0].age"), ("r2", 1, "primary", "rows")]
    assert recorded[0].error == "InvalidInputError" and recorded[0].latency_ms == 4.0
    assert "forty" not in repr(recorded)

    def failing_sink(record: FailureRecord) -> None:
        raise RuntimeError("the log is down")

    server.failure_sink = failing_sink
    server.record_failure(MODEL, "r3", 500, RuntimeError("x"), "predict", 0.0)  # no raise


def test_targets_and_canaries_parse_or_say_what_is_expected() -> None:
    assert str(parse_target("m@prod")) == "m@prod"
    assert str(parse_target("challenger", "m")) == "m@challenger"
    assert str(parse_target("3", "m")) == "m:3"
    ref, share = parse_canary("challenger:12.5%", "m")
    assert (str(ref), share) == ("m@challenger", 12.5)
    assert str(parse_canary("other@x:5", "m")[0]) == "other@x"
    for bare in ("challenger", "m@canary"):  # the share a pipeline's trial declares
        ref, share = parse_canary(bare, "m")
        assert share is None and ref.alias is not None
    for bad in ("challenger:0%", "challenger:150%", "m@x:y:5%"):
        with pytest.raises(InvalidInputError):
            parse_canary(bad, "m")


def test_people_fixture_is_deterministic() -> None:
    assert people().equals(people())


@pytest.mark.postgres
def test_on_postgresql_a_promotion_wakes_the_server_at_once(project: Any, pg_uri: str,
                                                             make_server: Make) -> None:
    """A server polling every minute still swaps within seconds: the move notifies it."""
    import time

    from .support import open_yard, setup

    yard = open_yard(project)
    yard.close()
    import modelyard

    yard = modelyard.connect(pg_uri, project=project, capture_git=False,
                             capture_packages=False)
    try:
        training = setup(yard)
        register(yard, linear(training), training, features=NUMERIC)
        server, _ = make_server(yard, poll_interval=60)
        server.start()
        time.sleep(0.5)  # the watcher is listening
        register(yard, linear(training, scale=2.0), training, features=NUMERIC)
        deadline = time.monotonic() + 10
        while server.deployment(MODEL).primary.current.version != 2:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the promotion was not noticed"
            time.sleep(0.05)
    finally:
        yard.close()
