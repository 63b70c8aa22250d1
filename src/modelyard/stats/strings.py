"""String columns through Arrow: codes and counts without a Python object per row.

A column whose present values are all ``str`` (pandas' ``str`` and ``string`` dtypes, with
either storage, and object columns holding only strings) is read as an Arrow string array,
without a copy when pandas already keeps it in Arrow, then encoded, counted and matched
against a profile's categories by Arrow's hash kernels. A string is its own category key
(:func:`~modelyard.stats.columns.category_key` of a ``str`` is that ``str``), so the
codes and counts equal those of the general path through ``pandas.factorize`` and
``value_counts``: the same categories, numbered in order of first appearance, with null
(``None``, ``NaN``, ``pd.NA``) as missing. Only the categories a profile keeps become Python
strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from numpy.typing import NDArray

__all__ = ["arrow_strings", "string_codes", "string_counts", "string_value_counts",
           "take_strings"]


def arrow_strings(series: pd.Series) -> pa.ChunkedArray | None:
    """The column as Arrow strings when every present value is a ``str``, else ``None``."""
    import pandas as pd
    import pyarrow as pa
    from pandas.api import types

    dtype = series.dtype
    if isinstance(dtype, pd.StringDtype):
        data = pa.array(series.array)  # Arrow storage: its own arrays, not a copy
    elif types.is_object_dtype(dtype) and types.infer_dtype(series, skipna=True) == "string":
        data = pa.array(series.to_numpy(), type=pa.large_string(), from_pandas=True)
    else:
        return None
    return data if isinstance(data, pa.ChunkedArray) else pa.chunked_array([data])


def string_codes(strings: pa.ChunkedArray) -> tuple[NDArray[np.intp], pa.Array]:
    """Each row's category number (-1 when missing) and the distinct strings, in order of
    first appearance (as ``pandas.factorize`` numbers them)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(strings) == 0:
        return np.empty(0, dtype=np.intp), pa.array([], type=pa.string())
    encoded = strings.dictionary_encode().combine_chunks()
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    return codes.astype(np.intp, copy=False), encoded.dictionary


def take_strings(strings: pa.Array, positions: Sequence[int]) -> list[str]:
    """The strings at ``positions``, as Python strings."""
    import pyarrow as pa

    taken: list[str] = strings.take(pa.array(positions, type=pa.int64())).to_pylist()
    return taken


def string_value_counts(strings: pa.ChunkedArray) -> tuple[pa.Array, NDArray[np.int64]]:
    """The distinct present strings and how often each occurs."""
    import numpy as np
    import pyarrow.compute as pc

    found = pc.value_counts(strings)
    values, counts = found.field("values"), found.field("counts")
    present = pc.is_valid(values)
    values = values.filter(present)
    return values, np.asarray(counts.filter(present).to_numpy(zero_copy_only=False),
                              dtype=np.int64)


def string_counts(strings: pa.ChunkedArray, categories: Sequence[Any]) -> NDArray[np.int64]:
    """How many present strings equal each of ``categories`` and, last, how many equal none
    of them. Categories that are not strings (numbers, booleans) match no string."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values, counts = string_value_counts(strings)
    slots = [i for i, c in enumerate(categories) if isinstance(c, str)]
    result = np.zeros(len(categories) + 1, dtype=np.int64)
    if slots and len(values):
        wanted = pa.array([categories[i] for i in slots], type=values.type)
        found = pc.index_in(values, value_set=wanted)
        hit = np.asarray(pc.is_valid(found).to_numpy(zero_copy_only=False), dtype=bool)
        where = np.asarray(found.filter(pc.is_valid(found)).to_numpy(zero_copy_only=False),
                           dtype=np.intp)
        result[np.asarray(slots, dtype=np.intp)[where]] = counts[hit]
    result[-1] = int(counts.sum()) - int(result[:-1].sum())
    return result
