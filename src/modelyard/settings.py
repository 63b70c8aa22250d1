"""Every setting modelyard reads, with its default and one line of doc.

Precedence, highest first: explicit keyword arguments to :func:`modelyard.connect`, the
environment (``MODELYARD_*``), the project file (``modelyard.toml``), the user file
(``$XDG_CONFIG_HOME/modelyard/config.toml``), the default below.

Settings are resolved once, at the top (``connect`` or the CLI), and passed down.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.errors import ConfigurationError, ProjectNotFoundError

PROJECT_FILE = "modelyard.toml"
DATA_DIR = ".modelyard"


def _setting(default: Any, toml: str, env: str, doc: str, *, secret: bool = False) -> Any:
    return field(default=default, repr=not secret,
                 metadata={"toml": toml, "env": env, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one connection."""

    project_name: str = _setting("", "project.name", "MODELYARD_PROJECT_NAME",
                                 "Name of the project, shown by `modelyard doctor`.")
    uri: str = _setting("", "store.uri", "MODELYARD_URI",
                        "Metadata store URI: sqlite:///path.db, postgresql://... or "
                        "http(s)://host:port (a modelyard server, token in "
                        "MODELYARD_TOKEN); default: the project's .modelyard/modelyard.db.")
    artifact_uri: str = _setting("", "store.artifact_uri", "MODELYARD_ARTIFACT_URI",
                                 "Artifact store URI (file:///path or s3://bucket/prefix); "
                                 "default: the project's .modelyard/artifacts, or the server "
                                 "of an http(s):// uri.")
    offline_uri: str = _setting("", "store.offline_uri", "MODELYARD_OFFLINE_URI",
                                "Offline feature tables (Delta Lake, file:///path or "
                                "s3://bucket/prefix); default: the project's "
                                ".modelyard/offline.")
    s3_endpoint: str = _setting("", "s3.endpoint", "AWS_ENDPOINT_URL",
                                "Endpoint of an S3-compatible server for s3:// stores "
                                "(http://host:port allows plain HTTP); empty for AWS S3.")
    s3_region: str = _setting("", "s3.region", "AWS_REGION",
                              "Region of the s3:// stores' buckets; default us-east-1.")
    s3_access_key_id: str = _setting("", "s3.access_key_id", "AWS_ACCESS_KEY_ID",
                                     "Access key of the s3:// stores; empty: the AWS "
                                     "credential chain (instance profile, web identity...).")
    s3_secret_access_key: str = _setting(
        "", "s3.secret_access_key", "AWS_SECRET_ACCESS_KEY",
        "Secret key of the s3:// stores: keep it in the environment or the user file, not in "
        "the project file; never shown nor stored.", secret=True)
    s3_session_token: str = _setting("", "s3.session_token", "AWS_SESSION_TOKEN",
                                     "Session token of temporary S3 credentials; never "
                                     "shown nor stored.", secret=True)
    online_uri: str = _setting("", "store.online_uri", "MODELYARD_ONLINE_URI",
                               "Online feature store: sqlite:///path.db or "
                               "redis://host:6379/0?prefix=name; default: the project's "
                               ".modelyard/online.db.")
    engine: str = _setting("duckdb", "features.engine", "MODELYARD_ENGINE",
                           "Offline engine of training sets: duckdb (in this process) or the "
                           "Spark Connect server sc://host:15002 (needs modelyard[spark]).")
    materialize_chunk_rows: int = _setting(2_000_000, "features.materialize_chunk_rows",
                                           "MODELYARD_MATERIALIZE_CHUNK_ROWS",
                                           "Offline rows read per materialization chunk; "
                                           "bounds its memory.")
    predictions_uri: str = _setting("", "serving.predictions_uri", "MODELYARD_PREDICTIONS_URI",
                                    "Prediction log: empty for the metadata store, "
                                    "sqlite:///path.db or postgresql://... for another "
                                    "database, file:///folder for Parquet files.")
    prediction_flush_interval: float = _setting(
        0.5, "serving.prediction_flush_interval", "MODELYARD_PREDICTION_FLUSH_INTERVAL",
        "Seconds between background writes of the prediction log; a kill -9 loses at most "
        "this much.")
    prediction_queue_max: int = _setting(
        100_000, "serving.prediction_queue_max", "MODELYARD_PREDICTION_QUEUE_MAX",
        "Predictions held in memory while the log's store fails; beyond it the oldest are "
        "dropped (and counted).")
    default_experiment: str = _setting("default", "tracking.default_experiment",
                                       "MODELYARD_EXPERIMENT",
                                       "Experiment used when a run names none.")
    flush_interval: float = _setting(1.0, "tracking.flush_interval",
                                     "MODELYARD_FLUSH_INTERVAL",
                                     "Seconds between background flushes of buffered metrics; "
                                     "a kill -9 loses at most this much.")
    flush_max_points: int = _setting(20_000, "tracking.flush_max_points",
                                     "MODELYARD_FLUSH_MAX_POINTS",
                                     "Buffered metric points that trigger an early flush.")
    heartbeat_timeout: float = _setting(60.0, "tracking.heartbeat_timeout",
                                        "MODELYARD_HEARTBEAT_TIMEOUT",
                                        "Seconds without a heartbeat after which a running "
                                        "run is shown as killed.")
    capture_git: bool = _setting(True, "tracking.capture_git", "MODELYARD_CAPTURE_GIT",
                                 "Record git commit, branch and dirty state for each run.")
    capture_packages: bool = _setting(True, "tracking.capture_packages",
                                      "MODELYARD_CAPTURE_PACKAGES",
                                      "Record the installed Python packages for each run.")
    project_root: Path | None = field(default=None, metadata={"doc": "Folder of modelyard.toml."})

    @property
    def data_dir(self) -> Path | None:
        return None if self.project_root is None else self.project_root / DATA_DIR

    def s3(self) -> dict[str, str]:
        """How to reach the s3:// stores (the S3 settings without their prefix)."""
        return {"endpoint": self.s3_endpoint, "region": self.s3_region,
                "access_key_id": self.s3_access_key_id,
                "secret_access_key": self.s3_secret_access_key,
                "session_token": self.s3_session_token}

    @classmethod
    def fields(cls) -> list[dataclasses.Field[Any]]:
        return [f for f in dataclasses.fields(cls) if "toml" in f.metadata]


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "modelyard" / "config.toml"


