"""The container build context of a bundle: Dockerfile, pinned requirements, the server's
command and a health check, and the list of store settings the container expects."""

from __future__ import annotations

import json
import shlex

from modelyard.deploy.environment import Environment

#: the settings a serving container reads; values go in a Secret, never in the bundle
STORE_SETTINGS = {
    "MODELYARD_URI": "metadata store, e.g. postgresql://user:password@db:5432/modelyard",
    "MODELYARD_ARTIFACT_URI": "artifact store the model versions were saved to",
    "MODELYARD_ONLINE_URI": "online feature store for entity-keyed models, e.g. redis://redis:6379/0",
    "MODELYARD_PREDICTIONS_URI": "where the prediction log is written (default: beside the "
                                 "metadata store)",
}
DOCKERIGNORE = "**/__pycache__\n**/*.pyc\n.git\nkubernetes/\nkserve/\nstore.env\n"


def server_command(reference: str, port: int, workers: int) -> list[str]:
    return ["modelyard", "serve", reference, "--host", "0.0.0.0", "--port", str(port),
            "--workers", str(workers)]


def requirements_file(env: Environment, header: str) -> str:
    return f"# {header}\n# pins from {env.source}\n" + "".join(f"{r}\n" for r in env.requirements)


def constraints_file(env: Environment) -> str:
    if not env.constraints:
        return "# the version's run recorded no environment: nothing more is pinned\n"
    return ("# the environment the version was trained in; pip installs these versions of "
            "whatever the requirements pull in\n" + "".join(f"{c}\n" for c in env.constraints))


def healthcheck(port: int) -> str:
    probe = (f"import urllib.request; urllib.request.urlopen("
             f"'http://127.0.0.1:{port}/readyz', timeout=3)")
    return json.dumps(["python", "-c", probe])


def dockerfile(env: Environment, command: list[str], port: int) -> str:
    return f"""\
# syntax=docker/dockerfile:1
# Build: docker build -t IMAGE .    Run: docker run --env-file store.env -p {port}:{port} IMAGE
FROM python:{env.python}-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/modelyard

COPY requirements.txt constraints.txt ./
COPY wheels/ ./wheels/
RUN pip install --find-links ./wheels -r requirements.txt -c constraints.txt

RUN groupadd --gid 10001 modelyard && useradd --uid 10001 --gid 10001 --no-create-home modelyard
USER 10001:10001

EXPOSE {port}
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \\
  CMD {healthcheck(port)}
CMD {json.dumps(command)}
"""


def store_env_example() -> str:
    lines = ["# The stores the server reads. Copy to store.env, fill in, and keep it secret:",
             "#   docker run --env-file store.env ...",
             "#   kubectl create secret generic <app>-store --from-env-file=store.env", ""]
    for name, meaning in STORE_SETTINGS.items():
        lines += [f"# {meaning}", f"{name}=", ""]
    return "\n".join(lines)


def readme(*, reference: str, version: int, app: str, image: str, port: int,
           command: list[str], files: list[str]) -> str:
    listing = "\n".join(f"- `{name}`" for name in files)
    return f"""\
# Deployment bundle: {reference}

Serves `{reference}` (version {version} when this bundle was written) with modelyard's HTTP
server: `/v1` JSON predictions, the Open Inference Protocol (`/v2`), `/healthz`, `/readyz`
and `/metrics`. The server follows the alias: when it moves, the new version is loaded and
swapped in without a restart. Rebuild the bundle when a new version needs other libraries.

## Files

{listing}

## Build and run

```
docker build -t {image} .
cp store.env.example store.env   # fill in the stores' addresses
docker run --env-file store.env -p {port}:{port} {image}
```

Without a container: `pip install --find-links wheels -r requirements.txt -c constraints.txt`
in a fresh virtual environment, set the variables of `store.env`, then run
`{shlex.join(command)}`.

## Kubernetes

```
kubectl create secret generic {app}-store --from-env-file=store.env
kubectl apply -f kubernetes/        # or: kubectl apply -f kserve/
```
"""
