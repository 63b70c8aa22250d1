"""The shadow policy on SQLite and PostgreSQL, with a real model server sending the
candidate a copy of live traffic: a candidate that passes the gates offline is tried on
the ``shadow`` alias, its answers and the champion's on the same requests are compared from
the prediction log once the trial is due, and it is promoted, or dropped (never promoted)
when its live metrics fail the model's gates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.pipelines.shadowing import conclude
from modelyard.pipelines.worker import Worker
from modelyard.registry.gates import MetricGate
from modelyard.serving.options import ServeOptions
from tests.pipelines.support import DECIDING, write

SHADOWING = DECIDING.replace(
    'policy="auto", triggers=[modelyard.on_alert(cooldown="1s")]',
    'policy="shadow", shadow=modelyard.Shadow(requests=4, min_requests=4)')


def _serve(yard: Any, canary: bool = False) -> Any:
    options = ServeOptions.parse(["toy@production"], ["toy@canary"] if canary else [],
                                 [] if canary else ["toy@shadow"], poll_interval=60)
    server = options.server(yard)
    server.load_all()
    return server


def _traffic(yard: Any, server: Any, requests: int, seed: int = 4
             ) -> list[tuple[str, float]]:
    """Send ``requests`` one-row requests; the request ids and the true y of each."""
    rng = np.random.default_rng(seed)
    sent = []
    for _ in range(requests):
        a, b = (float(v) for v in rng.normal(size=2))
        answer = server.predict("toy", {"instances": [{"a": a, "b": b}]})
        sent.append((answer.request_id, 2 * a + b))
    return sent


def _flush(yard: Any, server: Any) -> None:
    server._shadow.shutdown(wait=True)  # the shadow answers are computed off the request
    assert yard.prediction_log.flush(timeout=30)


def _label(yard: Any, sent: list[tuple[str, float]], noise: float = 0.0) -> None:
    rng = np.random.default_rng(9)
    yard.log_labels("toy", [{"request_id": rid, "row": 0,
                             "y": y + float(rng.normal(0, noise)) if noise else y}
                            for rid, y in sent])


def test_a_candidate_shadows_the_champion_then_is_promoted_or_dropped(
        yard: Any, project: Path) -> None:
    write(project, SHADOWING)
    yard.pipelines.apply()
    first = yard.pipelines.run("toy_decide")  # no champion: nothing to try it against
    assert first.result["decision"] == "promoted", first.error
    yard.models.set_gates("toy", [MetricGate("r2", ">=", 0.9)])

    run = yard.pipelines.run("toy_decide")
    assert run.result["decision"] == "shadowing", run.error
    assert yard.models.aliases("toy") == {"production": 1, "shadow": 2}
    server = _serve(yard)
    try:
        assert server.deployment("toy").shadow.current.version == 2
        sent = _traffic(yard, server, 4)
        _flush(yard, server)
        [(trial, answered)] = yard.pipelines.shadows("toy")
        assert (trial.version, answered) == (2, 4)
        _label(yard, sent)
        [done] = yard.pipelines.check_shadows()
        assert done.decision == "promoted", done.reason
        # a second checker holding the same trial concludes nothing
        assert conclude(trial, yard.pipelines.decision_store, yard.models, yard.predictions,
                        ended="raced") is None
        assert yard.models.aliases("toy") == {"production": 2}  # the trial's alias is gone
        compared = done.shadow["comparison"]
        assert compared["compared_requests"] == 4 == compared["champion"]["requests"]
        assert compared["labelled_rows"] == 4 and compared["agreement"] == 1.0
        assert compared["candidate"]["metrics"]["r2"] > 0.99
        assert compared["gates"]["passed"] is True
        server.poll()  # the server follows: v2 answers, nothing shadows it any more
        deployment = server.deployment("toy")
        assert deployment.primary.current.version == 2 and deployment.shadow.current is None
    finally:
        server.close()

    bad = yard.pipelines.run("toy_decide")  # v3 passes offline, then meets noisy labels
    assert bad.result["decision"] == "shadowing"
    server = _serve(yard)
    try:
        sent = _traffic(yard, server, 4, seed=5)
        _flush(yard, server)
        _label(yard, sent, noise=10.0)
        [dropped] = yard.pipelines.check_shadows()
    finally:
        server.close()
    assert dropped.decision == "dropped" and not dropped.passed
    assert "r2 >= 0.9 on live (live)" in dropped.reason
    assert yard.models.aliases("toy") == {"production": 2}  # never promoted
    why = "\n".join(yard.pipelines.why("toy:3").lines())
    assert "shadow trial: on alias shadow" in why
    assert "live comparison (on the same requests): 4 requests, 4 rows, 4 labelled" in why
    assert "r2 >= 0.9 on live (live): FAILED" in why
    assert "decision: dropped (policy shadow)" in why


def test_a_trial_ends_after_its_duration_on_the_workers_tick(yard: Any,
                                                             project: Path) -> None:
    write(project, DECIDING.replace(
        'policy="auto", triggers=[modelyard.on_alert(cooldown="1s")]',
        'policy="shadow", shadow=modelyard.Shadow(duration="1h", min_requests=3)'))
    yard.pipelines.apply()
    yard.pipelines.run("toy_decide")
    server = _serve(yard)  # started before any trial: nothing to shadow yet, no error
    try:
        assert server.deployment("toy").shadow.current is None
        assert server.predict("toy", {"instances": [{"a": 1.0, "b": 2.0}]}).version == 1
        yard.pipelines.run("toy_decide")
        assert server.poll() == [("toy", "shadow", 2)]  # the trial's alias is followed
        _traffic(yard, server, 2)  # unlabelled: the live gates wait for labels
        _flush(yard, server)
    finally:
        server.close()
    assert yard.pipelines.check_shadows() == []  # the hour is not over
    Worker(yard.pipelines, shadow_poll_seconds=0).run(until_idle=True)
    assert [d.version for d, _ in yard.pipelines.shadows()] == [2]
    [done] = yard.pipelines.check_shadows(datetime.now(UTC) + timedelta(hours=2))
    assert done.decision == "dropped"  # two requests, three wanted
    assert "at least 3 compared requests" in done.reason and "1h are over" in done.reason
    assert done.shadow["comparison"]["gates"] is None  # no labels yet
    assert yard.models.aliases("toy") == {"production": 1}


def test_a_canary_trial_compares_each_on_its_own_requests(yard: Any, project: Path) -> None:
    write(project, DECIDING.replace(
        'policy="auto", triggers=[modelyard.on_alert(cooldown="1s")]',
        'policy="shadow", shadow=modelyard.Shadow(requests=3, canary_percent=50)'))
    yard.pipelines.apply()
    yard.pipelines.run("toy_decide")
    yard.pipelines.run("toy_decide")
    assert yard.models.aliases("toy") == {"production": 1, "canary": 2}
    server = _serve(yard, canary=True)  # --canary toy@canary: the trial's 50%
    try:
        assert server.describe("toy")["roles"]["canary"]["share_percent"] == 50.0
        server.deployment("toy")._random.seed(1)
        sent = _traffic(yard, server, 16)
        _flush(yard, server)
        _label(yard, sent)
        Worker(yard.pipelines, shadow_poll_seconds=0).run(until_idle=True)  # its tick
    finally:
        server.close()
    [done] = yard.pipelines.decisions("toy", 2)
    compared = done.shadow["comparison"]
    mine, theirs = compared["candidate"], compared["champion"]
    assert (mine["role"], theirs["role"]) == ("canary", "primary")
    assert mine["requests"] + theirs["requests"] == 16 and mine["requests"] >= 3
    assert compared["agreement"] is None  # different requests: nothing to agree on
    assert done.decision == "promoted", done.reason
    assert yard.models.aliases("toy") == {"production": 2}


FAILING_SHADOW = '''
import modelyard
import pandas as pd


def frame(rows, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                         "y": 2 * x[:, 0] + x[:, 1]})


@modelyard.pipeline(name="toy_extra", model="toy", params={"inputs": ["a", "b"]},
                    policy="shadow", shadow=modelyard.Shadow(requests=3))
def toy_extra(ctx):
    from sklearn.linear_model import LinearRegression

    inputs = ctx.params["inputs"]
    train = frame(60, 1)
    model = LinearRegression().fit(train[inputs], train["y"])
    return ctx.register(model, input_example=train[inputs].head(3), onnx=False,
                        evaluation=frame(40, 2), label="y")
'''


def test_a_shadow_that_fails_live_is_dropped_on_its_error_rate(yard: Any,
                                                               project: Path) -> None:
    write(project, FAILING_SHADOW)
    yard.pipelines.apply()
    yard.pipelines.run("toy_extra")
    run = yard.pipelines.run("toy_extra", {"inputs": ["a", "b", "c"]})  # wants "c" too
    assert run.result["decision"] == "shadowing", run.error
    server = _serve(yard)
    try:
        _traffic(yard, server, 3)  # the clients' requests carry a and b only
        _flush(yard, server)
    finally:
        server.close()
    failures = yard.predictions.read_failures("toy")
    assert list(failures["role"]) == ["shadow"] * 3 and set(failures["version"]) == {2}
    assert set(failures["endpoint"]) == {"shadow"} and set(failures["status"]) == {422}
    [(_, seen)] = yard.pipelines.shadows()
    assert seen == 3  # failed requests count: the trial ends
    [done] = yard.pipelines.check_shadows()
    assert done.decision == "dropped"
    compared = done.shadow["comparison"]
    assert compared["candidate"]["error_rate"] == 1.0 == compared["candidate"]["failures"] / 3
    assert compared["champion"]["error_rate"] == 0.0
    assert "error rate at most the champion's + 0.01" in done.reason
    assert yard.models.aliases("toy") == {"production": 1}
