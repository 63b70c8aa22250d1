"""Settings: precedence, type checks, finding the project, and resolving store paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import modelyard
from modelyard import ConfigurationError, ProjectNotFoundError, StorageError
from modelyard.settings import (
    PROJECT_FILE,
    Settings,
    find_project,
    load_settings,
    setting_sources,
)


def write_project(root: Path, body: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / PROJECT_FILE).write_text(body)
    return root


def write_user(tmp_path: Path, body: str) -> None:
    # the autouse fixture points XDG_CONFIG_HOME at tmp_path / "xdg-config"
    path = tmp_path / "xdg-config" / "modelyard" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)


def test_every_setting_is_documented_and_has_an_env_name() -> None:
    fields = Settings.fields()
    assert fields
    for f in fields:
        assert f.metadata["doc"].strip()
        assert f.metadata["env"] == f.metadata["env"].upper()
        # the S3 settings are read from the standard AWS variables every S3 client knows
        section = f.metadata["toml"].split(".")[0]
        assert f.metadata["env"].startswith("AWS_" if section == "s3" else "MODELYARD_")
        assert "." in f.metadata["toml"]
    assert len({f.metadata["env"] for f in fields}) == len(fields)


def test_defaults_in_a_bare_project(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    s = load_settings(root)
    assert s.project_root == root.resolve()
    assert s.project_name == "proj"
    assert s.default_experiment == "default"
    assert s.flush_interval == 1.0
    assert s.flush_max_points == 20_000
    assert s.capture_git is True and s.capture_packages is True
    assert s.uri == f"sqlite:///{root.resolve() / '.modelyard' / 'modelyard.db'}"
    assert s.artifact_uri == f"file://{root.resolve() / '.modelyard' / 'artifacts'}"


def test_precedence_env_over_project_over_user_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = write_project(tmp_path / "proj", "[tracking]\nflush_interval = 3.0\n"
                                            'default_experiment = "from-project"\n')
    write_user(tmp_path, "[tracking]\nflush_interval = 5.0\nflush_max_points = 7\n"
                         'default_experiment = "from-user"\n'
                         "capture_git = false\n")
    s = load_settings(root)
    assert s.flush_interval == 3.0  # project beats user
    assert s.default_experiment == "from-project"
    assert s.flush_max_points == 7  # user beats default
    assert s.capture_git is False
    assert s.capture_packages is True  # default

    monkeypatch.setenv("MODELYARD_FLUSH_INTERVAL", "0.5")
    monkeypatch.setenv("MODELYARD_CAPTURE_GIT", "yes")
    monkeypatch.setenv("MODELYARD_EXPERIMENT", "from-env")
    s = load_settings(root)
    assert s.flush_interval == 0.5  # environment beats the files
    assert s.capture_git is True
    assert s.default_experiment == "from-env"

    s = load_settings(root, flush_interval=9, default_experiment=None)
    assert s.flush_interval == 9.0  # explicit arguments beat everything; None is "not given"
    assert s.default_experiment == "from-env"


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("YES", True), (" on ", True),
    ("0", False), ("false", False), ("No", False), ("off", False),
])
def test_boolean_spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str,
                           expected: bool) -> None:
    monkeypatch.setenv("MODELYARD_CAPTURE_PACKAGES", raw)
    assert load_settings(write_project(tmp_path / "p")).capture_packages is expected


@pytest.mark.parametrize(("env", "raw"), [
    ("MODELYARD_FLUSH_INTERVAL", "fast"),
    ("MODELYARD_FLUSH_INTERVAL", "-1"),
    ("MODELYARD_FLUSH_INTERVAL", "nan"),
    ("MODELYARD_FLUSH_INTERVAL", "inf"),
    ("MODELYARD_FLUSH_MAX_POINTS", "1.5"),
    ("MODELYARD_FLUSH_MAX_POINTS", "lots"),
    ("MODELYARD_HEARTBEAT_TIMEOUT", ""),
    ("MODELYARD_CAPTURE_GIT", "maybe"),
])
def test_bad_environment_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str,
                                raw: str) -> None:
    monkeypatch.setenv(env, raw)
    with pytest.raises(ConfigurationError, match=env) as info:
        load_settings(write_project(tmp_path / "p"))
    assert info.value.details["setting"]


@pytest.mark.parametrize("line", [
    'flush_interval = "soon"',
    "flush_max_points = 2.5",
    "flush_max_points = true",
    "capture_git = 3",
    'capture_git = "perhaps"',
    "default_experiment = { a = 1 }",
    "default_experiment = [1, 2]",
    "heartbeat_timeout = -5",
])
def test_bad_project_file_values(tmp_path: Path, line: str) -> None:
    root = write_project(tmp_path / "p", f"[tracking]\n{line}\n")
    key = line.split(" ")[0]
    with pytest.raises(ConfigurationError, match=re.escape(str(root / PROJECT_FILE))) as info:
        load_settings(root)
    assert info.value.details["setting"] == key
    assert key in info.value.message


def test_whole_numbers_are_accepted_for_numbers(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", "[tracking]\nflush_max_points = 10.0\n"
                                         "flush_interval = 2\n")
    s = load_settings(root)
    assert s.flush_max_points == 10 and isinstance(s.flush_max_points, int)
    assert s.flush_interval == 2.0 and isinstance(s.flush_interval, float)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", "[tracking\nflush_interval = 1\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(root)
    write_user(tmp_path, "= nothing")
    with pytest.raises(ConfigurationError, match=r"config\.toml"):
        load_settings(write_project(tmp_path / "q"))


def test_unknown_keyword_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="flush_intervall"):
        load_settings(write_project(tmp_path / "p"), flush_intervall=2)


# --- finding the project --------------------------------------------------------------------


def test_find_project_walks_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "proj")
    deep = root / "src" / "models" / "v1"
    deep.mkdir(parents=True)
    assert find_project(deep) == root.resolve()
    monkeypatch.chdir(deep)
    assert find_project() == root.resolve()
    assert load_settings().project_root == root.resolve()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert find_project(outside) is None


def test_nearest_project_wins(tmp_path: Path) -> None:
    outer = write_project(tmp_path / "outer")
    inner = write_project(outer / "inner")
    assert find_project(inner / ".") == inner.resolve()


def test_modelyard_project_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "proj", '[project]\nname = "named"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MODELYARD_PROJECT", str(root))
    assert find_project() == root.resolve()
    assert load_settings().project_name == "named"

    monkeypatch.setenv("MODELYARD_PROJECT", str(elsewhere))
    with pytest.raises(ConfigurationError, match="holds no"):
        find_project()


def test_no_project_and_no_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectNotFoundError, match="modelyard init") as info:
        load_settings()
    assert info.value.http_status == 404
    assert isinstance(info.value, ConfigurationError)
    with pytest.raises(ConfigurationError, match="MODELYARD_ARTIFACT_URI"):
        load_settings(uri=f"sqlite:///{tmp_path / 'x.db'}")
    s = load_settings(uri=f"sqlite:///{tmp_path / 'x.db'}", artifact_uri="arts")
    assert s.project_root is None
    assert s.artifact_uri == f"file://{(tmp_path / 'arts').resolve()}"


# --- store paths ----------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = write_project(tmp_path / "proj", '[store]\nuri = "sqlite:///data/meta.db"\n'
                                            'artifact_uri = "file://blobs"\n')
    sub = root / "notebooks"
    sub.mkdir()
    monkeypatch.chdir(sub)
    s = load_settings()
    assert s.uri == f"sqlite:///{root.resolve() / 'data' / 'meta.db'}"
    assert s.artifact_uri == f"file://{root.resolve() / 'blobs'}"

    with (modelyard.connect(capture_git=False, capture_packages=False) as yard,
          yard.start_run("e") as run):
        run.log_text("x", "x.txt")
    assert (root / "data" / "meta.db").is_file()
    assert (root / "blobs" / "objects").is_dir()
    assert not (sub / "data").exists()


def test_absolute_and_non_file_uris_are_kept(tmp_path: Path) -> None:
    db = tmp_path / "abs" / "m.db"
    root = write_project(tmp_path / "proj", f'[store]\nuri = "sqlite:///{db}"\n'
                                            'artifact_uri = "s3://bucket/prefix"\n')
    s = load_settings(root)
    assert s.uri == f"sqlite:///{db}"
    assert s.artifact_uri == "s3://bucket/prefix"
    s = load_settings(root, uri="postgresql://u@h/db")
    assert s.uri == "postgresql://u@h/db"


def test_connect_rejects_unknown_schemes_and_names_an_unreachable_server(
        project: Path) -> None:
    from tests._remote import free_port

    port = free_port()  # nothing listens there
    remote = modelyard.connect(f"http://127.0.0.1:{port}")  # connecting sends nothing yet
    remote.stores.connection.retry_seconds = 0  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match=f"cannot reach the modelyard server at "
                                           f"http://127.0.0.1:{port}"):
        remote.list_experiments()
    remote.close()
    with pytest.raises(ConfigurationError, match="mysql"):
        modelyard.connect("mysql://u@h/db")
    with pytest.raises(ConfigurationError, match="not a valid URI"):
        modelyard.connect("::nonsense::")


def test_s3_settings_come_from_the_aws_variables_or_the_user_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "proj", '[store]\nartifact_uri = "s3://bucket/art"\n')
    user = tmp_path / "xdg-config" / "modelyard" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[s3]\nendpoint = "http://127.0.0.1:8333"\naccess_key_id = "from-file"\n'
                    'secret_access_key = "file-secret-value"\n')
    s = load_settings(root)
    assert s.artifact_uri == "s3://bucket/art"
    assert s.s3() == {"endpoint": "http://127.0.0.1:8333", "region": "",
                      "access_key_id": "from-file", "secret_access_key": "file-secret-value",
                      "session_token": ""}
    assert "file-secret-value" not in repr(s)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    s = load_settings(root)
    assert (s.s3_secret_access_key, s.s3_region) == ("env-secret-value", "eu-west-1")
    assert setting_sources(s)["s3_secret_access_key"] == "AWS_SECRET_ACCESS_KEY"
    assert "env-secret-value" not in repr(s)
