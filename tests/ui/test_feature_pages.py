"""The feature store page's group detail over a group applied twice (the second version
adds a feature, tags one PII and declares expectations): the diff between versions, the
source's profile with histograms, expectations and PII tags."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

import modelyard
from modelyard import Feature, FeatureGroup
from modelyard.ui import ui_app
from tests.registry.support import customer, policies, setup_features
from tests.ui.support import client, connect


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("ui-features") / "project"
    modelyard.init_project(root, "uifeatures")
    with connect(root) as yard:
        setup_features(yard)  # profile v1: age, vehicle_value
        yard.apply([FeatureGroup("profile", entity=customer, source=policies, features=[
            Feature("age", "age", tags=["pii"], min=16, max=120, not_null=True),
            Feature("vehicle_value", "vehicle_value / 1000", description="in thousands"),
            Feature("old_car", "vehicle_value < 5000"),
        ])])
        with client(ui_app(yard)) as test_client:
            yield test_client


def _card(html: str) -> str:
    return html.split('id="h-group"', 1)[1].split("</section>", 1)[0]


def test_the_newest_version_is_diffed_against_the_one_before(web: Any) -> None:
    page = web.get("/features", params={"group": "profile"})
    assert page.status_code == 200
    card = _card(page.text)
    assert "Changes from v1" in card
    assert '<tr class="added"><th scope="row">old_car</th>' in card
    assert re.search(r'<th scope="row">vehicle_value</th><td>expr</td><td><del><code>'
                     r'vehicle_value</code></del></td><td><ins><code>vehicle_value / 1000'
                     r'</code></ins></td>', card)
    assert re.search(r'<th scope="row">age</th><td>tags</td><td><del><code>-</code></del>'
                     r'</td><td><ins><code>\[&#34;pii&#34;\]</code>', card)
    # the other way round, chosen in the address
    back = _card(web.get("/features", params={"group": "profile", "version": "1",
                                              "against": "2"}).text)
    assert '<tr class="removed"><th scope="row">old_car</th>' in back
    assert _card(web.get("/features", params={"group": "profile", "version": "2",
                                              "against": "2"}).text).count(
        "No difference in the definitions") == 1


def test_expectations_and_pii_tags_are_shown_on_features(web: Any) -> None:
    card = _card(web.get("/features", params={"group": "profile"}).text)
    age = card.split('<th scope="row">age', 1)[1].split("</tr>", 1)[0]
    assert 'class="pii"' in age and "not null; ≥ 16, ≤ 120" in age
    assert '<span class="badge">pii</span>' in age
    car = card.split('<th scope="row">old_car', 1)[1].split("</tr>", 1)[0]
    assert 'class="pii"' not in car


def test_the_source_profile_is_drawn_with_histograms(web: Any) -> None:
    card = _card(web.get("/features", params={"group": "profile"}).text)
    assert "Profile of its source at commit" in card and "120 rows" in card
    figure = card.split("<strong>age</strong>", 1)[1].split("</figure>", 1)[0]
    assert '<svg class="chart histogram"' in figure
    bars = re.findall(r'<rect class="bar"[^>]*><title>[^<]*: (\d+)</title>', figure)
    assert len(bars) == 20 and sum(map(int, bars)) == 120  # every value in one bin


def test_bad_versions_and_commits_answer_in_place(web: Any) -> None:
    bad = web.get("/features", params={"group": "profile", "against": "9"})
    assert bad.status_code == 422 and "no version" in bad.text and "to compare" in bad.text
    commit = web.get("/features", params={"group": "profile", "commit": "nope"})
    assert commit.status_code == 422 and "has no commit" in commit.text
