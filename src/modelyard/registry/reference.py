"""The reference profile kept with a version at registration, so that monitoring never needs
the training data again.

The model's input columns of the training set (or of the input example) are profiled with
:func:`modelyard.stats.profile.build_profile`, together with the model's predictions on them:
up to :data:`PROFILE_ROWS` rows, drawn at random (seeded) beyond that. The profile's JSON
goes to the artifact store; the version's spec records its sha256 (``reference_sha256``)
and row count (``reference_rows``). A profile that cannot be built (a column of nested
values, a model that fails on the full training set) does not stop the registration: it is
left out with a one-line :class:`ReferenceProfileWarning` saying why, and can be set later
with ``yard.monitoring.set_reference``. A model that cannot take the nulls some rows hold is
profiled on the other rows (see :mod:`modelyard.registry.nulls`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from modelyard.stats.profile import PROFILE_ROWS, profile_rows

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from modelyard.stats.profile import ReferenceProfile

__all__ = ["PROFILE_ROWS", "ReferenceProfileWarning", "profile_rows", "reference_profile"]


class ReferenceProfileWarning(UserWarning):
    """A version was registered without a reference profile."""


def reference_profile(model: Any, table: pa.Table, name: str, *,
                      like: pd.DataFrame | None = None, what: str = "the training set"
                      ) -> ReferenceProfile | None:
    """The profile of ``table`` and of ``model``'s predictions on it, or None (with a
    one-line warning) when it cannot be built. Columns are first given the dtypes they have
    in ``like`` (the rows the model's signature was inferred from), so that the profile
    describes the inputs as the model is served them. A model that cannot take the nulls
    of some rows is profiled on the others (with a one-line NullRowsWarning)."""
    from modelyard.registry.nulls import (
        describe_nulls,
        first_line,
        model_input,
        null_counts,
        warn,
    )
    from modelyard.stats.profile import build_profile

    frame = table.to_pandas()
    for column in [] if like is None else [c for c in frame.columns if c in like.columns]:
        if frame[column].dtype != like[column].dtype:  # type: ignore[index]
            with contextlib.suppress(ValueError, TypeError):  # else profiled as it is
                frame[column] = frame[column].astype(like[column].dtype)  # type: ignore[index]
    try:
        try:
            predictions = model.predict(model_input(model, frame))
        except Exception as exc:
            nulls = null_counts(frame)
            complete = frame.dropna().reset_index(drop=True)
            if not nulls or complete.empty:
                raise
            predictions = model.predict(model_input(model, complete))
            warn(f"model {name!r} cannot take nulls ({first_line(exc)}): its reference "
                 f"profile covers the {len(complete)} rows of {what} without them "
                 f"({describe_nulls(nulls, len(frame))})")
            frame = complete
        return build_profile(frame, predictions)
    except Exception as exc:
        warn(f"model {name!r} is registered without a reference profile for monitoring: "
             f"{first_line(exc)}", ReferenceProfileWarning)
        return None
