"""The actions a person takes in the UI, through real POST forms: promote (refused by the
gates, then passed), roll back, approve and reject a pending candidate; and the seams that
refuse them (the authorize hook, a form posted from another site)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.requests import Request

from modelyard.errors import ModelyardError
from modelyard.ui import Action, ui_app
from tests.monitoring.support import MODEL
from tests.pipelines.support import DECIDING, write
from tests.ui.support import client, connect


def _notice(location: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(location).query)["notice"][0]


def test_promote_refused_by_the_gates_then_passed_then_rolled_back(fresh: Path) -> None:
    with connect(fresh) as yard, client(ui_app(yard)) as web:
        first = web.post(f"/models/{MODEL}/promote",
                         data={"version": "1", "alias": "production", "reason": "release"})
        assert first.status_code == 303
        assert first.headers["location"].startswith(f"/models/{MODEL}?notice=")
        assert "Version 1 now holds production" in _notice(first.headers["location"])
        assert yard.models.aliases(MODEL) == {"production": 1}

        refused = web.post(f"/models/{MODEL}/promote",
                           data={"version": "2", "alias": "production"})
        assert refused.status_code == 409
        assert "GateFailedError" in refused.text and 'role="alert"' in refused.text
        assert "was not promoted to &#39;production&#39;" in refused.text
        assert 'class="verdict verdict-fail"' in refused.text  # the report, in place
        assert yard.models.aliases(MODEL) == {"production": 1}

        from sklearn.linear_model import LinearRegression

        from tests.monitoring.support import INPUTS, claims

        train = claims(1_000, 3)
        third = yard.models.register(
            LinearRegression().fit(train[INPUTS[:2]], train["cost"]), MODEL,
            input_example=train[INPUTS[:2]], onnx=False)
        yard.models.evaluate(f"{MODEL}:{third.version}", claims(500, 4), label="cost",
                             dataset="holdout")
        preview = web.get(f"/models/{MODEL}/promote", params={"version": "3"})
        assert "Every gate passes against it now" in preview.text
        passed = web.post(f"/models/{MODEL}/promote", data={"version": "3"})
        assert passed.status_code == 303
        assert yard.models.aliases(MODEL) == {"production": 3}

        back = web.post(f"/models/{MODEL}/rollback",
                        data={"alias": "production", "reason": "too slow"})
        assert back.status_code == 303
        assert "rolled back from version 3 to version 1" in _notice(back.headers["location"])
        assert yard.models.aliases(MODEL) == {"production": 1}
        events = yard.models.history(MODEL, "production")
        assert [(e.action, e.from_version, e.to_version) for e in events] == [
            ("promote", None, 1), ("promote", 1, 3), ("rollback", 3, 1)]
        assert events[-1].reason == "too slow" and events[0].reason == "release"
        page = web.get(back.headers["location"])
        assert 'role="status"' in page.text and "rolled back from version 3" in page.text

        again = web.post(f"/models/{MODEL}/rollback", data={"alias": "production"})
        assert again.status_code == 404 and "no earlier holder" in again.text
        assert "Roll back production" in again.text  # the model's page, with the error
        nothing = web.post(f"/models/{MODEL}/rollback", data={"alias": "staging"})
        assert nothing.status_code == 404 and "has no alias" in nothing.text
        unknown = web.post(f"/models/{MODEL}/promote", data={"version": "9"})
        assert unknown.status_code == 404


class NotPermitted(ModelyardError):
    http_status = 403


def test_the_authorize_hook_and_cross_site_forms_refuse_actions(fresh: Path) -> None:
    asked: list[Action] = []

    def readers_only(request: Request, action: Action) -> None:
        asked.append(action)
        raise NotPermitted(f"role 'reader' may not {action} models")

    with connect(fresh) as yard:
        yard.models.promote(MODEL, 1, "production")
        with client(ui_app(yard, authorize=readers_only)) as web:
            refused = web.post(f"/models/{MODEL}/rollback", data={"alias": "production"})
            assert refused.status_code == 403
            assert "role &#39;reader&#39; may not rollback models" in refused.text
            promote = web.post(f"/models/{MODEL}/promote", data={"version": "2"})
            assert promote.status_code == 403 and "may not promote" in promote.text
            assert 'class="verdict verdict-fail"' in promote.text  # the report still shown
            assert asked == ["rollback", "promote"]
        with client(ui_app(yard, identify=lambda request: "ana")) as web:
            forged = web.post(f"/models/{MODEL}/rollback", data={"alias": "production"},
                              headers={"origin": "https://elsewhere.example"})
            assert forged.status_code == 403 and "posted from https://elsewhere" in forged.text
            assert yard.models.aliases(MODEL) == {"production": 1}
            moved = web.post(f"/models/{MODEL}/promote", data={"version": "1",
                                                              "alias": "staging"},
                             headers={"origin": str(web.base_url)})
            assert moved.status_code == 303
            assert yard.models.history(MODEL, "staging")[-1].actor == "ana"


@pytest.mark.slow
def test_approve_and_reject_pending_candidates(project: Path) -> None:
    write(project, DECIDING.replace('policy="auto"', 'policy="approval"'))
    with connect(project) as yard, client(ui_app(yard)) as web:
        yard.pipelines.apply()
        yard.pipelines.run("toy_decide")
        page = web.get("/models/toy")
        assert re.search(r'decision-pending">pending', page.text)
        assert 'action="/models/toy/decisions/1/approve"' in page.text
        approved = web.post("/models/toy/decisions/1/approve", data={"reason": "looks right"})
        assert approved.status_code == 303 and "Version 1: approved." in _notice(
            approved.headers["location"])
        assert yard.models.aliases("toy") == {"production": 1}
        twice = web.post("/models/toy/decisions/1/approve", data={})
        assert twice.status_code == 409 and "not waiting for approval" in twice.text
        yard.pipelines.run("toy_decide")
        rejected = web.post("/models/toy/decisions/2/reject", data={"reason": "not now"})
        assert rejected.status_code == 303
        [decision] = yard.pipelines.decisions("toy", 2)
        assert (decision.decision, decision.reason) == ("rejected", "not now")
        assert yard.models.aliases("toy") == {"production": 1}
        assert web.post("/models/toy/decisions/2/shred").status_code == 404
