"""What the demo is asked to do, and what its steps have produced so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from modelyard.demo.clock import DemoClock
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.backends.metadata.base import RunRecord
    from modelyard.backends.metadata.materializations import MaterializationRecord
    from modelyard.client import Yard
    from modelyard.demo.data import ClaimsData
    from modelyard.demo.feature_store import Ingestion
    from modelyard.demo.files import DataFile
    from modelyard.demo.monitoring import AfterOutcome, WatchOutcome
    from modelyard.demo.registry import RegistryOutcome
    from modelyard.demo.retraining import RetrainOutcome
    from modelyard.demo.serving import LiveOutcome
    from modelyard.demo.training import CandidateResult, TimeSplit
    from modelyard.features.lookup import OnlineResult
    from modelyard.features.online import Freshness
    from modelyard.features.registry import AnyDefinition, Change
    from modelyard.features.skew import SkewReport
    from modelyard.features.training import TrainingSet
    from modelyard.tracking.run import Run

T = TypeVar("T")

MIN_CUSTOMERS = 200
MAX_CUSTOMERS = 2_000_000


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``modelyard demo``; the defaults make the full-size demo."""

    path: Path = Path("demo-project")
    seed: int = 42
    customers: int = 20_000
    months: int = 18
    shift_months: int = 6
    train_months: int = 10
    valid_months: int = 2
    experiment: str = "claims-demo"
    today: date | None = None  # the demo's today; None: the system's date (UTC)

    def clock(self) -> DemoClock:
        """The calendar the demo runs on: :attr:`today`, or the system's date."""
        return DemoClock.for_today(self.today)

    def validate(self) -> None:
        if not MIN_CUSTOMERS <= self.customers <= MAX_CUSTOMERS:
            raise InvalidInputError(
                f"customers must be between {MIN_CUSTOMERS:,} and {MAX_CUSTOMERS:,}, "
                f"got {self.customers:,}", field="customers",
            )
        if self.seed < 0:
            raise InvalidInputError(f"seed must be 0 or more, got {self.seed}", field="seed")
        if self.train_months < 1 or self.valid_months < 1 or self.shift_months < 0:
            raise InvalidInputError(
                "train_months and valid_months must be at least 1 and shift_months at least 0",
                field="months",
            )
        if self.train_months + self.valid_months > self.months - self.shift_months:
            raise InvalidInputError(
                f"training ({self.train_months}) and validation ({self.valid_months}) months "
                f"must end before the last {self.shift_months} months of drift "
                f"(of {self.months} months in all)", field="months",
            )
        self.clock()  # today within the supported range


@dataclass
class DemoState:
    """Shared by the steps: each reads what earlier steps left and adds its own results."""

    config: DemoConfig
    yard: Yard
    root: Path
    parent: Run
    clock: DemoClock = field(default_factory=DemoClock.for_today)
    data: ClaimsData | None = None
    files: list[DataFile] = field(default_factory=list)
    data_version: str = ""
    definitions_file: Path | None = None
    definitions_backup: Path | None = None
    definitions: list[AnyDefinition] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    ingestions: list[Ingestion] = field(default_factory=list)
    training_set: TrainingSet | None = None
    frame: pd.DataFrame | None = None  # the training set's rows as the models take them
    split: TimeSplit | None = None
    results: list[CandidateResult] = field(default_factory=list)
    best: RunRecord | None = None
    materializations: list[MaterializationRecord] = field(default_factory=list)
    lookup: OnlineResult | None = None
    lookup_at: datetime | None = None  # the demo's now when the lookup was made
    freshness: list[Freshness] = field(default_factory=list)
    skew: SkewReport | None = None
    registry: RegistryOutcome | None = None
    live: LiveOutcome | None = None
    watch: WatchOutcome | None = None
    pipelines_file: Path | None = None
    pipelines_backup: Path | None = None
    retrain: RetrainOutcome | None = None
    after: AfterOutcome | None = None

    @property
    def experiment(self) -> str:
        return self.config.experiment

    def data_params(self) -> dict[str, str]:
        """The data fingerprint as params: one sha256 per file and one for the set."""
        params = {f"data.{f.name}.sha256": f.sha256 for f in self.files}
        params["data.version"] = self.data_version
        return params


def need(value: T | None, what: str) -> T:
    """``value``, or a clear error when the step that makes it has not run."""
    if value is None:
        raise InvalidInputError(f"the demo has no {what} yet: its step must run first",
                                field=what)
    return value
