"""The files the pipelines benchmark writes: one training function, and the same function
bare, as a modelyard pipeline, as a Metaflow flow and as a ZenML pipeline.

Each tool's folder gets a copy of ``train_fn.py`` (the function itself, byte for byte) that
its wrapper imports; modelyard stores a pipeline with its file's code, so there the same
text is pasted into ``pipelines.py``. ``KEEP`` decides whether the fitted model is kept
as an artifact too (Metaflow: ``self.model``; ZenML: the step returns it; modelyard:
``ctx.run.log_pickle``), or only its score (a Metaflow artifact, a ZenML step output, a
modelyard metric). Only the standard library is imported here.
"""

from __future__ import annotations

TRAIN_FN = '''
"""The training function every tool runs: a small scikit-learn fit, so overhead shows."""


def train(path):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    data = np.load(path)
    model = LogisticRegression(max_iter=500).fit(data["x"], data["y"])
    return model, float(model.score(data["x"], data["y"]))
'''

# --- bare: the function in a plain script (cold) or called in a loop (warm) -----------------

BARE = '''
import sys

from train_fn import train

model, score = train(sys.argv[1])
print("score", score)
'''

# --- modelyard ---------------------------------------------------------------------------

# the stored code is the whole file, so the function is pasted in (the same text)
MODELYARD_PIPELINE = '''
import modelyard

{train_fn}

DATA = {data!r}


@modelyard.pipeline(name="bench_train", params={{"keep": False}})
def bench_train(ctx):
    model, score = train(DATA)
    ctx.run.log_metrics({{"score": score}})
    if ctx.params["keep"]:
        ctx.run.log_pickle(model, "model.pkl")
'''

MODELYARD_API = '''
import sys

import modelyard

yard = modelyard.connect()
run = yard.pipelines.run("bench_train", {{"keep": sys.argv[1] == "1"}})
assert run.status == "succeeded", run.error
'''

# --- Metaflow ----------------------------------------------------------------------------

METAFLOW_FLOW = '''
from metaflow import FlowSpec, Parameter, step

DATA = {data!r}


class BenchTrain(FlowSpec):
    keep = Parameter("keep", default=0, type=int)

    @step
    def start(self):
        from train_fn import train

        model, self.score = train(DATA)
        if self.keep:
            self.model = model
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BenchTrain()
'''

# --- ZenML -------------------------------------------------------------------------------

ZENML_PIPELINE = '''
import sys
from typing import Any, Tuple

from typing_extensions import Annotated
from zenml import pipeline, step

DATA = {data!r}


@step(enable_cache=False)
def fit_score() -> float:
    from train_fn import train

    return train(DATA)[1]


@step(enable_cache=False)
def fit_keep() -> Tuple[Annotated[Any, "model"], Annotated[float, "score"]]:
    from train_fn import train

    return train(DATA)


@pipeline(enable_cache=False)
def bench_train_score():
    fit_score()


@pipeline(enable_cache=False)
def bench_train_keep():
    fit_keep()


def run(keep):
    (bench_train_keep if keep else bench_train_score)()


if __name__ == "__main__":
    run(sys.argv[1] == "1")
'''

# --- warm: one long process, the same call repeated (stdin: "score" / "keep" per line) ---

WARM_BARE = '''
import os
import sys
import time

sys.path.insert(0, {bench!r})
from common import emit, serve  # noqa: E402
from train_fn import train  # noqa: E402

DATA = {data!r}


def cpu_seconds():  # this process and the ones it started and waited for (git, ...)
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def once():
    began, cpu = time.perf_counter(), cpu_seconds()
    train(DATA)
    return [time.perf_counter() - began, cpu_seconds() - cpu]


serve({{"score": once, "keep": once}})
'''

WARM_MODELYARD = '''
import os
import sys
import time

sys.path.insert(0, {bench!r})
from common import emit, serve  # noqa: E402

import modelyard  # noqa: E402
from modelyard.pipelines.worker import Worker  # noqa: E402

yard = modelyard.connect()
worker = Worker(yard.pipelines, poll_seconds=0.05)
MODE = sys.argv[1]  # api | worker


def cpu_seconds():  # this process and the ones it started and waited for (git, ...)
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def once(keep):
    began, cpu = time.perf_counter(), cpu_seconds()
    if MODE == "api":
        run = yard.pipelines.run("bench_train", {{"keep": keep}})
    else:
        queued = yard.pipelines.enqueue("bench_train", {{"keep": keep}})
        worker.run(max_runs=1)
        run = yard.pipelines.get_run(queued.run_id)
    assert run.status == "succeeded", run.error
    return [time.perf_counter() - began, cpu_seconds() - cpu]


serve({{"score": lambda: once(False), "keep": lambda: once(True)}})
'''

WARM_ZENML = '''
import os
import sys
import time

sys.path.insert(0, {bench!r})
from common import emit, serve  # noqa: E402
from zen_run import run  # noqa: E402


def cpu_seconds():  # this process and the ones it started and waited for (git, ...)
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def once(keep):
    began, cpu = time.perf_counter(), cpu_seconds()
    run(keep)
    return [time.perf_counter() - began, cpu_seconds() - cpu]


serve({{"score": lambda: once(False), "keep": lambda: once(True)}})
'''
