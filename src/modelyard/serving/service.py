"""The model server's core: which versions are served, and answering one request.

:class:`ModelServer` holds a :class:`~modelyard.serving.deployment.Deployment` per model
name. Its watcher thread asks the registry every ``poll_interval`` seconds where each
followed alias points and swaps new versions in (loaded first, then switched by one
reference, in-flight requests finishing on the old one). :meth:`ModelServer.predict` is
the blocking body of a request: check the input, look features up for entity rows, predict
(through the micro-batcher where batching helps), log, and build the answer; the HTTP
layer calls it in a worker thread. A request that fails is handed back by the HTTP layer to
:meth:`ModelServer.record_failure`, which turns it into a failure record for the prediction
log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.predictions import FailureRecord
from modelyard.backends.metadata.replicas import ReplicaStore, ServedSlot
from modelyard.backends.predictions.codec import MAX_FIELD
from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.serving.answering import (
    ANSWERING,
    Answer,
    Prepared,
    assemble,
    prepare,
    tag,
)
from modelyard.serving.deployment import (
    Deployment,
    Role,
    Served,
    Slot,
    parse_canary,
    parse_target,
)
from modelyard.serving.fleet import HEARTBEAT_S, ReplicaReporter
from modelyard.serving.ids import new_request_id
from modelyard.serving.inputs import key_name, rows_of

if TYPE_CHECKING:
    from datetime import datetime

    from modelyard.client import Yard
    from modelyard.serving.metrics import ServingMetrics

__all__ = ["Answer", "FailureSink", "ModelServer", "Prepared", "Sink"]

logger = logging.getLogger("modelyard.serving")

_PAYLOAD_FIELDS = ("instances", "entities", "parameters")
SHADOW_QUEUE = 1_000  # shadow predictions waiting at most; past that they are skipped


#: Receives every answer (primary, canary and shadow) after it is computed; must not block.
Sink = Callable[[Answer], None]
#: Receives a record of every failed request of a served model; must not block.
FailureSink = Callable[[FailureRecord], None]


class ModelServer:
    """Serves models by name from one project; see the module docs."""

    def __init__(self, yard: Yard, targets: Sequence[str], *,
                 canary: Mapping[str, str] | None = None,
                 shadow: Mapping[str, str] | None = None, poll_interval: float = 2.0,
                 listen: bool = True,
                 prefer_onnx: bool = True, batching: bool | None = None,
                 metrics: ServingMetrics | None = None, sink: Sink | None = None,
                 failure_sink: FailureSink | None = None,
                 clock: Callable[[], datetime] | None = None,
                 replicas: ReplicaStore | None = None, address: str | None = None,
                 heartbeat: float = HEARTBEAT_S,
                 canary_shares: Callable[[str, int], float | None] | None = None) -> None:
        if not targets:
            raise InvalidInputError("name at least one model to serve, like "
                                    "'claims-model@production'", field="models")
        self.yard = yard
        self.poll_interval = poll_interval
        self.listen = listen  # also wake at the database's alias notifications
        self.prefer_onnx = prefer_onnx
        self.batching = batching  # None: decide per version by timing it
        self.metrics = metrics
        self.sink = sink
        self.failure_sink = failure_sink
        self.clock = clock  # the time online features' TTLs are judged at (None: now)
        # the percent of requests a canary declared without a share answers: the one its
        # version's shadow trial declares (model, version -> percent; None: no trial)
        self.canary_shares = canary_shares
        self.deployments: dict[str, Deployment] = {}
        for text in targets:
            ref = parse_target(text)
            if ref.name in self.deployments:
                raise InvalidInputError(f"model {ref.name!r} is named twice", field="models")
            self.deployments[ref.name] = Deployment(ref.name, Slot(ref, "primary"))
        for name, text in (canary or {}).items():
            deployment = self._deployment_for(name, "canary")
            target, share = parse_canary(text, name)
            deployment.canary = Slot(target, "canary")
            deployment.canary_share = 0.0 if share is None else share
            deployment.share_from_trial = share is None
        for name, text in (shadow or {}).items():
            deployment = self._deployment_for(name, "shadow")
            deployment.shadow = Slot(parse_target(text, name), "shadow")
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._shadow = ThreadPoolExecutor(1, thread_name_prefix="modelyard-shadow")
        self._shadow_waiting = 0
        self._shadow_lock = threading.Lock()
        # what this process serves, reported to the fleet's replica list (None: not reported)
        self.reporter = None if replicas is None else ReplicaReporter(
            replicas, self.served_slots, address=address, interval=heartbeat)

    def _deployment_for(self, name: str, what: str) -> Deployment:
        if name not in self.deployments:
            raise InvalidInputError(f"a {what} for {name!r}, which is not served (served: "
                                    f"{', '.join(self.deployments)})", field=what)
        return self.deployments[name]

    # --- loading and swapping -------------------------------------------------------------

    def load_all(self) -> None:
        """Load every slot now (the server's start-up); raises on the first failure."""
        for deployment in self.deployments.values():
            for slot in deployment.slots():
                self._refresh(deployment, slot)

    def served_slots(self) -> list[ServedSlot]:
        """Every slot of every deployment: what it follows and the version it serves."""
        return [ServedSlot(d.name, slot.role, str(slot.ref),
                           None if slot.current is None else slot.current.version)
                for d in self.deployments.values() for slot in d.slots()]

    def start(self) -> None:
        """Start the watcher that follows aliases, and the heartbeat that reports what this
        process serves."""
        if self.reporter is not None and self._watcher is None:
            self.reporter.start()
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, daemon=True,
                                             name="modelyard-alias-watcher")
            self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        if self.reporter is not None:
            self.reporter.close()
        self._shadow.shutdown(wait=True, cancel_futures=False)
        for deployment in self.deployments.values():
            for slot in deployment.slots():
                slot.close()

    def poll(self) -> list[tuple[str, Role, int]]:
        """Check every followed alias once; returns the (model, role, version) swapped in
        (a canary or shadow loaded into its empty slot counts).
        A version that fails to load is logged and tried again at the next poll."""
        swapped = []
        for deployment in self.deployments.values():
            for slot in deployment.slots():
                try:
                    if self._refresh(deployment, slot):
                        assert slot.current is not None
                        swapped.append((deployment.name, slot.role, slot.current.version))
                except Exception as exc:  # keep serving the old version
                    slot.failures += 1
                    slot.last_error = (exc.message if isinstance(exc, ModelyardError)
                                       else f"{type(exc).__name__}: {exc}")
                    logger.error("cannot follow %s (%s): %s", slot, slot.role, slot.last_error)
        return swapped

    def _watch(self) -> None:
        """Poll every ``poll_interval``; on PostgreSQL also wake as soon as an alias of a
        served model moves (LISTEN/NOTIFY)."""
        listener = self.yard.models.store.alias_watch() if self.listen else None
        due = time.monotonic() + self.poll_interval
        try:
            while not self._stop.is_set():
                left = max(0.0, due - time.monotonic())
                if listener is None:
                    moved: set[str] = set()
                    if self._stop.wait(left):
                        return
                else:  # short waits, so that closing the server is prompt
                    moved = listener.wait(min(left, 0.5))
                    if self._stop.is_set():
                        return
                if moved or time.monotonic() >= due:
                    self.poll()
                    due = time.monotonic() + self.poll_interval
        finally:
            if listener is not None:
                listener.close()

    def _refresh(self, deployment: Deployment, slot: Slot) -> bool:
        registry = self.yard.models
        before = slot.current
        old, dropped = slot.refresh(lambda ref: registry.get_version(ref).version,
                                    self._load_served)
        if dropped is not None:
            dropped.close()
        current = slot.current
        if slot.role == "canary" and deployment.share_from_trial:
            deployment.canary_share = self._trial_share(deployment.name, current)
        if current is not None and self.metrics is not None:
            self.metrics.version.labels(deployment.name, slot.role).set(current.version)
        if old is not None and current is None:  # an alias followed as canary or shadow
            logger.info("%s (%s): alias not set, version %d no longer served in this role",
                        slot, slot.role, old.version)
            if self.reporter is not None:
                self.reporter.changed()
            return False
        if before is None and current is not None and slot.role != "primary":
            logger.info("%s (%s): alias set, now serving version %d", slot, slot.role,
                        current.version)  # a canary or shadow that was empty
            if self.reporter is not None:
                self.reporter.changed()
            return True
        if old is None or current is None:
            return False
        logger.info("%s (%s): now serving version %d (was %d)", slot, slot.role,
                    current.version, old.version)
        if self.metrics is not None:
            self.metrics.swaps.labels(deployment.name, slot.role).inc()
        if self.reporter is not None:
            self.reporter.changed()
        return True

    def _trial_share(self, name: str, current: Served | None) -> float:
        if current is None or self.canary_shares is None:
            return 0.0
        return self.canary_shares(name, current.version) or 0.0

    def _load_served(self, name: str, version: int) -> Served:
        from modelyard.serving.batching import (
            MicroBatcher,
            batching_helps,
            join_columns,
            join_matrices,
        )
        from modelyard.serving.entities import feature_source
        from modelyard.serving.loaded import load_version

        registry = self.yard.models
        record = registry.store.get_version(name, version)
        loaded = load_version(registry, record, prefer_onnx=self.prefer_onnx)
        features = None
        if loaded.signature is not None:
            try:
                features = feature_source(self.yard.features, self.yard.features.online,
                                          record, loaded.input_names)
            except ModelyardError as exc:  # instances still work; entities will say why
                logger.warning("%s:%d cannot look its features up: %s", record.name,
                               record.version, exc.message)
        served = Served(loaded, features)
        example = record.spec.get("input_example") or _probe_rows(loaded)
        batch = self.batching
        matrix = loaded.takes_matrix
        predict = loaded.predict_matrix if matrix else loaded.predict_columns
        if batch is None and loaded.decoder is not None and example:
            try:
                batch = batching_helps(predict, (
                    loaded.decoder.rows_matrix(example, "input_example") if matrix
                    else loaded.decoder.columns(example, "input_example")))
            except ModelyardError:
                batch = False
        if batch:
            metrics = self.metrics
            observe = (None if metrics is None else
                       metrics.batches.labels(record.name, str(record.version)).observe)
            served.batcher = MicroBatcher(predict, observe=observe,
                                          name=f"modelyard-batch-{record.name}",
                                          join=join_matrices if matrix else join_columns)
        logger.info("loaded %s:%d (%s, %.2f s%s)", record.name, record.version,
                    loaded.runtime, loaded.load_seconds, ", micro-batched" if batch else "")
        return served

    # --- answering ------------------------------------------------------------------------

    def answers_inline(self, name: str) -> bool:
        """Whether a small request to ``name`` costs so little before its model call (every
        version that may answer it predicts straight from a matrix, without a batcher: an
        ONNX twin's fast path or a directly walked forest) that the HTTP layer prepares and
        finishes it on the event loop (:meth:`prepare`, :meth:`finish`) and hands only the
        model call (:meth:`Prepared.run`) to a worker thread."""
        deployment = self.deployments.get(name)
        if deployment is None:
            return False
        for slot in (deployment.primary, deployment.canary):
            if slot is None:
                continue
            served = slot.current
            if served is None or served.batcher is not None:
                return False
            loaded = served.loaded
            if loaded._fast is None and (loaded._sklearn is None
                                         or loaded._sklearn.trees is None):
                return False
        return True

    def deployment(self, name: str) -> Deployment:
        found = self.deployments.get(name)
        if found is None:
            raise NotFoundError(f"model {name!r} is not served here (served: "
                                f"{', '.join(sorted(self.deployments))})", model=name)
        return found

    def predict(self, name: str, payload: Any, request_id: str | None = None,
                version: int | None = None, *, received: float | None = None,
                log: bool = True) -> Answer:
        """Answer one predict request (blocking).

        With ``version``, that version answers (the primary's or the canary's;
        NotFoundError when neither serves it). Problems name the request's values by the
        ``/v1`` body's paths (``instances[3].age``; the ``/v2`` layer renames them onto
        tensor elements). ``received`` is when the request arrived
        (``time.perf_counter()``; default: now), and the answer's ``seconds`` run from it.
        With ``log=False`` the answer is not handed to the prediction log here: the caller
        hands it with :meth:`log_answer` once its response
        is ready, so the latency kept is the one the client saw.
        """
        prepared = self.prepare(name, payload, request_id, version, received=received)
        return self.finish(prepared, prepared.run(), log=log)

    def prepare(self, name: str, payload: Any, request_id: str | None = None,
                version: int | None = None, *, received: float | None = None) -> Prepared:
        """The first step of :meth:`predict`: parse the payload, choose the version, look
        entities up and check the inputs. Then :meth:`Prepared.run` makes the model call
        and :meth:`finish` the answer."""
        began = time.perf_counter() if received is None else received
        deployment = self.deployment(name)
        instances, entities = _parse_payload(payload)
        served, role = deployment.choose() if version is None else deployment.exact(version)
        return prepare(served, role, request_id or new_request_id(), instances, entities,
                       began, self._entity_rows)

    def finish(self, prepared: Prepared, predicted: list[Any], *, log: bool = True
               ) -> Answer:
        """The answer of a prepared request from its predictions (:meth:`Prepared.run`),
        counted in the metrics and, unless ``log=False``, handed to the prediction log."""
        try:
            answer = assemble(prepared, predicted)
        except Exception as exc:
            tag(exc, prepared.served, prepared.role)
            raise
        if self.metrics is not None:
            self.metrics.observe_answer(answer.model, answer.version, answer.role,
                                        len(answer.predictions), answer.seconds)
        if log:
            self.log_answer(answer)
        deployment = self.deployments.get(answer.model)
        if deployment is not None and deployment.shadow is not None and (
                deployment.shadow.current is not None):
            self._mirror(deployment, deployment.shadow.current, answer.request_id,
                         *prepared.request)
        return answer

    def log_answer(self, answer: Answer, received: float | None = None) -> None:
        """Hand an answer to the prediction log; with ``received`` (when its request
        arrived, ``time.perf_counter()``), its latency is taken as from then to now."""
        if self.sink is None:
            return
        if received is not None:
            answer.seconds = time.perf_counter() - received
        self.sink(answer)

    def record_failure(self, name: str, request_id: str, status: int, error: BaseException,
                       endpoint: str, seconds: float) -> None:
        """Hand a failed request to the failure sink; never raises. Only requests of a
        model served here are recorded, against the version that was answering (or the
        primary's, when the request failed before one was chosen). The record keeps the
        error's class, ``status`` and the field the error named, never its message, which
        can quote the request's values."""
        sink, deployment = self.failure_sink, self.deployments.get(name)
        if sink is None or deployment is None:
            return
        try:
            version: int | None
            role: Role | None
            answering = getattr(error, ANSWERING, None)
            if answering is not None:
                version, role = answering
            elif (primary := deployment.primary.current) is not None:
                version, role = primary.version, "primary"
            else:
                version, role = None, None
            field_name = error.details.get("field") if isinstance(error, ModelyardError) \
                else None
            sink(FailureRecord(
                request_id, name, version, role, time.time_ns() // 1_000,
                max(0.0, seconds) * 1_000.0, status, type(error).__name__, endpoint,
                field_name[:MAX_FIELD] if isinstance(field_name, str) and field_name
                else None))
        except Exception:  # the answer must not fail because of its log
            logger.debug("could not record the failure of request %s", request_id,
                         exc_info=True)

    def explain(self, name: str, payload: Any, request_id: str | None = None
                ) -> dict[str, Any]:
        """Predictions of the primary version with each input's contribution (SHAP)."""
        deployment = self.deployment(name)
        instances, entities = _parse_payload(payload)
        served = deployment.primary.current
        if served is None:
            served, _ = deployment.choose()  # raises: not loaded yet
        loaded = served.loaded
        if loaded.decoder is None:
            raise InvalidInputError(f"model {name}:{served.version} has no signature, so its "
                                    "inputs cannot be explained", field="model")
        if entities is not None:
            rows, status, _ = self._entity_rows(served, entities)
            field_name = "entities"
            absent = [i for i, found in enumerate(status) if found != "found"]
            if absent:  # predict answers such rows with null; there is nothing to explain
                shown = ", ".join(f"entities[{i}] ({status[i]})" for i in absent[:20])
                raise NotFoundError(
                    f"nothing to explain for {shown}: the online store holds no current "
                    "feature values for that entity", field=f"entities[{absent[0]}]",
                    model=name)
        else:
            assert instances is not None
            rows, field_name = instances, "instances"
        frame = loaded.decoder.frame(loaded.decoder.columns(rows, field_name))
        explanation = self._explainer(served).explain(frame)
        body = explanation.to_records()
        return {"model": name, "version": served.version,
                "request_id": request_id or new_request_id(), **body}

    def _explainer(self, served: Served) -> Any:
        with served.lock:
            if served.explainer is None:
                from modelyard.serving.explain import Explainer

                record = served.loaded.record
                registry = self.yard.models
                model = (served.loaded.model if served.loaded.runtime != "onnx"
                         else registry.load(record.name, record.version))
                background = registry.background(f"{record.name}:{record.version}")
                served.explainer = Explainer.for_model(model, record.flavor, background,
                                                       served.loaded.signature)
            return served.explainer

    def describe(self, name: str) -> dict[str, Any]:
        """What is served under ``name``: each role's version, the signature, the features."""
        deployment = self.deployment(name)
        roles: dict[str, Any] = {}
        for slot in deployment.slots():
            current = slot.current
            roles[slot.role] = {
                "follows": str(slot.ref),
                "version": None if current is None else current.version,
                "runtime": None if current is None else current.loaded.runtime,
                "micro_batched": current is not None and current.batcher is not None,
                "error": slot.last_error,
            }
        if deployment.canary is not None:
            roles["canary"]["share_percent"] = deployment.canary_share
            roles["canary"]["share_from_trial"] = deployment.share_from_trial
        primary = deployment.primary.current
        signature = None if primary is None or primary.loaded.signature is None else (
            primary.loaded.signature.to_dict())
        features = None if primary is None or primary.features is None else (
            primary.features.to_dict())
        return {"name": name, "roles": roles, "signature": signature, "features": features}

    def ready(self) -> str | None:
        """None when every primary version is loaded, else what is missing."""
        waiting = [f"{d.name} ({d.primary.last_error or 'loading'})"
                   for d in self.deployments.values() if d.primary.current is None]
        return None if not waiting else "not loaded: " + ", ".join(waiting)

    def _entity_rows(self, served: Served, entities: list[Any]
                     ) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
        from modelyard.serving.entities import check_rows, gather, whole_key

        source = served.features
        if source is None:
            raise InvalidInputError(
                f"model {served.loaded.name}:{served.version} takes no stored features: send "
                f"'instances' with its inputs ({', '.join(served.loaded.input_names)})",
                field="entities")
        check_rows(served.loaded.decoder, source, entities)
        rows, status = gather(self.yard.features.online, source, entities,
                              at=None if self.clock is None else self.clock())
        keys = [{k: whole_key(e[k]) for k in source.key_columns} for e in entities]
        return rows, status, keys

    def _shadow_failed(self, name: str, version: int, rid: str, error: BaseException,
                       began: float) -> None:
        """Record a shadow that failed where the client's answer did not, as a failure of
        role ``shadow`` (endpoint ``shadow``), so its error rate can be compared."""
        sink = self.failure_sink
        if sink is None:
            return
        try:
            field_name = error.details.get("field") if isinstance(error, ModelyardError) \
                else None
            sink(FailureRecord(
                rid, name, version, "shadow", time.time_ns() // 1_000,
                (time.perf_counter() - began) * 1_000.0, _shadow_status(error),
                type(error).__name__, "shadow",
                field_name[:MAX_FIELD] if isinstance(field_name, str) and field_name
                else None))
        except Exception:
            logger.debug("could not record the shadow failure of request %s", rid,
                         exc_info=True)

    def _mirror(self, deployment: Deployment, shadow: Served, rid: str,
                instances: list[Any] | None, entities: list[Any] | None) -> None:
        with self._shadow_lock:
            if self._shadow_waiting >= SHADOW_QUEUE:
                if self.metrics is not None:
                    self.metrics.shadow_dropped.labels(deployment.name).inc()
                return
            self._shadow_waiting += 1

        def run() -> None:
            began = time.perf_counter()
            try:
                prepared = prepare(shadow, "shadow", rid, instances, entities, began,
                                   self._entity_rows)
                answer = assemble(prepared, prepared.run())
                if self.sink is not None:
                    self.sink(answer)
                if self.metrics is not None:
                    self.metrics.rows.labels(deployment.name, str(answer.version),
                                             "shadow").inc(len(answer.predictions))
            except Exception as exc:  # a shadow never harms the real answer
                logger.warning("shadow %s:%d failed on request %s: %s", deployment.name,
                               shadow.version, rid, exc)
                self._shadow_failed(deployment.name, shadow.version, rid, exc, began)
            finally:
                with self._shadow_lock:
                    self._shadow_waiting -= 1

        self._shadow.submit(run)


