"""What an explainer answers: each input column's contribution to each row's output.

:class:`Explanation` is the result of :meth:`modelyard.serving.explain.Explainer.explain`:
the contributions as an array (rows x inputs x outputs), views of it as frames, and the
JSON form the explain endpoint sends.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["Explanation"]


@dataclass(frozen=True, eq=False)
class Explanation:
    """Each input column's contribution to each row's explained output.

    ``values`` has one entry per (row, input column, output); ``base_values`` one per output.
    """

    method: str  # "tree" | "linear" | "kernel"
    space: str  # "prediction" | "probability" | "margin"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]  # "prediction" (or the signature's name), or class labels
    base_values: tuple[float, ...]
    values: np.ndarray
    index: pd.Index

    @property
    def base_value(self) -> float | dict[str, float]:
        """The expected output over the background: a float, or one per output."""
        if len(self.outputs) == 1:
            return self.base_values[0]
        return dict(zip(self.outputs, self.base_values, strict=True))

    @functools.cached_property
    def contributions(self) -> pd.DataFrame:
        """One row per explained row; one column per input column, or, with several
        outputs, one per output and input column, named ``output:column``."""
        import pandas as pd

        rows = self.values.shape[0]
        data = self.values.transpose(0, 2, 1).reshape(rows, -1)
        return pd.DataFrame(data, columns=self._column_names(), index=self.index)

    def of(self, output: str) -> pd.DataFrame:
        """The contributions to one output, one column per input column."""
        import pandas as pd

        if output not in self.outputs:
            raise InvalidInputError(f"unknown output {output!r}: the explanation has "
                                    f"{', '.join(self.outputs)}", field="output")
        k = self.outputs.index(output)
        return pd.DataFrame(self.values[:, :, k], columns=list(self.inputs), index=self.index)

    def totals(self) -> pd.DataFrame:
        """Per row and output, base value plus contributions: the explained output."""
        import numpy as np
        import pandas as pd

        totals = self.values.sum(axis=1) + np.asarray([self.base_values])
        return pd.DataFrame(totals, columns=list(self.outputs), index=self.index)

    def to_records(self) -> dict[str, Any]:
        """JSON-ready: method, space, outputs, base value, and per row its explained output
        (``prediction``) and contributions (keyed as the contributions' columns)."""
        names = self._column_names()
        rows = []
        for values, totals in zip(self.contributions.to_numpy().tolist(),
                                  self.totals().to_numpy().tolist(), strict=True):
            explained = (totals[0] if len(self.outputs) == 1
                         else dict(zip(self.outputs, totals, strict=True)))
            rows.append({"prediction": explained,
                         "contributions": dict(zip(names, values, strict=True))})
        return {"method": self.method, "space": self.space, "outputs": list(self.outputs),
                "base_value": self.base_value, "rows": rows}

    def _column_names(self) -> list[str]:
        if len(self.outputs) == 1:
            return list(self.inputs)
        return [f"{output}:{name}" for output in self.outputs for name in self.inputs]
