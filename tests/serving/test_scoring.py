"""Batch scoring: point-in-time features per row, chunks, a whole output or none, a run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.errors import InvalidInputError
from modelyard.serving.scoring import EXPERIMENT, score

from .support import MODEL, NUMERIC, T0, people


def _spine(path: Path, n: int = 40) -> pd.DataFrame:
    rows = people().head(n)
    spine = pd.DataFrame({"customer_id": rows["customer_id"],
                          "when": rows["ts"] + timedelta(days=2),
                          "note": [f"row {i}" for i in range(n)]})
    spine.to_parquet(path)
    return spine


def test_rows_get_point_in_time_features_and_predictions(served: dict[str, Any],
                                                         tmp_path: Path) -> None:
    yard = served["yard"]
    spine = _spine(tmp_path / "spine.parquet")
    seen: list[tuple[int, int]] = []
    job = score(yard, f"{MODEL}@production", tmp_path / "spine.parquet",
                tmp_path / "out" / "scored.parquet", chunk_rows=15,
                progress=lambda done, total: seen.append((done, total)))
    assert (job.model, job.version, job.rows) == (MODEL, 1, 40)
    assert seen == [(15, 40), (30, 40), (40, 40)]
    out = pq.read_table(job.output).to_pandas()
    assert list(out.columns) == ["customer_id", "when", "note", "prediction"]
    assert out["note"].tolist() == spine["note"].tolist()  # the input's order, untouched
    features = yard.training_set(spine, ["profile:age", "profile:vehicle_value"],
                                 timestamp="when").to_pandas()
    expected = yard.models.load(f"{MODEL}:1").predict(features[NUMERIC])
    np.testing.assert_allclose(out["prediction"].to_numpy(), expected, rtol=1e-12)
    run = yard.get_run(job.run_id)
    assert run.info.status == "finished"
    assert run.params["input.sha256"] == job.input_sha256
    assert run.params["training_set"] == job.training_set_id
    assert run.metrics["rows_per_second"].value > 0
    assert [e.name for e in yard.list_experiments()].count(EXPERIMENT) == 1


def test_inputs_already_in_the_table_are_used_as_they_are(served: dict[str, Any],
                                                           tmp_path: Path) -> None:
    frame = pd.DataFrame({"age": [20.0, 70.0], "vehicle_value": [1e3, 5e4]})
    frame.to_parquet(tmp_path / "in.parquet")
    job = score(served["yard"], MODEL, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert job.training_set_id is None
    expected = served["yard"].models.load(f"{MODEL}:1").predict(frame)
    np.testing.assert_allclose(pq.read_table(tmp_path / "out.parquet")
                               .column("prediction").to_numpy(), expected, rtol=1e-12)


def test_lossless_coercions_are_scored_and_values_outside_the_domain_refused(
        served: dict[str, Any], tmp_path: Path) -> None:
    """A whole-number input stored as bool (0/1 flags often are) and whole numbers in a
    float input are accepted; an integer past int64 (uint64) is refused, never wrapped."""
    from sklearn.linear_model import LinearRegression

    yard = served["yard"]
    train = pd.DataFrame({"police_report": np.array([0, 1, 0, 1], dtype=np.int64),
                          "amount": [1.0, 2.0, 3.0, 4.5]})
    with yard.start_run("flags") as run:
        run.log_model(LinearRegression().fit(train, [1.0, 2.0, 3.0, 4.0]), "flags",
                      input_example=train, onnx=False)
    given = pd.DataFrame({"police_report": [True, False], "amount": np.array([2, 3])})
    given.to_parquet(tmp_path / "in.parquet")
    score(yard, "flags", tmp_path / "in.parquet", tmp_path / "out.parquet")
    expected = yard.models.load("flags:1").predict(given.astype({"police_report": "int64",
                                                                  "amount": "float64"}))
    np.testing.assert_allclose(pq.read_table(tmp_path / "out.parquet").column("prediction")
                               .to_numpy(), expected)
    pd.DataFrame({"police_report": np.array([2**64 - 1], dtype=np.uint64),
                  "amount": [1.0]}).to_parquet(tmp_path / "big.parquet")
    with pytest.raises(InvalidInputError, match="int64") as raised:
        score(yard, "flags", tmp_path / "big.parquet", tmp_path / "out2.parquet")
    assert "police_report" in raised.value.message


def test_a_bad_row_leaves_no_output_and_names_the_row(served: dict[str, Any],
                                                      tmp_path: Path) -> None:
    frame = pd.DataFrame({"age": [20.0, None, 30.0], "vehicle_value": [1e3, 2e3, 3e3]})
    frame.to_parquet(tmp_path / "in.parquet")
    target = tmp_path / "out.parquet"
    with pytest.raises(InvalidInputError, match="row 1 of the input") as raised:
        score(served["yard"], MODEL, tmp_path / "in.parquet", target, chunk_rows=1)
    assert "age may not be null" in raised.value.message
    assert not target.exists() and list(tmp_path.glob(".out.parquet*")) == []


def test_bad_arguments_are_refused(served: dict[str, Any], tmp_path: Path) -> None:
    yard = served["yard"]
    with pytest.raises(InvalidInputError, match="no input file"):
        score(yard, MODEL, tmp_path / "missing.parquet", tmp_path / "o.parquet")
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(InvalidInputError, match="cannot read"):
        score(yard, MODEL, tmp_path / "x.parquet", tmp_path / "o.parquet")
    with pytest.raises(InvalidInputError, match="overwrite the input"):
        score(yard, MODEL, tmp_path / "x.parquet", tmp_path / "x.parquet")
    pd.DataFrame({"customer_id": [1]}).to_parquet(tmp_path / "nostamp.parquet")
    with pytest.raises(InvalidInputError, match="timestamp"):
        score(yard, MODEL, tmp_path / "nostamp.parquet", tmp_path / "o.parquet")


def test_the_cli_scores_with_a_progress_bar_and_says_where(served: dict[str, Any],
                                                           project: Path) -> None:
    _spine(project / "spine.parquet", n=10)
    result = CliRunner().invoke(app, ["predict", f"{MODEL}@production", "--input",
                                      "spine.parquet", "--output", "scored.parquet",
                                      "--timestamp", "when"])
    assert result.exit_code == 0, result.output
    assert "Scored 10 rows with claims-model:1" in result.output
    assert pq.read_table(project / "scored.parquet").num_rows == 10
    assert T0 is not None
