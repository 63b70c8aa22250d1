"""Sending alerts: to the log, to a real local HTTP server, to a real command."""

from __future__ import annotations

import base64
import json
import logging
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import InvalidInputError
from modelyard.monitoring.alerts import parse_rule
from modelyard.monitoring.notify import (
    Alert,
    CommandNotifier,
    Delivery,
    LogNotifier,
    Notifier,
    WebhookNotifier,
    deliver,
    make_alerts,
    notifier_from_text,
)
from modelyard.monitoring.rule_checks import evaluate_rules

RESULT: dict[str, Any] = {
    "model": "claims-model", "version": 4,
    "window": {"start": "2024-05-01T00:00:00+00:00", "end": "2024-05-02T00:00:00+00:00"},
    "quality": {"ok": False, "issues": ["claim_amount: 12% missing"]},
    "health": {"requests": 469, "errors": 31, "error_rate": 0.062,
               "latency_ms": {"p50": 40.0, "p90": 120.0, "p99": 312.0}},
}


def alerts() -> list[Alert]:
    rules = [parse_rule("quality"), parse_rule("error_rate > 0.05 [critical]"),
             parse_rule("p99_latency_ms > 500"), parse_rule("rmse > 900")]
    return make_alerts(evaluate_rules(rules, RESULT), RESULT,
                       fired_at=datetime(2024, 5, 2, 0, 5, tzinfo=UTC))


# -- alerts --------------------------------------------------------------------------------

def test_only_fired_rules_become_alerts() -> None:
    found = alerts()
    assert [a.rule for a in found] == ["quality", "error_rate > 0.05"]
    quality, errors = found
    assert (quality.model, quality.version, quality.severity) == ("claims-model", 4, "warning")
    assert errors.severity == "critical" and errors.value == 0.062
    assert errors.message == "error_rate = 0.062 > 0.05 (31 of 500 requests failed)"
    assert errors.fired_at == "2024-05-02T00:05:00+00:00"
    assert errors.window == RESULT["window"]
    assert errors.evidence["requests"] == 469
    assert json.loads(json.dumps(errors.to_dict()))["alert_id"] == errors.alert_id


def test_the_alert_id_is_stable_per_rule_version_and_window() -> None:
    first, again = alerts(), alerts()
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    assert first[0].alert_id != first[1].alert_id
    later = RESULT | {"window": {"start": "2024-05-02T00:00:00+00:00",
                                 "end": "2024-05-03T00:00:00+00:00"}}
    moved = make_alerts(evaluate_rules([parse_rule("quality")], later), later)
    assert moved[0].alert_id != first[0].alert_id


# -- log -----------------------------------------------------------------------------------

