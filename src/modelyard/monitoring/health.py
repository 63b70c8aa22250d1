"""Service health of a served model over a time window, from its prediction log.

::

    from modelyard.monitoring.health import service_health

    store = yard.predictions
    health = service_health(store.read("claims-model", start_us=t0, end_us=t1),
                            store.read_failures("claims-model", start_us=t0, end_us=t1),
                            start_us=t0, end_us=t1, period_us=3_600_000_000)
    health.error_rate, health.latency_ms.p99, health.versions[4].requests
    health.to_dict()                               # JSON-safe: None where undefined

A request is a distinct ``request_id``: its rows share one latency, so latency percentiles are
taken over requests, never rows (NumPy's ``percentile``, linear interpolation). A request whose
rows have no latency (null ``latency_ms``: rows scored in batch and written to the log, not
served) counts in ``requests``, ``rows`` and the rates, and in ``unmeasured``, but not in the
latency percentiles, which are those of the served requests alone (None when there were
none). A failed
request is one failure record; ``error_rate`` is ``errors / (requests + errors)``, and
``rate_per_minute`` counts both over the window. The totals and ``periods`` are what clients
saw (primary and canary answers); a shadow's answers and failures show only under its
version, in ``roles["shadow"]`` (a version that answers a request in two roles, as canary
and as shadow, counts it in each). Failures whose version is unknown (no version was
loaded) count in the totals only. Pass one model's frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["LatencySummary", "PeriodHealth", "ServiceHealth", "Traffic", "VersionHealth",
           "service_health"]

MAX_PERIODS = 10_000
_PREDICTION_COLUMNS = ("request_id", "version", "role", "at_us", "latency_ms")
_FAILURE_COLUMNS = ("request_id", "version", "role", "at_us", "status")


@dataclass(frozen=True)
class LatencySummary:
    """Latency of successful requests in milliseconds; None when there were none."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass(frozen=True)
class Traffic:
    """Requests answered and failed, with their latency, over a window."""

    requests: int  # answered requests (distinct request ids, per role)
    rows: int  # rows predicted for them
    unmeasured: int  # answered requests without a latency (scored in batch, not served)
    errors: int  # failed requests
    client_errors: int  # failed with a 4xx status
    server_errors: int  # failed with a 5xx status
    error_rate: float | None  # errors / (requests + errors); None when both are 0
    rate_per_minute: float  # (requests + errors) per minute of the window
    latency_ms: LatencySummary

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "rows": self.rows, "unmeasured": self.unmeasured,
                "errors": self.errors,
                "client_errors": self.client_errors, "server_errors": self.server_errors,
                "error_rate": self.error_rate, "rate_per_minute": self.rate_per_minute,
                "latency_ms": self.latency_ms.to_dict()}


@dataclass(frozen=True)
class VersionHealth(Traffic):
    """One version's traffic in every role, and split by role."""

    roles: Mapping[str, Traffic] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(),
                "roles": {role: t.to_dict() for role, t in self.roles.items()}}


@dataclass(frozen=True)
class PeriodHealth:
    """One period of the window: requests answered and failed, and the p99 latency of
    those served (None when none had a latency)."""

    start_us: int
    requests: int
    errors: int
    latency_p99_ms: float | None
    unmeasured: int = 0  # of the requests, those without a latency (scored in batch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ServiceHealth(Traffic):
    """What clients saw of a model over ``[start_us, end_us)``: see the module docs."""

    start_us: int = 0
    end_us: int = 0
    versions: Mapping[int, VersionHealth] = field(default_factory=dict)
    periods: tuple[PeriodHealth, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(),
                "versions": {str(v): h.to_dict() for v, h in self.versions.items()},
                "periods": [p.to_dict() for p in self.periods]}


def service_health(predictions: pd.DataFrame, failures: pd.DataFrame, *, start_us: int,
                   end_us: int, period_us: int | None = None) -> ServiceHealth:
    """The health of one model's service over ``start_us <= at_us < end_us`` (rows outside
    are ignored): ``predictions`` as ``PredictionStore.read`` returns them, ``failures`` as
    ``read_failures`` does. With ``period_us``, ``periods`` splits the window into periods
    of that length (the last may be shorter)."""
    count = _check_window(start_us, end_us, period_us)
    answers = _answers(_window(predictions, _PREDICTION_COLUMNS, "predictions", start_us,
                               end_us))
    failed = _window(failures, _FAILURE_COLUMNS, "failures", start_us, end_us)
    minutes = (end_us - start_us) / 60_000_000
    seen = answers[answers["role"] != "shadow"]
    seen_failed = failed[failed["role"] != "shadow"]  # a shadow's failures: its version's
    versions: dict[int, VersionHealth] = {}
    known = failed["version"].notna()
    for version in sorted({*map(int, answers["version"]), *map(int, failed["version"][known])}):
        mine = answers[answers["version"] == version]
        mine_failed = failed[known & (failed["version"] == version)]
        roles = {str(role): _traffic(mine[mine["role"] == role],
                                     mine_failed[mine_failed["role"] == role], minutes)
                 for role in sorted({*mine["role"], *mine_failed["role"].dropna()})}
        versions[version] = VersionHealth(**vars(_traffic(mine, mine_failed, minutes)),
                                          roles=roles)
    periods: tuple[PeriodHealth, ...] = ()
    if period_us is not None:
        periods = _periods(seen, seen_failed, start_us, period_us, count)
    return ServiceHealth(**vars(_traffic(seen, seen_failed, minutes)), start_us=start_us,
                         end_us=end_us, versions=versions, periods=periods)


