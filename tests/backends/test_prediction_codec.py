"""The prediction frame's JSON columns: Arrow's reader and the row-by-row decoder give the
same frame, whatever the values."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.backends.predictions.codec import _expand_arrow, _expand_python

_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                    st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False, width=64),
                    st.text(max_size=5), st.lists(st.integers(), max_size=2),
                    st.sampled_from(["2025-01-01T00:00:00+00:00", "2025-01-01"]))
_rows = st.lists(st.one_of(st.none(), st.dictionaries(st.sampled_from("abcd"), _values,
                                                      max_size=4)), min_size=1, max_size=30)


def _texts(rows: list[dict[str, object] | None]) -> list[str | None]:
    return [None if r is None else json.dumps(r) for r in rows]


@settings(max_examples=300, deadline=None)
@given(_rows)
def test_arrow_gives_the_same_frame_or_declines(rows: list[dict[str, object] | None]) -> None:
    texts = _texts(rows)
    index = pd.RangeIndex(len(texts))
    fast = _expand_arrow(texts, "features", index)
    if fast is not None:
        pd.testing.assert_frame_equal(fast, _expand_python(texts, "features", index))


@pytest.mark.parametrize("rows", [
    [{"a": 1}, {"a": "x"}],  # the type changes between rows
    [{"when": "2025-01-01T00:00:00"}],  # Arrow would read a time
    [{"xs": [1, 2]}],  # nested
])
def test_arrow_declines_what_it_would_read_differently(rows: list[dict[str, object]]) -> None:
    assert _expand_arrow(_texts(rows), "f", pd.RangeIndex(len(rows))) is None  # type: ignore[arg-type]


def test_a_typical_log_is_read_by_arrow() -> None:
    rows = [{"age": 30 + i % 5, "value": i / 3, "region": "north" if i % 2 else None,
             "police": bool(i % 3)} for i in range(2_000)]
    fast = _expand_arrow(_texts(rows), "features", pd.RangeIndex(len(rows)))  # type: ignore[arg-type]
    assert fast is not None
    assert list(fast.columns) == ["features.age", "features.value", "features.region",
                                  "features.police"]
