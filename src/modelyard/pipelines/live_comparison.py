"""The live comparison of a candidate and its champion from the prediction log.

Given the model's logged predictions (``PredictionStore.read``) and failed requests
(``read_failures``) over a trial, :func:`compare` measures each version in its role:

- requests, rows, failures and the error rate (``failures / (requests + failures)``);
- p50 and p95 latency over requests (a shadow's latency is its own computation, the
  champion's the whole request as its client saw it);
- on rows whose labels have arrived, the registry's metrics (the same names and
  scikit-learn calls as an offline evaluation: ``rmse``, ``mae``, ``r2``... or
  ``accuracy``, ``f1``...);
- in shadow mode, both on exactly the same request rows (those both answered), and the
  *agreement*: the share of those rows given the same prediction (numbers within a relative
  tolerance), with the largest absolute difference. A canary answers other requests than
  the champion, so each is measured on its own and there is no agreement.

Pure: reads frames, returns plain JSON-able data; the trial (:mod:`.shadowing`) decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LiveComparison", "compare"]


@dataclass(frozen=True)
class LiveComparison:
    mode: str  # shadow | canary
    candidate: dict[str, Any]  # version, role, requests, rows, failures, error_rate, ...
    champion: dict[str, Any]
    compared_requests: int  # shadow: requests both answered; canary: the candidate's
    compared_rows: int
    labelled_rows: int  # of the compared rows (shadow) or the candidate's (canary)
    task: str | None
    agreement: float | None
    max_abs_diff: float | None
    output: str | None  # the output column compared

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _output_column(frame: pd.DataFrame) -> str | None:
    outputs = [c for c in frame.columns if str(c).startswith("output.")]
    if "output.prediction" in outputs:
        return "output.prediction"
    return outputs[0] if outputs else None


def _label_column(frame: pd.DataFrame, label: str | None) -> str | None:
    if label is not None and f"label.{label}" in frame.columns:
        return f"label.{label}"
    labels = [c for c in frame.columns if str(c).startswith("label.")]
    return labels[0] if len(labels) == 1 else None


def _percentile(values: Any, q: float) -> float | None:
    import numpy as np

    found = np.asarray([v for v in values if v is not None and v == v], dtype=float)
    return None if not len(found) else float(np.percentile(found, q))


def _side(answers: pd.DataFrame, failures: pd.DataFrame, version: int, role: str
          ) -> dict[str, Any]:
    requests = int(answers["request_id"].nunique()) if len(answers) else 0
    failed = int(failures["request_id"].nunique()) if len(failures) else 0
    latency = (answers.groupby("request_id")["latency_ms"].max() if len(answers)
               else answers.get("latency_ms", []))
    total = requests + failed
    return {"version": version, "role": role, "requests": requests, "rows": len(answers),
            "failures": failed, "error_rate": failed / total if total else 0.0,
            "latency_p50_ms": _percentile(latency, 50),
            "latency_p95_ms": _percentile(latency, 95), "metrics": {}}


def _metrics(labels: Any, predictions: Any, task: str) -> tuple[dict[str, float],
                                                                 dict[str, str]]:
    from modelyard.registry.metrics import metric_scorer

    skipped: dict[str, str] = {}
    scores = metric_scorer(labels, predictions, task=task)(None, skipped)  # type: ignore[arg-type]
    return {k: float(v) for k, v in scores.items()}, skipped


def _agreement(mine: Any, theirs: Any, rtol: float) -> tuple[float | None, float | None]:
    import numpy as np
    import pandas as pd

    if not len(mine):
        return None, None
    a, b = pd.to_numeric(mine, errors="coerce"), pd.to_numeric(theirs, errors="coerce")
    if a.notna().all() and b.notna().all():
        x, y = a.to_numpy(float), b.to_numpy(float)
        same = np.isclose(x, y, rtol=rtol, atol=0.0)
        return float(same.mean()), float(np.max(np.abs(x - y)))
    same = [m == t for m, t in zip(mine, theirs, strict=True)]
    return sum(same) / len(same), None


def compare(predictions: pd.DataFrame, failures: pd.DataFrame, *, mode: str,
            candidate: int, champion: int, label: str | None = None,
            rtol: float = 1e-6) -> LiveComparison:
    """Measure ``candidate`` (in role ``mode``) against ``champion`` (role ``primary``)
    from one model's logged predictions and failures over the trial (see the module)."""
    from modelyard.registry.evaluation import infer_task

    role = "shadow" if mode == "shadow" else "canary"
    frame = predictions
    mine = frame[(frame["version"] == candidate) & (frame["role"] == role)]
    theirs = frame[(frame["version"] == champion) & (frame["role"] == "primary")]
    has_version = "version" in failures.columns and len(failures)
    my_failures = failures[(failures["version"] == candidate) & (failures["role"] == role)] \
        if has_version else failures.iloc[0:0]
    their_failures = failures[(failures["version"] == champion)
                              & (failures["role"] == "primary")] if has_version \
        else failures.iloc[0:0]
    output = _output_column(frame)
    label_column = _label_column(frame, label)
    if mode == "shadow":
        keys = ["request_id", "row"]
        both = mine.merge(theirs, on=keys, suffixes=("", ".champion"))
        mine = mine.merge(both[keys], on=keys)
        theirs = theirs.merge(both[keys], on=keys)
    cand, champ = _side(mine, my_failures, candidate, role), _side(
        theirs, their_failures, champion, "primary")
    agreement = max_diff = None
    task: str | None = None
    labelled = 0
    if output is not None and mode == "shadow" and len(mine):
        joined = mine[["request_id", "row", output]].merge(
            theirs[["request_id", "row", output]], on=["request_id", "row"],
            suffixes=("", ".champion"))
        usable = joined[joined[output].notna() & joined[f"{output}.champion"].notna()]
        agreement, max_diff = _agreement(usable[output].reset_index(drop=True),
                                         usable[f"{output}.champion"].reset_index(drop=True),
                                         rtol)
    if output is not None and label_column is not None:
        sides = [(cand, mine), (champ, theirs)]
        for side, rows in sides:
            known = rows[rows[label_column].notna() & rows[output].notna()]
            if side is cand:
                labelled = len(known)
            if not len(known):
                continue
            task = task or infer_task(known[label_column])
            side["labelled_rows"] = len(known)
            side["metrics"], side["skipped"] = _metrics(known[label_column], known[output],
                                                        task)
    compared = cand["requests"]
    return LiveComparison(mode, cand, champ, compared, len(mine), labelled, task, agreement,
                          max_diff, None if output is None else output[len("output."):])
