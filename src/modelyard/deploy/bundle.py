"""``write_bundle``: a registered version -> a folder to build a container and deploy it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.deploy import context, environment, manifests
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.tracking.service import REQUIREMENTS_ARTIFACT

if TYPE_CHECKING:
    from modelyard.backends.metadata.registry import VersionRecord
    from modelyard.registry.service import ModelRegistry
    from modelyard.tracking.service import TrackingService

BUNDLE_FILE = "bundle.json"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"


class Target(StrEnum):
    kubernetes = "kubernetes"  # Deployment, Service, HorizontalPodAutoscaler
    kserve = "kserve"  # an InferenceService with modelyard's V2 server as predictor
    none = "none"  # the build context only


@dataclass(frozen=True)
class BundleOptions:
    """How the bundle deploys. Every field has a default that suits a small service."""

    target: Target = Target.kubernetes
    image: str | None = None  # default: modelyard/<app>:v<version>
    port: int = 8080
    workers: int = 2
    replicas: int = 2
    max_replicas: int = 10
    cpu_target: int = 70  # percent of the requested CPU the autoscaler aims for
    cpu_request: str = "500m"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"
    namespace: str | None = None
    wheels: Sequence[Path] = field(default_factory=tuple)  # copied into wheels/

    def check(self) -> None:
        import re

        checks = [("port", 1 <= self.port <= 65535, "a port from 1 to 65535"),
                  ("workers", self.workers >= 1, "at least 1"),
                  ("replicas", self.replicas >= 1, "at least 1"),
                  ("max_replicas", self.max_replicas >= self.replicas,
                   f"at least replicas ({self.replicas})"),
                  ("cpu_target", 1 <= self.cpu_target <= 100, "a percentage from 1 to 100")]
        for name in ("cpu_request", "memory_request", "memory_limit"):
            checks.append((name, bool(re.match(_QUANTITY, getattr(self, name))),
                           "a Kubernetes quantity like 500m, 512Mi or 2Gi"))
        if self.namespace is not None:
            checks.append(("namespace", manifests.dns_label(self.namespace) == self.namespace,
                           "a lower-case DNS label (letters, digits, '-')"))
        for name, ok, expected in checks:
            if not ok:
                raise InvalidInputError(f"{name} must be {expected}, got "
                                        f"{getattr(self, name)!r}", field=name)
        for wheel in self.wheels:
            if not Path(wheel).is_file() or not str(wheel).endswith(".whl"):
                raise InvalidInputError(f"{wheel} is not a wheel file (*.whl)", field="wheels")


@dataclass(frozen=True)
class Bundle:
    path: Path
    reference: str
    version: int
    app: str
    image: str
    command: list[str]
    files: list[str]  # relative paths, sorted


def write_bundle(models: ModelRegistry, tracking: TrackingService, reference: str,
                 out: str | Path, options: BundleOptions | None = None, *,
                 force: bool = False) -> Bundle:
    """Write the deployment bundle of ``reference`` (``name@alias``, followed at run time, or
    ``name:version``) into the folder ``out``, which must be empty or missing (or ``force``).

    The folder appears whole or not at all: it is written beside ``out`` and renamed."""
    options = options or BundleOptions()
    options.check()
    record = models.get_version(reference)
    served = reference if "@" in reference else f"{record.name}:{record.version}"
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{target} is a file; give a folder for the bundle",
                                field="out")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise InvalidInputError(f"{target} is not empty; choose an empty folder or pass "
                                f"--force to replace it", field="out")

    env = _environment(record, tracking)
    suffix = served.split("@", 1)[1] if "@" in served else f"v{record.version}"
    app = manifests.dns_label(f"{record.name}-{suffix}")
    image = options.image or f"modelyard/{manifests.dns_label(record.name)}:v{record.version}"
    command = context.server_command(served, options.port, options.workers)
    files = _render(record, served, env, app, image, command, options)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, data in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (staging / "wheels").mkdir(exist_ok=True)
        for wheel in options.wheels:
            shutil.copy2(wheel, staging / "wheels" / Path(wheel).name)
        listed = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        manifest = {"reference": served, "model": record.name, "version": record.version,
                    "app": app, "image": image, "command": command,
                    "python": env.python, "target": options.target.value,
                    "files": {name: hashlib.sha256((staging / name).read_bytes()).hexdigest()
                              for name in listed}}
        (staging / BUNDLE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Bundle(target, served, record.version, app, image, command,
                  sorted([*listed, BUNDLE_FILE]))


def _environment(record: VersionRecord, tracking: TrackingService) -> environment.Environment:
    recorded: str | None = None
    python: str | None = None
    source = f"{record.name} version {record.version}'s recorded libraries"
    if record.run_id:
        with contextlib.suppress(NotFoundError):
            run = tracking.get_run(record.run_id)
            python = run.tags.get("modelyard.python.version")
            recorded = tracking.read_artifact(record.run_id, REQUIREMENTS_ARTIFACT).decode()
            source += f" and run {record.run_id}'s environment"
    return environment.resolve(list(record.spec.get("requirements", [])), recorded, python,
                               source)


def _render(record: VersionRecord, served: str, env: environment.Environment, app: str,
            image: str, command: list[str], options: BundleOptions) -> dict[str, bytes]:
    header = f"modelyard deploy bundle {served} (version {record.version})"
    files = {
        "Dockerfile": context.dockerfile(env, command, options.port),
        ".dockerignore": context.DOCKERIGNORE,
        "requirements.txt": context.requirements_file(env, header),
        "constraints.txt": context.constraints_file(env),
        "store.env.example": context.store_env_example(),
    }
    workload = manifests.Workload(
        app=app, image=image, command=command, port=options.port, model=record.name,
        reference=served, replicas=options.replicas, max_replicas=options.max_replicas,
        cpu_target=options.cpu_target, cpu_request=options.cpu_request,
        memory_request=options.memory_request, memory_limit=options.memory_limit,
        namespace=options.namespace)
    if options.target is Target.kubernetes:
        for name, doc in manifests.kubernetes_manifests(workload).items():
            files[f"kubernetes/{name}"] = manifests.to_yaml(doc)
    elif options.target is Target.kserve:
        for name, doc in manifests.kserve_manifests(workload).items():
            files[f"kserve/{name}"] = manifests.to_yaml(doc)
    names = sorted([*files, BUNDLE_FILE, "README.md"])
    files["README.md"] = context.readme(reference=served, version=record.version, app=app,
                                        image=image, port=options.port, command=command,
                                        files=names)
    return {name: text.encode() for name, text in files.items()}


def _replace(staging: Path, target: Path) -> None:
    """Put ``staging`` where ``target`` is, so that a reader sees the old or the new bundle."""
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{staging.name[-8:]}")
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
