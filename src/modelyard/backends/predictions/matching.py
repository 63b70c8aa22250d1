"""Which logged prediction each label belongs to; the same rule for every store.

A label by request belongs to the prediction row ``(request_id, row)`` when one was logged
for the model (any version or role). A label by entity and time T belongs to the latest
prediction about that entity made at or before T; when several were made at that same
microsecond, to the greatest ``(request_id, row)``. The store only supplies the candidates.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

from modelyard.backends.metadata.predictions import LabelResult
from modelyard.backends.predictions.codec import CheckedLabel
from modelyard.errors import InvalidInputError

__all__ = ["EXAMPLES", "match_labels"]

EXAMPLES = 5  # unmatched labels described in a result or an error

Target = tuple[str, int]  # (request_id, row)


def match_labels(model: str, labels: Sequence[CheckedLabel], logged: set[Target],
                 history: Iterable[tuple[str, int, str, int]]
                 ) -> tuple[dict[Target, str], LabelResult]:
    """Map each label to its prediction row.

    ``logged``: the ``(request_id, row)`` pairs logged for the model among those the
    request labels name; ``history``: ``(entity, at_us, request_id, row)`` of the model's
    predictions about the labelled entities (at least those up to the latest label time).
    Returns the label values per prediction row (a later label in ``labels`` replaces an
    earlier one for the same row) and the counts. Raises InvalidInputError when no label
    matches.
    """
    timeline: dict[str, list[tuple[int, str, int]]] = {}
    for entity, at_us, request_id, row in history:
        timeline.setdefault(entity, []).append((int(at_us), request_id, int(row)))
    instants: dict[str, list[int]] = {}
    for entity, events in timeline.items():
        events.sort()
        instants[entity] = [at for at, _, _ in events]

    targets: dict[Target, str] = {}
    missed: list[CheckedLabel] = []
    for label in labels:
        target: Target | None = None
        if label.request_id is not None:
            if (label.request_id, label.row) in logged:
                target = (label.request_id, label.row)
        elif label.entity in timeline and label.at_us is not None:
            i = bisect_right(instants[label.entity], label.at_us)
            if i:
                _, request_id, row = timeline[label.entity][i - 1]
                target = (request_id, row)
        if target is None:
            missed.append(label)
        else:
            targets[target] = label.values
    examples = tuple(m.describe() for m in missed[:EXAMPLES])
    if labels and not targets:
        raise InvalidInputError(
            f"none of the {len(labels)} labels matches a logged prediction of model "
            f"{model!r} (for example {'; '.join(examples)}); a label attaches to a prediction "
            "already written: flush the prediction log first, and check the model name, "
            "request ids and entity values", field="labels", unmatched=len(labels),
            examples=list(examples))
    return targets, LabelResult(len(labels) - len(missed), len(missed), examples)
