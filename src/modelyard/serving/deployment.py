"""What a server serves for one model name: the primary version, and optionally a canary
that takes a share of traffic and a shadow that sees a copy of it.

Each role is a :class:`Slot` that follows a reference (``claims-model@production``, or a
fixed ``claims-model:3``). :meth:`Slot.refresh` asks the registry which version the alias
names now; when it moved, the new version is loaded *before* anything changes, then swapped
in by replacing one reference. A request picks the slot's current :class:`Served` once, at
its start, and finishes on it, so a swap never fails a request in flight, and a version that
fails to load leaves the old one serving.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.registry.references import ModelRef, parse_ref

if TYPE_CHECKING:
    import numpy as np

    from modelyard.serving.batching import MicroBatcher
    from modelyard.serving.entities import FeatureSource
    from modelyard.serving.loaded import LoadedVersion

__all__ = ["Deployment", "Role", "Served", "Slot", "parse_canary", "parse_target"]

logger = logging.getLogger("modelyard.serving")

Role = Literal["primary", "canary", "shadow"]
_SHARE = re.compile(r"^(?P<target>[^:=]+?)(?::|=)(?P<share>\d+(?:\.\d+)?)%?$")


@dataclass
class Served:
    """A loaded version with what requests to it need: its feature plan and its batcher."""

    loaded: LoadedVersion
    features: FeatureSource | None
    batcher: MicroBatcher | None = None
    explainer: Any = None  # built on the first explain request
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def version(self) -> int:
        return self.loaded.version

    def predict_columns(self, columns: dict[str, list[Any]], rows: int) -> list[Any]:
        if self.loaded.takes_matrix:  # the batcher, if any, joins matrices
            assert self.loaded.decoder is not None
            return self.predict_matrix(self.loaded.decoder.matrix(columns))
        if self.batcher is not None:
            return self.batcher.predict(columns, rows)
        return self.loaded.predict_columns(columns)

    def predict_matrix(self, matrix: np.ndarray) -> list[Any]:
        """Predictions for a checked matrix (only when ``loaded.takes_matrix``)."""
        if self.batcher is not None:
            return self.batcher.predict(matrix, len(matrix))
        return self.loaded.predict_matrix(matrix)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


class Slot:
    """One role of a deployment, following a model reference.

    The version swapped out stays loaded beside the current one (``previous``), so moving the
    alias back (a rollback) is a swap, not a load; it is closed when a third version comes."""

    def __init__(self, ref: ModelRef, role: Role) -> None:
        self.ref = ref
        self.role = role
        self.current: Served | None = None
        self.previous: Served | None = None  # the version swapped out, kept warm
        self.failures = 0  # consecutive failed loads of a new version
        self.last_error: str | None = None

    def __str__(self) -> str:
        return str(self.ref)

    def target(self, resolve: Callable[[ModelRef], int]) -> int:
        """The version the reference names now (a fixed version, or the alias's holder)."""
        return self.ref.version if self.ref.version is not None else resolve(self.ref)

    def refresh(self, resolve: Callable[[ModelRef], int],
                load: Callable[[str, int], Served]) -> tuple[Served | None, Served | None]:
        """Swap in the version the reference names now, if it changed: the one kept warm
        when it is that version, else a new load. Returns the version swapped out (None if
        nothing changed) and the version to close now that it is no longer kept (or None).

        A canary or shadow following an alias that is not set (yet, or any more: a
        pipeline's shadow trial ended) serves nothing in its role, and is no error: what it
        served is swapped out (kept warm like any other)."""
        old = self.current
        try:
            wanted = self.target(resolve)
        except NotFoundError:
            if self.role == "primary" or self.ref.version is not None:
                raise
            self.failures, self.last_error = 0, None
            if old is None:
                return None, None
            dropped, self.current, self.previous = self.previous, None, old
            return old, dropped
        if old is not None and old.version == wanted:
            return None, None
        kept = self.previous
        if kept is not None and kept.version == wanted:
            served, dropped = kept, None
        else:  # the old version keeps serving until this is ready
            served, dropped = load(self.ref.name, wanted), kept
        self.current, self.previous = served, old
        self.failures, self.last_error = 0, None
        return old, dropped

    def close(self) -> None:
        for served in (self.current, self.previous):
            if served is not None:
                served.close()


@dataclass
class Deployment:
    """Everything served under one model name."""

    name: str
    primary: Slot
    canary: Slot | None = None
    canary_share: float = 0.0  # percent of requests
    share_from_trial: bool = False  # the share follows the canary version's shadow trial
    shadow: Slot | None = None
    _random: random.Random = field(default_factory=random.Random)

    def slots(self) -> list[Slot]:
        return [s for s in (self.primary, self.canary, self.shadow) if s is not None]

    def choose(self) -> tuple[Served, Role]:
        """The version that answers this request: the canary for its share, else the
        primary. Raises when nothing is loaded yet."""
        canary = self.canary
        if canary is not None and canary.current is not None and (
                self._random.random() * 100 < self.canary_share):
            return canary.current, "canary"
        served = self.primary.current
        if served is None:
            from modelyard.errors import StorageError

            raise StorageError(f"model {self.name!r} is not loaded yet: "
                               f"{self.primary.last_error or 'still loading'}",
                               model=self.name)
        return served, "primary"

    def answering(self) -> list[tuple[Served, Role]]:
        """The loaded versions that answer requests: the primary, then the canary."""
        slots: list[tuple[Slot | None, Role]] = [(self.primary, "primary"),
                                                 (self.canary, "canary")]
        return [(slot.current, role) for slot, role in slots
                if slot is not None and slot.current is not None]

    def exact(self, version: int) -> tuple[Served, Role]:
        """The primary or the canary when it serves ``version``; NotFoundError otherwise."""
        answering = self.answering()
        for served, role in answering:
            if served.version == version:
                return served, role
        serves = ", ".join(str(s.version) for s, _ in answering) or "none yet"
        raise NotFoundError(f"model {self.name!r} serves version {serves}, not {version}",
                            model=self.name, version=version)


def parse_target(text: str, default_name: str | None = None) -> ModelRef:
    """``name@alias``, ``name:3`` or ``name``; with ``default_name``, a bare ``@alias``,
    ``alias`` or ``3`` means that model."""
    text = text.strip()
    if default_name is not None and (("@" not in text and ":" not in text)
                                     or text.startswith("@")):
        body = text.lstrip("@")
        text = f"{default_name}:{body}" if body.isdigit() else f"{default_name}@{body}"
    return parse_ref(text)


def parse_canary(text: str, default_name: str | None = None
                 ) -> tuple[ModelRef, float | None]:
    """``challenger:10%`` (an alias or version of the served model, or ``model@alias``,
    and the percent of requests it answers). A bare alias (``challenger``,
    ``claims-model@canary``) has no share (None): it answers the share that the shadow
    trial of a pipeline which put the version there declares."""
    bare = text.strip()
    if not any(c in bare for c in ":=%"):
        ref = parse_target(bare, default_name)
        if ref.alias is not None:
            return ref, None
    match = _SHARE.match(bare)
    if match is None:
        raise InvalidInputError(
            f"canary {text!r} is not TARGET:PERCENT or an alias, like 'challenger:10%', "
            "'claims-model@challenger:5%' or 'claims-model@canary'", field="canary")
    share = float(match["share"])
    if not 0 < share <= 100:
        raise InvalidInputError(f"the canary's share must be above 0 and at most 100 percent, "
                                f"got {share:g}", field="canary")
    return parse_target(match["target"], default_name), share
