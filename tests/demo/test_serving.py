"""The demo's serving step: a real server answers claims by entity key while a new version
is promoted, and nothing fails."""

from __future__ import annotations

import modelyard
from modelyard.demo.registry import ALIAS, MODEL

from .conftest import SmallDemo


def test_requests_by_entity_key_survive_a_live_promotion(small_demo: SmallDemo) -> None:
    out = small_demo.output
    assert "9. Serving" in out and "0 failed" in out
    with modelyard.connect(project=small_demo.result.root) as yard:
        parent = yard.get_run(small_demo.result.parent_run_id)
        assert parent.metrics["serving_failures"].value == 0
        assert parent.metrics["serving_requests"].value >= 100
        history = yard.models.history(MODEL, ALIAS)
        [live] = [e for e in history if e.reason.startswith("demo: promoted live")]
        assert history.index(live) < len(history) - 1  # the retraining's promotion came after
        assert f"Version {live.to_version} was promoted over version {live.from_version}" \
            in " ".join(out.split())
