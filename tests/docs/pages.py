"""What each documentation page's examples need before they run, and what they must leave.

A page's ``setup`` prepares the fresh project (the files its examples read, the definitions
and models they take as given) and returns the names its examples use without defining them
(``spine``, ``holdout``...: the reader's own data). Its ``check`` asserts what the examples
did. A page without an entry runs in an empty project.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from docs import data

Names = dict[str, Any]


@dataclass(frozen=True)
class Page:
    setup: Callable[[Path], Names] | None = None
    check: Callable[[Names, Path], None] | None = None


def _readme(project: Path) -> Names:
    data.write_claims(project)
    data.labels().to_parquet(project / "data" / "labels.parquet", index=False)
    return {}


def _readme_check(names: Names, project: Path) -> None:
    assert names["best"].info.name == "tree-8"  # the best run by r2
    assert list(names["runs"]["name"]) == ["tree-8", "tree-5"]
    assert names["row"]["customer_id"] == 42 and names["row"]["claims_90d"] >= 1
    yard = names["yard"]
    assert yard.models.load("claims-model@production") is not None


def _features(project: Path) -> Names:
    data.write_claims(project)
    events = data.claims(seed=3)[["customer_id", "event_time", "claim_amount"]]
    return {"frame": events, "spine": data.labels()}


def _features_check(names: Names, project: Path) -> None:
    yard = names["yard"]
    assert len(names["ts"]) == len(names["spine"])
    assert [c.operation for c in yard.features.commits("claims")] == ["ingest", "forget"]
    left = yard.training_set(names["spine"], ["claim_stats:amount"]).to_pandas()
    assert left.set_index("customer_id").loc[[42, 77], "amount"].isna().all()  # forgotten


def _tracking(project: Path) -> Names:
    (project / "plots").mkdir()
    (project / "plots" / "loss.svg").write_text("<svg/>")
    x, y = data.xy()
    return {"model": data.regressor(x, y), "X": x, "y": y, "pipeline": data.pipeline()}


def _tracking_check(names: Names, project: Path) -> None:
    yard = names["yard"]
    assert yard.settings.project_name == "claims"
    assert names["best"].info.name == "gbm-depth-5"  # the lower rmse
    assert list(names["cmp"].params.index) == ["max_depth"]  # only what differs
    assert (project / "out" / "plots" / "loss.svg").read_text() == "<svg/>"
    runs = yard.search_runs(None)  # 2 by hand, 2 autologged (one in the default experiment)
    assert len(runs) == 4 and runs["status"].eq("finished").all()
    assert sorted(runs["experiment"]) == ["claims", "claims", "claims", "default"]


def _monitoring(project: Path) -> Names:
    """claims-model, registered with its reference and evaluated; a day of its answers in
    the prediction log, labelled. Like the reference: no rule fires, so no webhook is sent."""
    import modelyard
    from tests.monitoring import support

    with modelyard.connect() as yard:
        version = support.register_regressor(yard, rows=1_000)
        served = support.claims(300, 7)
        ids = support.log_window(yard, version, served, data.now() - timedelta(days=1))
        support.label(yard, ids, served)
    return {}


def _monitoring_check(names: Names, project: Path) -> None:
    result = names["result"]
    assert result.drift["dataset_drift"] is False
    assert result.to_dict()["performance"]["metrics"]["r2"] > 0.9
    assert (project / "report.html").read_text().startswith("<!")
    assert names["yard"].monitoring.alerts("claims-model") == []  # nothing fired, nothing sent


def _online(project: Path) -> Names:
    data.claims_features(project)
    spine = data.labels().drop(columns=["claim_value"]).assign(claim_amount=1200.0)
    fresh = data.claims(seed=9, days=1, per_customer=1).head(3)
    return {"spine": spine, "fresh_rows": fresh}


def _online_check(names: Names, project: Path) -> None:
    found = names["found"]
    assert found.status == ["found", "found", "missing"]
    assert found.to_records()[0]["customer_id"] == 42
    yard = names["yard"]
    pushed = names["fresh_rows"].iloc[0]
    now = yard.online_features(["claim_history:last_amount"],
                               {"customer_id": [int(pushed["customer_id"])]})
    assert now.to_records()[0]["last_amount"] == pushed["claim_amount"]  # the push is served


PAGES: dict[str, Page] = {
    "README.md": Page(_readme, _readme_check),
    "docs/features.md": Page(_features, _features_check),
    "docs/monitoring.md": Page(_monitoring, _monitoring_check),
    "docs/online.md": Page(_online, _online_check),
    "docs/tracking.md": Page(_tracking, _tracking_check),
}
