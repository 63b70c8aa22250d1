"""What a run records about where it ran: code version, interpreter, packages, host."""

from __future__ import annotations

import contextlib
import functools
import getpass
import hashlib
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

TAG_PREFIX = "modelyard."


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def hostname() -> str:
    return socket.gethostname()


def entrypoint() -> Path | None:
    """The script this process was started with, if it is a file."""
    main = sys.modules.get("__main__")
    candidate = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "")
    if not candidate:
        return None
    path = Path(candidate)
    return path.resolve() if path.is_file() else None


def _git(args: list[str], cwd: Path) -> bytes | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(cwd: Path) -> dict[str, str]:
    """Commit, branch and dirty flag (with a hash of the diff) of the repo around ``cwd``."""
    status = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=no"], cwd)
    if status is None:
        return {}
    tags: dict[str, str] = {}
    dirty = False
    for line in status.decode("utf-8", "replace").splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            if oid != "(initial)":
                tags["git.commit"] = oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            tags["git.branch"] = "" if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    root = _work_tree(cwd)
    if root:
        tags["git.root"] = root
    tags["git.dirty"] = "true" if dirty else "false"
    if dirty:
        diff = _git(["diff", "HEAD", "--binary"], cwd) or b""
        tags["git.diff_sha256"] = hashlib.sha256(diff).hexdigest()
    return tags


def _work_tree(cwd: Path) -> str | None:
    """The repository's top folder: the nearest folder up from ``cwd`` holding a ``.git``,
    as git finds it, without starting git a second time per run; ``git rev-parse`` when
    GIT_DIR or GIT_WORK_TREE point elsewhere, or no such folder is found."""
    if "GIT_DIR" not in os.environ and "GIT_WORK_TREE" not in os.environ:
        here = cwd.resolve()
        for folder in (here, *here.parents):
            if (folder / ".git").exists():
                return str(folder)
    root = _git(["rev-parse", "--show-toplevel"], cwd)
    return root.decode().strip() if root else None


@functools.cache
def installed_packages() -> str:
    """``name==version`` of every installed distribution, sorted (a requirements file)."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name, version = _name_and_version(dist)
        if name:
            found[name.lower()] = version
    return "".join(f"{n}=={v}\n" for n, v in sorted(found.items()))


def _name_and_version(dist: Any) -> tuple[str | None, str]:
    """A distribution's ``Name`` and ``Version`` from its metadata file's header lines.
    ``dist.metadata`` parses the whole file (long descriptions included) with the email
    parser, which costs about a millisecond per package on every new run; the header
    comes first, so reading it is enough. Falls back to the parser when it is not there."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    name = version = None
    for line in text.split("\n\n", 1)[0].splitlines():
        if line.startswith("Name:"):
            name = line[5:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
        if name and version:
            return name, version
    return dist.metadata["Name"], dist.version


def capture(*, git: bool, packages: bool) -> tuple[dict[str, str], bytes | None]:
    """System tags for a new run, and the requirements text to keep as an artifact."""
    tags = {
        "python.version": platform.python_version(),
        "python.implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "command": " ".join(sys.argv)[:1000],
    }
    script = entrypoint()
    if script is not None:
        tags["source.entrypoint"] = str(script)
        with contextlib.suppress(OSError):
            tags["source.sha256"] = hashlib.sha256(script.read_bytes()).hexdigest()
    if git:
        tags.update(git_state(script.parent if script is not None else Path.cwd()))
    requirements = installed_packages().encode() if packages else None
    if requirements is not None:
        tags["packages.sha256"] = hashlib.sha256(requirements).hexdigest()
    return {TAG_PREFIX + k: v for k, v in tags.items()}, requirements
