"""Real processes: concurrent promotions never leave the alias on a version that failed its
gates nor lose a history entry; a registration killed mid-way leaves no version behind."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from modelyard import Yard
from modelyard.registry.gates import RegressionGate

from .support import MODEL, holdout, linear, mean_only, setup_features, training_set

_PROMOTER = """
import json, sys, time
import modelyard
from modelyard.errors import GateFailedError

uri, version, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
yard = modelyard.connect(uri, capture_git=False, capture_packages=False)
while time.time() < start:
    time.sleep(0.001)
try:
    yard.models.promote("claims-model", version, reason=f"process {version}")
    print(json.dumps({"version": version, "promoted": True}))
except GateFailedError as exc:
    print(json.dumps({"version": version, "promoted": False, "failed": exc.details["failed"]}))
yard.close()
"""


def _run_all(script: Path, args: list[list[str]]) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    procs = [subprocess.Popen([sys.executable, str(script), *a], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in args]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
def test_concurrent_promotions_respect_the_gates(yard: Yard, store_uri: str,
                                                 tmp_path: Path) -> None:
    """Version 2 beats 1; version 3 beats 1 but not 2. Whatever order the two processes
    commit in, production ends on 2, and every move is in the history."""
    rows = setup_features(yard)
    ts = training_set(yard, rows)
    good = linear(ts)
    yard.models.register(mean_only(ts), MODEL, training_set=ts, onnx=False)  # 1
    yard.models.register(good, MODEL, training_set=ts, onnx=False)  # 2
    frame = holdout(rows)
    noisy = frame.assign(cost=frame["cost"] + 0.0)
    yard.models.register(_Offset(good, 3.0), MODEL, input_example=ts.to_pandas()[
        ["age", "vehicle_value"]], onnx=False)  # 3: a little worse than 2
    yard.models.set_gates(MODEL, [RegressionGate(("rmse",), max_drop=0.0, data="holdout")])
    for version in (1, 2, 3):
        yard.models.evaluate(f"{MODEL}:{version}", noisy, label="cost", dataset="holdout")
    yard.models.promote(MODEL, 1)
    script = tmp_path / "promote.py"
    script.write_text(_PROMOTER)
    start = str(time.time() + 2.0)
    results = _run_all(script, [[store_uri, "2", start], [store_uri, "3", start]])
    assert yard.models.get_version(f"{MODEL}@production").version == 2
    events = yard.models.history(MODEL, "production")
    chain = [(e.from_version, e.to_version) for e in events]
    assert chain[0] == (None, 1)
    for before, after in itertools.pairwise(chain):
        assert after[0] == before[1]  # no lost or interleaved move
    promoted = {r["version"] for r in results if r["promoted"]}
    assert 2 in promoted
    assert len(events) == 1 + len(promoted)
    for event in events[1:]:
        (report,) = [r for r in yard.models.store.gate_reports(MODEL, event.to_version or 0)
                     if r.report_id == event.report_id]
        assert report.passed  # every move passed its gates against the holder it replaced


class _Offset:
    """A model predicting ``offset`` more than another (kept importable for pickling)."""

    def __init__(self, model: Any, offset: float) -> None:
        self.model, self.offset = model, offset

    def predict(self, frame: Any) -> Any:
        return self.model.predict(frame) + self.offset


_REGISTER = """
import sys, time
import modelyard

class Slow:
    def predict(self, frame):
        return frame.iloc[:, 0] * 0
    def __reduce__(self):
        print("saving", flush=True)
        time.sleep(60)
        return (Slow, ())

yard = modelyard.connect(sys.argv[1], capture_git=False, capture_packages=False)
yard.models.register(Slow(), "claims-model", onnx=False)
"""


@pytest.mark.slow
def test_a_registration_killed_mid_way_leaves_no_version(yard: Yard, store_uri: str,
                                                         tmp_path: Path) -> None:
    script = tmp_path / "register.py"
    script.write_text(_REGISTER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    child = subprocess.Popen([sys.executable, str(script), store_uri], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "saving", child.stderr.read() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)
    assert yard.models.list_models() == [] or yard.models.versions(MODEL) == []
