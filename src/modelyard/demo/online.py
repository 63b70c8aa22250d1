"""The demo's online step: materialize the claims features, look customers up, check skew."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from modelyard.demo.state import DemoState, need

LOOKUP_FEATURES = ["customer_profile:region", "claim_history:claims_90d",
                   "claim_history:amount_365d_mean", "claim_history:last_claim_at"]


def serve_online(state: DemoState, progress: Callable[[str], None]) -> None:
    """Materialize every group as of the end of the data, then read a few customers back
    as of the demo's now (the TTL is judged then) and compare a sample of online values with
    the offline recomputation."""
    data = need(state.data, "data")
    now = state.clock.now()
    end = min(data.end.to_pydatetime().astimezone(UTC), now)
    online = state.yard.features.online
    state.materializations = online.materialize(
        at=end, progress=lambda group, done, total: progress(
            f"materializing {group} ({done}/{total} chunks)"))
    progress("looking customers up")
    recent = data.claims.sort_values("event_time").tail(200)["customer_id"]
    unknown = int(data.policyholders["customer_id"].max()) + 1
    customers = [int(c) for c in recent.drop_duplicates().tail(3)] + [unknown]
    state.lookup = state.yard.online_features(LOOKUP_FEATURES, {"customer_id": customers},
                                              at=now)
    state.lookup_at = now
    state.freshness = online.freshness()
    progress("checking for train/serve skew")  # a customer never seen reads "missing"
    state.skew = online.check_skew("claim_history", sample=200, seed=state.config.seed)
    state.parent.log_metric("online_skew_mismatches", state.skew.mismatches)
