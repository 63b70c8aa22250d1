"""Evaluation plots as PNG bytes, drawn on matplotlib's Agg canvas.

Each figure is drawn on its own ``Figure`` with a ``FigureCanvasAgg``, so no global pyplot
state or backend is involved and plotting is safe in threads. matplotlib is imported only
when a plot is drawn; a missing matplotlib surfaces as ``ImportError``.

Plot names
    classification: ``confusion_matrix.png`` always; ``roc.png`` (one-vs-rest, at most the
    curves given) when some curve has both classes; ``calibration.png`` when scores are given.

    regression: ``residuals.png`` and ``predicted_vs_actual.png`` (at most
    :data:`MAX_POINTS` points, a fixed random sample beyond that).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes

__all__ = ["MAX_POINTS", "Scores", "classification_plots", "regression_plots"]

MAX_POINTS = 5000  # scatter plots draw at most this many points
_MAX_ANNOTATED = 20  # confusion-matrix cells show their counts up to this many classes


@dataclass(frozen=True)
class Scores:
    """Probability scores to plot for a classifier.

    ``curves`` are one-vs-rest ROC inputs: (class name, 0/1 label, score of that class).
    ``hit`` (0/1) and ``confidence`` are the calibration pairs, binned into ``bins``
    equal-width bins under ``calibration_title``.
    """

    curves: Sequence[tuple[str, np.ndarray[Any, Any], np.ndarray[Any, Any]]]
    hit: np.ndarray[Any, Any]
    confidence: np.ndarray[Any, Any]
    calibration_title: str
    bins: int = 10


def classification_plots(y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any],
                         labels: Sequence[Any], scores: Scores | None = None
                         ) -> dict[str, bytes]:
    """The confusion matrix over ``labels`` (in that order) and, given ``scores``, the ROC
    and calibration curves."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import confusion_matrix, roc_curve

    cm = confusion_matrix(y_true, y_pred, labels=labels)
    images = {"confusion_matrix.png": _render(
        lambda ax: _draw_confusion(ax, cm, [str(c) for c in labels]))}
    if scores is None:
        return images
    curves = [c for c in scores.curves if 0 < int(c[1].sum()) < len(c[1])]
    if curves:
        lines = [(name, *roc_curve(yb, s)[:2]) for name, yb, s in curves]
        images["roc.png"] = _render(lambda ax: _draw_roc(ax, lines))
    prob_true, prob_pred = calibration_curve(scores.hit, scores.confidence,
                                             n_bins=scores.bins, pos_label=1)
    images["calibration.png"] = _render(
        lambda ax: _draw_calibration(ax, prob_pred, prob_true, scores.calibration_title))
    return images


def regression_plots(y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any]
                     ) -> dict[str, bytes]:
    """Residuals against the prediction, and the prediction against the label."""
    import numpy as np

    y, p = y_true, y_pred
    if len(y) > MAX_POINTS:
        pick = np.random.default_rng(0).choice(len(y), MAX_POINTS, replace=False)
        y, p = y[pick], p[pick]
    return {
        "residuals.png": _render(lambda ax: _draw_scatter(
            ax, p, y - p, diagonal=False, xlabel="predicted",
            ylabel="actual - predicted", title="Residuals")),
        "predicted_vs_actual.png": _render(lambda ax: _draw_scatter(
            ax, y, p, diagonal=True, xlabel="actual", ylabel="predicted",
            title="Predicted vs actual")),
    }


def _render(draw: Callable[[Axes], None]) -> bytes:
    """Draw on a fresh Agg figure (no global backend involved) and return PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.5, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    draw(figure.add_subplot())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _draw_confusion(ax: Axes, cm: np.ndarray[Any, Any], names: list[str]) -> None:
    ax.imshow(cm, cmap="Blues")
    ticks = list(range(len(names)))
    ax.set_xticks(ticks, names, rotation=45 if len(names) > 4 else 0)
    ax.set_yticks(ticks, names)
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix")
    if len(names) <= _MAX_ANNOTATED:
        limit = cm.max() / 2 if cm.size else 0
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > limit else "black")


def _diagonal(ax: Axes, low: float = 0.0, high: float = 1.0) -> None:
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)


def _draw_roc(ax: Axes, lines: list[tuple[str, Any, Any]]) -> None:
    for name, fpr, tpr in lines:
        ax.plot(fpr, tpr, label=name)
    _diagonal(ax)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(fontsize=7, loc="lower right")


def _draw_calibration(ax: Axes, predicted: Any, observed: Any, title: str) -> None:
    _diagonal(ax)
    ax.plot(predicted, observed, marker="o")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability",
           ylabel="observed frequency", title=title)


def _draw_scatter(ax: Axes, x: Any, y: Any, *, diagonal: bool, **labels: str) -> None:
    ax.scatter(x, y, s=6, alpha=0.5)
    if diagonal:
        _diagonal(ax, float(min(x.min(), y.min())), float(max(x.max(), y.max())))
    else:
        ax.axhline(0.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set(**labels)
