"""``yard.monitoring``: checks of served models over time windows, stored with their alerts.

::

    result = yard.monitoring.check("claims-model", window="7d")
    result.drift["drifted_columns"], result.fired
    yard.monitoring.run()                       # every model with rules; alerts sent
    yard.monitoring.report("claims-model", window="7d", html="report.html")

A check reads the model's predictions in the window from the prediction log (or a frame
given as ``data``), compares them with the reference profile kept at registration, measures
performance where labels arrived and estimates it where they did not (classifiers), computes
service health, and evaluates the alert rules. Rules and notifiers come from three places,
all applied: those stored with :meth:`MonitoringService.set_rules`, those under
``[models.NAME.monitoring]`` in ``modelyard.toml``, and those passed to the call::

    [models.claims-model.monitoring]
    window = "7d"
    alerts = ["dataset_drift", "psi(*) > 0.25", "rmse worse by 10% [critical]"]
    notify = ["log", "webhook:https://hooks.example.com/modelyard"]
    slice_by = ["region"]
    evaluation = "holdout"      # which registered evaluation performance is compared with

A stored check keeps everything its report needs; its alerts are stored with it in the same
transaction, then sent, and where they went is recorded with them.
"""

from __future__ import annotations

import logging
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.backends.metadata.monitoring import (
    AlertRecord,
    MonitorStore,
    ReferenceRecord,
    ResultRecord,
    RulesRecord,
)
from modelyard.errors import InvalidInputError
from modelyard.monitoring.check import CheckInputs, MonitorResult, run_check, summary_of
from modelyard.monitoring.window_data import WindowData, from_frame, from_log
from modelyard.monitoring.windows import Window, resolve_window

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.backends.artifacts.base import ArtifactStore
    from modelyard.backends.metadata.predictions import PredictionStore
    from modelyard.backends.metadata.registry import ModelRecord, RegistryStore, VersionRecord
    from modelyard.monitoring.alerts import AlertRule
    from modelyard.monitoring.methods import DriftOptions
    from modelyard.monitoring.notify import Notifier
    from modelyard.stats.profile import ReferenceProfile

__all__ = ["ModelVersions", "MonitoringService"]

_HOUR_US = 3_600 * 1_000_000
_DAY_US = 24 * _HOUR_US
_CONFIG_KEYS = {"window", "alerts", "notify", "slice_by", "evaluation", "label"}

AlertHook = Callable[[Sequence[AlertRecord]], object]
"""Called with the alerts of each stored check that fired any (retraining listens here)."""


class ModelVersions(Protocol):
    """What monitoring reads of the model registry (``yard.models`` is one): the versions,
    their models and reference profiles, and their stored evaluations. Monitoring is given
    it and never imports the registry (the statistics both use are in
    :mod:`modelyard.stats`)."""

    @property
    def store(self) -> RegistryStore: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    def get_model(self, name: str) -> ModelRecord: ...

    def versions(self, name: str) -> list[VersionRecord]: ...

    def aliases(self, name: str) -> dict[str, int]: ...

    def get_version(self, ref: str, version: int | None = None) -> VersionRecord: ...

    def reference(self, ref: str, version: int | None = None) -> ReferenceProfile | None: ...

    def load(self, ref: str, version: int | None = None) -> Any: ...


