"""Running the demo end to end: a project, a parent run, and the steps inside it."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rich.console import Console

from modelyard.client import connect
from modelyard.demo import story
from modelyard.demo.candidates import require_sklearn
from modelyard.demo.state import DemoConfig, DemoState
from modelyard.demo.steps import Progress, Step, default_steps
from modelyard.demo.workspace import mark, outside_stores, prepare_folder
from modelyard.project import init_project

DEMO_TAG = "modelyard.demo"


@dataclass(frozen=True)
class DemoResult:
    """Where the demo left things."""

    root: Path
    experiment: str
    parent_run_id: str
    candidate_run_ids: list[str]
    best_run_id: str | None
    data_files: dict[str, Path]
    data_version: str
    definitions_file: Path | None
    commits: dict[str, str]  # source -> the commit holding its data
    training_set_id: str | None
    seconds: float
    today: date  # the demo's today: every date of the story follows it


def _project_name(root: Path) -> str:
    return re.sub(r"[^\w\-. ]", "-", root.name)[:100] or "demo"


def _updater(status_update: Progress, title: str) -> Progress:
    return lambda detail: status_update(f"{title}: {detail}")


def run_demo(config: DemoConfig | None = None, *, console: Console | None = None,
             steps: Sequence[Step] | None = None) -> DemoResult:
    """Create the demo project and run every step, telling the story on ``console``.

    The project starts clean: what an earlier demo left in the folder is cleared first (see
    :mod:`~modelyard.demo.workspace`). Every date follows ``config.today`` (see
    :mod:`~modelyard.demo.clock`)."""
    config = config or DemoConfig()
    config.validate()
    require_sklearn()
    # written to the stream of this moment: a pipeline run captures sys.stdout while it
    # goes on, and the story's progress line stays on the terminal, out of the run's logs
    console = console or Console(file=sys.stdout)
    began = time.perf_counter()
    clock = config.clock()
    path = config.path.expanduser().resolve()
    prepared = prepare_folder(path)
    root = init_project(path, _project_name(path), exist_ok=True)
    mark(root, {"seed": config.seed, "customers": config.customers,
                "today": clock.today.isoformat()})
    with connect(project=root) as yard:
        story.tell_intro(config, root, clock, prepared.cleared,
                         outside_stores(yard.settings, root), console)
        with yard.start_run(config.experiment, name="claims-demo",
                            tags={DEMO_TAG: "claims"}) as parent:
            parent.log_params({"demo.seed": config.seed, "demo.customers": config.customers,
                               "demo.months": config.months,
                               "demo.today": clock.today.isoformat()})
            state = DemoState(config, yard, root, parent, clock)
            for step in steps if steps is not None else default_steps():
                with console.status(f"{step.title}...") as status:
                    step.action(state, _updater(status.update, step.title))
                step.tell(state, console)
    seconds = time.perf_counter() - began
    story.tell_outro(state, seconds, console)
    return DemoResult(
        root=root, experiment=config.experiment, parent_run_id=parent.run_id,
        candidate_run_ids=[r.run_id for r in state.results],
        best_run_id=state.best.info.run_id if state.best is not None else None,
        data_files={f.name: f.path for f in state.files}, data_version=state.data_version,
        definitions_file=state.definitions_file,
        commits={i.source: i.commit.commit_id for i in state.ingestions},
        training_set_id=(state.training_set.training_set_id
                         if state.training_set is not None else None),
        seconds=seconds, today=clock.today,
    )
