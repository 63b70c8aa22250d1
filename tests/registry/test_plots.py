"""Evaluation plots: which images are drawn from which inputs, and that they are stable."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from modelyard.registry.plots import MAX_POINTS, Scores, classification_plots, regression_plots

PNG = b"\x89PNG\r\n\x1a\n"


def size(png: bytes) -> tuple[int, int]:
    from matplotlib.image import imread

    height, width = imread(io.BytesIO(png), format="png").shape[:2]
    return width, height


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    score = np.clip(0.6 * y + rng.uniform(0, 0.5, 300), 0, 1)
    return y, (score > 0.5).astype(int), score


def test_confusion_matrix_alone_without_scores(binary: tuple[np.ndarray, ...]) -> None:
    y, predicted, _ = binary
    images = classification_plots(y, predicted, [0, 1])
    assert list(images) == ["confusion_matrix.png"]
    assert images["confusion_matrix.png"].startswith(PNG)


def test_scores_add_roc_and_calibration(binary: tuple[np.ndarray, ...]) -> None:
    y, predicted, score = binary
    scores = Scores([("1", y, score)], y, score, "Calibration (1)")
    images = classification_plots(y, predicted, [0, 1], scores)
    assert list(images) == ["confusion_matrix.png", "roc.png", "calibration.png"]
    assert all(png.startswith(PNG) and len(png) > 1000 for png in images.values())
    # drawing is deterministic: the same inputs give the same bytes, even from a thread
    again: dict[str, bytes] = {}
    worker = threading.Thread(
        target=lambda: again.update(classification_plots(y, predicted, [0, 1], scores)))
    worker.start()
    worker.join()
    assert again == images


def test_no_roc_when_no_curve_has_both_classes(binary: tuple[np.ndarray, ...]) -> None:
    y, predicted, score = binary
    ones = np.ones_like(y)
    scores = Scores([("1", ones, score)], y, score, "Calibration (1)")
    assert list(classification_plots(y, predicted, [0, 1], scores)) == [
        "confusion_matrix.png", "calibration.png"]


def test_regression_plots_sample_large_data_the_same_way_every_time() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=MAX_POINTS + 500)
    predicted = y + rng.normal(scale=0.1, size=len(y))
    images = regression_plots(y, predicted)
    assert list(images) == ["residuals.png", "predicted_vs_actual.png"]
    assert images == regression_plots(y, predicted)
    assert all(size(png)[0] > 300 for png in images.values())