class MonitoringService:
    def __init__(self, store: MonitorStore, registry: ModelVersions,
                 predictions: PredictionStore, project_root: Path | None) -> None:
        self.store = store
        self.registry = registry
        self.predictions = predictions
        self.project_root = project_root
        self.alert_hooks: list[AlertHook] = []

    def add_alert_hook(self, hook: AlertHook) -> None:
        """Call ``hook`` with the alerts of every stored check that fired some; a failing
        hook is logged and never fails the check."""
        if hook not in self.alert_hooks:
            self.alert_hooks.append(hook)

    # --- configuration --------------------------------------------------------------------

    def config(self, model: str) -> dict[str, Any]:
        """The model's ``[models.NAME.monitoring]`` table of ``modelyard.toml`` (checked)."""
        if self.project_root is None:
            return {}
        path = self.project_root / "modelyard.toml"
        if not path.is_file():
            return {}
        with path.open("rb") as fh:
            section = tomllib.load(fh).get("models", {}).get(model, {}).get("monitoring", {})
        if not isinstance(section, Mapping):
            raise InvalidInputError(f"models.{model}.monitoring must be a table",
                                    field=f"models.{model}.monitoring")
        unknown = sorted(set(section) - _CONFIG_KEYS)
        if unknown:
            raise InvalidInputError(
                f"models.{model}.monitoring has unknown key(s) {', '.join(unknown)}; the keys "
                f"are {', '.join(sorted(_CONFIG_KEYS))}", field=f"models.{model}.monitoring")
        return dict(section)

    def set_rules(self, model: str, rules: Sequence[str | AlertRule | Mapping[str, Any]],
                  notify: Sequence[str] = ()) -> list[AlertRule]:
        """Store the model's alert rules and notifiers (replacing the stored ones)."""
        from modelyard.monitoring.notify import notifier_from_text

        self.registry.get_model(model)
        parsed = _rules(rules, "rules")
        for target in notify:
            notifier_from_text(target)
        self.store.set_rules(RulesRecord(model, [r.to_dict() for r in parsed], list(notify),
                                         _now_ms()))
        return parsed

    def rules(self, model: str) -> tuple[list[AlertRule], list[str]]:
        """Every rule and notifier that applies to the model: stored, then configured."""
        from modelyard.monitoring.alerts import AlertRule, rules_from_config

        stored = self.store.rules(model)
        rules = [] if stored is None else [AlertRule.from_dict(r) for r in stored.rules]
        notify = [] if stored is None else list(stored.notify)
        config = self.config(model)
        rules += rules_from_config(config.get("alerts", []),
                                   field=f"models.{model}.monitoring.alerts")
        notify += [t for t in config.get("notify", []) if t not in notify]
        return rules, notify

    def monitored_models(self) -> list[str]:
        """Models with stored rules or a monitoring table in ``modelyard.toml``."""
        names = set(self.store.ruled_models())
        if self.project_root is not None and (self.project_root / "modelyard.toml").is_file():
            with (self.project_root / "modelyard.toml").open("rb") as fh:
                models = tomllib.load(fh).get("models", {})
            names |= {n for n, t in models.items() if isinstance(t, Mapping) and
                      "monitoring" in t}
        return sorted(names)

    # --- references -----------------------------------------------------------------------

    def set_reference(self, ref: str, data: Any) -> ReferenceProfile:
        """Profile ``data`` (the model's input columns; the model predicts on them) as the
        version's reference, replacing the one kept at registration."""
        from modelyard.features.training import to_arrow
        from modelyard.stats.profile import build_profile, profile_rows

        record = self.registry.get_version(ref)
        table = to_arrow(data, "data")
        inputs = _inputs(record) or list(table.column_names)
        missing = [c for c in inputs if c not in table.column_names]
        if missing:
            raise InvalidInputError(f"data lacks the model's input column(s) "
                                    f"{', '.join(missing)}", field="data")
        if table.num_rows == 0:
            raise InvalidInputError("data has no rows; a reference profile needs data",
                                    field="data")
        model = self.registry.load(record.name, record.version)
        frame = profile_rows(table, inputs).to_pandas()
        try:
            predictions = model.predict(frame)
        except Exception as exc:
            raise InvalidInputError(
                f"{record.name}:{record.version} could not predict on data "
                f"({', '.join(frame.columns)}): {type(exc).__name__}: {exc}",
                field="data") from exc
        profile = build_profile(frame, predictions)
        sha, _ = self.registry.artifacts.put_bytes(profile.to_json().encode())
        self.store.set_reference(ReferenceRecord(record.name, record.version, sha,
                                                 profile.rows, _now_ms()))
        return profile

    def reference(self, ref: str) -> ReferenceProfile | None:
        """The version's reference profile: the one set later, else the registered one."""
        from modelyard.stats.profile import ReferenceProfile

        record = self.registry.get_version(ref)
        found = self.store.reference(record.name, record.version)
        if found is None:
            return self.registry.reference(record.name, record.version)
        return ReferenceProfile.from_json(
            self.registry.artifacts.get_bytes(found.profile_sha256).decode())

    # --- checks ---------------------------------------------------------------------------

    def check(self, model: str, *, window: str | None = None, start: Any = None,
              end: Any = None, version: int | None = None, data: Any = None,
              label: str | None = None, slice_by: Sequence[str] | None = None,
              rules: Sequence[str | AlertRule] = (), notify: Sequence[str] = (),
              drift_options: DriftOptions | None = None, store: bool = True,
              send: bool = True) -> MonitorResult:
        """Check ``model`` over a window of its prediction log (or over ``data``), store the
        result and its alerts (unless ``store=False``) and send the fired alerts."""
        from modelyard.monitoring.notify import notifier_from_text

        config = self.config(model)
        self.registry.get_model(model)
        span = resolve_window(window or (None if start else config.get("window")),
                              start=start, end=end)
        all_rules, targets = self.rules(model)
        all_rules += _rules(rules, "rules")
        targets += [t for t in notify if t not in targets]
        notifiers = [notifier_from_text(t) for t in targets or ["log"]]  # checked up front
        record: VersionRecord | None
        health: dict[str, Any] | None = None
        loaded: Any = None  # the model object, once loaded
        if data is not None:
            record = self.registry.get_version(model, version)
            label = label or config.get("label") or record.spec.get("label")
            loaded = self.registry.load(record.name, record.version)
            window_data = from_frame(data, inputs=_inputs(record), label=label,
                                     predict=loaded.predict)
        else:
            record, window_data, health = self._from_log(model, version, span)
            label = label or config.get("label") or (
                None if record is None else record.spec.get("label"))
        evaluation, dataset = self._evaluation(record, config.get("evaluation"))
        inputs = CheckInputs(
            model, None if record is None else record.version,
            span if data is None else None, window_data,
            None if record is None else self.reference(f"{record.name}:{record.version}"),
            None if record is None else record.spec.get("reference_rows"),
            evaluation, dataset, label, _prediction_column(record),
            list(slice_by if slice_by is not None else config.get("slice_by", [])),
            drift_options, self._probabilities(record, loaded), health,
            _period(span.end_us - span.start_us), all_rules,
            [] if record is not None else [f"model {model} has no version to check"])
        result = run_check(inputs, datetime.now(UTC).isoformat())
        alert_ids = self._store(result, span) if store else None
        if send and result.fired:
            self._send(result, notifiers, alert_ids)
        return result

    def _from_log(self, model: str, version: int | None, span: Window
                  ) -> tuple[VersionRecord | None, WindowData, dict[str, Any]]:
        """The window of the prediction log: the version checked, its rows, and the
        service health of every version."""
        frame = self.predictions.read(model, version=version, start_us=span.start_us,
                                      end_us=span.end_us)
        health = self._health(model, frame, span)
        record = self._version_of(model, frame, version)
        if record is not None and version is None and len(frame):
            frame = frame[frame["version"] == record.version]
        return record, from_log(frame), health

    def run(self, models: Sequence[str] | None = None, *, window: str | None = None,
            start: Any = None, end: Any = None, rules: Sequence[str | AlertRule] = (),
            notify: Sequence[str] = ()) -> list[MonitorResult]:
        """Check every model with monitoring rules (or the ones named): store, alert."""
        names = list(models) if models else self.monitored_models()
        return [self.check(name, window=window, start=start, end=end, rules=rules,
                           notify=notify) for name in names]

    def history(self, model: str, *, limit: int | None = 100) -> list[dict[str, Any]]:
        """Summaries of the model's stored checks, oldest first (what trends are drawn
        from)."""
        return [r.summary | {"result_id": r.result_id, "version": r.version}
                for r in self.store.results(model, limit=limit)]

    def get_result(self, result_id: str) -> dict[str, Any]:
        return self.store.get_result(result_id).result

    def alerts(self, model: str | None = None, *, limit: int | None = 100
               ) -> list[AlertRecord]:
        return self.store.alerts(model, limit=limit)

    def report(self, model: str, *, window: str | None = None, start: Any = None,
               end: Any = None, html: str | Path | None = None,
               json_path: str | Path | None = None, store: bool = True,
               result: MonitorResult | None = None) -> MonitorResult:
        """Check the model (or take ``result``) and write its report as self-contained HTML
        and/or JSON, with the trends of the stored checks before it."""
        import json

        from modelyard.monitoring.files import write_text_atomic
        from modelyard.monitoring.html import write_html

        result = result or self.check(model, window=window, start=start, end=end,
                                      store=store, send=False)
        data = result.to_dict()
        history = [h for h in self.history(model) if h["result_id"] != result.result_id]
        history.append(summary_of(data))
        for path in (html, json_path):
            if path is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        if html is not None:
            write_html(html, data, history)
        if json_path is not None:
            write_text_atomic(json_path, json.dumps(
                {"result": data, "history": history}, indent=1, allow_nan=False))
        return result

    # --- the parts ------------------------------------------------------------------------

    def _version_of(self, model: str, frame: pd.DataFrame, version: int | None
                    ) -> VersionRecord | None:
        """The version asked for; else the one that answered most primary rows in the
        window; else the production alias's, else the newest."""
        if version is not None:
            return self.registry.get_version(model, version)
        if len(frame):
            primary = frame[frame["role"] == "primary"]
            counts = (primary if len(primary) else frame)["version"].value_counts()
            return self.registry.get_version(model, int(counts.index[0]))
        if not self.registry.versions(model):
            return None
        aliases = self.registry.aliases(model)
        held = aliases.get("production")
        return self.registry.get_version(model, held)

    def _health(self, model: str, frame: pd.DataFrame, span: Window) -> dict[str, Any]:
        from modelyard.monitoring.health import service_health

        failures = self.predictions.read_failures(model, start_us=span.start_us,
                                                  end_us=span.end_us)
        return service_health(frame, failures, start_us=span.start_us, end_us=span.end_us,
                              period_us=_period(span.end_us - span.start_us)).to_dict()

    def _evaluation(self, record: VersionRecord | None, dataset: str | None
                    ) -> tuple[dict[str, Any] | None, str | None]:
        if record is None:
            return None, None
        found = {e.dataset: e.evaluation
                 for e in self.registry.store.evaluations(record.name, record.version)}
        if dataset is not None:
            if dataset not in found:
                raise InvalidInputError(
                    f"{record.name}:{record.version} has no evaluation on data set "
                    f"{dataset!r} (it has: {', '.join(sorted(found)) or 'none'})",
                    field="evaluation")
            return found[dataset], dataset
        for name in ("holdout", "test", "validation", *sorted(found)):
            if name in found:
                return found[name], name
        return None, None

    def _probabilities(self, record: VersionRecord | None, loaded: Any = None) -> Any:
        """A function giving a classifier's probabilities and classes on window features
        (None for a model without ``predict_proba``); the model loads on first call unless
        ``loaded`` is it already."""
        if record is None:
            return None
        registry, inputs = self.registry, _inputs(record)

        def probabilities(features: pd.DataFrame) -> tuple[Any, list[Any]] | None:
            model = loaded if loaded is not None else registry.load(record.name,
                                                                     record.version)
            if not (hasattr(model, "predict_proba") and hasattr(model, "classes_")):
                return None
            frame = features[inputs] if inputs else features
            return model.predict_proba(frame), list(model.classes_)

        return probabilities

    def _store(self, result: MonitorResult, span: Window) -> list[str]:
        """Store the check and its fired alerts in one transaction; the alerts' ids."""
        data = result.to_dict()
        fired_ms = _now_ms()
        alerts = [AlertRecord(uuid.uuid4().hex, result.result_id, result.model,
                              result.version, o.rule.label, o.rule.severity, o.message,
                              o.value, fired_ms, dict(o.evidence))
                  for o in result.fired]
        self.store.save_result(ResultRecord(result.result_id, result.model, result.version,
                                            span.start_us, span.end_us, fired_ms,
                                            result.rows, summary_of(data), data), alerts)
        if alerts:
            for hook in self.alert_hooks:
                try:
                    hook(alerts)
                except Exception:
                    logging.getLogger(__name__).exception("an alert hook failed")
        return [a.alert_id for a in alerts]

    def _send(self, result: MonitorResult, notifiers: Sequence[Notifier],
              alert_ids: Sequence[str] | None) -> None:
        """Send the fired alerts to every notifier and record where they went with each
        stored alert."""
        from dataclasses import replace

        from modelyard.monitoring.notify import deliver, make_alerts

        alerts = make_alerts(result.fired, result.to_dict())
        if alert_ids is not None:
            alerts = [replace(a, alert_id=i) for a, i in zip(alerts, alert_ids, strict=True)]
        deliveries = [d.to_dict() for d in deliver(alerts, notifiers)]
        for alert_id in alert_ids or ():
            self.store.record_deliveries(alert_id, deliveries)

def _rules(items: Sequence[Any], field: str) -> list[AlertRule]:
    from modelyard.monitoring.alerts import AlertRule, rules_from_config

    if isinstance(items, str):
        raise InvalidInputError(f"{field} must be a list of rules, not one string",
                                field=field)
    given = [i for i in items if isinstance(i, AlertRule)]
    return given + rules_from_config([i for i in items if not isinstance(i, AlertRule)],
                                     field=field)


def _inputs(record: VersionRecord) -> list[str]:
    signature = record.spec.get("signature") or {}
    return [c["name"] for c in signature.get("inputs") or []]


def _prediction_column(record: VersionRecord | None) -> str:
    if record is None:
        return "prediction"
    outputs = (record.spec.get("signature") or {}).get("outputs") or []
    return str(outputs[0]["name"]) if len(outputs) == 1 else "prediction"


def _period(span_us: int) -> int:
    """Trend periods: hours for a window up to two days, else days."""
    return _HOUR_US if span_us <= 2 * _DAY_US else _DAY_US


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)

