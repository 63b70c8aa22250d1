"""`modelyard features materialize|lookup|push|freshness|check-skew` on a real project."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from modelyard.cli.render import format_value

from .conftest import Invoke, fits, narrow, run_main, words

T0 = datetime(2025, 1, 1, tzinfo=UTC)

DEFINITIONS = '''
from modelyard import Entity, Feature, FeatureGroup, RequestFeatureGroup, Source

customer = Entity("customer", key="customer_id")
claims = Source.frame("claims", timestamp="event_time")
claim_stats = FeatureGroup("claim_stats", entity=customer, source=claims, features=[
    Feature("amount", "claim_amount"),
    Feature("amount_30d_mean", "mean(claim_amount)", window="30d"),
    Feature("claims_30d", "count(*)", window="30d"),
])
claim_request = RequestFeatureGroup(
    "claim_request", request={"new_amount": "float"}, inputs=["claim_stats:amount_30d_mean"],
    features=[Feature("to_mean", "new_amount / amount_30d_mean")])
'''


def claims(n: int, first_day: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [1 + i % 5 for i in range(n)],
        "event_time": [T0 + timedelta(days=first_day + i) for i in range(n)],
        "claim_amount": [10.0 + i for i in range(n)],
    })


@pytest.fixture
def ready(project: Path, invoke: Invoke) -> Path:
    (project / "features.py").write_text(DEFINITIONS)
    assert invoke("features", "apply").exit_code == 0
    data = project / "claims.parquet"
    claims(20).to_parquet(data)
    result = invoke("features", "ingest", "claims", str(data))
    assert result.exit_code == 0, result.output
    return project


def test_materialize_then_lookup_freshness_and_skew(ready: Path, invoke: Invoke,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke("features", "materialize", "--at", "2025-01-25T00:00:00")
    assert result.exit_code == 0, result.output
    assert "claim_stats v1: full, 5 entities, 5 values written" in result.output
    again = invoke("features", "materialize", "--at", "2025-01-25T00:00:00")
    assert again.exit_code == 0 and "5 entities" in again.output

    result = invoke("features", "lookup", "claim_stats:*", "claim_request:to_mean",
                    "-k", "customer_id=1,2,99", "-r", "new_amount=50,60,70", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["status"] for r in rows] == ["found", "found", "missing"]
    assert rows[0]["amount"] == 25.0  # customer 1's claims: days 0, 5, 10, 15; amount 10+i
    assert rows[0]["claims_30d"] == 4 and rows[2]["claims_30d"] == 0
    assert rows[0]["to_mean"] == pytest.approx(50 / 17.5)
    table = invoke("features", "lookup", "claim_stats:amount", "-k", "customer_id=1")
    assert table.exit_code == 0 and "found" in table.output

    narrow(monkeypatch)  # piped: 80 columns; every name and value whole, rounded
    table = invoke("features", "lookup", "claim_stats:*", "claim_request:to_mean",
                   "-k", "customer_id=1,2,99", "-r", "new_amount=50,60,70")
    assert table.exit_code == 0, table.output
    assert fits(table.output)
    shown = words(table.output)
    assert {"customer_id", "amount_30d_mean", "claims_30d", "to_mean", "status"} <= shown
    assert {format_value(r["to_mean"], digits=7) for r in rows[:2]} <= shown
    assert "2.857143" in shown  # 50 / 17.5, not 2.857142857142857
    for command in (("freshness",), ("list",), ("profile", "claims"),
                    ("check-skew", "claim_stats")):
        found = invoke("features", *command)
        assert found.exit_code == 0, found.output
        assert fits(found.output), found.output
    freshness = words(invoke("features", "freshness").output)
    assert {"claim_stats", "2025-01-20", "2025-01-25"} <= freshness
    narrow(monkeypatch, 200)

    fresh = invoke("features", "freshness", "--json")
    assert fresh.exit_code == 0, fresh.output
    [entry] = json.loads(fresh.output)
    assert entry["group"] == "claim_stats" and entry["runs"] == 2
    assert entry["newest_event"].startswith("2025-01-20")
    assert invoke("features", "freshness").exit_code == 0

    skew = invoke("features", "check-skew", "claim_stats", "--sample", "5", "--json")
    assert skew.exit_code == 0, skew.output
    assert json.loads(skew.output)["ok"] is True
    assert "No skew" in invoke("features", "check-skew", "claim_stats").output


def test_incremental_and_push(ready: Path, invoke: Invoke) -> None:
    assert invoke("features", "materialize", "--at", "2025-01-25T00:00:00").exit_code == 0
    later = claims(2, first_day=30)
    path = ready / "later.parquet"
    later.to_parquet(path)
    result = invoke("features", "push", "claim_stats", str(path))
    assert result.exit_code == 0, result.output
    assert "Pushed 2 rows" in result.output and "2 entities updated" in result.output
    rows = json.loads(invoke("features", "lookup", "claim_stats:amount", "-k",
                             "customer_id=1,2", "--json").output)
    assert [r["amount"] for r in rows] == [10.0, 11.0]  # the pushed rows, days 30 and 31
    result = invoke("features", "materialize", "--incremental")
    assert result.exit_code == 0 and "incremental" in result.output, result.output


def test_bad_input_is_one_clear_line(ready: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(monkeypatch, capsys, "features", "lookup", "claim_stats:amount",
                            "-k", "customer_id=1")
    assert code == 1 and "never been materialized" in err
    code, _, err = run_main(monkeypatch, capsys, "features", "materialize", "--at", "soon")
    assert code == 1 and "--at 'soon'" in err
    code, _, err = run_main(monkeypatch, capsys, "features", "materialize", "--at",
                            "2999-01-01")
    assert code == 1 and "in the future" in err
    assert run_main(monkeypatch, capsys, "features", "materialize", "--at",
                    "2025-01-25")[0] == 0
    code, _, err = run_main(monkeypatch, capsys, "features", "lookup", "claim_stats:amount",
                            "-k", "customer_id=one")
    assert code == 1 and "integers" in err
    code, _, err = run_main(monkeypatch, capsys, "features", "lookup", "claim_stats:nope",
                            "-k", "customer_id=1")
    assert code == 1 and "no feature 'nope'" in err
    code, _, err = run_main(monkeypatch, capsys, "features", "lookup", "claim_stats:amount",
                            "-k", "customer_id")
    assert code == 1 and "column=value1,value2" in err