def find_project(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` holding ``modelyard.toml``, as git finds .git."""
    env = os.environ.get("MODELYARD_PROJECT")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / PROJECT_FILE).is_file():
            raise ConfigurationError(
                f"MODELYARD_PROJECT points at {root}, which holds no {PROJECT_FILE}",
                path=str(root),
            )
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}", path=str(path)) from exc


def _lookup(doc: Mapping[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _coerce(f: dataclasses.Field[Any], raw: Any, origin: str) -> Any:
    kind: type[Any] = type(f.default)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(raw, (dict, list)) or (kind is not str and isinstance(raw, bool)):
            raise TypeError(raw)
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)
        value = kind(raw)
        if kind is float and not math.isfinite(value):
            raise ValueError(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"setting {f.name!r} from {origin} must be {kind.__name__}, got {raw!r}",
            setting=f.name,
        ) from exc
    if kind in (int, float) and value < 0:
        raise ConfigurationError(
            f"setting {f.name!r} from {origin} must not be negative, got {raw!r}",
            setting=f.name,
        )
    return value


def _resolve(root: Path | None, overrides: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """Each explicitly set value with where it came from, by precedence (later wins)."""
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (str(user_config_path()), _read_toml(user_config_path())),
    ]
    if root is not None:
        layers.append((str(root / PROJECT_FILE), _read_toml(root / PROJECT_FILE)))
    overrides = dict(overrides)
    found: dict[str, tuple[Any, str]] = {}
    for f in Settings.fields():
        for origin, doc in layers:
            raw = _lookup(doc, f.metadata["toml"])
            if raw is not None:
                found[f.name] = (_coerce(f, raw, origin), origin)
        if f.metadata["env"] in os.environ:
            env = f.metadata["env"]
            found[f.name] = (_coerce(f, os.environ[env], env), env)
        if overrides.get(f.name) is not None:
            found[f.name] = (_coerce(f, overrides.pop(f.name), "arguments"), "arguments")
    unknown = [k for k, v in overrides.items() if v is not None]
    if unknown:
        raise ConfigurationError(f"unknown settings: {', '.join(sorted(unknown))}")
    return found


def load_settings(project_root: Path | None = None, **overrides: Any) -> Settings:
    """Resolve every setting for ``project_root`` (found by walking up when None)."""
    root = project_root.resolve() if project_root is not None else find_project()
    values = {name: value for name, (value, _) in _resolve(root, overrides).items()}
    return _with_defaults(Settings(project_root=root, **values))


def setting_sources(settings: Settings, **overrides: Any) -> dict[str, str]:
    """Where each setting's value came from, by the precedence of :func:`load_settings`."""
    found = _resolve(settings.project_root, overrides)
    in_project = settings.project_root is not None
    sources: dict[str, str] = {}
    for f in Settings.fields():
        default = "default"
        if in_project and f.name in ("uri", "artifact_uri", "offline_uri", "online_uri"):
            default = "default (project folder)"
        elif in_project and f.name == "project_name":
            default = "default (folder name)"
        sources[f.name] = found[f.name][1] if f.name in found else default
    return sources


def _with_defaults(s: Settings) -> Settings:
    """Fill the store URIs from the project folder when not set, and resolve relative paths."""
    uri, artifact_uri, offline_uri = s.uri, s.artifact_uri, s.offline_uri
    online_uri = s.online_uri
    if uri.startswith(("http://", "https://")):
        # a modelyard server keeps the artifacts too (and, later, the feature data)
        artifact_uri = artifact_uri or uri
    if s.data_dir is not None:
        online_uri = online_uri or f"sqlite:///{s.data_dir / 'online.db'}"
        uri = uri or f"sqlite:///{s.data_dir / 'modelyard.db'}"
        artifact_uri = artifact_uri or f"file://{s.data_dir / 'artifacts'}"
        offline_uri = offline_uri or f"file://{s.data_dir / 'offline'}"
    if not uri:
        raise ProjectNotFoundError(
            f"no modelyard project here: run `modelyard init` or set MODELYARD_URI "
            f"(searched from {Path.cwd()} upwards for {PROJECT_FILE})"
        )
    if not artifact_uri:
        raise ConfigurationError(
            "MODELYARD_URI is set but no artifact store is: set MODELYARD_ARTIFACT_URI "
            "(file:///path) or run inside a project"
        )
    base = s.project_root or Path.cwd()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rel = uri[len("sqlite:///"):]
        if rel and rel != ":memory:" and not Path(rel).is_absolute():
            uri = f"sqlite:///{(base / rel).resolve()}"
    artifact_uri = _file_uri(artifact_uri, base)
    if not offline_uri and artifact_uri.startswith(("file://", "s3://")):
        offline_uri = f"{artifact_uri.rstrip('/')}/tables"  # outside a project: beside them
    offline_uri = _file_uri(offline_uri, base)
    if not online_uri and artifact_uri.startswith("file://"):
        online_uri = f"sqlite:///{artifact_uri[len('file://'):]}/online.db"
    if online_uri.startswith("sqlite:///") and not online_uri.startswith("sqlite:////"):
        rel = online_uri[len("sqlite:///"):]
        if rel and not Path(rel).is_absolute():
            online_uri = f"sqlite:///{(base / rel).resolve()}"
    predictions_uri = s.predictions_uri
    if predictions_uri.startswith("sqlite:///") and not predictions_uri.startswith(
            "sqlite:////"):
        rel = predictions_uri[len("sqlite:///"):]
        if rel and not Path(rel).is_absolute():
            predictions_uri = f"sqlite:///{(base / rel).resolve()}"
    elif predictions_uri:
        predictions_uri = _file_uri(predictions_uri, base)
    project_name = s.project_name or (s.project_root.name if s.project_root else "")
    return dataclasses.replace(s, uri=uri, artifact_uri=artifact_uri, offline_uri=offline_uri,
                               online_uri=online_uri, predictions_uri=predictions_uri,
                               project_name=project_name)


def _file_uri(value: str, base: Path) -> str:
    """A file:// URI (or bare path) made absolute against ``base``; other URIs unchanged."""
    if value.startswith("file://"):
        path = Path(value[len("file://"):])
        return f"file://{path if path.is_absolute() else (base / path).resolve()}"
    if value and "://" not in value:
        return f"file://{(base / value).resolve()}"
    return value


def render_project_file(name: str) -> str:
    return (
        "# modelyard project settings; environment variables MODELYARD_* override these.\n"
        "[project]\n"
        f'name = "{name}"\n'
        "\n"
        "[store]\n"
        "# Metadata store; default is the project's .modelyard/modelyard.db (SQLite).\n"
        '# uri = "postgresql://user@127.0.0.1:5432/modelyard"\n'
        "# Artifact store; default is the project's .modelyard/artifacts.\n"
        '# artifact_uri = "file:///data/modelyard-artifacts"\n'
        "# Offline feature tables (Delta Lake); default: the project's .modelyard/offline.\n"
        '# offline_uri = "s3://bucket/modelyard/offline"  # credentials: AWS_* variables\n'
        "# Online feature store; default: the project's .modelyard/online.db (SQLite).\n"
        '# online_uri = "redis://127.0.0.1:6379/0?prefix=claims"\n'
        "\n"
        "[tracking]\n"
        'default_experiment = "default"\n'
        "flush_interval = 1.0\n"
    )
