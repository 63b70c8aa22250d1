"""`modelyard init` and `modelyard doctor`."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import modelyard
from modelyard.backends.metadata.sql.migrations import HEAD
from modelyard.errors import AlreadyExistsError, ConfigurationError, InvalidInputError, StorageError

from .conftest import Invoke, fits, narrow, words


def test_init_creates_a_project(invoke: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "new" / "claims"
    result = invoke("init", str(target), "--name", "claims-model")
    assert result.exit_code == 0, result.output
    assert "Created project claims-model" in result.output
    assert 'name = "claims-model"' in (target / "modelyard.toml").read_text()
    assert (target / ".modelyard" / ".gitignore").is_file()


def test_init_defaults_to_the_working_folder_and_its_name(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pricing"
    folder.mkdir()
    monkeypatch.chdir(folder)
    result = invoke("init")
    assert result.exit_code == 0, result.output
    assert "Created project pricing" in result.output
    assert (folder / "modelyard.toml").is_file()


def test_init_refuses_an_existing_project(invoke: Invoke, project: Path) -> None:
    before = (project / "modelyard.toml").read_text()
    result = invoke("init", str(project))
    assert result.exit_code == 1
    assert isinstance(result.exception, AlreadyExistsError)
    assert "already a modelyard project" in result.exception.message
    assert (project / "modelyard.toml").read_text() == before


def test_init_refuses_a_bad_name(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path / "x"), "--name", "no/slashes")
    assert isinstance(result.exception, InvalidInputError)
    assert not (tmp_path / "x" / "modelyard.toml").exists()


def test_doctor_reports_project_store_settings_and_versions(
    invoke: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with modelyard.connect() as yard:
        yard.create_experiment("claims")
    monkeypatch.setenv("MODELYARD_FLUSH_INTERVAL", "2.5")
    from modelyard.cli import render

    monkeypatch.setattr(render.console, "_width", 400)  # long temporary paths stay on one line
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "testproj" in out and str(project) in out
    assert f"sqlite:///{project}/.modelyard/modelyard.db" in out
    assert "SQLite 3." in out
    assert f"{HEAD} (up to date)" in out
    assert f"file://{project}/.modelyard/artifacts" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "2.5" in lines["tracking.flush_interval"]
    assert "MODELYARD_FLUSH_INTERVAL" in lines["tracking.flush_interval"]
    assert "modelyard.toml" in lines["project.name"]
    assert "default" in lines["tracking.heartbeat_timeout"]
    assert lines["experiments"].split()[-1] == "1"
    for package in ("modelyard", "python", "sqlalchemy", "pandas", "scikit-learn"):
        assert package in lines, package

    narrow(monkeypatch)  # piped: 80 columns; setting names and numbers stay whole
    piped = invoke("doctor")
    assert piped.exit_code == 0 and fits(piped.output), piped.output
    assert {"tracking.flush_interval", "2.5", "tracking.heartbeat_timeout", "60.0",
            "features.materialize_chunk_rows"} <= words(piped.output)


def test_doctor_never_shows_an_s3_secret(invoke: Invoke, project: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-visible-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-hidden-secret")
    from modelyard.cli import render

    monkeypatch.setattr(render.console, "_width", 400)
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    assert "the-hidden-secret" not in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "(set, not shown)" in lines["s3.secret_access_key"]
    assert "AWS_SECRET_ACCESS_KEY" in lines["s3.secret_access_key"]
    assert "AKIA-visible-key" in lines["s3.access_key_id"]


@pytest.mark.postgres
def test_doctor_on_postgres_hides_the_password_and_changes_nothing(
    invoke: Invoke, pg_uri: str, project: Path
) -> None:
    url = sa.engine.make_url(pg_uri).set(password="s3cret-pw")  # trust auth ignores it
    result = invoke("doctor", "--uri", url.render_as_string(hide_password=False))
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    assert "***" in result.output
    assert "PostgreSQL" in result.output
    assert "not created yet" in result.output
    engine = sa.create_engine(sa.engine.make_url(pg_uri).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        engine.dispose()


def test_doctor_outside_a_project_fails_clearly(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("doctor")
    assert result.exit_code == 1
    assert isinstance(result.exception, ConfigurationError)
    assert "modelyard init" in result.exception.message


def test_doctor_shows_an_unreachable_store_then_fails(invoke: Invoke, project: Path) -> None:
    result = invoke("doctor", "--uri", "postgresql://postgres:pw@127.0.0.1:1/nowhere")
    assert result.exit_code == 1
    assert isinstance(result.exception, StorageError)
    assert "unusable" in result.output
    assert "Settings" in result.output  # the rest of the report is still printed
    assert ":pw@" not in result.output
