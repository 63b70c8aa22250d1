"""Column kinds and values: moved to :mod:`modelyard.stats.columns`, the statistics shared
by the registry and monitoring; this module keeps the old import path working."""

from modelyard.stats.columns import (
    KINDS,
    Category,
    Distinct,
    Frame,
    Kind,
    NumericValues,
    as_columns,
    category_codes,
    category_counts,
    category_index,
    category_key,
    counts_by_category,
    hashable,
    natural_kind,
    numeric_values,
    prediction_columns,
)

__all__ = ["KINDS", "Category", "Distinct", "Frame", "Kind", "NumericValues", "as_columns",
           "category_codes", "category_counts", "category_index", "category_key",
           "counts_by_category", "hashable", "natural_kind", "numeric_values",
           "prediction_columns"]
