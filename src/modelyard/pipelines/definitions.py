"""Training pipelines in code: ``@modelyard.pipeline`` and its triggers.

::

    @modelyard.pipeline(name="claims_retrain", model="claims-model",
                        params={"alpha": 1.0}, schedule="0 3 * * 1", timezone="Europe/Paris",
                        triggers=[modelyard.on_alert(rule="rmse worse by 10%")])
    def claims_retrain(ctx):
        ...

A pipeline's ``spec()`` is plain JSON-able data and its content hash decides its version,
as for feature definitions. The code is stored as source, never pickled: the whole ``.py``
file that defines the pipeline (so the helpers and imports it uses come along), or, for a
function defined elsewhere (a notebook cell), the function's own source, which then imports
what it needs inside its body. The code counts for the version by its syntax tree, so
comments and layout make no new version. The schedule is not part of the version either
(the ``schedule=`` and ``timezone=`` written in the code are left out): it is kept beside
the pipeline and can be changed without a new version (``yard.pipelines.set_schedule``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidDefinitionError
from modelyard.pipelines.declarations import EvaluationWindow, Shadow, duration_ms

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
POLICIES = ("auto", "approval", "shadow")

__all__ = ["OnAlert", "OnNewData", "OnSuccess", "Pipeline", "Trigger", "check_cron",
           "check_timezone", "on_alert", "on_new_data", "on_success", "pipeline"]


def _check_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidDefinitionError(
            f"{what} {name!r} is not valid: use letters, digits, '_', '-' and '.', starting "
            "with a letter or '_' (at most 128 characters)", field=what, value=repr(name))
    return name


def check_cron(cron: object, owner: str | None = None) -> str:
    """A five-field cron expression (``"0 3 * * 1"``), checked by croniter; ``owner`` is
    the pipeline named in the error."""
    what = "schedule" if owner is None else f"schedule of pipeline {owner!r}"
    try:
        from croniter import croniter
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise InvalidDefinitionError(
            "schedules need croniter: pip install 'modelyard[pipelines]'", field=what) from exc
    if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise InvalidDefinitionError(
            f"{what}, {cron!r}, is not a cron expression: write five fields, minute hour "
            "day-of-month month day-of-week, like '0 3 * * 1' (Mondays at 03:00)",
            field="schedule", value=repr(cron))
    return " ".join(cron.split())


def check_timezone(name: object, what: str = "timezone") -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        if not isinstance(name, str) or not name:
            raise ValueError
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise InvalidDefinitionError(
            f"{what} {name!r} is not a known time zone: use an IANA name such as 'UTC' or "
            "'Europe/Paris'", field=what, value=repr(name)) from None
    return name


# --- triggers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OnAlert:
    """Run when monitoring fires an alert on ``model`` (by default the pipeline's model),
    on any rule or on the one named; alerts within ``cooldown`` of a run collapse into it."""

    model: str | None = None
    rule: str | None = None
    cooldown: str = "1h"

    def __post_init__(self) -> None:
        if self.model is not None:
            _check_name("on_alert model", self.model)
        if self.rule is not None and (not isinstance(self.rule, str) or not self.rule.strip()):
            raise InvalidDefinitionError(f"on_alert rule must be a rule's text or name, not "
                                         f"{self.rule!r}", field="rule")
        duration_ms(self.cooldown, "cooldown")

    @property
    def cooldown_ms(self) -> int:
        return duration_ms(self.cooldown, "cooldown")

    def spec(self) -> dict[str, Any]:
        return {"kind": "alert", "model": self.model, "rule": self.rule,
                "cooldown": self.cooldown}


@dataclass(frozen=True)
class OnSuccess:
    """Run after each successful run of another pipeline."""

    pipeline: str

    def __post_init__(self) -> None:
        _check_name("on_success pipeline", self.pipeline)

    def spec(self) -> dict[str, Any]:
        return {"kind": "upstream", "pipeline": self.pipeline}


@dataclass(frozen=True)
class OnNewData:
    """Run when a source's offline table has gained at least ``min_rows`` rows (in one or
    more ingestions) since the last run this trigger started (or since the pipeline was
    first applied)."""

    source: str
    min_rows: int = 1

    def __post_init__(self) -> None:
        _check_name("on_new_data source", self.source)
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) \
                or self.min_rows < 1:
            raise InvalidDefinitionError(
                f"on_new_data min_rows must be a whole number of at least 1, not "
                f"{self.min_rows!r}", field="min_rows")

    def spec(self) -> dict[str, Any]:
        return {"kind": "data", "source": self.source, "min_rows": self.min_rows}


Trigger = OnAlert | OnSuccess | OnNewData


def on_alert(model: str | None = None, *, rule: str | None = None,
             cooldown: str = "1h") -> OnAlert:
    """A trigger: an alert of monitoring on ``model`` (default: the pipeline's model)."""
    return OnAlert(model, rule, cooldown)


def on_success(pipeline: str) -> OnSuccess:
    """A trigger: each successful run of the pipeline named."""
    return OnSuccess(pipeline)


def on_new_data(source: str, *, min_rows: int = 1) -> OnNewData:
    """A trigger: ``min_rows`` new rows ingested into the source's offline table."""
    return OnNewData(source, min_rows)


def trigger_from_spec(spec: Mapping[str, Any]) -> Trigger:
    if spec.get("kind") == "alert":
        return OnAlert(spec.get("model"), spec.get("rule"), spec.get("cooldown", "1h"))
    if spec.get("kind") == "upstream":
        return OnSuccess(spec["pipeline"])
    if spec.get("kind") == "data":
        return OnNewData(spec["source"], int(spec.get("min_rows", 1)))
    raise InvalidDefinitionError(f"unknown trigger {dict(spec)!r}", field="triggers")


# --- the pipeline -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pipeline:
    """A registered training pipeline: a function of a :class:`PipelineContext` that
    trains and registers a candidate version of ``model`` (a pipeline without a model does
    other scheduled work, monitoring checks for instance)."""

    name: str
    model: str | None
    code: str  # the source stored and run
    function: str  # the function's name in ``code``
    params: dict[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    timezone: str = "UTC"
    triggers: tuple[Trigger, ...] = ()
    max_attempts: int = 2
    description: str = ""
    path: str | None = None  # where the code was read from
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    policy: str | None = None  # what becomes of the candidate: None, "auto", "approval"
    alias: str = "production"  # the champion's alias the candidate is compared with
    notify: tuple[str, ...] = ()  # notifiers told of a decision awaiting approval
    probation: str | None = None  # after a promotion: a critical alert rolls it back
    shadow: Shadow | None = None  # the shadow policy's live trial
    evaluation: EvaluationWindow | None = None  # the data champion and challenger are scored on

    def __post_init__(self) -> None:
        _check_name("pipeline name", self.name)
        if self.probation is not None:
            duration_ms(self.probation, "probation")
            if self.policy is None:
                raise InvalidDefinitionError(
                    f"pipeline {self.name!r}: probation watches the versions a policy "
                    "promotes: give the pipeline a policy", field="probation")
        if self.policy is not None and self.policy not in POLICIES:
            raise InvalidDefinitionError(
                f"pipeline {self.name!r}: policy must be 'auto', 'approval' or 'shadow', not "
                f"{self.policy!r}", field="policy", value=repr(self.policy))
        self._check_policy_parts()
        if self.policy is not None and self.model is None:
            raise InvalidDefinitionError(
                f"pipeline {self.name!r}: a policy decides on the versions of a model: "
                "give the pipeline its model=", field="policy")
        from modelyard.registry.references import check_alias

        check_alias(self.alias)
        if isinstance(self.notify, str) or not all(isinstance(n, str) for n in self.notify):
            raise InvalidDefinitionError(
                f"pipeline {self.name!r}: notify is a list of notifier texts, like "
                "['log', 'webhook:https://...']", field="notify")
        object.__setattr__(self, "notify", tuple(self.notify))
        if self.notify:
            from modelyard.monitoring.notify import notifier_from_text

            for text in self.notify:
                notifier_from_text(text, field="notify")
        if self.model is not None:
            _check_name("model", self.model)
        if not isinstance(self.params, Mapping) or not all(
                isinstance(k, str) for k in self.params):
            raise InvalidDefinitionError("params must be a dict with string keys",
                                         field="params")
        try:
            json.dumps(dict(self.params), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidDefinitionError(
                f"params of pipeline {self.name!r} must be JSON values (numbers, strings, "
                f"booleans, lists, dicts): {exc}", field="params") from exc
        if self.schedule is not None:
            object.__setattr__(self, "schedule", check_cron(self.schedule, self.name))
        check_timezone(self.timezone)
        if not isinstance(self.max_attempts, int) or not 1 <= self.max_attempts <= 100:
            raise InvalidDefinitionError(
                f"max_attempts must be a whole number from 1 to 100, not {self.max_attempts!r}",
                field="max_attempts")
        for trigger in self.triggers:
            if not isinstance(trigger, (OnAlert, OnSuccess, OnNewData)):
                raise InvalidDefinitionError(
                    f"pipeline {self.name!r}: a trigger is modelyard.on_alert(...), "
                    f"modelyard.on_success(...) or modelyard.on_new_data(...), not "
                    f"{trigger!r}", field="triggers")
            if isinstance(trigger, OnAlert) and trigger.model is None and self.model is None:
                raise InvalidDefinitionError(
                    f"pipeline {self.name!r}: on_alert() needs a model: name one, or give "
                    "the pipeline its model", field="triggers")
            if isinstance(trigger, OnSuccess) and trigger.pipeline == self.name:
                raise InvalidDefinitionError(
                    f"pipeline {self.name!r} cannot trigger itself on success",
                    field="triggers")

    def _check_policy_parts(self) -> None:
        if self.shadow is not None and not isinstance(self.shadow, Shadow):
            raise InvalidDefinitionError(
                f"pipeline {self.name!r}: shadow is a modelyard.Shadow(...), not "
                f"{self.shadow!r}", field="shadow")
        if self.evaluation is not None and not isinstance(self.evaluation, EvaluationWindow):
            raise InvalidDefinitionError(
                f"pipeline {self.name!r}: evaluation is a modelyard.EvaluationWindow(...), not "
                f"{self.evaluation!r}", field="evaluation")
        if self.policy == "shadow" and self.shadow is None:
            raise InvalidDefinitionError(
                f"pipeline {self.name!r}: the shadow policy needs its trial: "
                "shadow=modelyard.Shadow(duration='1d') (or requests=N)", field="shadow")
        if self.shadow is not None and self.policy != "shadow":
            raise InvalidDefinitionError(
                f"pipeline {self.name!r}: shadow= declares the trial of policy='shadow', "
                f"but the policy is {self.policy!r}", field="shadow")
        if self.shadow is not None and self.shadow.trial_alias == self.alias:
            raise InvalidDefinitionError(
                f"pipeline {self.name!r}: the shadow trial's alias must differ from the "
                f"alias it decides on ({self.alias!r})", field="shadow")
        if self.evaluation is not None and self.policy is None:
            raise InvalidDefinitionError(
                f"pipeline {self.name!r}: an evaluation is what a policy scores the "
                "candidate and the champion on: give the pipeline a policy",
                field="evaluation")

    def spec(self) -> dict[str, Any]:
        """What the version is made of (the schedule is kept apart, see the module)."""
        spec: dict[str, Any] = {"name": self.name, "model": self.model, "function": self.function,
                "code": self.code, "params": dict(self.params),
                "triggers": [t.spec() for t in self.triggers],
                "max_attempts": self.max_attempts, "description": self.description}
        if self.policy is not None:
            spec |= {"policy": self.policy, "alias": self.alias}
        if self.notify:
            spec["notify"] = list(self.notify)
        if self.probation is not None:
            spec["probation"] = self.probation
        if self.shadow is not None:
            spec["shadow"] = self.shadow.spec()
        if self.evaluation is not None:
            spec["evaluation"] = self.evaluation.spec()
        return spec

    def content_hash(self) -> str:
        """sha256 of the spec, the code read as its syntax tree without its decorators'
        ``schedule=`` and ``timezone=`` (the schedule is not part of the version)."""
        spec = self.spec() | {"code": _without_schedules(self.code)}
        body = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, schedule: str | None = None,
                  timezone: str = "UTC") -> Pipeline:
        return cls(spec["name"], spec.get("model"), spec["code"], spec["function"],
                   dict(spec.get("params", {})), schedule, timezone,
                   tuple(trigger_from_spec(t) for t in spec.get("triggers", [])),
                   int(spec.get("max_attempts", 2)), spec.get("description", ""),
                   policy=spec.get("policy"), alias=spec.get("alias", "production"),
                   notify=tuple(spec.get("notify", ())), probation=spec.get("probation"),
                   shadow=None if spec.get("shadow") is None else Shadow.from_spec(
                       spec["shadow"]),
                   evaluation=None if spec.get("evaluation") is None
                   else EvaluationWindow.from_spec(spec["evaluation"]))

    def __call__(self, ctx: Any) -> Any:
        """Run the function in this process (the code as defined, not as stored)."""
        if self.fn is None:
            return self.load()(ctx)
        return self.fn(ctx)

    def load(self, label: str | None = None) -> Callable[..., Any]:
        """The function rebuilt from the stored code; ``label`` names it in tracebacks."""
        import linecache
        import sys
        import types

        filename = f"<pipeline {label or self.name}>"
        module = types.ModuleType("modelyard_pipeline_" + re.sub(r"\W", "_", self.name))
        module.__file__ = filename
        linecache.cache[filename] = (len(self.code), None, self.code.splitlines(True),
                                     filename)
        sys.modules[module.__name__] = module  # dataclasses and pickling look it up
        try:
            exec(compile(self.code, filename, "exec"), module.__dict__)
        except Exception as exc:
            raise InvalidDefinitionError(
                f"the stored code of pipeline {self.name!r} failed to run: "
                f"{type(exc).__name__}: {exc}", field="code") from exc
        found = module.__dict__.get(self.function)
        if isinstance(found, Pipeline) and found.fn is not None:
            return found.fn
        if not callable(found):
            raise InvalidDefinitionError(
                f"the stored code of pipeline {self.name!r} defines no {self.function!r}",
                field="code")
        return found  # type: ignore[no-any-return]


def _without_schedules(code: str) -> str:
    """What of ``code`` makes the version: its syntax tree (so layout and comments do not
    count) without the ``schedule=`` and ``timezone=`` arguments of the decorators of its
    module-level functions; the text itself when it does not parse."""
    import ast

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call):
                    decorator.keywords = [k for k in decorator.keywords
                                          if k.arg not in ("schedule", "timezone")]
    return ast.dump(tree)


def _code_of(fn: Callable[..., Any]) -> tuple[str, str | None]:
    """The code to store: the defining ``.py`` file whole for a module-level function,
    else the function's own source."""
    name = getattr(fn, "__name__", repr(fn))
    filename = getattr(getattr(fn, "__code__", None), "co_filename", "")
    if name == "<lambda>":
        raise InvalidDefinitionError("a pipeline is a function defined with def, not a "
                                     "lambda", field="code")
    top_level = getattr(fn, "__qualname__", name) == name
    if top_level and filename.endswith(".py") and Path(filename).is_file():
        return Path(filename).read_text(encoding="utf-8"), filename
    try:
        code = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise InvalidDefinitionError(
            f"the source code of pipeline function {name!r} cannot be read (define it in a "
            ".py file, not in an interactive prompt)", field="code") from exc
    lines = code.splitlines(True)
    start = next((i for i, line in enumerate(lines) if line.startswith("def ")), None)
    if start is None:
        raise InvalidDefinitionError(
            f"a pipeline is a function defined with def, not {name!r}", field="code")
    return "".join(lines[start:]), None


def pipeline(*, name: str | None = None, model: str | None = None,
             params: Mapping[str, Any] | None = None,
             schedule: str | None = None, timezone: str = "UTC",
             triggers: Sequence[Trigger] = (), max_attempts: int = 2,
             description: str = "", policy: str | None = None,
             alias: str = "production", notify: Sequence[str] = (),
             probation: str | None = None, shadow: Shadow | None = None,
             evaluation: EvaluationWindow | None = None
             ) -> Callable[[Callable[..., Any]], Pipeline]:
    """Decorator: declare a training pipeline for ``model`` (the model its runs register
    versions of; None for a pipeline that registers none).

    ``params`` are the defaults a run may override; ``schedule`` is a cron expression read in
    ``timezone``; ``triggers`` add :func:`on_alert`, :func:`on_success` and
    :func:`on_new_data`; a run whose worker
    died is tried again up to ``max_attempts`` times in all.

    ``policy`` decides what becomes of the version a run registers: ``"auto"`` promotes it
    to ``alias`` when it passes the model's gates against the version holding the alias
    (the champion), ``"approval"`` leaves a pending decision for ``modelyard models
    approve``; without a policy the version is only registered. ``notify`` (notifier
    texts as monitoring takes them: ``log``, ``webhook:URL``, ``command:COMMAND``)
    announces a decision awaiting approval. ``probation`` (a duration such as ``"7d"``)
    watches a version the policy promoted (or an approver did) for that long: a critical
    monitoring alert on it rolls ``alias`` back to the version that held it before.
    ``policy="shadow"`` first tries a candidate that passes live, as :class:`Shadow`
    ``shadow=`` declares, then promotes or drops it. ``evaluation`` (an
    :class:`EvaluationWindow`) is the frozen data candidate and champion are scored on when the
    run hands none to ``ctx.register``.
    """

    def wrap(fn: Callable[..., Any]) -> Pipeline:
        code, path = _code_of(fn)
        return Pipeline(name or fn.__name__, model, code, fn.__name__, dict(params or {}),
                        schedule, timezone, tuple(triggers), max_attempts,
                        description or inspect.getdoc(fn) or "", path, fn, policy, alias,
                        tuple(notify), probation, shadow, evaluation)

    return wrap
