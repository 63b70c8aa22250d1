"""The audit log on SQLite and PostgreSQL: appended, filtered, and tampering found by
verification after direct changes to the database; many processes keep one chain."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from _workers import procs

from modelyard import Yard
from modelyard.backends.metadata.audit import AuditEvent
from modelyard.cli.app import app
from modelyard.security import SecurityService

from .conftest import Clock


def _fill(security: SecurityService, clock: Clock, n: int = 6) -> None:
    for i in range(n):
        security.record(f"user:u{i % 2}", "models:promote" if i % 3 == 0 else "runs:write",
                        target=f"thing-{i}", environment="prod" if i % 3 == 0 else None,
                        source="10.0.0.1", outcome="denied" if i == 4 else "ok",
                        detail={"i": i, "name": "é"})
        clock.advance(60)


def _sql(yard: Yard, statement: str, **params: object) -> None:
    with yard._engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def test_entries_chain_and_filter(security: SecurityService, clock: Clock) -> None:
    _fill(security, clock)
    entries = security.audit_entries(limit=None)
    assert [e.seq for e in entries] == [6, 5, 4, 3, 2, 1]
    assert entries[-1].prev_hash == "0" * 64
    assert all(a.prev_hash == b.hash for a, b in itertools.pairwise(entries))
    assert entries[0].detail == {"i": 5, "name": "é"}
    assert [e.seq for e in security.audit_entries(actor="user:u1")] == [6, 4, 2]
    assert [e.seq for e in security.audit_entries(action="models:*")] == [4, 1]
    assert [e.seq for e in security.audit_entries(action="runs:write", environment="")] \
        == [6, 5, 3, 2]
    assert [e.seq for e in security.audit_entries(outcome="denied")] == [5]
    assert [e.seq for e in security.audit_entries(since_ms=int((clock.now - 200) * 1000))] \
        == [6, 5, 4]
    assert [e.seq for e in security.audit_entries(limit=2)] == [6, 5]
    report = security.verify_audit()
    assert report.ok and report.entries == 6 and report.head_seq == 6
    assert report.head_hash == entries[0].hash
    assert security.verify_audit((3, entries[3].hash)).ok


TAMPERING = {
    "changed": ("UPDATE audit_log SET outcome = 'ok' WHERE seq = 5", 5, "entry 5 was changed"),
    "changed detail": ("UPDATE audit_log SET detail = '{}' WHERE seq = 2", 2,
                       "entry 2 was changed"),
    "deleted": ("DELETE FROM audit_log WHERE seq = 3", 3, "entry 3 missing"),
    "deleted last": ("DELETE FROM audit_log WHERE seq = 6", 6, "deleted from the end"),
    "head deleted": ("DELETE FROM audit_head", 7, "head record is missing"),
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_verify_finds_tampering_in_the_database(
        yard: Yard, security: SecurityService, clock: Clock, how: str) -> None:
    _fill(security, clock)
    statement, first_bad, message = TAMPERING[how]
    _sql(yard, statement)
    report = security.verify_audit()
    assert not report.ok
    assert report.first_bad_seq == first_bad
    assert any(message in p for p in report.problems), report.problems


def test_verify_finds_reordered_entries(yard: Yard, security: SecurityService,
                                        clock: Clock) -> None:
    _fill(security, clock)
    # swap the contents of entries 2 and 3, each keeping its own hash and link
    _sql(yard, "UPDATE audit_log SET seq = -2 WHERE seq = 2")
    _sql(yard, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    _sql(yard, "UPDATE audit_log SET seq = 3 WHERE seq = -2")
    report = security.verify_audit()
    assert not report.ok and report.first_bad_seq == 2
    assert any("entry 2 does not follow entry 1" in p for p in report.problems)


def test_a_rewritten_chain_is_caught_by_an_anchor(yard: Yard, security: SecurityService,
                                                  clock: Clock) -> None:
    _fill(security, clock)
    anchor = (4, next(e.hash for e in security.audit_entries(limit=None) if e.seq == 4))
    # rewrite entry 2 and recompute every hash after it, head included: the chain holds...
    _sql(yard, "UPDATE audit_log SET target = 'forged' WHERE seq = 2")
    with yard._engine.begin() as conn:
        from modelyard.backends.metadata.sql.audit_store import _entry

        prev = "0" * 64
        for row in conn.execute(sa.text("SELECT * FROM audit_log ORDER BY seq")).all():
            entry = _entry(row)
            fixed = type(entry)(**{**entry.__dict__, "prev_hash": prev, "hash": ""})
            conn.execute(sa.text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE "
                                 "seq = :s"), {"p": prev, "h": fixed.expected_hash(),
                                               "s": entry.seq})
            prev = fixed.expected_hash()
        conn.execute(sa.text("UPDATE audit_head SET hash = :h, seq = 6"), {"h": prev})
    assert security.verify_audit().ok
    # ... but not against the hash kept from before
    report = security.verify_audit(anchor)
    assert not report.ok and any("anchored hash" in p for p in report.problems)


def test_an_entry_cannot_get_two_successors(yard: Yard, security: SecurityService,
                                            clock: Clock) -> None:
    _fill(security, clock, 2)
    first = security.audit_entries(limit=None)[-1]
    with pytest.raises(sa.exc.IntegrityError):
        _sql(yard, "INSERT INTO audit_log (seq, at_ms, actor, action, project, environment, "
             "target, source, outcome, detail, prev_hash, hash) VALUES (99, 0, 'x', 'y', '', "
             "'', '', '', 'ok', '{}', :p, :h)", p=first.hash, h="f" * 64)


def test_the_cli_lists_and_verifies(yard: Yard, store_uri: str, clock: Clock,
                                    security: SecurityService) -> None:
    from typer.testing import CliRunner

    _fill(security, clock)
    runner = CliRunner()
    listed = runner.invoke(app, ["audit", "list", "--action", "models:*", "--json",
                                 "--uri", store_uri])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["seq"], r["action"], r["environment"]) for r in rows] == [
        (4, "models:promote", "prod"), (1, "models:promote", "prod")]
    ok = runner.invoke(app, ["audit", "verify", "--uri", store_uri])
    assert ok.exit_code == 0 and "6 entries, chain intact" in ok.output
    head = security.verify_audit().head_hash
    assert f"6:{head}" in ok.output.replace("\n", "")
    _sql(yard, "DELETE FROM audit_log WHERE seq = 2")
    bad = runner.invoke(app, ["audit", "verify", "--uri", store_uri])
    assert bad.exit_code == 1
    assert "tampered" in bad.output and "entry 2 missing" in bad.output


@pytest.mark.slow
def test_concurrent_processes_keep_one_chain(yard: Yard, store_uri: str, tmp_path: Path,
                                             security: SecurityService) -> None:
    workers, count = 4, 25
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    started = [subprocess.Popen(
        [sys.executable, "-m", "_workers.audit", store_uri, str(w), str(count), str(barrier)],
        env=procs.worker_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for w in range(workers)]
    try:
        deadline = time.monotonic() + 60
        while len(list(barrier.glob("ready-*"))) < workers:
            assert all(p.poll() is None for p in started), started[0].communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (barrier / "go").touch()
        outputs = [p.communicate(timeout=120) for p in started]
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(started, outputs, strict=True):
        assert p.returncode == 0, err
    seqs = sorted(s for out, _ in outputs for s in json.loads(out.splitlines()[-1])["seqs"])
    assert seqs == list(range(1, workers * count + 1))
    report = security.verify_audit()
    assert report.ok, report.problems
    assert report.entries == workers * count
    entries = security.audit_entries(limit=None)
    for w in range(workers):  # each worker's entries in its own order
        mine = [e.detail["i"] for e in reversed(entries) if e.actor == f"user:w{w}"]
        assert mine == list(range(count))


def test_appending_many_in_one_call(security: SecurityService) -> None:
    entries = security.audit.append([AuditEvent("user:a", "runs:write", target=str(i))
                                     for i in range(3)])
    assert [e.seq for e in entries] == [1, 2, 3]
    assert security.verify_audit().ok
