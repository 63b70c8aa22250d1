"""``@modelyard.pipeline``: its spec, its content hash, and bad declarations refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import modelyard
from modelyard.errors import InvalidDefinitionError, InvalidInputError
from modelyard.pipelines.definitions import Pipeline
from modelyard.pipelines.discovery import load_pipelines
from modelyard.pipelines.schedules import latest_due, next_due
from tests.pipelines.support import TOY, write


def test_a_file_is_stored_whole_and_hashed(tmp_path: Path) -> None:
    [found] = load_pipelines([write(tmp_path, TOY)])
    assert found.name == "toy_retrain" and found.model == "toy"
    assert found.params == {"alpha": 1.0, "rows": 40}
    assert "def make_frame" in found.code  # helpers come along
    assert found.spec()["triggers"] == [
        {"kind": "alert", "model": None, "rule": None, "cooldown": "10m"}]
    again = Pipeline.from_spec(found.spec())
    assert again.content_hash() == found.content_hash()
    changed = load_pipelines([write(tmp_path, TOY.replace("default_rng(0)", "default_rng(1)"))])[0]
    assert changed.content_hash() != found.content_hash()


def test_stored_code_runs_without_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "import modelyard\n\n"
                 "@modelyard.pipeline(model='m')\n"
                 "def double(ctx):\n    return ctx * 2\n")
    [found] = load_pipelines([path])
    path.unlink()
    rebuilt = Pipeline.from_spec(found.spec())
    assert rebuilt.load()(21) == 42
    assert found(4) == 8


def test_a_function_outside_a_file_stores_its_own_source() -> None:
    def make(ctx: object) -> str:
        return "made"

    made = modelyard.pipeline(name="inline", model="m")(make)
    assert made.code.startswith("def make(") and "@" not in made.code.splitlines()[0]
    assert made.path is None
    assert Pipeline.from_spec(made.spec()).load()(None) == "made"


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"schedule": "61 * * * *"}, "is not a cron expression"),
    ({"schedule": "every day"}, "is not a cron expression"),
    ({"timezone": "Mars/Olympus"}, "not a known time zone"),
    ({"params": {"x": object()}}, "must be JSON values"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"triggers": ["nightly"]}, "a trigger is modelyard.on_alert"),
    ({"triggers": [modelyard.on_success("self_ref")]}, "cannot trigger itself"),
    ({"name": "bad name"}, "is not valid"),
])
def test_bad_declarations_are_refused(kwargs: dict[str, object], words: str) -> None:
    options: dict[str, object] = {"name": "self_ref", "model": "m"} | kwargs

    def fn(ctx: object) -> None:
        return None

    with pytest.raises(InvalidDefinitionError, match=words):
        modelyard.pipeline(**options)(fn)  # type: ignore[arg-type]


def test_bad_trigger_arguments() -> None:
    with pytest.raises(InvalidDefinitionError, match="cooldown"):
        modelyard.on_alert(cooldown="soon")
    with pytest.raises(InvalidDefinitionError, match="rule"):
        modelyard.on_alert(rule="  ")


def test_a_file_that_cannot_be_imported_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "import no_such_module_here\n")
    with pytest.raises(InvalidDefinitionError, match=r"pipelines\.py:1 cannot be imported: "
                       r"ModuleNotFoundError"):
        load_pipelines([path])
    bad_cron = write(tmp_path, "import modelyard\n"
                     "@modelyard.pipeline(model='m', schedule='0 25 * * *')\n"
                     "def nightly(ctx):\n    pass\n", name="cron.py")
    with pytest.raises(InvalidDefinitionError,
                       match=r"cron\.py:2: schedule of pipeline 'nightly', '0 25 \* \* \*'"):
        load_pipelines([bad_cron])
    with pytest.raises(InvalidInputError, match="no pipeline found"):
        load_pipelines([write(tmp_path, "x = 1\n", name="empty.py")])


def test_cron_is_read_in_its_time_zone() -> None:
    when = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)  # 14:30 in Paris (summer time)
    assert latest_due("0 3 * * *", "Europe/Paris", when) == datetime(2026, 7, 1, 1, 0,
                                                                     tzinfo=UTC)
    assert next_due("0 3 * * *", "Europe/Paris", when) == datetime(2026, 7, 2, 1, 0,
                                                                   tzinfo=UTC)
    exact = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)
    assert latest_due("0 3 * * *", "Europe/Paris", exact) == exact


def test_comments_layout_and_schedule_do_not_make_a_version(tmp_path: Path) -> None:
    [base] = load_pipelines([write(tmp_path, TOY)])
    commented = TOY.replace("def make_frame(rows):", "# a helper\ndef make_frame(rows):  # x")
    scheduled = TOY.replace('params={"alpha": 1.0, "rows": 40},',
                            'params={"alpha": 1.0, "rows": 40},\n    schedule="0 3 * * *", '
                            'timezone="Europe/Paris",')
    for text in (commented, scheduled):
        [again] = load_pipelines([write(tmp_path, text)])
        assert again.content_hash() == base.content_hash()
        assert again.code != base.code  # stored as written
    [scheduled_pipeline] = load_pipelines([write(tmp_path, scheduled)])
    assert scheduled_pipeline.schedule == "0 3 * * *"
