"""The software a bundle installs, taken from what the version recorded when it was logged.

A version's spec pins the libraries its flavor needs to load it (``scikit-learn==1.7.2``).
The run that logged it may also hold the whole environment it ran in (``pip freeze``-like,
``modelyard/requirements.txt``): that becomes a pip *constraints* file, so the libraries'
own dependencies install at the versions the model was trained with, without installing
everything the training machine happened to have.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from modelyard._version import __version__

#: what the server in the container needs besides the model's libraries
SERVER_REQUIREMENT = "modelyard[serving,postgres,redis]"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)==([^\s;#]+)$")


def canonical(name: str) -> str:
    """PEP 503 name: ``Scikit_Learn`` and ``scikit-learn`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Environment:
    python: str  # "3.11"
    requirements: list[str]  # pip lines, pinned
    constraints: list[str]  # pip lines, pinned; empty when the run recorded none
    source: str  # where the pins came from, for the bundle's README


def python_minor(version: str | None) -> str:
    """``3.11`` from a recorded ``3.11.9``; this interpreter's when nothing was recorded."""
    if version:
        parts = version.split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            return f"{parts[0]}.{parts[1]}"
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def pins(text: str) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line of a requirements text."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        match = _PIN.match(raw.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def resolve(requirements: list[str], recorded: str | None, python: str | None,
            source: str) -> Environment:
    """The bundle's pip lines: modelyard's server at this version, the version's own
    pins, and the recorded environment as constraints (minus what the lines above pin)."""
    lines = [f"{SERVER_REQUIREMENT}=={__version__}"]
    pinned = {"modelyard"}
    for line in requirements:
        match = _PIN.match(line.strip())
        name = canonical(match.group(1)) if match else None
        if name is None or name in pinned:
            continue
        pinned.add(name)
        lines.append(line.strip())
    constraints = [f"{name}=={version}" for name, version in sorted(pins(recorded or "").items())
                   if name not in pinned]
    return Environment(python_minor(python), lines, constraints, source)
