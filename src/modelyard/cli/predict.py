"""CLI: ``modelyard predict``, batch scoring of a Parquet table by a registered version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from modelyard.cli.project import UriOption, open_yard
from modelyard.cli.render import console, say


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    model: Annotated[str, typer.Argument(
        metavar="MODEL",
        help="The version to score with: NAME@ALIAS, NAME:VERSION or NAME (the newest).",
        show_default=False)],
    input_path: Annotated[Path, typer.Option(
        "--input", "-i", metavar="PATH",
        help="Parquet file of rows to score: the model's inputs, or entity "
             "keys and a timestamp to build its features for.",
        show_default=False)],
    output_path: Annotated[Path, typer.Option(
        "--output", "-o", metavar="PATH",
        help="Parquet file to write: the input's columns plus the "
             "predictions (replaced whole, only once complete).",
        show_default=False)],
    timestamp: Annotated[str | None, typer.Option(
        "--timestamp", metavar="COLUMN",
        help="The input column that says when each row's features are "
             "taken (default: its one timestamp column).",
        show_default=False)] = None,
    chunk_rows: Annotated[int, typer.Option(
        "--chunk-rows", min=1, metavar="N", help="Rows predicted per call.")] = 50_000,
    onnx: Annotated[bool, typer.Option(
        "--onnx/--no-onnx", help="Score with the version's verified ONNX twin when it has "
                                 "one (faster; float32 precision).")] = False,
    uri: UriOption = None,
) -> None:
    """Score a table with a registered model version: features are built point in time for
    each row when the model takes stored features; the job is recorded as a run of the
    batch-scoring experiment."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from modelyard.serving.scoring import score

    with open_yard(uri) as yard, Progress(
            TextColumn("[bold]scoring[/]"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("rows", total=None)
        job = score(yard, model, input_path, output_path, timestamp=timestamp,
                    chunk_rows=chunk_rows, prefer_onnx=onnx,
                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    features = (f", features from training set {job.training_set_id[:12]}"
                if job.training_set_id else "")
    say(f"Scored [bold]{job.rows:,}[/] rows with [bold]{escape(job.model)}:{job.version}[/] "
        f"in {job.seconds:.2f} s ({job.rows_per_second:,.0f} rows/s){features}.\n"
        f"Wrote {escape(str(job.output))}; the job is run [cyan]{job.run_id}[/] of "
        "experiment batch-scoring.")
