"""The demo as a list of steps: each does its work, then tells its part of the story.

A step is an action on the shared :class:`DemoState` plus a chapter of the story. Adding a
stage to the demo means writing those two functions and placing a :class:`Step` in
:func:`default_steps`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from modelyard.demo import story, watch_story
from modelyard.demo.candidates import default_candidates
from modelyard.demo.data import generate
from modelyard.demo.feature_store import (
    COMMIT_TAG,
    ingest_file,
    read_definitions,
    sources,
    write_definitions,
)
from modelyard.demo.files import DATA_FOLDER, fingerprint, write_table
from modelyard.demo.monitoring import watch_after, watch_production
from modelyard.demo.online import serve_online
from modelyard.demo.registry import manage_models
from modelyard.demo.retraining import retrain
from modelyard.demo.serving import serve_live
from modelyard.demo.state import DemoState, need
from modelyard.demo.training import (
    build_training_set,
    model_frame,
    split_bounds,
    time_split,
    train_all,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    action: Callable[[DemoState, Progress], None]
    tell: Callable[[DemoState, Console], None]


def generate_data(state: DemoState, progress: Progress) -> None:
    """Generate policy holders and claims up to the start of today's month, write them as
    Parquet, fingerprint them."""
    cfg = state.config
    progress(f"{cfg.customers:,} policy holders and their claims")
    state.data = generate(cfg.customers, cfg.seed, start=state.clock.history_start(cfg.months),
                          months=cfg.months, shift_months=cfg.shift_months)
    progress("writing Parquet files")
    folder = state.root / DATA_FOLDER
    state.files = [write_table(state.data.policyholders, folder, "policyholders"),
                   write_table(state.data.claims, folder, "claims")]
    state.data_version = fingerprint(state.files)
    state.parent.log_params(state.data_params())
    state.parent.log_params({f"data.{f.name}.rows": f.rows for f in state.files})
    state.parent.set_tag("data.version", state.data_version)


def define_features(state: DemoState, progress: Progress) -> None:
    """Write the definitions to the project's features.py, load them back, plan, apply."""
    progress("writing features.py")
    path, state.definitions_backup = write_definitions(state.root)
    state.definitions_file = path
    state.definitions = read_definitions(path)
    progress("planning")
    state.changes = state.yard.features.plan(state.definitions)
    progress("applying")
    state.yard.apply(state.definitions)


def ingest_sources(state: DemoState, progress: Progress) -> None:
    """Ingest each source's Parquet file (one commit each) and read its stored profile."""
    files = {f.name: f for f in state.files}
    state.ingestions = []
    for source in sources(state.definitions):
        progress(f"{source.name} from {files[source.name].path.name}")
        done = ingest_file(state.yard, state.experiment, source, files[source.name])
        state.ingestions.append(done)
        state.parent.set_tag(COMMIT_TAG.format(source=source.name), done.commit.commit_id)


def make_training_set(state: DemoState, progress: Progress) -> None:
    """One row per claim up to the end of validation, its features as of just before it."""
    cfg, data = state.config, need(state.data, "data")
    _, end = split_bounds(data.start, cfg.train_months, cfg.valid_months)
    progress("point-in-time joins")
    state.training_set = build_training_set(state.yard, data.claims, end)
    state.frame = model_frame(state.training_set)
    state.parent.log_training_set(state.training_set)


def train_candidates(state: DemoState, progress: Progress) -> None:
    """Fit every candidate on the early months, each in a child run, scored on a later slice."""
    cfg, data = state.config, need(state.data, "data")
    training_set = need(state.training_set, "training set")
    state.split = time_split(need(state.frame, "training set"), data.start, cfg.train_months,
                             cfg.valid_months)
    state.parent.log_params(state.split.params())
    state.results = train_all(state.yard, state.experiment, default_candidates(cfg.seed),
                              state.split, parent=state.parent,
                              data_params=state.data_params(), training_set=training_set,
                              progress=progress)


def pick_best(state: DemoState, progress: Progress) -> None:
    """Ask the tracking store for the best candidate of this demo by validation r2."""
    progress("querying the runs")
    state.best = state.yard.best_run(state.experiment, "r2",
                                     filter=f"parent_run_id = '{state.parent.run_id}'")
    state.parent.set_tags({"demo.best_run_id": state.best.info.run_id,
                           "demo.best_model": state.best.info.name})
    state.parent.log_metric("best_r2", state.best.metrics["r2"].value)


def default_steps() -> list[Step]:
    return [
        Step("data", "Generating insurance claims", generate_data, story.tell_data),
        Step("features", "Defining features", define_features, story.tell_features),
        Step("ingest", "Ingesting the sources", ingest_sources, story.tell_ingestion),
        Step("training_set", "Building the training set", make_training_set,
             story.tell_training_set),
        Step("train", "Training candidate models", train_candidates, story.tell_training),
        Step("best", "Picking the best candidate", pick_best, story.tell_best),
        Step("online", "Serving features online", serve_online, story.tell_online),
        Step("registry", "Registering and promoting the model", manage_models,
             story.tell_registry),
        Step("serving", "Serving the model", serve_live, story.tell_serving),
        Step("monitoring", "Watching production as the world drifts", watch_production,
             watch_story.tell_monitoring),
        Step("retraining", "Retraining on the alert", retrain, watch_story.tell_retraining),
        Step("after", "Watching the months after the retraining", watch_after,
             watch_story.tell_after),
    ]
