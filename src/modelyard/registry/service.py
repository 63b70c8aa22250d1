"""The model registry: registering versions, loading them safely, aliases and rollback.

A version is registered whole or not at all: the flavor writes the model's files, they are
stored as one content-addressed archive (and the ONNX twin as another), and only then is the
version's row written, in one transaction that takes the next number. Loading reads the
archive through the artifact store, which refuses bytes whose sha256 differs from the one
recorded with the version.

Promotion through gates lives in :mod:`modelyard.registry.promotion`, lineage in
:mod:`modelyard.registry.lineage`; this service is the facade ``yard.models``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.registry import (
    AliasEvent,
    ModelRecord,
    RegistryStore,
    VersionRecord,
)
from modelyard.backends.metadata.writes import WriteStore
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.idempotency import Guard, guard, rollback
from modelyard.registry.nulls import predict_rows
from modelyard.registry.nulls import warn as warn_nulls
from modelyard.registry.packaging import archive, unpack
from modelyard.registry.references import ModelRef, check_alias, check_name, parse_ref
from modelyard.tracking.environment import current_user

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from modelyard.backends.artifacts.base import ArtifactStore
    from modelyard.features.service import FeatureService
    from modelyard.features.training import TrainingSet
    from modelyard.registry.evaluation import Evaluation
    from modelyard.registry.gates import Gate
    from modelyard.registry.lineage import Lineage
    from modelyard.registry.promotion import GatePreview, Promotion
    from modelyard.registry.signature import Signature
    from modelyard.stats.profile import ReferenceProfile
    from modelyard.tracking.service import TrackingService

logger = logging.getLogger("modelyard.registry")

_SAMPLE_ROWS = 200  # rows kept to check the ONNX twin and as the input example's source
_EXAMPLE_ROWS = 5
_BACKGROUND_ROWS = 100  # rows kept for explanations to be measured against
_BACKGROUND_SEED = 0


class ModelLibraryWarning(UserWarning):
    """A pickled model is loaded with other library versions than it was saved with."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ModelRegistry:
    """``yard.models``: versions, aliases, loading, evaluation, promotion and lineage."""

    def __init__(self, store: RegistryStore, artifacts: ArtifactStore,
                 tracking: TrackingService, features: Callable[[], FeatureService],
                 project_root: Path | None, *, writes: WriteStore) -> None:
        self.store = store
        self.writes = writes
        self.artifacts = artifacts
        self.tracking = tracking
        self._features = features
        self.project_root = project_root

    # --- registering ----------------------------------------------------------------------

    def register(self, model: Any, name: str, *, training_set: TrainingSet | None = None,
                 input_example: Any = None, features: Sequence[str] | None = None,
                 run_id: str | None = None, description: str | None = None,
                 flavor: str | None = None, onnx: bool = True,
                 idempotency_key: str | None = None) -> VersionRecord:
        """Store ``model`` as the next version of ``name``.

        The signature comes from the training set's feature columns (or ``features``, or the
        columns of ``input_example``) and the model's predictions on them; without either,
        from the columns the fitted estimator records (``feature_names_in_``,
        ``n_features_in_``: see :mod:`modelyard.registry.estimator_inputs`). The flavor is
        detected from the object unless named. ``onnx=False`` skips the ONNX twin. Under an
        ``idempotency_key`` already used for the same model files and name, the version it
        registered is returned and nothing is written.
        """
        import hashlib

        from modelyard.registry import flavors as flavor_registry
        from modelyard.registry.signature import Signature

        check_name(name)
        chosen = (flavor_registry.flavor(flavor) if flavor is not None
                  else flavor_registry.detect(model))
        sample = self._sample(training_set, input_example, features)
        made_up = self._estimator_rows(model, name) if sample is None else None
        signature: Signature | None = None
        refused_nulls: tuple[str, ...] = ()
        if sample is not None:
            what = "the input example" if input_example is not None else "the training set"
            predicted = predict_rows(model, sample, name, what=what)
            if predicted.refused_nulls:
                refused_nulls = predicted.refused_nulls
                warn_nulls(
                    f"model {name!r} cannot take nulls ({predicted.reason}), which {what} "
                    f"has in {', '.join(refused_nulls)}: registered on its rows without them, "
                    "with a signature that refuses nulls; to take such rows, fill them in "
                    "the model (e.g. a Pipeline starting with SimpleImputer)")
            sample = predicted.rows
            signature = Signature.infer(sample, predicted.outputs)
        elif made_up is not None:
            made_up, outputs = made_up
            signature = Signature.infer(made_up, outputs)
        with tempfile.TemporaryDirectory(prefix="modelyard-register-") as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            chosen.save(model, folder)
            packed = archive(folder)
        write = guard(self.writes, "register", idempotency_key, name=name,
                      flavor=chosen.name, archive=hashlib.sha256(packed).hexdigest())
        done = write.replay()
        if done is None:
            done = write.begin("register", name, {"blobs": []},
                               lambda held: rollback(self.writes, held))
        if done is not None:
            return self.store.get_version(name, int(done["version"]))
        try:
            return self._store_version(model, name, chosen, packed, write, sample, signature,
                                       training_set, input_example, description, run_id,
                                       onnx, refused_nulls, made_up)
        except BaseException:
            assert write.intent is not None
            with contextlib.suppress(Exception):  # the write's own error matters more
                rollback(self.writes, write.intent, "failed")
            raise

    def _store_version(self, model: Any, name: str, chosen: Any, packed: bytes,
                       write: Guard, sample: pd.DataFrame | None,
                       signature: Signature | None, training_set: TrainingSet | None,
                       input_example: Any, description: str | None, run_id: str | None,
                       onnx: bool, refused_nulls: tuple[str, ...] = (),
                       made_up: pd.DataFrame | None = None) -> VersionRecord:
        """Store the blobs of a version (all named in the write's intent first), then
        its row with the idempotency key, in one transaction that ends the intent."""
        import hashlib

        blobs: dict[str, bytes] = {}

        def put(data: bytes) -> str:  # kept until the intent names them all
            sha = hashlib.sha256(data).hexdigest()
            blobs[sha] = data
            return sha

        sha, size = put(packed), len(packed)
        twin = (self._twin(model, chosen.name, sample if sample is not None else made_up)
                if onnx else None)
        onnx_sha = None
        if twin is not None and twin.onnx is not None:
            onnx_sha = put(twin.onnx)
        spec: dict[str, Any] = {
            "flavor": chosen.name,
            "pickled": chosen.pickled,
            "libraries": chosen.libraries(),
            "requirements": chosen.requirements(),
            "signature": None if signature is None else signature.to_dict(),
            "input_example": None if sample is None else _records(sample.head(_EXAMPLE_ROWS)),
            "signature_from": (None if signature is None else
                               "estimator" if sample is None else "example"),
            "onnx": None if twin is None else twin.to_dict(),
            "description": description or "",
            "label": None if training_set is None else training_set.label,
        }
        if sample is not None:
            background = self._background(training_set, input_example, list(sample.columns),
                                          without_nulls=bool(refused_nulls))
            spec["background_sha256"] = put(_ipc(background))
            spec["background_rows"] = background.num_rows
            spec.update(self._reference(model, name, training_set, input_example, sample,
                                        put, without_nulls=bool(refused_nulls)))
        if refused_nulls:
            spec["refused_nulls"] = list(refused_nulls)
        if training_set is not None:
            spec["spine_sha256"] = put(self._spine(training_set))
            self._features().store.save_training_set(_training_record(training_set))
        if description is not None:
            self.store.ensure_model(name, description)
        record = VersionRecord(
            name, 0, chosen.name, sha, size, onnx_sha, run_id,
            None if training_set is None else training_set.training_set_id, spec, _now_ms(),
            current_user())
        write.extend(*blobs)
        for data in blobs.values():
            self.artifacts.put_bytes(data)
        return self.store.add_version(record, done=write.completion())

    def _sample(self, training_set: TrainingSet | None, input_example: Any,
                features: Sequence[str] | None) -> pd.DataFrame | None:
        from modelyard.features.training import to_arrow

        if input_example is not None:
            frame = to_arrow(input_example, "input_example").to_pandas()
        elif training_set is not None:
            frame = training_set.table.slice(0, _SAMPLE_ROWS).to_pandas()
            if features is None:
                features = [ref.split(":", 1)[1] for ref in training_set.features]
        else:
            return None
        if features is not None:
            missing = [c for c in features if c not in frame.columns]
            if missing:
                raise InvalidInputError(
                    f"the model's input column(s) {', '.join(missing)} are not in the "
                    f"{'input example' if input_example is not None else 'training set'}",
                    field="features")
            frame = frame[list(features)]
        return frame.head(_SAMPLE_ROWS)

    def _estimator_rows(self, model: Any, name: str) -> tuple[pd.DataFrame, Any] | None:
        """Made-up rows of the columns the fitted ``model`` records, and its predictions on
        them; None when it records none or cannot predict on them (then no signature)."""
        from modelyard.registry.estimator_inputs import rows_from_estimator
        from modelyard.registry.nulls import model_input

        try:
            rows = rows_from_estimator(model)
            if rows is None:
                return None
            return rows, model.predict(model_input(model, rows))
        except Exception as exc:  # a model that records columns it cannot take
            logger.info("model %r: no signature from the fitted estimator (%s: %s)", name,
                        type(exc).__name__, exc)
            return None

    def _twin(self, model: Any, flavor: str, sample: pd.DataFrame | None) -> Any:
        from modelyard.registry.onnx_twin import TwinResult, convert

        if sample is None or len(sample) == 0:
            return TwinResult("unavailable", None, "no training set or input example to "
                              "check the converted model against", None, "")
        return convert(model, flavor, sample)

    def _spine(self, training_set: TrainingSet) -> bytes:
        """The training set's spine (its columns before the features), kept so that the
        training set can be rebuilt from the record."""
        features = {ref.split(":", 1)[1] for ref in training_set.features}
        return _ipc(training_set.table.select(
            [c for c in training_set.table.column_names if c not in features]))

    def _background(self, training_set: TrainingSet | None, input_example: Any,
                    columns: list[str], *, without_nulls: bool = False) -> pa.Table:
        """The model's input columns of up to _BACKGROUND_ROWS rows drawn at random (seeded)
        from the input example, or else from the whole training set (of its rows without
        nulls, for a model that cannot take them)."""
        import numpy as np

        from modelyard.features.training import to_arrow

        if input_example is not None:
            table = to_arrow(input_example, "input_example")
        else:
            assert training_set is not None
            table = training_set.table
        table = table.select(columns)
        if without_nulls:
            table = _without_nulls(table)
        if table.num_rows > _BACKGROUND_ROWS:
            rng = np.random.default_rng(_BACKGROUND_SEED)
            table = table.take(np.sort(rng.choice(table.num_rows, _BACKGROUND_ROWS,
                                                  replace=False)))
        return table

    def _reference(self, model: Any, name: str, training_set: TrainingSet | None,
                   input_example: Any, sample: pd.DataFrame,
                   put: Callable[[bytes], str], *, without_nulls: bool = False
                   ) -> dict[str, Any]:
        """The spec entries of the version's reference profile, built on the training set
        (else the input example) in the input types of ``sample``; none when it cannot be
        built (see :mod:`modelyard.registry.reference`)."""
        from modelyard.features.training import to_arrow
        from modelyard.registry.reference import profile_rows, reference_profile

        table = (training_set.table if training_set is not None
                 else to_arrow(input_example, "input_example"))
        rows = profile_rows(table, list(sample.columns))
        if without_nulls:
            rows = _without_nulls(rows)
        what = "the training set" if training_set is not None else "the input example"
        profile = reference_profile(model, rows, name, like=sample, what=what)
        if profile is None:
            return {}
        return {"reference_sha256": put(profile.to_json().encode()),
                "reference_rows": profile.rows}

    # --- reading --------------------------------------------------------------------------

    def list_models(self) -> list[ModelRecord]:
        return self.store.list_models()

    def get_model(self, name: str) -> ModelRecord:
        return self.store.get_model(check_name(name))

    def versions(self, name: str) -> list[VersionRecord]:
        self.store.get_model(check_name(name))
        return self.store.list_versions(name)

    def aliases(self, name: str) -> dict[str, int]:
        return self.store.aliases(check_name(name))

    def get_version(self, ref: str | ModelRef, version: int | None = None) -> VersionRecord:
        """The version a reference names: ``name:3``, ``name@alias``, or ``name`` (newest)."""
        parsed = parse_ref(ref, version)
        if parsed.version is not None:
            return self.store.get_version(parsed.name, parsed.version)
        if parsed.alias is not None:
            held = self.store.aliases(parsed.name).get(parsed.alias)
            if held is None:
                self.store.get_model(parsed.name)
                raise NotFoundError(f"model {parsed.name!r} has no alias {parsed.alias!r}",
                                    model=parsed.name, alias=parsed.alias)
            return self.store.get_version(parsed.name, held)
        found = self.store.list_versions(parsed.name)
        if not found:
            self.store.get_model(parsed.name)
            raise NotFoundError(f"model {parsed.name!r} has no versions yet",
                                model=parsed.name)
        return found[-1]

    def signature(self, ref: str | ModelRef) -> Signature | None:
        from modelyard.registry.signature import Signature

        data = self.get_version(ref).spec.get("signature")
        return None if data is None else Signature.from_dict(data)

    def background(self, ref: str | ModelRef, version: int | None = None
                   ) -> pd.DataFrame | None:
        """The rows kept at registration for explanations to be measured against (read
        through the artifact store, which checks their sha256): up to 100 rows of the input
        columns, or None for a version registered without a training set or input example."""
        import pyarrow as pa

        sha = self.get_version(ref, version).spec.get("background_sha256")
        if sha is None:
            return None
        table = pa.ipc.open_file(pa.BufferReader(self.artifacts.get_bytes(sha))).read_all()
        frame: pd.DataFrame = table.to_pandas()
        return frame

    def reference(self, ref: str | ModelRef, version: int | None = None
                  ) -> ReferenceProfile | None:
        """The reference profile kept at registration (read through the artifact store,
        which checks its sha256), or None for a version registered without one."""
        from modelyard.stats.profile import ReferenceProfile

        sha = self.get_version(ref, version).spec.get("reference_sha256")
        if sha is None:
            return None
        return ReferenceProfile.from_json(self.artifacts.get_bytes(sha).decode())

    # --- loading --------------------------------------------------------------------------

    def load(self, ref: str | ModelRef, version: int | None = None) -> Any:
        """The model object of a version, after its archive's sha256 was checked. A pickled
        model loaded with other library versions than recorded warns (ModelLibraryWarning)."""
        from modelyard.registry import flavors

        record = self.get_version(ref, version)
        flavor = flavors.flavor(record.flavor)
        folder = unpack(self.artifacts, record.artifact_sha256)
        if flavor.loads_pickle(folder):
            drift = flavors.library_drift(record.spec.get("libraries", {}))
            if drift:
                warnings.warn(
                    f"model {record.name}:{record.version} was pickled with other library "
                    f"versions: {'; '.join(drift)}. It may load wrongly or predict "
                    f"differently; install the recorded versions "
                    f"({' '.join(record.spec.get('requirements', []))}) to be sure.",
                    ModelLibraryWarning, stacklevel=2)
        return flavor.load(folder)

    def load_onnx(self, ref: str | ModelRef, version: int | None = None) -> Any:
        """The version's ONNX twin (checked against its sha256), or NotFoundError saying
        why there is none."""
        from modelyard.registry.flavors.onnx import OnnxModel

        record = self.get_version(ref, version)
        if record.onnx_sha256 is None:
            why = (record.spec.get("onnx") or {}).get("reason") or "it was not converted"
            raise NotFoundError(f"model {record.name}:{record.version} has no ONNX twin: "
                                f"{why}", model=record.name, version=record.version)
        return OnnxModel.from_bytes(self.artifacts.get_bytes(record.onnx_sha256))

    # --- aliases --------------------------------------------------------------------------

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        self.store.get_model(check_name(name))
        return self.store.alias_history(name, None if alias is None else check_alias(alias))

    def rollback(self, name: str, alias: str = "production", *, reason: str = "",
                 actor: str | None = None) -> AliasEvent:
        """Move ``alias`` back to the version that held it before the current one."""
        check_name(name)
        check_alias(alias)
        authority = self.store.authority()
        if authority is not None:  # a server decides (and names the actor)
            return authority.rollback(name, alias, reason=reason,
                                      actor=actor or current_user())
        for _ in range(8):
            current = self.store.aliases(name).get(alias)
            if current is None:
                self.store.get_model(name)
                raise NotFoundError(f"model {name!r} has no alias {alias!r} to roll back",
                                    model=name, alias=alias)
            previous = _previous_holder(self.store.alias_history(name, alias), current)
            if previous is None:
                raise NotFoundError(
                    f"alias {alias!r} of model {name!r} has no earlier holder than version "
                    f"{current} to roll back to", model=name, alias=alias)
            event = AliasEvent(name, alias, current, previous, "rollback",
                               actor or current_user(), reason, _now_ms())
            if self.store.move_alias(event):
                return event
        raise InvalidInputError(f"alias {alias!r} of model {name!r} kept moving while rolling "
                                "back; try again", field="alias")

    # --- evaluation, promotion, lineage (their own modules) -------------------------------

    def evaluate(self, ref: str | ModelRef, data: Any, *, label: str | None = None,
                 dataset: str = "default", slice_by: str | Sequence[str] | None = None,
                 sensitive: str | Sequence[str] | None = None) -> Evaluation:
        from modelyard.registry.promotion import evaluate_version

        return evaluate_version(self, self.get_version(ref), data, label=label,
                                dataset=dataset, slice_by=slice_by, sensitive=sensitive)

    def set_gates(self, name: str, gates: Sequence[Gate]) -> ModelRecord:
        """Declare the gates promotions of ``name`` must pass (in addition to those in
        ``modelyard.toml``); behaviour tests are kept by their dotted path."""
        from modelyard.registry.promotion import gates_to_store

        return self.store.ensure_model(check_name(name), gates=gates_to_store(gates))

    def promote(self, name: str, version: int, alias: str = "production", *,
                force: bool = False, reason: str = "", actor: str | None = None,
                data: dict[str, Any] | None = None, gates: Sequence[Gate] = (),
                idempotency_key: str | None = None) -> Promotion:
        """Run every gate, store the report, and move ``alias`` to the version, or raise
        GateFailedError listing each failed gate. ``force=True`` (with a reason) moves
        it anyway and records the override. A retry under the same ``idempotency_key``
        returns the first promotion and moves nothing."""
        from modelyard.registry.promotion import promote, promote_remotely

        authority = self.store.authority()
        if authority is not None:  # a server runs the gates: no client can skip them
            return promote_remotely(self, authority, name, version, alias, force=force,
                                    reason=reason, data=data, extra_gates=gates,
                                    idempotency_key=idempotency_key,
                                    actor=actor or current_user())
        return promote(self, name, version, alias, force=force, reason=reason, actor=actor,
                       data=data, extra_gates=gates, idempotency_key=idempotency_key)

    def preview_promotion(self, name: str, version: int, alias: str = "production"
                          ) -> GatePreview:
        """The gates ``promote`` would run, run now against the alias's holder on the
        stored evaluations: nothing is stored and nothing moves."""
        from modelyard.registry.promotion import preview

        return preview(self, name, version, alias)

    def lineage(self, ref: str | ModelRef, version: int | None = None) -> Lineage:
        from modelyard.registry.lineage import lineage

        return lineage(self, self.get_version(ref, version))

    def rebuild_training_set(self, ref: str | ModelRef, version: int | None = None
                             ) -> TrainingSet:
        """The version's training set, built again from its record (same spine, feature
        versions and table commits)."""
        from modelyard.registry.lineage import rebuild_training_set

        return rebuild_training_set(self, self.get_version(ref, version))

    def features(self) -> FeatureService:
        return self._features()


def _previous_holder(history: list[AliasEvent], current: int) -> int | None:
    """The version the alias held before ``current`` became its holder: rollbacks are undone
    moves, so the event that first made ``current`` the holder (not by a rollback) decides."""
    for event in reversed(history):
        if event.to_version == current and event.action != "rollback":
            return event.from_version
    return None


def _without_nulls(table: pa.Table) -> pa.Table:
    """The rows with no null (nor NaN) in any column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.drop_null()
    for column in table.column_names:
        if pa.types.is_floating(table.schema.field(column).type):
            table = table.filter(pc.invert(pc.is_nan(table.column(column))))
    return table


def _ipc(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC file."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    import json

    return list(json.loads(frame.to_json(orient="records", date_format="iso")))


def _training_record(training_set: TrainingSet) -> Any:
    from modelyard.backends.metadata.feature_registry import TrainingSetRecord

    return TrainingSetRecord(training_set.training_set_id, training_set.created_at,
                             training_set.lineage())