def _shadow_status(error: BaseException) -> int:
    return error.http_status if isinstance(error, ModelyardError) else 500


def _probe_rows(loaded: Any) -> list[dict[str, Any]]:
    """Rows to time a version on when it has no input example: one row of zeros, when
    every input is numeric (nothing to time otherwise)."""
    decoder = loaded.decoder
    if decoder is None or not decoder.numeric:
        return []
    zero = {"float": 0.0, "int": 0, "bool": False}
    return [{spec.name: zero[spec.type] for spec in loaded.signature.inputs}]


def _parse_payload(payload: Any) -> tuple[list[Any] | None, list[Any] | None]:
    if not isinstance(payload, dict):
        raise InvalidInputError(
            "the request body must be a JSON object with 'instances' (input values) or "
            "'entities' (entity keys)", field="body")
    unknown = [k for k in payload if k not in _PAYLOAD_FIELDS]
    if unknown:
        raise InvalidInputError(
            f"unknown field(s) {', '.join(map(repr, unknown))} in the request body; expected "
            "'instances' or 'entities'", field=key_name(unknown[0]))
    has_instances, has_entities = "instances" in payload, "entities" in payload
    if has_instances == has_entities:
        raise InvalidInputError(
            "send exactly one of 'instances' (a list of input values per row) and "
            "'entities' (a list of entity keys per row)", field="body")
    if has_instances:
        return rows_of(payload, "instances"), None
    return None, rows_of(payload, "entities")
