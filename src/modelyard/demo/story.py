"""The story the demo tells on the terminal, one chapter per step."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from modelyard.demo.state import DemoConfig, DemoState, need


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:,.0f} B" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"


def _say(console: Console, markup: str) -> None:
    """A paragraph that wraps at the terminal's edge (not at 80 columns when piped)."""
    console.print(markup, soft_wrap=True)


def tell_intro(config: DemoConfig, root: Path, console: Console) -> None:
    console.print(Panel.fit(
        "[bold]modelyard demo[/]: predicting the value of motor-insurance claims.\n"
        f"Project [cyan]{escape(_shown(root))}[/] (embedded: SQLite and local files), "
        f"seed {config.seed}, {config.customers:,} customers.",
        border_style="blue",
    ))


def tell_data(state: DemoState, console: Console) -> None:
    data = need(state.data, "data")
    claims, cfg = data.claims, state.config
    console.print("[bold green]1. Data[/]")
    frames = {"policyholders": data.policyholders, "claims": claims}
    table = Table(box=None, padding=(0, 2), show_edge=False, header_style="bold")
    for col in ("file", "rows", "columns", "size", "sha256"):
        table.add_column(col, justify="left" if col in ("file", "sha256") else "right")
    for f in state.files:
        table.add_row(f.path.name, f"{f.rows:,}", str(len(frames[f.name].columns)),
                      _size(f.size), f.sha256[:12])
    console.print(table)
    folder = state.files[0].path.parent if state.files else state.root
    _say(
        console,
        f"   Written to [cyan]{escape(_shown(folder))}[/]; claims from {data.start:%Y-%m-%d} to "
        f"{data.end:%Y-%m-%d} (UTC, {cfg.months} months); "
        f"data version [cyan]{state.data_version[:12]}[/]."
    )
    before = claims[claims["event_time"] < data.shift_start]
    after = claims[claims["event_time"] >= data.shift_start]
    if len(before) and len(after) and cfg.shift_months:
        _say(
            console,
            f"   The last {cfg.shift_months} months drift: repair costs inflate, weather and "
            "theft claims grow, the south and centre claim more. Mean claim value "
            f"{before['claim_value'].mean():,.0f} -> {after['claim_value'].mean():,.0f}; "
            f"claims a month {len(before) / (cfg.months - cfg.shift_months):,.0f} -> "
            f"{len(after) / cfg.shift_months:,.0f}."
        )
    console.print()


def _runs_table(frame: pd.DataFrame) -> Table:
    """Candidates, best first (``frame`` comes ordered by r2)."""
    table = Table(show_edge=False, header_style="bold", padding=(0, 1))
    for col in ("model", "r2", "rmse", "mae", "mape", "fit s", "run"):
        table.add_column(col, justify="left" if col in ("model", "run") else "right",
                         no_wrap=True)
    for i, row in enumerate(frame.to_dict("records")):
        table.add_row(
            str(row["name"]), f"{row['metrics.r2']:.3f}", f"{row['metrics.rmse']:,.0f}",
            f"{row['metrics.mae']:,.0f}", f"{row['metrics.mape']:.2f}",
            f"{row['metrics.train_seconds']:.1f}", str(row["run_id"])[:8],
            style="bold green" if i == 0 else None,
        )
    return table


def tell_training(state: DemoState, console: Console) -> None:
    split = need(state.split, "training split")
    console.print("[bold green]2. Candidates[/]")
    _say(
        console,
        f"   Trained on {len(split.train):,} claims from {split.train_start:%Y-%m} to "
        f"{split.valid_start - pd.Timedelta(days=1):%Y-%m}, validated on {len(split.valid):,} "
        f"claims from {split.valid_start:%Y-%m} to "
        f"{split.valid_end - pd.Timedelta(days=1):%Y-%m}; the months after are kept for "
        "monitoring."
    )
    frame = state.yard.search_runs(state.experiment,
                                   filter=f"parent_run_id = '{state.parent.run_id}'",
                                   order_by=["metrics.r2 desc"])
    console.print(_runs_table(frame))
    _say(
        console,
        f"   Each run of experiment [cyan]{state.experiment}[/] holds its params, metrics, the "
        "data fingerprint, the environment and the fitted pipeline.\n"
    )


def tell_best(state: DemoState, console: Console) -> None:
    best = need(state.best, "best run")
    m = best.metrics
    console.print("[bold green]3. Best candidate[/]")
    _say(
        console,
        f"   [bold]{best.info.name}[/] (run [cyan]{best.info.run_id}[/]): r2 "
        f"{m['r2'].value:.3f}, rmse {m['rmse'].value:,.0f}, mae {m['mae'].value:,.0f}.\n"
    )


def tell_outro(state: DemoState, seconds: float, console: Console) -> None:
    best_id = state.best.info.run_id if state.best is not None else "RUN_ID"
    project = _shown(state.root)
    cd = "" if project == "." else f"  cd {escape(shlex.quote(project))}\n"
    console.print(Panel(
        f"Explore the runs:\n{cd}"
        f"  [bold]modelyard runs list -e {state.experiment}[/]\n"
        f"  [bold]modelyard runs show {best_id}[/]\n"
        "or in Python:\n"
        f"  yard = modelyard.connect(project={escape(repr(project))})\n"
        f"  yard.search_runs({state.experiment!r}, order_by=['metrics.r2 desc'])",
        title=f"done in {seconds:.1f} s", border_style="green",
    ))
