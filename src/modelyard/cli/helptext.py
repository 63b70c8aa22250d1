"""Help pages that read well: values named by their metavar (``NAME``, ``KEY=VALUE``,
``PATH``) rather than Python types (``<list[str]>``), flags without a placeholder, and each
command summarised on one line in its group's list.

Options and arguments declare their ``metavar``; :class:`ReadableGroup`, the root command's
class, applies the rest to the whole command tree when Typer builds it, and names a value
that declares none after its option (``--port PORT``) or its choices (``[auto|on|off]``).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption


class _NamedArgument(TyperArgument):
    """An argument whose metavar names its value: no type placeholder beside it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.metavar else super().display_type_rich(ctx)


def _choices(param: TyperOption | TyperArgument) -> str | None:
    descriptor = getattr(param, "type_descriptor", None)
    choices = getattr(descriptor, "choices", None)
    if not choices:
        return None
    return "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]"


def _tidy_param(param: object) -> None:
    if isinstance(param, TyperOption):
        if param.is_flag:
            param.metavar = ""  # a flag takes no value: nothing to name
        elif param.metavar is None:
            longest = max(param.opts, key=len).lstrip("-")
            param.metavar = _choices(param) or longest.replace("-", "_").upper()
    elif isinstance(param, TyperArgument):
        if param.metavar is None:
            param.metavar = _choices(param) or (param.name or "value").upper()
        if not isinstance(param, _NamedArgument):
            param.__class__ = _NamedArgument


def _one_line(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


def tidy(command: Any) -> None:
    """Apply the help conventions to ``command`` and every command below it."""
    for param in command.params:
        _tidy_param(param)
    help_option = command.get_help_option(typer.Context(command))
    if help_option is not None:
        _tidy_param(help_option)
    for sub in getattr(command, "commands", {}).values():
        if not sub.short_help and sub.help:
            sub.short_help = _one_line(sub.help)
        tidy(sub)


class ReadableGroup(TyperGroup):
    """The root group: tidies the help of the whole tree once it is built."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        tidy(self)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:  # Typer adds the completion options after building the group
            _tidy_param(param)
        return params
