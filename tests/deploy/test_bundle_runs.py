"""A bundle's build context installs into a fresh virtual environment, and the server command
it records serves the model from there: what ``docker build`` and the container would do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import modelyard
from modelyard import Yard
from modelyard.deploy import BundleOptions, write_bundle
from tests.deploy.conftest import MODEL, frame

SOURCE = Path(modelyard.__file__).resolve().parents[2]


def _run(args: list[str], **kwargs: object) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_context_installs_and_its_command_serves_the_model(
        served: Yard, project: Path, tmp_path: Path) -> None:
    import httpx

    if not (SOURCE / "pyproject.toml").is_file():
        pytest.skip("modelyard is not installed from a source tree: no wheel to ship")
    wheels = tmp_path / "built"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(SOURCE),
          "--wheel-dir", str(wheels)])
    [wheel] = wheels.glob("modelyard-*.whl")
    port = 18000 + os.getpid() % 2000
    bundle = write_bundle(served.models, served.tracking, f"{MODEL}@production",
                          tmp_path / "bundle", BundleOptions(port=port, workers=1,
                                                             wheels=(wheel,)))
    assert (bundle.path / "wheels" / wheel.name).is_file()

    # the Dockerfile's RUN line, in a virtual environment instead of an image; uv reads the
    # same requirements, constraints and wheels as pip does, ten times faster
    venv = tmp_path / "venv"
    uv = Path(sys.executable).parent / "uv"
    install = ["--find-links", "./wheels", "-r", "requirements.txt", "-c", "constraints.txt"]
    if uv.is_file():
        _run([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)])
        _run([str(uv), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
              *install], cwd=bundle.path)
    else:
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
              *install], cwd=bundle.path)

    # the Dockerfile's CMD, with the stores given as the Secret would give them
    recorded = json.loads((bundle.path / "bundle.json").read_text())
    command = [str(venv / "bin" / recorded["command"][0]), *recorded["command"][1:]]
    store = project / ".modelyard"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "MODELYARD_URI": f"sqlite:///{store / 'modelyard.db'}",
           "MODELYARD_ARTIFACT_URI": (store / "artifacts").as_uri()}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"the server exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not ready in time:\n{log.read_text()}"
            time.sleep(0.25)
        rows = frame(5)
        answer = httpx.post(f"{base}/v1/models/{MODEL}/predict",
                            json={"instances": json.loads(rows.to_json(orient="records"))})
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 1
        expected = served.models.load(f"{MODEL}@production").predict(rows)
        # the server prefers the ONNX twin, which computes in float32
        np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=1e-6)
        # the V2 endpoints the KServe manifest routes to answer from the same process
        ready = httpx.get(f"{base}/v2/models/{MODEL}/ready")
        assert ready.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)