def _check_window(start_us: int, end_us: int, period_us: int | None) -> int:
    """The number of periods (0 without ``period_us``), or InvalidInputError."""
    for name, value in (("start_us", start_us), ("end_us", end_us), ("period_us", period_us)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInputError(f"{name!r} must be epoch microseconds (an integer), got "
                                    f"{value!r}", field=name)
    if end_us <= start_us:
        raise InvalidInputError(f"the window ends ({end_us}) before it starts ({start_us})",
                                field="end_us")
    if period_us is None:
        return 0
    if period_us <= 0:
        raise InvalidInputError(f"'period_us' must be positive, got {period_us}",
                                field="period_us")
    count = -(-(end_us - start_us) // period_us)
    if count > MAX_PERIODS:
        raise InvalidInputError(f"{count:,} periods of {period_us} us in the window; at "
                                f"most {MAX_PERIODS:,} fit: choose a longer period",
                                field="period_us")
    return count


def _window(frame: pd.DataFrame, columns: tuple[str, ...], what: str, start_us: int,
            end_us: int) -> pd.DataFrame:
    """The frame's rows in the window, with the columns used here."""
    import pandas as pd

    if len(frame) == 0:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"the {what} frame lacks the column(s) {', '.join(missing)}",
                                field=what)
    at = frame["at_us"]
    return frame.loc[(at >= start_us) & (at < end_us), list(columns)]


def _answers(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per answer (request, version, role): its time, latency and row count. (Only
    a client that reuses a request id has one id answered twice outside the shadow.)"""
    import pandas as pd

    if len(predictions) == 0:
        return pd.DataFrame({c: pd.Series([], dtype=object)
                             for c in ("request_id", "version", "role", "at_us", "latency_ms",
                                       "rows")})
    grouped = predictions.groupby(["request_id", "version", "role"], sort=False)
    return grouped.agg(at_us=("at_us", "first"), latency_ms=("latency_ms", "first"),
                       rows=("at_us", "size")).reset_index()


def _traffic(answers: pd.DataFrame, failed: pd.DataFrame, minutes: float) -> Traffic:
    requests = len(answers)
    status = failed["status"].astype("int64")
    errors = len(failed)
    seen = requests + errors
    unmeasured = int(answers["latency_ms"].isna().sum()) if requests else 0
    return Traffic(requests=requests, rows=int(answers["rows"].sum()), unmeasured=unmeasured,
                   errors=errors,
                   client_errors=int(((status >= 400) & (status < 500)).sum()),
                   server_errors=int((status >= 500).sum()),
                   error_rate=errors / seen if seen else None,
                   rate_per_minute=seen / minutes, latency_ms=_latency(answers))


def _latency(answers: pd.DataFrame) -> LatencySummary:
    import numpy as np

    values = _measured(answers)
    if not len(values):
        return LatencySummary()
    p50, p90, p99 = (float(p) for p in np.percentile(values, [50, 90, 99]))
    return LatencySummary(p50, p90, p99, float(np.mean(values)))


def _measured(answers: pd.DataFrame) -> np.ndarray[Any, Any]:
    """The latencies of the answers that have one (a null is a request not served)."""
    import numpy as np

    values: np.ndarray[Any, Any] = answers["latency_ms"].to_numpy(dtype="float64")
    kept: np.ndarray[Any, Any] = values[~np.isnan(values)]
    return kept


def _periods(answers: pd.DataFrame, failed: pd.DataFrame, start_us: int, period_us: int,
             count: int) -> tuple[PeriodHealth, ...]:
    import numpy as np

    answered = answers.assign(period=(answers["at_us"].astype("int64") - start_us)
                              // period_us)
    errors = ((failed["at_us"].astype("int64") - start_us) // period_us).value_counts()
    by_period = dict(iter(answered.groupby("period")))
    periods = []
    for k in range(count):
        mine = by_period.get(k)
        latencies = np.empty(0) if mine is None else _measured(mine)
        periods.append(PeriodHealth(
            start_us=start_us + k * period_us, requests=0 if mine is None else len(mine),
            errors=int(errors.get(k, 0)),
            latency_p99_ms=float(np.percentile(latencies, 99)) if len(latencies) else None,
            unmeasured=0 if mine is None else len(mine) - len(latencies)))
    return tuple(periods)
