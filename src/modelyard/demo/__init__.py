"""``modelyard demo``: a realistic insurance-claims project, from raw data to the best model.

The demo is a list of steps (:mod:`modelyard.demo.steps`) run inside one tracked parent run:
generate the data (:mod:`~modelyard.demo.data`), define the features in the project's
``features.py`` (:mod:`~modelyard.demo.claims_features`), apply them and ingest the sources
(:mod:`~modelyard.demo.feature_store`), build a point-in-time-correct training set, train
candidates on it in child runs (:mod:`~modelyard.demo.training`), pick the best, then serve,
promote and monitor it; each step tells its chapter of the story (:mod:`~modelyard.demo.story`).
Every date follows one today (:mod:`~modelyard.demo.clock`), and each run starts a clean
project (:mod:`~modelyard.demo.workspace`).
"""

from __future__ import annotations

from modelyard.demo.data import ClaimsData, generate
from modelyard.demo.runner import DemoResult, run_demo
from modelyard.demo.state import DemoConfig, DemoState
from modelyard.demo.steps import Step, default_steps

__all__ = [
    "ClaimsData",
    "DemoConfig",
    "DemoResult",
    "DemoState",
    "Step",
    "default_steps",
    "generate",
    "run_demo",
]
