"""The model and the three tools' set-up for bench_serving.py, each step run as a worker in
the interpreter of the tool it prepares: training and the modelyard project in the project's
interpreter, MLflow's model folder in bench/.venvs/mlflow, BentoML's service file read by
bench/.venvs/bentoml. Only the standard library is imported at module level, so every
interpreter can load this module.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from common import WORK_DIR, emit

SERVING_DIR = WORK_DIR / "serving"
FEATURES = [f"f{i}" for i in range(20)]
ROWS = 20_000  # training rows, one entity each in the feature group
SEED = 20240601
MODEL_NAME = "bench-forest"
GROUP = "bench_rows"
KEY = "id"
KEPT_ROWS = 2_000  # the rows request bodies are made of (their ids are 0..KEPT_ROWS-1)
CHECK_ROWS = 50  # rows every tool's predictions are compared on
MODEL_FILE = "forest.joblib"
META_FILE = "meta.json"
FRAME_FILE = "rows.parquet"


# --- the model (the project's interpreter) -------------------------------------------------

def worker_train(folder: Path) -> None:
    """Train the forest once (reused while scikit-learn's version is the same) and write the
    model, every row (for the feature group) and meta.json (the kept rows, the expected
    predictions of the check rows)."""
    import joblib
    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.ensemble import RandomForestRegressor

    meta_path = folder / META_FILE
    if meta_path.exists() and (folder / MODEL_FILE).exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("sklearn") == sklearn.__version__:
            emit({"trained": False, "fit_seconds": meta["fit_seconds"]})
            return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    values = rng.normal(size=(ROWS, len(FEATURES))).round(4)
    target = (3 * values[:, 0] + 2 * np.sin(values[:, 1]) + values[:, 2] * values[:, 3]
              + np.abs(values[:, 4]) + rng.normal(0, 0.5, ROWS))
    frame = pd.DataFrame(values, columns=FEATURES)
    model = RandomForestRegressor(n_estimators=100, random_state=0)
    started = time.perf_counter()
    model.fit(frame, target)
    fit_seconds = time.perf_counter() - started
    joblib.dump(model, folder / MODEL_FILE)
    frame.insert(0, KEY, np.arange(ROWS, dtype=np.int64))
    frame.to_parquet(folder / FRAME_FILE, index=False)
    expected = model.predict(frame[FEATURES].head(CHECK_ROWS))
    meta = {"sklearn": sklearn.__version__, "fit_seconds": fit_seconds, "rows": ROWS,
            "features": FEATURES, "kept": values[:KEPT_ROWS].tolist(),
            "expected": expected.tolist(),
            "nodes": int(sum(tree.tree_.node_count for tree in model.estimators_))}
    meta_path.write_text(json.dumps(meta))
    emit({"trained": True, "fit_seconds": fit_seconds})


def load_meta(folder: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((folder / META_FILE).read_text())
    return meta


# --- MLflow (its own interpreter) ----------------------------------------------------------

def worker_mlflow_save(folder: Path, target: Path) -> None:
    """``mlflow.sklearn.save_model`` of the same forest, with the signature inferred from
    the check rows (as MLflow's docs recommend), in MLflow's default format (skops), which
    loads a tree's nodes only when its type is declared trusted."""
    import shutil

    import joblib
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    model = joblib.load(folder / MODEL_FILE)
    sample = pd.DataFrame(load_meta(folder)["kept"][:CHECK_ROWS], columns=FEATURES)
    if target.exists():
        shutil.rmtree(target)
    mlflow.sklearn.save_model(model, str(target),
                              signature=infer_signature(sample, model.predict(sample)),
                              skops_trusted_types=["sklearn.tree._tree.Tree"])
    emit({"saved": str(target)})


# --- BentoML (its own interpreter reads this file) -----------------------------------------

BENTO_SERVICE = '''\
"""The bench forest as a BentoML 1.x service (written by bench/bench_serving.py)."""

import warnings

import bentoml
import joblib
import numpy as np

MODEL_PATH = {model_path!r}
# The forest was fitted on a DataFrame; rows come as an array here, in f0..f19 order.
warnings.filterwarnings("ignore", message="X does not have valid feature names")


@bentoml.service
class Forest:
    def __init__(self) -> None:
        self.model = joblib.load(MODEL_PATH)

    @bentoml.api
    def predict(self, input: np.ndarray) -> np.ndarray:
        return self.model.predict(input)
'''


def write_bento_service(folder: Path, target: Path) -> Path:
    """The service file ``bentoml serve service:Forest`` runs from ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    path = target / "service.py"
    path.write_text(BENTO_SERVICE.format(model_path=str(folder / MODEL_FILE)))
    return path


# --- modelyard (the project's interpreter) -------------------------------------------------

def worker_modelyard_prepare(folder: Path, project: Path) -> None:
    """A fresh project: the rows as a feature group keyed by ``id`` (applied, ingested,
    materialized), the forest registered as ``bench-forest`` version 1 and promoted to
    ``production``."""
    from datetime import UTC, datetime

    import joblib
    import pandas as pd

    import modelyard
    from modelyard import Entity, Feature, FeatureGroup, Source

    modelyard.init_project(project, "serving-bench", exist_ok=True)
    yard = modelyard.connect(project=project, capture_git=False, capture_packages=False)
    try:
        source = Source.frame(GROUP, timestamp="ts")
        group = FeatureGroup(GROUP, entity=Entity("row", KEY), source=source,
                             features=[Feature(name, name) for name in FEATURES])
        yard.apply([group])
        frame = pd.read_parquet(folder / FRAME_FILE)
        frame["ts"] = datetime(2024, 1, 1, tzinfo=UTC)
        yard.ingest(source, frame)
        yard.materialize()
        model = joblib.load(folder / MODEL_FILE)
        started = time.perf_counter()
        record = yard.models.register(model, MODEL_NAME,
                                      input_example=frame[FEATURES].head(200),
                                      features=FEATURES)
        register_seconds = time.perf_counter() - started
        yard.models.promote(MODEL_NAME, record.version, alias="production")
    finally:
        yard.close()
    emit({"version": record.version, "register_seconds": register_seconds})


FLOOR_APP = "floor_app"
_FLOOR_SOURCE = '''"""The floor: a bare Starlette app that only parses each request's JSON body."""

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def predict(request: Request) -> Response:
    json.loads(await request.body())
    return Response(b\'{"predictions":[0.0]}\', media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
'''


def write_floor_app(folder: Path) -> Path:
    """The floor app's module (bench_serving.py runs it with uvicorn --app-dir)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{FLOOR_APP}.py"
    path.write_text(_FLOOR_SOURCE)
    return path
