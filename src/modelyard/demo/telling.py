"""Small helpers every chapter of the demo's story prints with."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def size_text(n: int) -> str:
    """A byte count as B, KB, MB or GB."""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:,.0f} B" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"


def say(console: Console, markup: str) -> None:
    """A paragraph that wraps at the terminal's edge (not at 80 columns when piped)."""
    console.print(markup, soft_wrap=True)
