"""The monitoring page's quality and performance over time for a classifier: a first week
labelled (performance measured, and estimated), a second week not labelled yet (estimated
only) with some inputs far out of their reference range."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelyard
from modelyard.backends.metadata.predictions import PredictionRecord
from modelyard.ui import ui_app
from tests.monitoring.support import DAY0
from tests.ui.support import WEEK, client, connect


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("ui-monitor") / "project"
    modelyard.init_project(root, "uimonitor")
    rng = np.random.default_rng(70)
    x = rng.normal(size=(3_000, 2))
    y = (rng.random(3_000) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))).astype(int)
    frame = pd.DataFrame(x, columns=["a", "b"])
    model = LogisticRegression().fit(frame.iloc[:1_000], y[:1_000])
    with connect(root) as yard:
        record = yard.models.register(model, "churn", input_example=frame.iloc[:1_000],
                                      onnx=False)
        yard.models.evaluate("churn:1", frame.iloc[1_000:1_600].assign(y=y[1_000:1_600]),
                             label="y", dataset="holdout")
        for week, rows in ((0, slice(1_600, 2_300)), (1, slice(2_300, 3_000))):
            window = frame.iloc[rows].reset_index(drop=True)
            if week == 1:
                window.loc[:99, "a"] = 50.0  # far beyond anything in the reference
            start_us = int((DAY0 + week * WEEK).timestamp() * 1e6)
            predicted = model.predict(window)
            ids = [f"w{week}-{i}" for i in range(len(window))]
            yard.predictions.write([
                PredictionRecord(ids[i], 0, "churn", record.version, "primary",
                                 start_us + i * 1_000_000, 1.0, None, row,
                                 {"prediction": int(predicted[i])})
                for i, row in enumerate(window.to_dict("records"))])
            if week == 0:
                yard.log_labels("churn", pd.DataFrame({"request_id": ids, "y": y[rows]}),
                                values=["y"])
        for week in (0, 1):
            yard.monitoring.check("churn", start=DAY0 + week * WEEK,
                                  end=DAY0 + (week + 1) * WEEK)
        with client(ui_app(yard)) as test_client:
            yield test_client


def _section(html: str, heading: str) -> str:
    return html.split(f'id="{heading}"', 1)[1].split("</section>", 1)[0]


def test_performance_is_drawn_measured_then_estimated(web: Any) -> None:
    page = web.get("/monitoring/churn", params={"metric": "accuracy"})
    assert page.status_code == 200
    section = _section(page.text, "h-performance")
    assert "Performance: accuracy" in section
    assert "<option selected>accuracy</option>" in section
    measured = re.findall(r"<title>accuracy \(measured\): [^<]+ → ([\d.]+)</title>", section)
    estimated = re.findall(r"<title>accuracy \(estimated\): [^<]+ → ([\d.]+)</title>",
                           section)
    assert len(measured) == 1  # only the labelled first week
    assert len(estimated) == 2  # both weeks, labels or not
    assert abs(float(measured[0]) - float(estimated[0])) < 0.06


def test_quality_over_time_shows_the_out_of_range_window(web: Any) -> None:
    section = _section(web.get("/monitoring/churn").text, "h-quality")
    shares = re.findall(r"<title>out-of-range share \(worst column\): [^<]+ → ([\d.e-]+)"
                        r"</title>", section)
    assert len(shares) == 2 and float(shares[0]) < 0.01 and float(shares[1]) > 0.1
    rows = section.split("<tbody>", 1)[1]
    newest, oldest = rows.split("</tr>")[:2]  # newest first
    assert re.search(r"<li>a: 14.3% of values are outside the reference&#39;s range", newest)
    assert '<span class="ok">none</span>' in oldest


def test_an_unknown_metric_is_refused_in_place(web: Any) -> None:
    bad = web.get("/monitoring/churn", params={"metric": "nope"})
    assert bad.status_code == 422 and "no check measured or estimated" in bad.text
    assert "accuracy" in bad.text  # the metrics there are
