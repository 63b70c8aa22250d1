"""Where alerts go: the log, a webhook, or a command.

::

    alerts = make_alerts(evaluate_rules(rules, result), result)
    deliver(alerts, [notifier_from_text("log"),
                     notifier_from_text("webhook:https://hooks.example.com/modelyard"),
                     notifier_from_text("command:./page.sh --urgent")])

A notifier never raises: :meth:`Notifier.send` answers a :class:`Delivery` that says whether
the alerts arrived and, if not, why. Webhooks and commands receive the same JSON document,
``{"alerts": [Alert.to_dict(), ...]}``; a call with no alert sends nothing.

Notifier texts (``[models.NAME.monitoring] notify = [...]``)

``log``                  one WARNING (ERROR when critical) line per alert on the logger
                         ``modelyard.monitoring``
``webhook:URL``          one JSON POST per call to an ``http`` or ``https`` URL; 2 retries
                         on connection errors and 5xx answers; no redirect followed. User
                         and password in the URL are sent as HTTP basic auth; they and the
                         query string never appear in messages or logs
``command:COMMAND``      runs COMMAND (split like a shell would, but run without one) with
                         the JSON on stdin and ``MODELYARD_ALERT_COUNT`` in its environment
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelyard._version import __version__
from modelyard.errors import InvalidInputError
from modelyard.monitoring.rule_checks import RuleOutcome

__all__ = ["Alert", "CommandNotifier", "Delivery", "LogNotifier", "Notifier", "WebhookNotifier",
           "deliver", "make_alerts", "notifier_from_text"]

log = logging.getLogger("modelyard.monitoring")

NOTIFIER_FORMS = "log, webhook:https://HOST/PATH or command:COMMAND ARGS"
_DETAIL_BODY = 200  # characters of an HTTP error answer kept in Delivery.detail


@dataclass(frozen=True)
class Alert:
    """One fired rule, as sent. ``alert_id`` is the same for the same rule on the same
    model version and window, so a receiver can drop repeats."""

    model: str
    version: int | None
    rule: str
    severity: str
    message: str
    value: float | None
    window: Mapping[str, str]
    fired_at: str  # ISO 8601, UTC
    evidence: Mapping[str, Any] = field(default_factory=dict)
    alert_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "model": self.model, "version": self.version,
                "rule": self.rule, "severity": self.severity, "message": self.message,
                "value": self.value, "window": dict(self.window), "fired_at": self.fired_at,
                "evidence": dict(self.evidence)}


def make_alerts(outcomes: Sequence[RuleOutcome], result: Mapping[str, Any], *,
                fired_at: datetime | None = None) -> list[Alert]:
    """The alerts of the outcomes that fired, for the model, version and window of
    ``result``."""
    when = (fired_at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    model, version = str(result.get("model", "")), result.get("version")
    raw_window = result.get("window")
    window = ({str(k): str(v) for k, v in raw_window.items()}
              if isinstance(raw_window, Mapping) else {})
    alerts = []
    for outcome in outcomes:
        if not outcome.fired:
            continue
        rule = outcome.rule.label
        key = json.dumps([model, version, rule, window.get("start"), window.get("end")])
        alerts.append(Alert(model, version if isinstance(version, int) else None, rule,
                            outcome.rule.severity, outcome.message, outcome.value, window,
                            when, outcome.evidence,
                            hashlib.sha256(key.encode()).hexdigest()[:16]))
    return alerts


@dataclass(frozen=True)
class Delivery:
    """Whether one notifier's send arrived; ``detail`` says what happened."""

    target: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "detail": self.detail}


def _payload(alerts: Sequence[Alert]) -> bytes:
    return json.dumps({"alerts": [a.to_dict() for a in alerts]}).encode()