def test_the_log_notifier_writes_one_line_per_alert(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modelyard.monitoring"):
        delivery = LogNotifier().send(alerts())
    assert delivery == Delivery("log", True, "2 alert(s) logged")
    records = [r for r in caplog.records if r.name == "modelyard.monitoring"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.ERROR]
    assert records[1].getMessage() == ("alert [critical] claims-model v4: error_rate > 0.05: "
                                       "error_rate = 0.062 > 0.05 (31 of 500 requests failed)")


# -- webhook -------------------------------------------------------------------------------

@dataclass
class Hook:
    """A real HTTP server on 127.0.0.1 answering the planned statuses in turn (the last
    one again when the plan runs out) and keeping what it received."""

    plan: list[int] = field(default_factory=lambda: [200])
    answer: bytes = b"{}"
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append({"path": self.path, "headers": dict(self.headers),
                                   "body": body})
            time.sleep(state.delay)
            status = state.plan[min(len(state.received), len(state.plan)) - 1]
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_webhook_posts_the_alerts_as_json(hook: Hook) -> None:
    sent = alerts()
    delivery = WebhookNotifier(hook.url()).send(sent)
    assert delivery == Delivery(f"webhook:{hook.url()}", True, "HTTP 200: 2 alert(s) sent")
    (request,) = hook.received
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"].startswith("modelyard/")
    assert "Authorization" not in request["headers"]
    assert json.loads(request["body"]) == {"alerts": [a.to_dict() for a in sent]}


def test_a_server_error_is_tried_again(hook: Hook) -> None:
    hook.plan = [500, 200]
    delivery = WebhookNotifier(hook.url(), backoff=0.01).send(alerts())
    assert delivery.ok and delivery.detail == "HTTP 200: 2 alert(s) sent after 2 attempts"
    assert len(hook.received) == 2
    assert hook.received[0]["body"] == hook.received[1]["body"]


def test_a_lasting_server_error_fails_after_the_retries(hook: Hook) -> None:
    hook.plan, hook.answer = [503], b"overloaded"
    delivery = WebhookNotifier(hook.url(), retries=2, backoff=0.01).send(alerts())
    assert not delivery.ok
    assert delivery.detail == "HTTP 503 Service Unavailable: overloaded (after 3 attempts)"
    assert len(hook.received) == 3


def test_a_client_error_is_not_tried_again(hook: Hook) -> None:
    hook.plan, hook.answer = [400], b'{"error": "bad payload"}'
    delivery = WebhookNotifier(hook.url(), backoff=0.01).send(alerts())
    assert not delivery.ok
    assert delivery.detail == 'HTTP 400 Bad Request: {"error": "bad payload"}'
    assert len(hook.received) == 1


def test_a_redirect_is_not_followed(hook: Hook) -> None:
    hook.plan = [302]
    delivery = WebhookNotifier(hook.url(), backoff=0.01).send(alerts())
    assert not delivery.ok and delivery.detail.startswith("HTTP 302")
    assert len(hook.received) == 1


def test_a_slow_server_times_out(hook: Hook) -> None:
    hook.delay = 0.5
    delivery = WebhookNotifier(hook.url(), timeout=0.1, retries=0).send(alerts())
    assert not delivery.ok
    assert delivery.detail == "cannot reach the webhook: no answer within 0.1 s"


def test_an_unreachable_webhook_fails_fast_without_raising() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    started = time.monotonic()
    delivery = WebhookNotifier(f"http://127.0.0.1:{port}/hook", backoff=0.01).send(alerts())
    assert time.monotonic() - started < 2
    assert not delivery.ok
    assert delivery.detail.startswith("cannot reach the webhook:")
    assert delivery.detail.endswith("(after 3 attempts)")


def test_url_secrets_stay_out_of_details_and_logs(hook: Hook,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    hook.plan = [500]
    url = hook.url("/hook?token=tok-4242&team=ops").replace("//", "//alice-7:pa%24%24w0rd@")
    hook.answer = b"unknown token tok-4242 for alice-7 (pa$$w0rd)"  # a server echoing it all
    notifier = WebhookNotifier(url, retries=1, backoff=0.01)
    with caplog.at_level(logging.DEBUG, logger="modelyard.monitoring"):
        delivery = notifier.send(alerts())
    assert notifier.target == f"webhook:{hook.url()}"
    assert not delivery.ok and delivery.detail.startswith("HTTP 500")
    assert "unknown token *** for *** (***)" in delivery.detail
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "webhook:" in logged
    for secret in ("tok-4242", "alice-7", "pa$$w0rd", "pa%24%24w0rd", "team=ops"):
        assert secret not in delivery.detail and secret not in logged
        assert secret not in notifier.target
    request = hook.received[0]
    assert request["path"] == "/hook?token=tok-4242&team=ops"
    token = base64.b64encode(b"alice-7:pa$$w0rd").decode()
    assert request["headers"]["Authorization"] == f"Basic {token}"


def test_no_alert_sends_nothing(hook: Hook, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = CommandNotifier([sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    for notifier in (WebhookNotifier(hook.url()), command, LogNotifier()):
        assert notifier.send([]).ok
    assert hook.received == [] and not marker.exists()


# -- command -------------------------------------------------------------------------------

SINK = """\
import os, pathlib, sys
pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())
pathlib.Path(sys.argv[2]).write_text(os.environ["MODELYARD_ALERT_COUNT"])
"""
FAIL = """\
import sys
sys.stdin.read()
print("first line", file=sys.stderr)
print("  pager is down  ", file=sys.stderr)
sys.exit(3)
"""


def script(tmp_path: Path, text: str) -> str:
    path = tmp_path / "script.py"
    path.write_text(text)
    return str(path)


def test_the_command_gets_the_json_on_stdin(tmp_path: Path) -> None:
    out, count = tmp_path / "alerts out.json", tmp_path / "count"
    argv = [sys.executable, script(tmp_path, SINK), str(out), str(count)]
    notifier = notifier_from_text(f"command:{shlex.join(argv)}")
    sent = alerts()
    delivery = notifier.send(sent)
    assert delivery == Delivery(f"command:{shlex.join(argv)}", True,
                                "exit code 0: 2 alert(s) sent")
    assert json.loads(out.read_bytes()) == {"alerts": [a.to_dict() for a in sent]}
    assert count.read_text() == "2"


def test_a_failing_command_reports_its_exit_code_and_last_stderr_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = CommandNotifier([sys.executable, script(tmp_path, FAIL)])
    with caplog.at_level(logging.WARNING, logger="modelyard.monitoring"):
        delivery = notifier.send(alerts())
    assert delivery == Delivery(notifier.target, False, "exit code 3: pager is down")
    assert "pager is down" in caplog.text


def test_a_missing_program_or_a_hung_one_fails_without_raising(tmp_path: Path) -> None:
    missing = CommandNotifier(str(tmp_path / "no-such-program"))
    delivery = missing.send(alerts())
    assert not delivery.ok and delivery.detail.startswith("cannot run ")
    hung = CommandNotifier([sys.executable, "-c", "import time; time.sleep(10)"], timeout=0.3)
    started = time.monotonic()
    delivery = hung.send(alerts())
    assert time.monotonic() - started < 5
    assert delivery == Delivery(hung.target, False, "killed after 0.3 s without finishing")


# -- notifier texts, delivery --------------------------------------------------------------

def test_notifiers_from_text() -> None:
    assert isinstance(notifier_from_text("log"), LogNotifier)
    webhook = notifier_from_text(" webhook:https://hooks.example.com/a/b?key=s3cr3t ")
    assert isinstance(webhook, WebhookNotifier)
    assert webhook.target == "webhook:https://hooks.example.com/a/..."  # paths hold secrets
    command = notifier_from_text("command:./page.sh --urgent 'on call'")
    assert isinstance(command, CommandNotifier)
    assert command.argv == ["./page.sh", "--urgent", "on call"]


@pytest.mark.parametrize(("text", "expected"), [
    ("email:ops@example.com", "unknown notifier 'email:...'; expected log, webhook:"),
    ("slack", "unknown notifier 'slack'"),
    ("log:verbose", "unknown notifier 'log:...'"),
    ("webhook:ftp://files.example.com/x", "http:// or https:// URL"),
    ("webhook:https://", "http:// or https:// URL"),
    ("webhook:https://example.com:port/x", "http:// or https:// URL"),
    ("command:", "expected a command to run"),
    ("command:./page.sh 'unclosed", "cannot split the command"),
])
def test_bad_notifier_texts(text: str, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=None) as info:
        notifier_from_text(text, field="models.claims.monitoring.notify[1]")
    assert expected in info.value.message
    assert info.value.details["field"] == "models.claims.monitoring.notify[1]"


def test_a_bad_webhook_url_is_not_echoed_with_its_secrets() -> None:
    with pytest.raises(InvalidInputError) as info:
        notifier_from_text("webhook:ftp://bob:hunter2@files.example.com/x?sig=abc")
    assert "hunter2" not in info.value.message and "sig=abc" not in info.value.message
    assert "ftp://files.example.com/x" in info.value.message


class Broken(Notifier):
    target = "broken"

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        raise RuntimeError("boom")


def test_every_notifier_is_tried_whatever_the_others_did(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    failing = CommandNotifier([sys.executable, script(tmp_path, FAIL)])
    with caplog.at_level(logging.WARNING, logger="modelyard.monitoring"):
        deliveries = deliver(alerts(), [failing, Broken(), LogNotifier()])
    assert [(d.target, d.ok) for d in deliveries] == [
        (failing.target, False), ("broken", False), ("log", True)]
    assert deliveries[1].detail == "RuntimeError: boom"
    assert json.loads(json.dumps([d.to_dict() for d in deliveries]))[2]["detail"] == \
        "2 alert(s) logged"


def test_a_secret_in_the_webhook_path_is_never_shown() -> None:
    hook = notifier_from_text("webhook:https://hooks.slack.com/services/T0/B0/XyZsecret42")
    assert hook.target == "webhook:https://hooks.slack.com/services/..."
    assert "XyZsecret42" not in hook.send([]).detail
