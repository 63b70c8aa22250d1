"""What ``modelyard serve`` was asked to serve, carried to worker processes.

With several workers uvicorn starts each process from an import string, so the options
travel in the environment (``MODELYARD_SERVE_OPTIONS``, JSON) and each worker builds its own
:class:`~modelyard.serving.service.ModelServer` from them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.backends.metadata.replicas import ReplicaStore
    from modelyard.client import Yard
    from modelyard.serving.service import FailureSink, ModelServer, Sink

__all__ = ["ENV", "ServeOptions"]

ENV = "MODELYARD_SERVE_OPTIONS"


@dataclass(frozen=True)
class ServeOptions:
    models: tuple[str, ...] = ()
    canary: dict[str, str] = field(default_factory=dict)  # model -> "target:percent"
    shadow: dict[str, str] = field(default_factory=dict)  # model -> target
    poll_interval: float = 2.0
    listen: bool = True  # on PostgreSQL, wake at alias notifications too
    prefer_onnx: bool = True
    batching: bool | None = None  # None: where timing the model says it helps
    prediction_log: bool = True
    address: str | None = None  # where this server answers, reported to the replica list
    report: bool = True  # report this server to the fleet's replica list

    @classmethod
    def parse(cls, models: list[str], canary: list[str], shadow: list[str],
              **options: Any) -> ServeOptions:
        """From the command line: ``--canary [MODEL=]TARGET:PCT`` and ``--shadow
        [MODEL=]TARGET``, where a missing MODEL means the first model served."""
        from modelyard.serving.deployment import parse_target

        names = [parse_target(m).name for m in models]

        def keyed(values: list[str], what: str) -> dict[str, str]:
            out: dict[str, str] = {}
            for value in values:
                model, sep, target = value.partition("=")
                if not sep:
                    if not names:
                        raise InvalidInputError(f"--{what} needs a model to serve",
                                                field=what)
                    model, target = names[0], value
                if model in out:
                    raise InvalidInputError(f"model {model!r} has two {what}s", field=what)
                out[model] = target
            return out

        return cls(tuple(models), keyed(canary, "canary"), keyed(shadow, "shadow"), **options)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeOptions | None:
        raw = os.environ.get(ENV)
        if not raw:
            return None
        data = json.loads(raw)
        data["models"] = tuple(data.get("models", ()))
        return cls(**data)

    def server(self, yard: Yard, sink: Sink | None = None,
               failure_sink: FailureSink | None = None) -> ModelServer:
        """A model server with these options (not loaded yet); answers and failed requests
        go to the project's prediction log unless other sinks are given."""
        from modelyard.serving.metrics import ServingMetrics
        from modelyard.serving.service import ModelServer

        if sink is None and self.prediction_log:
            sink = yard.prediction_log.log_answer
        if failure_sink is None and self.prediction_log:
            failure_sink = yard.prediction_log.log_failure
        return ModelServer(yard, list(self.models), canary=self.canary, shadow=self.shadow,
                           poll_interval=self.poll_interval, listen=self.listen,
                           prefer_onnx=self.prefer_onnx,
                           batching=self.batching, metrics=ServingMetrics(), sink=sink,
                           failure_sink=failure_sink,
                           replicas=_replica_list(yard) if self.report else None,
                           address=self.address, canary_shares=yard.pipelines.canary_share)


def _replica_list(yard: Yard) -> ReplicaStore | None:
    """Where this server reports itself: the project's replica list, when its metadata store
    keeps one (a project reached through a team server does not, yet)."""
    from modelyard.errors import ConfigurationError

    try:
        return yard.replicas
    except ConfigurationError:
        return None