class Notifier(ABC):
    """Sends alerts somewhere. ``target`` names the place, free of secrets."""

    target: str

    @abstractmethod
    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Send the alerts in one go; never raises."""


class LogNotifier(Notifier):
    """One line per alert on the ``modelyard.monitoring`` logger: WARNING, or ERROR for
    critical alerts."""

    target = "log"

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        for alert in alerts:
            version = "" if alert.version is None else f" v{alert.version}"
            log.log(logging.ERROR if alert.severity == "critical" else logging.WARNING,
                    "alert [%s] %s%s: %s: %s", alert.severity, alert.model, version,
                    alert.rule, alert.message)
        return Delivery(self.target, True, f"{len(alerts)} alert(s) logged")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirected POST would lose its body: answer the 3xx as an error


class WebhookNotifier(Notifier):
    """A JSON POST ``{"alerts": [...]}`` per call. Connection errors, timeouts and 5xx
    answers are tried again ``retries`` times, waiting ``backoff``, then twice that...;
    other answers are final."""

    def __init__(self, url: str, *, timeout: float = 10.0, retries: int = 2,
                 backoff: float = 0.25, field: str = "webhook") -> None:
        parts: urllib.parse.SplitResult | None = None
        port: int | None = None
        try:
            if isinstance(url, str):
                parts = urllib.parse.urlsplit(url)
                port = parts.port
        except ValueError:  # a port that is not a number
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            shown = _safe_url(url) if isinstance(url, str) else type(url).__name__
            raise InvalidInputError(f"{field}: a webhook needs an http:// or https:// URL with "
                                    f"a host, not {shown!r}", field=field)
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise InvalidInputError(f"{field}: timeout must be > 0, retries and backoff >= 0",
                                    field=field)
        self.target = f"webhook:{_safe_url(url)}"
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc += f":{port}" if port else ""
        self._url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/",
                                             parts.query, ""))
        self._headers = {"Content-Type": "application/json",
                         "User-Agent": f"modelyard/{__version__}"}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        # what an error answer might echo back; shorter pieces are no secret (and would
        # blot out digits of the status line)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        secrets = [parts.username, parts.password, parts.query, *(v for _, v in query)]
        secrets += [urllib.parse.unquote(s) for s in secrets if s]
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._opener = urllib.request.build_opener(_NoRedirect())

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        if not alerts:
            return Delivery(self.target, True, "no alert to send")
        body, attempt = _payload(alerts), 0
        while True:
            attempt += 1
            retry, detail = self._post(body)
            if retry is None:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                return Delivery(self.target, True,
                                f"{detail}: {len(alerts)} alert(s) sent{tries}")
            if not retry or attempt > self.retries:
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                log.warning("webhook %s failed: %s%s", self.target, detail, tries)
                return Delivery(self.target, False, f"{detail}{tries}")
            wait = self.backoff * 2 ** (attempt - 1)
            log.info("webhook %s: %s; trying again in %.2f s", self.target, detail, wait)
            time.sleep(wait)

    def _post(self, body: bytes) -> tuple[bool | None, str]:
        """(None, detail) on success, else (whether to try again, what went wrong)."""
        request = urllib.request.Request(self._url, data=body, headers=self._headers,
                                         method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return None, f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read(_DETAIL_BODY * 4).decode("utf-8", "replace")
            except OSError:
                text = ""
            finally:
                exc.close()
            text = " ".join(text.split())[:_DETAIL_BODY]
            detail = f"HTTP {exc.code} {exc.reason}" + (f": {text}" if text else "")
            return exc.code >= 500, self._scrub(detail)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, TimeoutError):
                reason = f"no answer within {self.timeout:g} s"
            return True, self._scrub(f"cannot reach the webhook: {reason}")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _safe_url(url: str) -> str:
    """``scheme://host[:port]/FIRST/...``: no user, password, query or fragment, and only the
    first path segment (hooks often carry their secret in the path)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unreadable URL>"
    host = f"[{host}]" if ":" in host else host
    segments = [p for p in parts.path.split("/") if p]
    path = "" if not segments else f"/{segments[0]}" + ("/..." if len(segments) > 1 else "")
    return f"{parts.scheme}://{host}{port}{path}" if parts.scheme else "<not a URL>"


class CommandNotifier(Notifier):
    """Runs a command per call (no shell) with the JSON on stdin and
    ``MODELYARD_ALERT_COUNT`` in the environment; exit code 0 means delivered."""

    def __init__(self, command: str | Sequence[str], *, timeout: float = 30.0,
                 field: str = "command") -> None:
        try:
            argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
        except ValueError as exc:
            raise InvalidInputError(f"{field}: cannot split the command {command!r}: {exc}",
                                    field=field) from None
        if not argv or timeout <= 0:
            raise InvalidInputError(f"{field}: expected a command to run and a timeout > 0, "
                                    f"not {command!r}", field=field)
        self.argv, self.timeout = argv, timeout
        self.target = f"command:{shlex.join(argv)}"

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        if not alerts:
            return Delivery(self.target, True, "no alert to send")
        env = {**os.environ, "MODELYARD_ALERT_COUNT": str(len(alerts))}
        try:
            done = subprocess.run(self.argv, input=_payload(alerts), env=env, check=False,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return self._failed(f"killed after {self.timeout:g} s without finishing")
        except OSError as exc:
            return self._failed(f"cannot run {self.argv[0]!r}: {exc.strerror or exc}")
        if done.returncode == 0:
            return Delivery(self.target, True, f"exit code 0: {len(alerts)} alert(s) sent")
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        how = (f"killed by signal {-done.returncode}" if done.returncode < 0
               else f"exit code {done.returncode}")
        return self._failed(how + (f": {lines[-1].strip()}" if lines else ""))

    def _failed(self, detail: str) -> Delivery:
        log.warning("alert command %s failed: %s", self.target, detail)
        return Delivery(self.target, False, detail)


def notifier_from_text(text: str, *, field: str = "notify") -> Notifier:
    """A notifier from its text: ``log``, ``webhook:URL`` or ``command:COMMAND``."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{field} must be a text ({NOTIFIER_FORMS}), not "
                                f"{type(text).__name__}", field=field)
    kind, _, rest = text.strip().partition(":")
    if kind == "log" and not rest:
        return LogNotifier()
    if kind == "webhook":
        return WebhookNotifier(rest.strip(), field=field)
    if kind == "command":
        return CommandNotifier(rest, field=field)
    shown = f"{kind}:..." if rest else kind  # what follows may hold a secret
    raise InvalidInputError(f"{field}: unknown notifier {shown!r}; expected {NOTIFIER_FORMS}",
                            field=field)


def deliver(alerts: Sequence[Alert], notifiers: Sequence[Notifier]) -> list[Delivery]:
    """Send the alerts through every notifier, whatever the others did; one
    :class:`Delivery` per notifier, in order."""
    deliveries = []
    for notifier in notifiers:
        target = str(getattr(notifier, "target", type(notifier).__name__))
        try:
            deliveries.append(notifier.send(alerts))
        except Exception as exc:  # a third-party notifier broke its promise not to raise
            log.exception("notifier %s raised", target)
            deliveries.append(Delivery(target, False, f"{type(exc).__name__}: {exc}"))
    return deliveries
