"""The curated public API, and that importing the package stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

import modelyard

PUBLIC = {
    "__version__",
    "connect", "init_project", "Yard", "Run", "RunComparison", "Settings",
    "ModelyardError", "ConfigurationError", "ProjectNotFoundError", "StorageError",
    "SchemaVersionError", "ArtifactIntegrityError", "InvalidInputError", "InvalidFilterError",
    "InvalidMetricError", "DataValidationError", "InvalidDefinitionError", "NotFoundError",
    "ConflictError",
    "AlreadyExistsError", "ParamConflictError", "RunStateError", "GateFailedError",
    "IdempotencyConflictError",
    "AuthenticationError", "PermissionDeniedError", "RateLimitedError",
    "Entity", "Feature", "FeatureGroup", "Source", "Transform", "transform", "TrainingSet",
    "RequestFeatureGroup", "OnlineResult",
    "pipeline", "Pipeline", "PipelineContext", "on_alert", "on_success",
    "on_new_data", "Shadow", "EvaluationWindow",
}

HEAVY = ["sqlalchemy", "pandas", "numpy", "alembic", "typer", "rich", "sklearn", "pyarrow",
         "psycopg", "joblib", "msgpack", "redis", "starlette", "uvicorn", "onnx",
         "onnxruntime", "fairlearn", "matplotlib", "skl2onnx", "cloudpickle"]


def test_all_is_exactly_the_public_names() -> None:
    assert set(modelyard.__all__) == PUBLIC
    assert len(modelyard.__all__) == len(PUBLIC)
    assert modelyard.__all__ == sorted(modelyard.__all__)
    assert sorted(dir(modelyard)) == sorted(PUBLIC)


def test_every_public_name_resolves() -> None:
    from modelyard.client import Yard, connect
    from modelyard.project import init_project
    from modelyard.settings import Settings
    from modelyard.tracking.frames import RunComparison
    from modelyard.tracking.run import Run

    for name in PUBLIC:
        assert getattr(modelyard, name) is not None, name
    assert modelyard.connect is connect
    assert modelyard.Yard is Yard
    assert modelyard.init_project is init_project
    assert modelyard.Settings is Settings
    assert modelyard.Run is Run
    assert modelyard.RunComparison is RunComparison
    assert isinstance(modelyard.__version__, str) and modelyard.__version__.count(".") >= 1


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        modelyard.no_such_thing  # noqa: B018


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("code", [
    "import modelyard",
    "import modelyard; modelyard.ModelyardError; modelyard.__version__",
    "import modelyard; modelyard.Settings",
    "from modelyard import NotFoundError, init_project",
])
def test_import_does_not_load_heavy_libraries(code: str) -> None:
    loaded = _modules_after(code)
    assert "modelyard" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == []


def test_connect_loads_the_store_libraries_on_first_use(tmp_path: Path) -> None:
    loaded = _modules_after("import modelyard; modelyard.connect")
    assert "modelyard.client" in loaded
    assert "sqlalchemy" not in loaded  # a client of a server never needs it
    db = tmp_path / "m.db"
    opened = _modules_after(
        f"import modelyard; modelyard.connect('sqlite:///{db}', artifact_uri='{tmp_path}')")
    assert "sqlalchemy" in opened and "httpx" not in opened


def test_py_typed_is_shipped() -> None:
    marker = resources.files("modelyard") / "py.typed"
    assert marker.is_file()
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    config = tomllib.loads(pyproject.read_text())
    packages = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    package_dir = Path(str(resources.files("modelyard")))
    assert any((pyproject.parent / p).resolve() == package_dir.resolve() for p in packages)
