"""What a run records about where it ran, in real temporary git repositories."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelyard
from modelyard.tracking import environment
from modelyard.tracking.service import REQUIREMENTS_ARTIFACT

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture(autouse=True)
def _git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    # never let git find a repository above the test's folder
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("print('v1')\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    yield root


def test_clean_repo(repo: Path) -> None:
    tags = environment.git_state(repo)
    assert tags["git.commit"] == git(repo, "rev-parse", "HEAD")
    assert len(tags["git.commit"]) == 40
    assert tags["git.branch"] == "main"
    assert tags["git.dirty"] == "false"
    assert Path(tags["git.root"]) == repo.resolve()
    assert "git.diff_sha256" not in tags


def test_state_from_a_subfolder_and_another_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature/x")
    sub = repo / "src" / "deep"
    sub.mkdir(parents=True)
    tags = environment.git_state(sub)
    assert tags["git.branch"] == "feature/x"
    assert Path(tags["git.root"]) == repo.resolve()


def test_detached_head_has_empty_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    tags = environment.git_state(repo)
    assert tags["git.branch"] == ""
    assert tags["git.commit"] == git(repo, "rev-parse", "HEAD")


def test_dirty_repo_and_diff_hash_follow_the_diff(repo: Path) -> None:
    (repo / "train.py").write_text("print('v2')\n")
    first = environment.git_state(repo)
    assert first["git.dirty"] == "true"
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=repo, check=True,
                          capture_output=True).stdout
    assert first["git.diff_sha256"] == hashlib.sha256(diff).hexdigest()

    assert environment.git_state(repo)["git.diff_sha256"] == first["git.diff_sha256"]
    (repo / "train.py").write_text("print('v3')\n")
    second = environment.git_state(repo)
    assert second["git.diff_sha256"] != first["git.diff_sha256"]

    git(repo, "add", "train.py")  # staged changes count too
    assert environment.git_state(repo)["git.diff_sha256"] == second["git.diff_sha256"]
    git(repo, "commit", "-q", "-m", "v3")
    clean = environment.git_state(repo)
    assert clean["git.dirty"] == "false"
    assert clean["git.commit"] != first["git.commit"]


def test_untracked_files_do_not_make_the_repo_dirty(repo: Path) -> None:
    (repo / "scratch.csv").write_text("a,b\n")
    assert environment.git_state(repo)["git.dirty"] == "false"


def test_repo_without_commits_has_no_commit(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    tags = environment.git_state(root)
    assert "git.commit" not in tags
    assert tags["git.branch"] == "main"


def test_outside_git_there_are_no_git_tags(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert environment.git_state(plain) == {}


def test_capture_packages_lists_installed_distributions() -> None:
    tags, requirements = environment.capture(git=False, packages=True)
    assert requirements is not None
    lines = requirements.decode().splitlines()
    names = [line.split("==")[0] for line in lines]
    assert names == sorted(names) and len(names) == len(set(names))
    assert any(line.startswith("sqlalchemy==") for line in lines)
    assert tags["modelyard.packages.sha256"] == hashlib.sha256(requirements).hexdigest()
    assert tags["modelyard.python.version"] == ".".join(map(str, sys.version_info[:3]))
    assert not [k for k in tags if k.startswith("modelyard.git.")]


# --- through a real training script -------------------------------------------------------

SCRIPT = """\
import sys
import modelyard

yard = modelyard.connect(sys.argv[1], artifact_uri=sys.argv[2],
                         capture_packages=sys.argv[3] == "1")
with yard.start_run("env") as run:
    run.log_metric("m", 1.0)
print(run.run_id)
yard.close()
"""


def _run_script(folder: Path, db: Path, art: Path, packages: bool) -> str:
    script = folder / "train.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    out = subprocess.run(
        [sys.executable, str(script), f"sqlite:///{db}", f"file://{art}",
         "1" if packages else "0"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_a_script_in_a_dirty_repo_records_its_git_state(repo: Path, tmp_path: Path) -> None:
    db, art = tmp_path / "m.db", tmp_path / "art"
    run_id = _run_script(repo, db, art, packages=True)  # overwrites train.py: dirty
    with modelyard.connect(f"sqlite:///{db}", artifact_uri=f"file://{art}") as yard:
        rec = yard.get_run(run_id)
        tags = rec.tags
        assert tags["modelyard.git.commit"] == git(repo, "rev-parse", "HEAD")
        assert tags["modelyard.git.branch"] == "main"
        assert tags["modelyard.git.dirty"] == "true"
        assert len(tags["modelyard.git.diff_sha256"]) == 64
        assert tags["modelyard.source.entrypoint"] == str((repo / "train.py").resolve())
        assert tags["modelyard.source.sha256"] == hashlib.sha256(
            (repo / "train.py").read_bytes()).hexdigest()
        assert rec.info.user and rec.info.host
        requirements = yard.tracking.read_artifact(run_id, REQUIREMENTS_ARTIFACT)
        assert tags["modelyard.packages.sha256"] == hashlib.sha256(requirements).hexdigest()
        assert b"sqlalchemy==" in requirements.lower()


def test_a_script_outside_git_records_no_git_tags(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    db, art = tmp_path / "m.db", tmp_path / "art"
    run_id = _run_script(folder, db, art, packages=False)
    with modelyard.connect(f"sqlite:///{db}", artifact_uri=f"file://{art}") as yard:
        tags = yard.get_run(run_id).tags
        assert not [k for k in tags if k.startswith("modelyard.git.")]
        assert "modelyard.packages.sha256" not in tags
        assert tags["modelyard.source.entrypoint"].endswith("train.py")
        assert yard.tracking.list_artifacts(run_id) == []


def test_installed_packages_reads_what_the_metadata_parser_reads() -> None:
    from importlib import metadata

    expected: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            expected[name.lower()] = dist.version
    listed = environment.installed_packages()
    assert listed == "".join(f"{n}=={v}\n" for n, v in sorted(expected.items()))
    assert "sqlalchemy==" in listed
