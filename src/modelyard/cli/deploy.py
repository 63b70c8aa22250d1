"""CLI: ``modelyard deploy bundle``, a version -> container build context and manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli.project import UriOption, open_yard
from modelyard.cli.render import console, say

app = typer.Typer(help="Deployment: bundles that build and run a model's server anywhere.",
                  no_args_is_help=True)


@app.command("bundle")
def bundle(
    reference: Annotated[str, typer.Argument(
        metavar="NAME@ALIAS|NAME:VERSION",
        help="The model to serve: NAME@ALIAS follows the alias (the server swaps versions "
             "when it moves); NAME:VERSION pins one version.", show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder to write (must be empty or missing).")] = Path("bundle"),
    target: Annotated[str, typer.Option(
        "--target", "-t", help="Manifests to write: kubernetes (Deployment, Service, "
                               "HorizontalPodAutoscaler), kserve (InferenceService) or none.")
    ] = "kubernetes",
    image: Annotated[str | None, typer.Option(
        "--image", help="Image reference the manifests run; default modelyard/NAME:vVERSION.",
        show_default=False)] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535,
                                      help="Port the server listens on.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1,
                                         help="Server worker processes per replica.")] = 2,
    replicas: Annotated[int, typer.Option("--replicas", min=1,
                                          help="Replicas (the autoscaler's minimum).")] = 2,
    max_replicas: Annotated[int, typer.Option("--max-replicas", min=1,
                                              help="The autoscaler's maximum.")] = 10,
    cpu_target: Annotated[int, typer.Option(
        "--cpu-target", min=1, max=100,
        help="CPU utilization (percent of the request) the autoscaler aims for.")] = 70,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", help="Kubernetes namespace to put in the manifests.",
        show_default=False)] = None,
    wheel: Annotated[list[Path] | None, typer.Option(
        "--wheel", help="A wheel to ship in the context's wheels/ folder (pip prefers it to "
                        "the index), e.g. a modelyard built from source. Repeatable.",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace a non-empty output folder.")] = False,
    uri: UriOption = None,
) -> None:
    """Write a deployment bundle: Dockerfile, requirements pinned from the version's recorded
    environment, the server command, a health check, and Kubernetes or KServe manifests."""
    from modelyard.deploy import BundleOptions, Target, write_bundle
    from modelyard.errors import InvalidInputError

    try:
        chosen = Target(target)
    except ValueError:
        raise InvalidInputError(f"--target must be one of {', '.join(t.value for t in Target)}"
                                f", got {target!r}", field="target") from None
    options = BundleOptions(target=chosen, image=image, port=port, workers=workers,
                            replicas=replicas, max_replicas=max_replicas,
                            cpu_target=cpu_target, namespace=namespace,
                            wheels=tuple(wheel or ()))
    with open_yard(uri) as yard:
        result = write_bundle(yard.models, yard.tracking, reference, out, options,
                              force=force)
    say(f"Wrote {result.path} for {result.reference} (version {result.version}):")
    for name in result.files:
        console.print(f"  {name}", highlight=False)
    say(f"Build: docker build -t {result.image} {result.path}")
