"""Shared Rich consoles and small rendering helpers for the CLI."""

from __future__ import annotations

from rich.console import Console

console = Console()
error_console = Console(stderr=True)
