"""What the model page adds to a version's record: the live servers serving the model
(from the replicas' heartbeats), its evaluation plots (served from the artifact store,
checked against their hash) and slices, and its lineage drawn as a graph."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelyard.errors import NotFoundError
from modelyard.registry.lineage import Lineage
from modelyard.serving.fleet import live_replicas
from modelyard.ui.graphs import Node, layered_graph
from modelyard.ui.pages import UiState, href, state_of

PLOT_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


@dataclass(frozen=True)
class Serving:
    """One slot of a live replica that serves the model."""

    host: str
    address: str | None
    pid: int
    role: str
    reference: str
    version: int | None
    heartbeat_age_s: float


def serving(state: UiState, model: str) -> list[Serving]:
    """The live replicas' slots serving ``model``, primaries first."""
    now = time.time() * 1000
    found = [Serving(r.host, r.address, r.pid, s.role, s.reference, s.version,
                     max(now - r.heartbeat_at_ms, 0) / 1000)
             for r in live_replicas(state.yard.replicas) for s in r.serving
             if s.model == model]
    order = {"primary": 0, "canary": 1, "shadow": 2}
    return sorted(found, key=lambda s: (order.get(s.role, 3), s.host, s.pid))


def lineage_graph(request: Request, lineage: Lineage, live: list[Serving]) -> str:
    """Sources → feature groups → training set → run → version → aliases → live servers."""
    sources = [Node(f"s:{s['name']}", "source", f"{s['name']}"
                    + (f" @{str(s['commit'])[:8]}" if s.get("commit") else ""))
               for s in lineage.sources]
    groups = [Node(f"g:{g['name']}", "feature group", f"{g['name']} v{g['version']}",
                   href(request, "/features", group=g["name"], version=g["version"]))
              for g in lineage.feature_groups]
    training = ([Node("ts", "training set", lineage.training_set["training_set_id"][:12],
                      href(request, "/features",
                           training_set=lineage.training_set["training_set_id"]))]
                if lineage.training_set else [])
    run = ([Node("run", "run", str(lineage.run.get("name") or lineage.run["run_id"]),
                 None if lineage.run.get("missing")
                 else href(request, f"/runs/{lineage.run['run_id']}"))]
           if lineage.run else [])
    version = [Node("v", "version", f"{lineage.model}:{lineage.version}")]
    aliases = [Node(f"a:{a}", "alias", a) for a in lineage.aliases]
    servers = [Node(f"r:{i}", s.role, f"{s.host} ({s.pid})")
               for i, s in enumerate(live) if s.version == lineage.version]
    edges: list[tuple[str, str]] = []
    for g in lineage.feature_groups:
        named = [s for s in sources if s.key == f"s:{g.get('source')}"]
        edges += [(s.key, f"g:{g['name']}") for s in (named or sources)]
    if not groups:
        edges += [(s.key, "ts") for s in sources]
    edges += [(g.key, "ts") for g in groups]
    edges += [("ts", "run"), ("run", "v")] if run else [("ts", "v")]
    edges += [("v", a.key) for a in aliases]
    for i, s in enumerate(live):
        if s.version != lineage.version:
            continue
        alias = s.reference.partition("@")[2]
        edges.append((f"a:{alias}" if alias in lineage.aliases else "v", f"r:{i}"))
    return layered_graph([sources, groups, training, run, version, aliases, servers], edges,
                         title=f"Lineage of {lineage.model} version {lineage.version}")


def evaluation_plot(request: Request) -> Response:
    """One stored evaluation plot's bytes (the blob store checks its hash as it reads)."""
    registry = state_of(request).yard.models
    name, dataset, file = (request.path_params[k] for k in ("name", "dataset", "file"))
    version = request.path_params["version"]
    records = registry.store.evaluations(name, int(version)) if version.isdigit() else []
    record = next((e for e in records if e.dataset == dataset), None)
    sha = None if record is None else record.plots.get(file)
    kind = PLOT_TYPES.get(file.rpartition(".")[2])
    if sha is None or kind is None:
        raise NotFoundError(f"model {name!r} version {version} has no plot {file!r} on "
                            f"{dataset!r}", model=name, plot=file)
    data = registry.artifacts.get_bytes(sha)
    return Response(data, media_type=kind, headers={
        "Cache-Control": "private, max-age=86400, immutable",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff"})


def extras(request: Request, state: UiState, name: str, lineage: Lineage | None
           ) -> dict[str, Any]:
    live = serving(state, name)
    graph = lineage_graph(request, lineage, live) if lineage is not None else ""
    return {"serving": live, "lineage_svg": graph}
