"""Creating a project, and what happens when its folder cannot be written."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

import modelyard
from modelyard import AlreadyExistsError, InvalidInputError, StorageError
from modelyard.settings import DATA_DIR, PROJECT_FILE, load_settings


def test_init_creates_the_project_file_and_data_folder(tmp_path: Path) -> None:
    root = modelyard.init_project(tmp_path / "churn-model")
    assert root == (tmp_path / "churn-model").resolve()
    config = tomllib.loads((root / PROJECT_FILE).read_text())
    assert config["project"]["name"] == "churn-model"
    assert (root / DATA_DIR).is_dir()
    assert (root / DATA_DIR / ".gitignore").read_text().splitlines()[-1] == "*"
    assert load_settings(root).project_name == "churn-model"


def test_init_with_a_name_and_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    root = modelyard.init_project(".", "Claims v2")
    assert root == tmp_path.resolve()
    assert load_settings().project_name == "Claims v2"


def test_init_refuses_an_existing_project_unless_told(tmp_path: Path) -> None:
    root = modelyard.init_project(tmp_path / "p", "first")
    with pytest.raises(AlreadyExistsError, match="already a modelyard project"):
        modelyard.init_project(root, "second")
    assert modelyard.init_project(root, "second", exist_ok=True) == root
    assert tomllib.loads((root / PROJECT_FILE).read_text())["project"]["name"] == "first"


@pytest.mark.parametrize("name", ['bad"quote', "semi;colon", "x" * 101, "new\nline"])
def test_init_refuses_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInputError, match="not valid"):
        modelyard.init_project(tmp_path / "p", name)
    assert not (tmp_path / "p").exists()


def test_a_new_project_works_end_to_end(project: Path) -> None:
    with (modelyard.connect(capture_git=False, capture_packages=False) as yard,
          yard.start_run("first") as run):
        run.log_metric("m", 1.0)
    assert (project / DATA_DIR / "modelyard.db").is_file()
    with modelyard.connect() as yard:
        assert yard.get_run(run.run_id).metrics["m"].value == 1.0
        assert yard.settings.project_root == project.resolve()
        assert "testproj" in repr(yard)


# --- folders that cannot be written ---------------------------------------------------------


def _file_in_the_way(tmp_path: Path) -> Path:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file")
    return blocker


def test_init_under_a_regular_file(tmp_path: Path) -> None:
    target = _file_in_the_way(tmp_path) / "proj"
    with pytest.raises(StorageError, match=re.escape(str(target))) as info:
        modelyard.init_project(target)
    assert info.value.details["path"] == str(target)


def test_connect_when_the_data_folder_is_a_file(project: Path) -> None:
    data = project / DATA_DIR
    for child in data.iterdir():
        child.unlink()
    data.rmdir()
    data.write_text("oops")
    with pytest.raises(StorageError, match=re.escape(str(data))) as info:
        modelyard.connect()
    assert info.value.details["path"] == str(data)
    assert info.value.http_status == 503


def test_sqlite_store_under_a_regular_file(tmp_path: Path) -> None:
    folder = _file_in_the_way(tmp_path) / "db"
    with pytest.raises(StorageError, match=re.escape(str(folder))):
        modelyard.connect(f"sqlite:///{folder / 'm.db'}", artifact_uri=f"file://{tmp_path}")


def test_artifact_folder_under_a_regular_file(project: Path, tmp_path: Path) -> None:
    art = _file_in_the_way(tmp_path) / "art"
    with modelyard.connect(artifact_uri=f"file://{art}", capture_git=False,
                           capture_packages=False) as yard:
        with yard.start_run("e") as run, pytest.raises(StorageError,
                                                      match=re.escape(str(art))):
            run.log_text("x", "x.txt")
        assert yard.tracking.list_artifacts(run.run_id) == []
        assert yard.get_run(run.run_id).info.status == "finished"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_read_only_project_folder(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(StorageError, match=re.escape(str(root))):
            modelyard.init_project(root)
        (tmp_path / "rw").mkdir()
        modelyard.init_project(tmp_path / "rw")
        (tmp_path / "rw" / DATA_DIR).chmod(0o500)
        with pytest.raises(StorageError, match=re.escape(str(tmp_path / "rw" / DATA_DIR))):
            modelyard.connect(project=tmp_path / "rw")
    finally:
        root.chmod(0o700)
        if (tmp_path / "rw" / DATA_DIR).exists():
            (tmp_path / "rw" / DATA_DIR).chmod(0o700)
